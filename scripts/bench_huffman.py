"""Benchmark of the golden Huffman codec on real MobileNetV2 activations.

    python -m scripts.bench_huffman [--activations ACTS.npz] [--images 4] [--max-len 12]
                                    [--energy 0.99] [--speed-mb 4] [--dahuffman-kb 256]

Per capture point (ReLU6 outputs and block outputs, channels last), three kinds of table:

* ``act8``: the activations quantized per layer to 8 bits (unsigned max/255 for non-negative
  maps, else signed max-abs/127), one table per layer, symbols row-major (pixel, channel);
* ``pca0`` / ``pca1``: PCA coefficients (numpy ``eigh`` of the channel covariance, the fewest
  components holding ``--energy`` of the variance) scaled to int8 by their max-abs over the
  layer (``--pca-scale component``: per component), in two groups: the leading quarter of the
  components and the rest.

For each table it prints the zero-order entropy H of its symbols, the average bits/symbol of a
plain (version 1) table and of a run-length (version 2) table fitted to the same symbols
(in-sample, the code efficiency for that data), and their ratios to H; every stream is decoded
back and checked. Then encode+decode throughput in MB/s (one byte per 8-bit symbol) of both
modes beside zlib level 6 and dahuffman on the same symbols.

Activations come from ``golden.nets.capture`` on the bundled photos (``golden.nets.mobilenet``,
``golden.nets.images``), or from ``--activations``: an .npz of NHWC float arrays, one per point.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib

import numpy as np

from golden.codec.plain import decode_groups, decode_tile, encode_groups, encode_tile
from golden.codec.runlength import build_rl_table, decode_rl_tile, encode_rl_tile
from golden.codec.tables import build_table


def load_activations(args):
    if args.activations:
        with np.load(args.activations) as f:
            return {k: f[k] for k in f.files}, f"file {args.activations}"
    try:
        from golden.nets.capture import activation_points, capture
        from golden.nets.images import bundled_photos, make_batch
        from golden.nets.mobilenet import load_mobilenet_v2
    except ImportError as e:
        raise SystemExit(f"bench_huffman: error: no --activations and no capture path ({e})"
                         ) from None
    model = load_mobilenet_v2().eval()
    photos = bundled_photos()
    x = make_batch(photos, args.images, size=224, seed=0)
    acts = capture(model, x, activation_points(model))
    source = (f"golden.nets.capture, {args.images} crops of {len(photos)} bundled photos at "
              "224 x 224")
    return {name: t.numpy() for name, t in acts.items()}, source


def quantize8(x):
    """Per-layer 8-bit quantization: (symbols, signed)."""
    if x.min() >= 0:
        scale = max(float(x.max()), 1e-12) / 255
        return np.clip(np.rint(x / scale), 0, 255).astype(np.int64), False
    scale = max(float(np.abs(x).max()), 1e-12) / 127
    return np.clip(np.rint(x / scale), -127, 127).astype(np.int64), True


def pca_coefficients(x, energy, per_component=False):
    """(P, C) -> int8 coefficients (P, k): symmetric max-abs scale per layer (docs/design.md's
    measured baseline), or per component."""
    xc = x - x.mean(axis=0)
    cov = (xc.T @ xc) / max(len(x) - 1, 1)
    w, v = np.linalg.eigh(cov.astype(np.float64))
    order = np.argsort(w)[::-1]
    w, v = np.clip(w[order], 0, None), v[:, order]
    total = w.sum()
    k = int(np.searchsorted(np.cumsum(w) / total, energy) + 1) if total > 0 else 1
    y = xc @ v[:, :min(k, w.size)].astype(np.float32)
    peak = np.abs(y).max(axis=0) if per_component else np.abs(y).max()
    scale = np.maximum(peak, 1e-12) / 127
    return np.clip(np.rint(y / scale), -127, 127).astype(np.int64)


def entropy(sym):
    _, c = np.unique(sym, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def code_table(sym, signed, max_len):
    """Fit, encode and decode one table both ways; return (H, plain bits, RL bits, R)."""
    flat = sym.ravel()
    t = build_table(flat, 8, max_len, signed=signed, histogram=False)
    words, nb = encode_tile(flat, t)
    assert np.array_equal(decode_tile(words, nb, flat.size, t), flat), "plain round trip"
    tr = build_rl_table(flat, 8, max_len, signed=signed)
    words, nbr = encode_rl_tile(flat, tr)
    assert np.array_equal(decode_rl_tile(words, nbr, flat.size, tr), flat), "RL round trip"
    return entropy(flat), nb, nbr, tr.run_max


def timed(fn, *a, repeat=1):
    """Result of ``fn(*a)`` and its fastest time over ``repeat`` runs, in CPU seconds of this
    thread (user + system): every codec here runs in the calling thread, and on a shared
    machine wall-clock time also counts the other jobs' turns on the cores."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time()
        out = fn(*a)
        best = min(best, time.thread_time() - t0)
    return out, best


