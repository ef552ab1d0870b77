"""The FPGA flow script: end to end on the smallest block (real yosys and nextpnr, YoWASP),
and its parsing and bookkeeping on canned tool output."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_flow_reports_resources_and_fmax(tmp_path):
    out = tmp_path / "fpga"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fpga_flow.py"), "--configs", "requantizer",
         "--targets", "ice40-up5k", "--seeds", "1", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok", row
    # The requantizer's 33 x 16 product maps onto iCE40 DSPs and leaves real logic behind.
    assert row["dsp"] >= 1 and row["lut"] > 100 and row["ff"] > 60
    assert 1 < row["fmax_mhz"] < 500
    assert "requantizer" in result.stdout and "Fmax" in result.stdout


def test_flow_rejects_unknown_configuration(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fpga_flow.py"), "--configs", "nonesuch"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown configuration 'nonesuch'" in result.stderr


# Parsing and bookkeeping on canned tool output (no tools run).

_spec = importlib.util.spec_from_file_location("fpga_flow", REPO / "scripts" / "fpga_flow.py")
fpga_flow = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fpga_flow)

# The tail of a real synth_ecp5 log (mac_array_m16): an earlier block must not be counted.
CANNED_STAT = """
=== top ===
        1   $scopeinfo
      999   LUT4
=== top ===

     3283 cells
        1   $scopeinfo
      151   CCU2C
        5   DP16KD
       65   L6MUX21
     1360   LUT4
       18   MULT18X18D
      198   PFUMX
       24   TRELLIS_DPR16X4
     1461   TRELLIS_FF

End of script.
"""


def _step(kind, cell_from, cell_to, delay, sources=()):
    step = {"type": kind, "delay": delay, "from": {"cell": cell_from, "port": "Q"},
            "to": {"cell": cell_to, "port": "D"}}
    if kind == "routing":
        step["net"] = "n"
        step["sources"] = list(sources)
    return step


CANNED_REPORT = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
    _step("clk-to-q", "inner.codes.0.0", "inner.codes.0.0", 5.6),
    _step("routing", "inner.codes.0.0", "inner.x_LUT4_Z", 1.0,
          ["/work/main/hdl/huffman_encoder.py:311", "/share/lattice/cells_map_trellis.v:108"]),
    _step("logic", "inner.x_LUT4_Z", "inner.x_LUT4_Z", 0.4),
    _step("routing", "inner.x_LUT4_Z", "inner.y$CCU2_COMB0", 0.9),
    _step("logic", "inner.y$CCU2_COMB0", "inner.y$CCU2_COMB0", 0.45),
    _step("logic", "inner.y$CCU2_COMB1", "inner.y$CCU2_COMB1", 0.45),
    _step("setup", "inner.code1_TRELLIS_FF_Q_27", "inner.code1_TRELLIS_FF_Q_27", 0.1),
]}]}


def test_count_cells_reads_the_last_statistics_block():
    counts = fpga_flow.count_cells(CANNED_STAT)
    # A CCU2C carry cell is two LUT4s; distributed RAM is not block RAM.
    assert counts == {"lut": 1360 + 2 * 151, "ff": 1461, "dsp": 18, "bram": 5, "lutram": 24}


def test_critical_path_summary():
    cp = fpga_flow.critical_path(CANNED_REPORT, {"inner.codes.0.0": "DP16KD",
                                                 "inner.x_LUT4_Z": "LUT4"})
    assert cp["from"] == "codes.0.0" and cp["to"] == "code1_TRELLIS_FF_Q_27"
    assert cp["logic_steps"] == 3
    # Sums of a few decimal delays in float64, in another order: ~1e-15 apart.
    assert cp["logic_ns"] == pytest.approx(5.6 + 0.4 + 0.9 + 0.1, rel=1e-12)
    assert cp["routing_ns"] == pytest.approx(1.9, rel=1e-12)
    assert cp["largest"] == ["DP16KD clk-to-q 5.60 ns", "CCU2 0.90 ns", "LUT4 0.40 ns"]
    assert cp["sources"] == ["hdl/huffman_encoder.py:311"]
    assert fpga_flow.critical_path({"critical_paths": []}) is None


def _fake_config():
    from hdl.requantizer import Requantizer
    comp = Requantizer(acc_width=8, mult_width=4, out_width=4)
    comp._MustUse__silence = True
    return comp, {"family": "fake", "parallelism": 2, "multipliers": 2, "values_per_cycle": 2}


def test_does_not_fit_is_a_result_not_a_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(fpga_flow.CONFIGS, "fake", _fake_config)
    monkeypatch.setattr(fpga_flow, "synthesize", lambda *a: {k: 1 for k in fpga_flow.CELL_CLASSES})

    def no_room(*args):
        raise RuntimeError("Unable to place cell 'x', no BELs remaining to implement cell type "
                           "'ICESTORM_DSP'")
    monkeypatch.setattr(fpga_flow, "place_and_route", no_room)
    row = fpga_flow.run_config("fake", "ecp5-25k", 1, tmp_path)
    assert row["status"].startswith("does not fit (Unable to place cell"), row
    # The placer's message for more logic cells than the device has (the map-loop decoder
    # on a UP5K: 8699 of its 5280).
    assert fpga_flow._fit_failure("Failed to expand region (0, 0) |_> (25, 31) of 8699 "
                                  "ICESTORM_LCs")

    def broken(*args):
        raise RuntimeError("nextpnr exit 1")
    monkeypatch.setattr(fpga_flow, "place_and_route", broken)
    assert fpga_flow.run_config("fake", "ecp5-25k", 1, tmp_path)["status"] == \
        "failed: nextpnr exit 1"

    # More multipliers than DSP tiles: recorded without running any tool.
    monkeypatch.setitem(fpga_flow.TARGETS["ice40-up5k"], "dsp", 1)
    row = fpga_flow.run_config("fake", "ice40-up5k", 1, tmp_path)
    assert row["status"] == "does not fit (not run: 2 product DSP tiles > 1 SB_MAC16 on ice40-up5k)"
    fpga_flow.print_table([row])
    assert "does not fit (not run" in capsys.readouterr().out


def test_configurations_cover_the_issue():
    names = set(fpga_flow.CONFIGS)
    assert {"huffman_encoder", "huffman_decoder", "mac_array_m4", "mac_array_m16",
            "mac_array_m64"} <= names
    _comp, info = fpga_flow.CONFIGS["mac_array_m64"]()
    _comp._MustUse__silence = True
    assert info["values_per_cycle"] == 4 and info["cycles_per_pixel"] == 16


def test_decompressor_synthesizes_past_the_abc9_stop(tmp_path):
    """The M = 16 decompressor on ECP5: yosys 0.70's ABC9 stops on its netlist; the flow then
    maps its LUTs with classic ABC and says so in the row. Real synthesis (about 15 s)."""
    component, _ = fpga_flow.CONFIGS["decompressor_m16_ecp5"]()
    cells = fpga_flow.synthesize("decompressor_m16_ecp5", component, "ecp5-25k", tmp_path)
    # The whole design is there: the MAC array's 18 multiplier tiles, the symbol memory,
    # thousands of LUTs and flip-flops.
    assert cells["dsp"] == 18 and cells["bram"] >= 1
    assert cells["lut"] > 2000 and cells["ff"] > 2000
    stopped = tmp_path / "synth_abc9.log"
    assert ("lut_mapper" in cells) == stopped.exists()
    assert not stopped.exists() or fpga_flow.ABC9_STOP in stopped.read_text()


def test_run_stops_a_process_past_its_timeout(tmp_path):
    """``--seed-timeout``'s mechanism on a real process: killed, ``TimeoutExpired`` raised."""
    with pytest.raises(subprocess.TimeoutExpired):
        fpga_flow._run([sys.executable, "-c", "import time; time.sleep(60)"], "slow.log",
                       tmp_path, timeout=0.5)
    assert fpga_flow._run([sys.executable, "-c", "print('ok')"], "fast.log", tmp_path,
                          timeout=60) == 0
    assert (tmp_path / "fast.log").read_text() == "ok\n"


