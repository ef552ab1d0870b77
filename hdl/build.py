"""Generate Verilog and a manifest: ``python -m hdl.build --channels 64 --k 16``.

Every argument is validated before anything is generated, and everything is generated in
memory before a file is written: a bad value prints one line to stderr and exits with status 2,
leaving no files behind.

Blocks register themselves in ``BLOCKS``: each entry adds its options to the parser, checks
them, and returns the modules to emit. Later blocks (MAC array, Huffman coder) add entries.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from amaranth.back import verilog

from golden.datapath.quant import acc_bits
from hdl.manifest import describe_ports
from hdl.registry import Block, Module, UsageError, positive, width
from hdl.requantizer import Requantizer

__all__ = ["BLOCKS", "Block", "Module", "generate", "main"]

MANIFEST_VERSION = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _common_arguments(parser):
    parser.add_argument("--channels", type=positive("Channel count"), default=64,
                        help="feature-map channels C (default 64)")
    parser.add_argument("--k", type=positive("Component count"), default=16,
                        help="projected components K, at most C (default 16)")
    parser.add_argument("--in-width", type=width("Input width", 2, 16), default=8,
                        help="signed MAC input width in bits (default 8)")
    parser.add_argument("--weight-width", type=width("Weight width", 2, 16), default=8,
                        help="signed weight width in bits (default 8)")
    parser.add_argument("--bias-width", type=width("Bias width", 2, 32), default=32,
                        help="signed bias width in bits (default 32)")
    parser.add_argument("--mult-width", type=width("Multiplier width", 1, 32), default=16,
                        help="unsigned requantization multiplier width (default 16)")
    parser.add_argument("--out-width", type=width("Output width", 2, 16), default=8,
                        help="signed output width in bits (default 8)")
    parser.add_argument("--relu", action="store_true",
                        help="clamp requantized outputs at zero")
    parser.add_argument("--max-channels", type=positive("Most channels"), default=None,
                        metavar="CMAX",
                        help="run-time shapes: blocks that take any layer with C <= CMAX and "
                             "K <= KMAX (--max-k), set per layer by a layer descriptor; "
                             "replaces --channels and --k (docs/runtime.md)")
    parser.add_argument("--max-k", type=positive("Most components"), default=None,
                        metavar="KMAX", help="run-time shapes: the most components K")
    parser.add_argument("--max-groups", type=positive("Most table groups"), default=None,
                        metavar="G",
                        help="run-time shapes: the most table groups of a layer (default 4)")


def _check_runtime(args):
    """``--max-channels``/``--max-k``: run-time shapes (``args.runtime``); they stand in for
    ``--channels``/``--k`` and exclude what fixes a layer (baked weights or tables) and the
    modes the run-time blocks lack (run-length, lanes)."""
    args.runtime = args.max_channels is not None or args.max_k is not None
    if not args.runtime:
        if args.max_groups is not None:
            raise UsageError("--max-groups needs --max-channels and --max-k")
        return
    if args.max_channels is None or args.max_k is None:
        raise UsageError("--max-channels and --max-k go together")
    for opt, value in (("--weights", getattr(args, "weights", None)),
                       ("--table", getattr(args, "table", None)),
                       ("--lanes", getattr(args, "lanes", None))):
        if value is not None:
            raise UsageError(f"{opt} does not go with --max-channels/--max-k (run-time shapes "
                             f"load every layer's constants at run time)")
    if getattr(args, "run_max", None):
        raise UsageError("--run-max does not go with --max-channels/--max-k (run-time shapes "
                         "code plain tables)")
    args.channels, args.k = args.max_channels, args.max_k
    args.max_groups = 4 if args.max_groups is None else args.max_groups
    if args.max_groups > min(args.max_k, 16):
        raise UsageError(f"Most table groups {args.max_groups} must be at most "
                         f"{min(args.max_k, 16)} (--max-k, and 16)")


def _check_common(args):
    _check_runtime(args)
    if args.k > args.channels:
        raise UsageError(f"Component count {args.k} must not exceed channel count "
                         f"{args.channels}")
    args.acc_width = acc_bits(args.in_width, args.weight_width,
                              max(args.channels, args.k), args.bias_width)
    if args.acc_width > 48:
        raise UsageError(f"Accumulator would need {args.acc_width} bits, more than 48; "
                         f"reduce widths or channels")


def _requantizer_modules(args):
    comp = Requantizer(acc_width=args.acc_width, mult_width=args.mult_width,
                       out_width=args.out_width, relu=args.relu)
    return [Module("requantizer", comp, {
        "latency": Requantizer.LATENCY,
        "throughput": "1 beat per cycle",
        "parameters": {"acc_width": args.acc_width, "mult_width": args.mult_width,
                       "out_width": args.out_width, "relu": args.relu},
    })]


# Generator modules that expose ``BLOCK``, in emission order. A module not yet present in the
# tree is skipped (blocks land one at a time); every listed module is required once released.
_BLOCK_MODULES = ("hdl.mac_array", "hdl.huffman_encoder", "hdl.huffman_decoder", "hdl.huffman_lanes",
                  "hdl.top")


def _discover():
    blocks = [Block("requantizer", lambda parser: None, _requantizer_modules)]
    for name in _BLOCK_MODULES:
        if importlib.util.find_spec(name) is not None:
            blocks.append(importlib.import_module(name).BLOCK)
    return blocks


BLOCKS: list[Block] = _discover()


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m hdl.build",
                     description="Generate activation-compression hardware as Verilog.")
    parser.add_argument("--out", default="build", help="output folder (default build/)")
    _common_arguments(parser)
    for block in BLOCKS:
        block.add_arguments(parser)
    return parser


def generate(args) -> dict[str, str]:
    """Return ``{file name: text}`` for every module and the manifest (nothing written)."""
    modules = [m for block in BLOCKS for m in block.modules(args)]
    top = getattr(args, "top", "all")
    if top not in ("all", "blocks"):
        for m in modules:
            if m.name != top:
                _silence(m.component)
        modules = [m for m in modules if m.name == top]
    files = {}
    manifest = {
        "version": MANIFEST_VERSION,
        "parameters": {
            "channels": args.channels, "k": args.k, "in_width": args.in_width,
            "weight_width": args.weight_width, "bias_width": args.bias_width,
            "mult_width": args.mult_width, "out_width": args.out_width,
            "acc_width": args.acc_width, "relu": args.relu,
            "runtime_shape": ({"max_channels": args.max_channels, "max_k": args.max_k,
                               "max_groups": args.max_groups} if args.runtime else None),
        },
        "modules": [],
    }
    # Large run-time maxima take minutes to convert (Amaranth emits every memory word):
    # show progress on a terminal.
    progress = sys.stderr.isatty()
    for i, mod in enumerate(modules):
        if progress:
            print(f"hdl.build: [{i + 1}/{len(modules)}] {mod.name}.v ...", file=sys.stderr,
                  flush=True)
        text = verilog.convert(mod.component, name=mod.name, emit_src=False)
        files[f"{mod.name}.v"] = text
        manifest["modules"].append({
            "name": mod.name, "file": f"{mod.name}.v",
            "ports": describe_ports(mod.component), **mod.info,
        })
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    files[f"{CORE_NAME}.core"] = fusesoc_core(manifest)
    return files


def _silence(obj, seen=None):
    """Mark a built but unused component (and the ones it holds) as used, so Amaranth does
    not warn about it when ``--top`` leaves it out."""
    from amaranth.hdl import Elaboratable

    seen = set() if seen is None else seen
    if not isinstance(obj, Elaboratable) or id(obj) in seen:
        return
    seen.add(id(obj))
    obj._MustUse__silence = True
    for value in vars(obj).values():
        _silence(value, seen)


CORE_NAME = "actcomp_generated"


def fusesoc_core(manifest: dict) -> str:
    """A FuseSoC CAPI2 core listing the generated Verilog, one target per top module."""
    p = manifest["parameters"]
    lines = [
        "CAPI=2:",
        f"name: actcomp:generated:{CORE_NAME}:0.1.0",
        f"description: actcomp blocks generated for C={p['channels']} K={p['k']}",
        "filesets:",
        "  rtl:",
        "    files:",
        *[f"      - {m['file']}" for m in manifest["modules"]],
        "    file_type: verilogSource",
        "targets:",
        "  default:",
        "    filesets: [rtl]",
    ]
    for m in manifest["modules"]:
        lines += [f"  {m['name']}:", "    filesets: [rtl]", f"    toplevel: {m['name']}"]
    return "\n".join(lines) + "\n"


def write_files(out: Path, files: dict[str, str]) -> None:
    """Write every file atomically (temp file + rename), creating ``out`` if needed."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out / name)