def group_bounds(k, groups):
    """Edges of ``groups`` near-equal column groups of k columns (fewer when k < groups)."""
    g = min(groups, k)
    return [round(i * k / g) for i in range(g + 1)]


def speed_layers(layers, mb):
    """The first ``mb`` million symbols of (symbols, signed) layers, each kept 2-D (pixel,
    channel): whole layers, the last one cut to whole rows."""
    out, left = [], int(mb * 1e6)
    for sym, signed in layers:
        if left <= 0:
            break
        rows = min(sym.shape[0], max(1, left // sym.shape[1]))
        out.append((sym[:rows], signed))
        left -= rows * sym.shape[1]
    return out


def _codec_plain(sym, signed, bounds, max_len):
    tables = [build_table(sym[:, lo:hi], 8, max_len, signed=signed, histogram=False)
              for lo, hi in zip(bounds, bounds[1:])]

    def enc():
        return [encode_groups(sym, tables, bounds)]

    def dec(tiles):
        (words, nbits), = tiles
        return decode_groups(words, nbits, sym.shape[0], tables, bounds)
    return enc, dec


def _codec_rl(sym, signed, bounds, max_len):
    parts = [sym[:, lo:hi] for lo, hi in zip(bounds, bounds[1:])]
    tables = [build_rl_table(p, 8, max_len, signed=signed) for p in parts]

    def enc():
        return [encode_rl_tile(p, t) for p, t in zip(parts, tables)]

    def dec(tiles):
        return np.concatenate([decode_rl_tile(w, nb, p.size, t).reshape(p.shape)
                               for (w, nb), p, t in zip(tiles, parts, tables)], axis=1)
    return enc, dec


CODECS = (("plain", _codec_plain), ("run-length", _codec_rl))


def golden_speed(layers, groups, mode, max_len, repeat):
    """(symbols, payload bits, encode s, decode s) of the golden codec over ``layers``, tables
    fitted per layer on ``groups`` column groups (fitting not timed); every layer decoded back
    and checked."""
    make = dict(CODECS)[mode]
    n = nbits = 0
    te = td = 0.0
    for sym, signed in layers:
        enc, dec = make(sym, signed, group_bounds(sym.shape[1], groups), max_len)
        tiles, t = timed(enc, repeat=repeat)
        te += t
        out, t = timed(dec, tiles, repeat=repeat)
        td += t
        assert np.array_equal(out, sym), f"{mode} round trip, {groups} groups"
        n += sym.size
        nbits += sum(nb for _, nb in tiles)
    return n, nbits, te, td


def baseline_speed(layers, dahuffman_bytes, repeat):
    """Rows for zlib level 6 and dahuffman on the same symbols, one byte each."""
    raw = b"".join((sym & 0xFF).astype(np.uint8).tobytes() for sym, _ in layers)
    mb = len(raw) / 1e6
    z, te = timed(zlib.compress, raw, 6, repeat=repeat)
    back, td = timed(zlib.decompress, z, repeat=repeat)
    assert back == raw
    rows = [("zlib level 6", "", len(raw), 8 * len(z) / len(raw), mb / te, mb / td)]
    try:
        from dahuffman import HuffmanCodec
    except ImportError:
        return rows + [("dahuffman (not installed)", "", 0, 0, 0, 0)]
    small = raw[:dahuffman_bytes]
    smb = len(small) / 1e6
    codec = HuffmanCodec.from_data(small)
    enc, te = timed(codec.encode, small)
    dec, td = timed(codec.decode, enc)
    assert bytes(dec) == small
    rows.append((f"dahuffman (first {len(small)} B)", "", len(small),
                 8 * len(enc) / len(small), smb / te, smb / td))
    return rows


def speed(layers, max_len, dahuffman_bytes, repeat=3, groups=(1, 3, 6)):
    """Rows (codec, groups, symbols, bits/symbol, encode MB/s, decode MB/s) on the same
    symbols; MB = 10^6 symbols of 8 bits."""
    rows = []
    for mode, _ in CODECS:
        for g in groups:
            n, nbits, te, td = golden_speed(layers, g, mode, max_len, repeat)
            rows.append((f"golden {mode}", str(g), n, nbits / n, n / 1e6 / te, n / 1e6 / td))
    return rows + baseline_speed(layers, dahuffman_bytes, repeat)


def size_report(acts, args, act_layers, pca_layers):
    """Per-table entropy and bits/symbol of both modes, then size-weighted totals."""
    head = (f"{'point':<28} {'table':<5} {'cols':>4} {'symbols':>9} {'H':>6} {'plain':>6} "
            f"{'pl/H':>5} {'RL':>6} {'RL/H':>5} {'R':>4}")
    print(head)
    totals = {}
    t_start = time.perf_counter()
    for name, (q, signed), (y, _) in zip(acts, act_layers, pca_layers):
        split = max(1, -(-y.shape[1] // 4))
        tables = [("act8", q, signed), ("pca0", y[:, :split], True)]
        if y.shape[1] > split:
            tables.append(("pca1", y[:, split:], True))
        for kind, sym, sgn in tables:
            h, nb, nbr, r = code_table(sym, sgn, args.max_len)
            n = sym.size
            tot = totals.setdefault(kind if kind == "act8" else "pca", [0, 0.0, 0, 0])
            tot[0] += n
            tot[1] += h * n
            tot[2] += nb
            tot[3] += nbr
            pl, rl = nb / n, nbr / n
            print(f"{name:<28} {kind:<5} {sym.shape[1]:>4} {n:>9} {h:6.3f} {pl:6.3f} "
                  f"{pl / h if h else float('inf'):5.2f} {rl:6.3f} "
                  f"{rl / h if h else float('inf'):5.2f} {r:>4}", flush=True)
    print()
    print("# size-weighted totals (bits/symbol)")
    print(f"{'tables':<10} {'symbols':>10} {'H':>6} {'plain':>6} {'pl/H':>5} {'RL':>6} "
          f"{'RL/H':>5} {'RL/plain':>8}")
    for kind, (n, hn, nb, nbr) in totals.items():
        h = hn / n
        print(f"{kind:<10} {n:>10} {h:6.3f} {nb / n:6.3f} {nb / n / h:5.2f} {nbr / n:6.3f} "
              f"{nbr / n / h:5.2f} {nbr / nb:8.3f}")
    print(f"# coding and checking all tables took {time.perf_counter() - t_start:.1f} s")
    print()


def speed_report(args, act_layers, pca_layers):
    """Encode and decode MB/s of every codec on the act8 and the PCA symbols."""
    print(f"# throughput, fastest of {args.repeat} runs in thread CPU time, on the first "
          f"{args.speed_mb:g} M symbols of each kind (whole layers in capture order, 2-D pixel "
          "x channel, tables fitted per layer and group, fitting not timed; MB = 10^6 symbols "
          "of 8 bits)")
    print(f"{'data':<5} {'codec':<28} {'groups':>6} {'symbols':>9} {'bits/sym':>8} "
          f"{'enc MB/s':>9} {'dec MB/s':>9}")
    worst = {}
    for kind, layers in (("act8", act_layers), ("pca", pca_layers)):
        data = speed_layers(layers, args.speed_mb)
        for codec, g, n, bps, enc, dec in speed(data, args.max_len, args.dahuffman_kb * 1024,
                                                args.repeat):
            print(f"{kind:<5} {codec:<28} {g:>6} {n:>9} {bps:8.3f} {enc:9.2f} {dec:9.2f}",
                  flush=True)
            key = "golden" if codec.startswith("golden") else codec
            w = worst.setdefault((kind, key), [float("inf"), float("inf")])
            w[0], w[1] = min(w[0], enc), min(w[1], dec)
    for kind in ("act8", "pca"):
        enc, dec = worst[(kind, "golden")]
        z_enc = worst[(kind, "zlib level 6")][0]
        print(f"# {kind}: slowest golden encode {enc:.2f} MB/s (zlib level 6: {z_enc:.2f}), "
              f"slowest golden decode {dec:.2f} MB/s")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m scripts.bench_huffman")
    p.add_argument("--activations", help=".npz of NHWC float activations, one per point")
    p.add_argument("--images", type=int, default=4, help="photos to capture on")
    p.add_argument("--max-len", type=int, default=12, help="maximum code length L")
    p.add_argument("--energy", type=float, default=0.99, help="PCA energy kept")
    p.add_argument("--pca-scale", choices=["layer", "component"], default="layer",
                   help="int8 max-abs scale of the PCA coefficients: one per layer or per "
                   "component")
    p.add_argument("--speed-mb", type=float, default=4.0, help="M symbols of each kind to time")
    p.add_argument("--repeat", type=int, default=3, help="timed runs; the fastest counts")
    p.add_argument("--dahuffman-kb", type=int, default=256, help="KB dahuffman codes")
    p.add_argument("--speed-only", action="store_true", help="skip the per-table sizes")
    args = p.parse_args(argv)
    acts, source = load_activations(args)
    print(f"# activations: {source}; {len(acts)} points; L = {args.max_len}; "
          f"PCA energy {args.energy}, scale per {args.pca_scale}; "
          "tables fitted and measured on the same symbols")
    act_layers, pca_layers = [], []
    for a in acts.values():
        x = np.asarray(a, dtype=np.float32).reshape(-1, a.shape[-1])
        act_layers.append(quantize8(x))
        pca_layers.append((pca_coefficients(x, args.energy, args.pca_scale == "component"),
                           True))
    if not args.speed_only:
        size_report(acts, args, act_layers, pca_layers)
    speed_report(args, act_layers, pca_layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
