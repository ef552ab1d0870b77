"""``hdl.top``: parameter errors, ports, the ``--top`` option and baking an artifact."""

import json

import numpy as np
import pytest

from hdl.build import main as build_main
from hdl.huffman_decoder import HuffmanDecoder
from hdl.huffman_encoder import HuffmanEncoder
from hdl.top import Compressor, Decompressor


@pytest.mark.parametrize("cls, kwargs, exc, msg", [
    (Compressor, {"channels": 8, "k": 16}, ValueError,
     "Component count 16 must not exceed channel count 8"),
    (Compressor, {"channels": "8", "k": 4}, TypeError, "Channel count must be an integer"),
    (Decompressor, {"channels": 8, "k": 0}, ValueError,
     "Component count must be between 1 and 4096, not 0"),
    (Compressor, {"channels": 8, "k": 4, "group_bits": [9]}, ValueError,
     "Group bit width must be between 2 and 8, not 9"),
    (Compressor, {"channels": 8, "k": 4, "group_bits": []}, TypeError,
     "Group bit widths must be a non-empty list"),
    (Decompressor, {"channels": 8, "k": 4, "group_bits": [4, 4]}, ValueError,
     "Group bounds are needed with 2 groups"),
    (Decompressor, {"channels": 8, "k": 4, "group_bits": [4, 4], "group_bounds": [0, 4, 4]},
     ValueError, "Group bounds must rise from 0 to 4"),
    (Compressor, {"channels": 8, "k": 4, "multipliers": 0}, ValueError,
     "Multiplier count must be a positive integer, not 0"),
    (Decompressor, {"channels": 8, "k": 4, "multipliers": 4, "pixels_width": 40}, ValueError,
     "Pixel count width must be between 1 and 32, not 40"),
    (Compressor, {"channels": 8, "k": 4, "multipliers": 4, "word_width": 12}, ValueError,
     "Word width must be one of 8, 16, 32, 64, not 12"),
])
def test_bad_parameters(cls, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(**kwargs)


def test_ports_follow_axi4_stream_names():
    c = Compressor(64, 16, multipliers=16)
    assert {"s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "m_axis_tdata",
            "m_axis_tlast", "m_axis_bits_tdata", "s_axis_weights_tdata", "s_axis_table_tdata",
            "error"} <= set(c.signature.members)
    assert "s_axis_table_tuser" not in c.signature.members      # one group
    assert len(c.s_axis_tdata) == 64 * 8
    assert c.cycles_per_pixel == 64
    d = Decompressor(64, 16, multipliers=64, group_bits=[6, 4], group_bounds=[0, 8, 16])
    assert {"s_axis_pixels_tdata", "s_axis_tdata", "m_axis_tdata", "m_axis_tlast",
            "s_axis_table_tuser", "error", "error_code"} <= set(d.signature.members)
    assert d.coef_width == 6 and d.cycles_per_pixel == 16
    assert len(d.m_axis_tdata) == 4 * 8   # 4 rows per cycle


def _files(out):
    return sorted(p.name for p in out.iterdir())


def test_top_option_selects_what_is_written(tmp_path, capsys):
    out = tmp_path / "c"
    assert build_main(["--out", str(out), "--top", "compressor"]) == 0
    assert _files(out) == ["actcomp_generated.core", "compressor.v", "manifest.json"]
    man = json.loads((out / "manifest.json").read_text())
    (mod,) = man["modules"]
    assert mod["cycles_per_pixel"] == 64
    assert mod["latency"]["huffman"] == HuffmanEncoder.LATENCY
    assert "toplevel: compressor" in (out / "actcomp_generated.core").read_text()
    out = tmp_path / "b"
    assert build_main(["--out", str(out), "--top", "blocks"]) == 0
    assert "compressor.v" not in _files(out) and "mac_array.v" in _files(out)
    out = tmp_path / "all"
    assert build_main(["--out", str(out)]) == 0
    assert {"compressor.v", "decompressor.v", "huffman_decoder.v"} <= set(_files(out))


@pytest.mark.parametrize("argv, msg", [
    (["--top", "nope"], "argument --top: invalid choice: 'nope'"),
    (["--groups", "17"], "Table group count 17 must not exceed component count 16"),
    (["--in-width", "9"], "code coefficients of at most 8 bits, not --in-width 9"),
    (["--top", "decompressor", "--multipliers", "1024", "--out-group", "3"],
     "Output group must divide 64 output channels"),
])
def test_cli_errors_one_line_exit_2_no_files(argv, msg, tmp_path, capsys):
    out = tmp_path / "out"
    assert build_main(["--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err, err
    assert not out.exists()


def test_weights_bake_both_tops(tmp_path, capsys):
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.projection.pca import pca_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) * np.linspace(3, 0.1, 8) + 1
    art = save_artifact(calibrate_layer(pca_fit(x, 4), x, group_bits=(6, 4)),
                        tmp_path / "a.npz")
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--channels", "8", "--k", "4", "--weights", str(art),
                       "--multipliers", "4", "--in-width", "6"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    tops = {m["name"]: m for m in man["modules"] if m["name"] in ("compressor", "decompressor")}
    for mod in tops.values():
        names = {p["name"] for p in mod["ports"]}
        assert not any(n.startswith(("s_axis_weights", "s_axis_table")) for n in names)
        assert mod["parameters"]["group_bits"] == [6, 4]
        assert mod["parameters"]["baked_weights"] and mod["parameters"]["baked_table"]


def _rl_layer():
    from golden.calibration.folding import calibrate_layer
    from golden.projection.pca import pca_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) * np.linspace(3, 0.1, 8) + 1
    return calibrate_layer(pca_fit(x, 4), x, group_bits=(6, 4), steps=np.full(4, 2.0),
                           run_length="on")


def test_run_length_artifact_builds_a_coder_per_group(tmp_path, capsys):
    """A run-length artifact bakes into both tops: one coder per group, each group's words
    and bit counts on ports of its own, and the manifest says the mode."""
    from golden.datapath.artifacts import save_artifact

    layer = _rl_layer()
    run_max = max(t.run_max for t in layer.tables.tables)
    assert run_max > 0 and all(t.run_max for t in layer.tables.tables)
    art = save_artifact(layer, tmp_path / "rl.npz")
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--channels", "8", "--k", "4", "--weights", str(art),
                       "--multipliers", "4", "--in-width", "6"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    tops = {m["name"]: m for m in man["modules"] if m["name"] in ("compressor", "decompressor")}
    assert set(tops) == {"compressor", "decompressor"}
    for name, mod in tops.items():
        assert mod["coding"] == {"mode": "run-length", "bitstream_version": 2,
                                 "run_max": run_max, "group_modes": ["run-length"] * 2,
                                 "coders": 2}
        assert mod["parameters"]["run_max"] == run_max
        names = {p["name"] for p in mod["ports"]}
        side = "m_axis" if name == "compressor" else "s_axis"
        assert {f"{side}_g0_tdata", f"{side}_g1_tdata", f"{side}_g0_bits_tdata",
                f"{side}_g1_bits_tdata"} <= names
        assert f"{side}_tdata" not in names
    assert tops["decompressor"]["latency"]["huffman"] == HuffmanDecoder(
        4, 12, 32, run_max=run_max).latency
    c = Compressor(8, 4, multipliers=4, group_bounds=[0, 2, 4], group_bits=[6, 4],
                   table=layer.tables)
    assert c.mode == "run-length" and len(c.encs) == 2 and c.enc is None


def test_plain_build_reports_plain_mode(tmp_path):
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--top", "decompressor", "--groups", "2"]) == 0
    (mod,) = json.loads((out / "manifest.json").read_text())["modules"]
    assert mod["coding"] == {"mode": "plain", "bitstream_version": 1, "run_max": 0,
                             "group_modes": ["plain"] * 2, "coders": 1}


def test_run_max_builds_run_time_run_length_tops(tmp_path):
    """``--run-max`` without tables: run-time tables, a coder per group, one table port."""
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--top", "compressor", "--groups", "3",
                       "--run-max", "16", "--in-width", "4"]) == 0
    (mod,) = json.loads((out / "manifest.json").read_text())["modules"]
    assert mod["coding"]["mode"] == "run-length" and mod["coding"]["coders"] == 3
    names = {p["name"] for p in mod["ports"]}
    assert {"s_axis_table_tdata", "s_axis_table_tuser", "m_axis_g2_tdata"} <= names


