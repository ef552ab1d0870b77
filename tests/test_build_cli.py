"""``python -m hdl.build``: validation (one line, exit 2, no files) and the manifest."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_build(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "hdl.build", *args], cwd=tmp_path,
                          capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("args, message", [
    (["--channels", "0"], r"Channel count must be a positive integer, not 0"),
    (["--channels", "-3"], r"Channel count must be a positive integer, not -3"),
    (["--channels", "abc"], r"Channel count must be a positive integer, not 'abc'"),
    (["--k", "0"], r"Component count must be a positive integer, not 0"),
    (["--channels", "8", "--k", "16"], r"Component count 16 must not exceed channel count 8"),
    (["--in-width", "1"], r"Input width must be between 2 and 16, not 1"),
    (["--in-width", "17"], r"Input width must be between 2 and 16, not 17"),
    (["--weight-width", "40"], r"Weight width must be between 2 and 16, not 40"),
    (["--out-width", "1"], r"Output width must be between 2 and 16, not 1"),
    (["--mult-width", "33"], r"Multiplier width must be between 1 and 32, not 33"),
    (["--bias-width", "64"], r"Bias width must be between 2 and 32, not 64"),
    (["--channels", "100000000", "--k", "4", "--in-width", "16", "--weight-width", "16"],
     r"Accumulator would need \d+ bits, more than 48"),
    (["--dsp-budget", "-1"], r"DSP budget must be a non-negative integer, not '-1'"),
    (["--dsp-budget", "x"], r"DSP budget must be a non-negative integer, not 'x'"),
    (["--dsp-budget", "17"],
     r"mac_array: DSP budget 17 exceeds the 16 tiles that 16 products take"),
    (["--family", "xilinx"], r"argument --family: invalid choice: 'xilinx'"),
    (["--family", "ice40", "--in-width", "9"],
     r"mac_array: FPGA family ice40 needs input and weight widths of at most 8, not 9 and 8"),
    (["--requant-mult", "rom"], r"argument --requant-mult: invalid choice: 'rom'"),
    (["--frobnicate"], r"unrecognized arguments: --frobnicate"),
    (["--channels"], r"argument --channels: expected one argument"),
])
def test_bad_arguments_exit_2_with_one_line_and_no_files(tmp_path, args, message):
    out = tmp_path / "out"
    result = run_build(tmp_path, *args, "--out", str(out))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("hdl.build: error: ")
    import re
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists(), "a failed run left files behind"
    assert result.stdout == ""


def test_out_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = run_build(tmp_path, "--out", str(target))
    assert result.returncode == 2
    assert "exists and is not a folder" in result.stderr
    assert target.read_text() == "keep me"


def test_headline_command_writes_verilog_and_manifest(tmp_path):
    result = run_build(tmp_path, "--channels", "64", "--k", "16")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "build"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["channels"] == 64 and manifest["parameters"]["k"] == 16
    names = {m["name"] for m in manifest["modules"]}
    assert "requantizer" in names
    for module in manifest["modules"]:
        text = (out / module["file"]).read_text()
        assert f"module {module['name']}(" in text
        for port in module["ports"]:
            # Every listed port exists in the Verilog with the listed direction and width.
            decl = f"{port['direction']} {port['name']};" if port["width"] == 1 else \
                f"{port['direction']} [{port['width'] - 1}:0] {port['name']};"
            assert decl in text, f"{module['name']}: {decl!r} not in the Verilog"
    assert not list(out.glob(".*")), "temporary files left behind"


def test_fusesoc_core_lists_every_module(tmp_path):
    result = run_build(tmp_path, "--channels", "32", "--k", "8")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "build"
    manifest = json.loads((out / "manifest.json").read_text())
    info = subprocess.run([sys.executable, "-m", "fusesoc.main", "--cores-root", str(out),
                           "core-info", "actcomp:generated:actcomp_generated"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "C=32 K=8" in info.stdout
    core = (out / "actcomp_generated.core").read_text()
    for module in manifest["modules"]:
        assert f"- {module['file']}" in core
        assert f"toplevel: {module['name']}" in core


def test_family_and_dsp_budget_reach_the_mac_arrays(tmp_path):
    result = run_build(tmp_path, "--family", "ecp5", "--dsp-budget", "8", "--top", "blocks")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "build"
    manifest = json.loads((out / "manifest.json").read_text())
    (mac,) = [m for m in manifest["modules"] if m["name"] == "mac_array"]
    params = mac["parameters"]
    assert (params["family"], params["dsp_tiles"], params["dsp_products"]) == ("ecp5", 8, 8)
    assert mac["latency_stages"] == {"product": 3, "accumulator": 2, "requantizer": 7}
    text = (out / "mac_array.v").read_text()
    # 8 weight products and 2 requantizer slices (33 x 16 bits) on registered tiles.
    assert text.count("MULT18X18D #(") == 10
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == 10