def test_stopped_seeds_leave_the_median_of_the_others(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(fpga_flow.CONFIGS, "fake", _fake_config)
    monkeypatch.setattr(fpga_flow, "synthesize", lambda *a: {k: 1 for k in fpga_flow.CELL_CLASSES})
    monkeypatch.setattr(fpga_flow, "cell_types", lambda path: {})
    report = {**CANNED_REPORT, "utilization": {"TRELLIS_COMB": {"used": 7, "available": 9}}}
    seen = []

    def pnr(target, work, seed, freq, timeout):
        seen.append((seed, timeout))
        if seed == 2:
            raise fpga_flow.SeedStopped(seed)
        return 100.0 + 10 * seed, report
    monkeypatch.setattr(fpga_flow, "place_and_route", pnr)
    row = fpga_flow.run_config("fake", "ecp5-25k", 3, tmp_path, seed_timeout=90)
    assert sorted(seen) == [(1, 90), (2, 90), (3, 90)]
    assert row["status"] == "ok" and row["fmax_mhz"] == 120.0
    assert row["fmax_seeds"] == [110.0, None, 130.0] and row["seeds_stopped"] == [2]
    # Both finished seeds are 10 MHz from the median: the slower one's path is reported.
    assert row["critical_path_seed"] == 1 and row["logic_cells"] == 7
    fpga_flow.print_table([row])
    assert "[110.0, stopped, 130.0]" in capsys.readouterr().out

    def never(target, work, seed, freq, timeout):
        raise fpga_flow.SeedStopped(seed)
    monkeypatch.setattr(fpga_flow, "place_and_route", never)
    row = fpga_flow.run_config("fake", "ecp5-25k", 2, tmp_path, seed_timeout=60)
    assert row["status"] == "failed: every seed stopped after 60 s (--seed-timeout)"


def test_seed_timeout_must_be_positive(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fpga_flow.py"), "--configs", "requantizer",
         "--seed-timeout", "0"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "--seed-timeout must be a positive number of minutes" in result.stderr