@pytest.mark.parametrize("kwargs, msg", [
    ({"run_max": 3}, "Run max must be 0 or a power of two up to 256, not 3"),
    ({"run_max": "8"}, "Run max must be an integer"),
    ({"run_max": 0, "rl": True}, "Table run max 1 exceeds the block's run max 0"),
    ({"run_max": 16, "plain": True}, "Baked plain tables need run max 0"),
])
def test_run_length_parameter_errors(kwargs, msg):
    from golden.codec.tables import build_table

    kw = dict(kwargs)
    if kw.pop("rl", False):
        kw["table"] = _rl_layer().tables
    if kw.pop("plain", False):
        rng = np.random.default_rng(1)
        kw["table"] = [build_table(rng.integers(-8, 8, 200), b, 12, histogram=False)
                       for b in (6, 4)]
    with pytest.raises((TypeError, ValueError), match=msg):
        Decompressor(8, 4, multipliers=4, group_bounds=[0, 2, 4], group_bits=[6, 4], **kw)


def test_run_max_cli_error_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--top", "compressor", "--run-max", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Run max must be 0 or a power of two" in err, err
    assert not out.exists()


def test_family_reaches_both_mac_arrays(tmp_path):
    assert Compressor(8, 4, multipliers=4, family="ecp5").mac._family == "ecp5"
    assert Decompressor(8, 4, multipliers=4, family="ecp5").mac._family == "ecp5"
    assert Compressor(8, 4, multipliers=4).mac._family == "generic"
    with pytest.raises(ValueError, match=r"^FPGA family must be one of generic, ecp5, ice40, "
                                         r"not 'xilinx'$"):
        Decompressor(8, 4, multipliers=4, family="xilinx")
    out = tmp_path / "e"
    assert build_main(["--out", str(out), "--top", "decompressor", "--family", "ecp5"]) == 0
    (mod,) = json.loads((out / "manifest.json").read_text())["modules"]
    assert mod["latency"]["huffman"] == Decompressor(64, 16).dec.LATENCY