def _artifact_defaults(path) -> dict:
    """Defaults that make the build match a golden artifact: C, K, ReLU and the widths the
    baked MAC arrays need. Options given on the command line still win (and are checked
    against the artifact)."""
    from golden.datapath.artifacts import load_artifact

    try:
        art = load_artifact(path)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return {"channels": art.channels, "k": art.k, "relu": bool(art.relu),
            "out_width": int(art.out_bits), "in_width": int(max(art.group_bits))}


def parse_args(argv=None):
    """Parse and validate; raises ``UsageError`` with a one-line message."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if getattr(args, "weights", None) is not None:
        parser.set_defaults(**_artifact_defaults(args.weights))
        args = parser.parse_args(argv)
    _check_common(args)
    if getattr(args, "multipliers", False) is None:
        args.multipliers = 16       # every count has a schedule (hdl.mac_array.schedule)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"Output path {str(out)!r} exists and is not a folder")
    return args


def _release_quietly(exc: BaseException) -> None:
    """Free the components a failed build had made, without Amaranth's warning that they
    were never used: the one-line error is all the user should see."""
    from amaranth.hdl import UnusedElaboratable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None
        gc.collect()


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        files = generate(args)
    except (UsageError, ValueError, TypeError) as exc:
        print(f"hdl.build: error: {exc}", file=sys.stderr)
        _release_quietly(exc)
        return 2
    out = Path(args.out)
    write_files(out, files)
    names = ", ".join(sorted(files))
    print(f"wrote {names} to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
