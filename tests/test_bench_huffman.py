"""``scripts/bench_huffman.py`` runs: its capture path and the whole report on small data, every
printed figure checked against an independent computation."""

import argparse
import heapq
import math
import re
import zlib
from collections import Counter

import numpy as np

from scripts import bench_huffman


def test_capture_path_yields_every_point():
    acts, source = bench_huffman.load_activations(argparse.Namespace(activations=None,
                                                                     images=1))
    assert len(acts) == 52 and "golden.nets.capture" in source
    a = acts["features.10"]
    assert a.ndim == 4 and a.shape[-1] == 64 and np.isfinite(a).all()
    assert a.shape[0] == 1 and a.std() > 0


def entropy(sym):
    """Zero-order entropy in bits, from counts with Python floats."""
    counts = Counter(np.asarray(sym).ravel().tolist())
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def huffman_cost(counts):
    """Total bits of an optimal (unlimited) Huffman code for these counts: the sum of the
    merged weights."""
    heap = list(counts)
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def quantize8(x):
    """The benchmark's act8 symbols as its docstring defines them: unsigned max/255 for a
    non-negative map, else signed max-abs/127. Divided in float32, as the benchmark's float32
    maps are (elementwise IEEE arithmetic: the same integers on any CPU)."""
    x = x.reshape(-1, x.shape[-1]).astype(np.float32)
    if x.min() >= 0:
        return np.clip(np.rint(x / np.float32(float(x.max()) / 255)), 0, 255).astype(np.int64)
    step = np.float32(float(np.abs(x).max()) / 127)
    return np.clip(np.rint(x / step), -127, 127).astype(np.int64)


ROW = re.compile(r"^(\w+)\s+(act8|pca0|pca1)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
                 r"\s+([\d.]+)\s+([\d.]+)\s+(\d+)$")


