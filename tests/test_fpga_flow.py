"""The FPGA flow script end to end on the smallest block: real yosys and nextpnr (YoWASP)."""

import json
import subprocess
import sys
from pathlib import Path

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
