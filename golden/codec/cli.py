"""``python -m golden.codec``: fit tables, encode, decode and inspect coded arrays.

    python -m golden.codec fit SYMBOLS.npy --bits B --max-len L [--groups S1,S2,..]
                             [--unsigned] [--no-escape] [--run-length [--run-max R]]
                             [--lanes N] --out TABLE
    python -m golden.codec encode SYMBOLS.npy --table TABLE [--word-bits W] [--lanes N]
                             --out STREAM
    python -m golden.codec decode STREAM [--lanes N] --out SYMBOLS.npy
    python -m golden.codec info STREAM [--lanes N]

SYMBOLS.npy holds an integer array of shape (N,) or (N, K). ``--groups`` lists the first column
of every group after the first (``--groups 16,32`` with K = 64: columns 0-15, 16-31, 32-63);
``--bits`` and ``--max-len`` take one value, or one per group. Any bad argument or input prints
one line on stderr and exits with status 2; output files appear only when complete.

``--lanes N`` (1, 2, 4, 8) selects bitstream version 3: ``fit`` records N in the table set (so
``encode`` codes in N lanes by default), ``encode`` codes in N lanes whatever the table set
says, ``decode`` refuses a stream that is not coded in N lanes (a decoder built for N lanes
checks its input this way), and ``info`` adds what the array would cost in N lanes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

from golden.codec.container import (
    TableSet,
    decode_coded,
    encode_array,
    pack_tables,
    unpack_container,
    unpack_tables,
)
from golden.codec.errors import HuffmanError
from golden.codec.lanes import encode_lanes
from golden.codec.runlength import build_rl_table
from golden.codec.tables import build_table

PROG = "python -m golden.codec"


class UsageError(Exception):
    """A bad command line or input file: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _int_list(text, name):
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of integers, "
                         f"not {text!r}") from None
    return vals


def _load_symbols(path):
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"Cannot read {path}: {e}") from None
    if not isinstance(a, np.ndarray) or a.ndim not in (1, 2):
        raise UsageError(f"{path} must hold a 1-D or 2-D array, not {getattr(a, 'ndim', '?')}-D")
    if not np.issubdtype(a.dtype, np.integer):
        raise UsageError(f"{path} must hold integers, not {a.dtype}")
    return a


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"Cannot read {path}: {e.strerror}") from None