def test_report_on_a_small_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(size=(1, 6, 6, 24)), 0).astype(np.float32)
    relu[..., 12:] = 0                                  # dead channels: zero runs
    signed = rng.normal(size=(1, 5, 5, 16)).astype(np.float32)
    path = tmp_path / "acts.npz"
    np.savez(path, a=relu, b=signed)
    assert bench_huffman.main(["--activations", str(path), "--speed-mb", "0.01", "--repeat", "1",
                               "--dahuffman-kb", "1"]) == 0
    out = capsys.readouterr().out
    rows = {(m[1], m[2]): m for m in (ROW.match(line) for line in out.splitlines()) if m}
    assert sorted(rows) == [("a", "act8"), ("a", "pca0"), ("a", "pca1"), ("b", "act8"),
                            ("b", "pca0"), ("b", "pca1")]
    # Printed to 3 decimals (2 for ratios): compare within half a unit of the last digit.
    for name, x in (("a", relu), ("b", signed)):
        row = rows[(name, "act8")]
        sym = quantize8(x)
        n = sym.size
        assert (int(row[3]), int(row[4])) == (x.shape[-1], n)
        h = entropy(sym)
        assert abs(float(row[5]) - h) <= 5e-4
        # The golden table gives ESC a count of 1 (every value stays encodable): its code
        # costs no data bits but may lengthen others, by at most what ESC's own code saves.
        counts = list(Counter(sym.ravel().tolist()).values())
        plain = float(row[6])
        assert huffman_cost(counts) / n - 5e-4 <= plain
        assert plain <= (huffman_cost(counts + [1]) - 1) / n + 5e-4
        assert h - 5e-4 <= plain
        assert abs(float(row[7]) - plain / h) <= 5e-3 + 1e-3  # ratio of two rounded figures
        # Coefficients: the split of k columns, a quarter first, every pixel.
        k0, k1 = int(rows[(name, "pca0")][3]), int(rows[(name, "pca1")][3])
        assert k0 == -(-(k0 + k1) // 4) and 1 <= k0 + k1 <= x.shape[-1]
        pixels = n // x.shape[-1]
        assert int(rows[(name, "pca0")][4]) == k0 * pixels
        assert int(rows[(name, "pca1")][4]) == k1 * pixels
    # a's 12 dead channels: runs of zeros, which the run-length mode codes below plain
    # Huffman's one bit per symbol (and its run limit is above 1).
    a = rows[("a", "act8")]
    assert float(a[8]) < float(a[6]) - 0.1 and int(a[10]) > 1
    # b has no runs: the run-length mode stays within 1% of plain.
    b = rows[("b", "act8")]
    assert abs(float(b[8]) - float(b[6])) <= 0.01 * float(b[6])

    totals = dict(re.findall(r"^(act8|pca)\s+(\d+\s+[\d.]+\s+[\d.]+.*)$", out, re.M))
    n_act, h_act, plain_act = totals["act8"].split()[:3]
    counts = [int(rows[(p, "act8")][4]) for p in "ab"]
    assert int(n_act) == sum(counts) == 864 + 400
    # Size-weighted from the rows (each rounded to 3 decimals).
    for col, got in ((5, h_act), (6, plain_act)):
        want = sum(float(rows[(p, "act8")][col]) * c for p, c in zip("ab", counts)) / sum(counts)
        assert abs(float(got) - want) <= 1e-3
    n_pca = int(totals["pca"].split()[0])
    assert n_pca == sum(int(rows[(p, t)][4]) for p in "ab" for t in ("pca0", "pca1"))

    # Throughput section: per kind, all symbols (1264 act8 here), golden with 1, 3 and 6
    # groups in both modes, then the baselines on the same bytes.
    speed = {(m[1], m[2], m[3]): m for m in re.finditer(
        r"^(act8|pca)\s+(golden plain|golden run-length|zlib level 6|dahuffman \(first \d+ B\))"
        r"\s+(?:(\d)\s+)?(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    golden = [(k, c, g) for k in ("act8", "pca") for c in ("golden plain", "golden run-length")
              for g in "136"]
    baselines = [(k, c, None) for k, n in (("act8", 1264), ("pca", n_pca))
                 for c in ("zlib level 6", f"dahuffman (first {min(n, 1024)} B)")]
    assert sorted(speed, key=str) == sorted(golden + baselines, key=str), out
    layers = [quantize8(relu), quantize8(signed)]
    data = np.concatenate([q.ravel() for q in layers])
    data = (data & 0xFF).astype(np.uint8)
    zrow = speed[("act8", "zlib level 6", None)]
    assert int(zrow[4]) == data.size == 1264
    assert abs(float(zrow[5]) - 8 * len(zlib.compress(data.tobytes(), 6)) / data.size) <= 5e-4
    # One plain table per layer: between the optimal Huffman costs without and with ESC.
    plain = float(speed[("act8", "golden plain", "1")][5])
    layer_counts = [list(Counter(q.ravel().tolist()).values()) for q in layers]
    assert sum(huffman_cost(c) for c in layer_counts) / data.size - 5e-4 <= plain
    assert plain <= sum(huffman_cost(c + [1]) - 1 for c in layer_counts) / data.size + 5e-4
    for key in golden:
        assert int(speed[key][4]) == (1264 if key[0] == "act8" else n_pca)
    dah = speed[("act8", "dahuffman (first 1024 B)", None)]
    assert int(dah[4]) == 1024
    # dahuffman adds an end-of-file symbol: at least the optimal cost of the first 1024 bytes.
    first = list(Counter(data[:1024].tolist()).values())
    assert float(dah[5]) >= huffman_cost(first) / 1024 - 5e-4
    for m in speed.values():
        assert float(m[6]) > 0 and float(m[7]) > 0
    for kind in ("act8", "pca"):
        line = re.search(rf"^# {kind}: slowest golden encode ([\d.]+) MB/s \(zlib level 6: "
                         rf"([\d.]+)\), slowest golden decode ([\d.]+) MB/s$", out, re.M)
        rows = [speed[k] for k in golden if k[0] == kind]
        assert float(line[1]) == min(float(m[6]) for m in rows)
        assert float(line[2]) == float(speed[(kind, "zlib level 6", None)][6])
        assert float(line[3]) == min(float(m[7]) for m in rows)