def _write_atomic(path, data):
    """Write ``data`` (bytes, or a callable taking a file) to ``path`` only when complete."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    except OSError as e:
        raise UsageError(f"Cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise UsageError(f"Cannot write {path}: {e.strerror}") from None
        raise


def _per_group(vals, g, name):
    if len(vals) == 1:
        return vals * g
    if len(vals) != g:
        raise UsageError(f"{name} needs 1 or {g} values, not {len(vals)}")
    return vals


def cmd_fit(args):
    a = _load_symbols(args.symbols)
    a2 = a if a.ndim == 2 else a.reshape(-1, 1)
    k = a2.shape[1]
    splits = _int_list(args.groups, "--groups") if args.groups else []
    bounds = [0, *splits, k]
    if any(x >= y for x, y in zip(bounds, bounds[1:])):
        raise UsageError(f"Group starts must rise strictly inside 1..{k - 1}, not {splits}")
    g = len(bounds) - 1
    bits = _per_group(_int_list(args.bits, "--bits"), g, "--bits")
    max_len = _per_group(_int_list(args.max_len, "--max-len"), g, "--max-len")
    tables = []
    for b, L, lo, hi in zip(bits, max_len, bounds, bounds[1:]):
        part = a2[:, lo:hi]
        if args.run_length:
            t = build_rl_table(part, b, L, signed=not args.unsigned, escape=not args.no_escape,
                               run_max=args.run_max)
        else:
            t = build_table(part, b, L, signed=not args.unsigned, escape=not args.no_escape,
                            histogram=False)
        tables.append(t)
    _write_atomic(args.out, pack_tables(TableSet(tables, bounds, args.lanes)))


def cmd_encode(args):
    a = _load_symbols(args.symbols)
    ts = unpack_tables(_read(args.table))
    _write_atomic(args.out, encode_array(a, ts, args.word_bits, args.lanes))


def _check_stream_lanes(coded, lanes):
    if lanes is None:
        return
    have = coded.tableset.lanes
    if have is None:
        raise UsageError(f"Stream is version {coded.tableset.version} without lanes, not "
                         f"coded in {lanes} lanes")
    if have != lanes:
        raise UsageError(f"Stream is coded in {have} lanes, not {lanes}")


def cmd_decode(args):
    coded = unpack_container(_read(args.stream))
    _check_stream_lanes(coded, args.lanes)
    out = decode_coded(coded)

    def save(f):
        np.save(f, out, allow_pickle=False)
    _write_atomic(args.out, save)


def _entropy(values):
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) if counts.size else 0.0


def _lane_line(label, sizes, word_bits):
    words = [-(-n // word_bits) for n in sizes]
    mean = sum(sizes) / len(sizes)
    spread = max(sizes) / mean if mean else 1.0
    return (f"{label}: {len(sizes)} lanes, bits {', '.join(map(str, sizes))}; words "
            f"{', '.join(map(str, words))}; longest lane {spread:.3f}x the mean; "
            f"header {8 * len(sizes)} bytes")


def info_lines(data, lanes=None):
    """Lines that ``info`` prints for container bytes (``lanes``: also the cost in N lanes)."""
    coded = unpack_container(data)
    a = decode_coded(coded)
    ts = coded.tableset
    a2 = a if a.ndim == 2 else a.reshape(-1, 1)
    mode = {1: "plain", 2: "run-length", 3: f"plain, {ts.lanes} lanes"}[ts.version]
    lines = [(f"shape {a.shape} {coded.dtype}, version {ts.version} ({mode}), "
              f"{coded.word_bits}-bit words, {len(ts.tables)} table(s), {len(data)} bytes")]
    if ts.lanes is not None:
        lines.append(_lane_line("lanes", [n for n, _ in coded.tiles], coded.word_bits))
    if lanes is not None:
        if ts.version == 2:
            raise UsageError("Lanes need plain tables; this stream is run-length (version 2)")
        tiles = encode_lanes(a2, ts.tables, ts.bounds, coded.word_bits, lanes)
        lines.append(_lane_line(f"in {lanes} lanes", [n for _, n in tiles], coded.word_bits))
    lines.append("table  columns    b   L  symbols      bits/sym  entropy  ratio_vs_raw")
    total_bits = 0
    for g, (t, lo, hi) in enumerate(zip(ts.tables, ts.bounds, ts.bounds[1:])):
        part = a2[:, lo:hi]
        if ts.version == 2:
            nbits = coded.tiles[g][0]
        else:
            idx = part.astype(np.int64).ravel() & ((1 << t.bits) - 1)
            nbits = int(t.enc_len[idx].sum())
        total_bits += nbits
        n = part.size
        bps = nbits / n if n else 0.0
        ratio = t.bits / bps if bps else float("inf")
        lines.append(f"{g:5d}  {lo:3d}-{hi - 1:<5d} {t.bits:2d}  {t.max_len:2d}  {n:<11d}  "
                     f"{bps:8.4f}  {_entropy(part):7.4f}  {ratio:6.2f}x")
    n = a.size
    raw = sum(t.bits * (hi - lo) for t, lo, hi in zip(ts.tables, ts.bounds, ts.bounds[1:]))
    raw *= a2.shape[0]
    lines.append(f"total  {n} symbols, {total_bits} payload bits, "
                 f"{total_bits / n if n else 0:.4f} bits/symbol, "
                 f"{raw / total_bits if total_bits else float('inf'):.2f}x vs raw, "
                 f"{raw / (8 * len(data)) if data else 0:.2f}x with container overhead")
    return lines


def cmd_info(args):
    print("\n".join(info_lines(_read(args.stream), args.lanes)))


def _lanes_arg(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Lane count must be one of 1, 2, 4, 8, not "
                                         f"{text!r}") from None
    if value not in (1, 2, 4, 8):
        raise argparse.ArgumentTypeError(f"Lane count must be one of 1, 2, 4, 8, not {value}")
    return value


def _add_lanes(parser, text):
    parser.add_argument("--lanes", type=_lanes_arg, default=None, metavar="N", help=text)


def make_parser():
    p = _Parser(prog=PROG, description="Golden canonical Huffman codec.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    f = sub.add_parser("fit", help="fit tables to an array of symbols")
    f.add_argument("symbols")
    f.add_argument("--bits", required=True, help="symbol width b (1-8), or one per group")
    f.add_argument("--max-len", required=True, help="maximum code length L, or one per group")
    f.add_argument("--groups", help="first column of each group after the first, e.g. 16,32")
    f.add_argument("--unsigned", action="store_true", help="values are unsigned")
    f.add_argument("--no-escape", action="store_true",
                   help="no ESC code: only values seen here can be encoded")
    f.add_argument("--run-length", action="store_true", help="run-length mode (version 2)")
    f.add_argument("--run-max", type=int, help="longest run symbol (power of two, 1-256); "
                   "default: the best for the data")
    _add_lanes(f, "code in N lanes (1, 2, 4, 8; version 3) by default with these tables")
    f.add_argument("--out", required=True)
    f.set_defaults(func=cmd_fit)
    e = sub.add_parser("encode", help="encode an array with a table set")
    e.add_argument("symbols")
    e.add_argument("--table", required=True)
    e.add_argument("--word-bits", type=int, default=32, help="word width W: 8, 16, 32, 64")
    _add_lanes(e, "code in N lanes (1, 2, 4, 8; version 3); default: the table set's")
    e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_encode)
    d = sub.add_parser("decode", help="decode a stream to SYMBOLS.npy")
    d.add_argument("stream")
    _add_lanes(d, "refuse a stream not coded in N lanes")
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_decode)
    i = sub.add_parser("info", help="sizes, bits per symbol and entropy per table")
    i.add_argument("stream")
    _add_lanes(i, "also show the lane sizes the array would have in N lanes")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None):
    try:
        args = make_parser().parse_args(argv)
        args.func(args)
    except (UsageError, HuffmanError, ValueError, TypeError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 2
    return 0


__all__ = ["info_lines", "main", "make_parser"]
