"""Huffman encoder, run-length mode (bitstream version 2): word for word against golden
``encode_rl_tile`` on both simulators.

Per configuration (b, L, W, R, groups; tables loaded through ``cfg`` or baked): run-length
tables fitted by golden ``build_rl_table`` to rounded-Laplacian data (zero-heavy, like deep
layers' coefficients), or with only some run lengths coded (``keep``: the greedy rule then
writes a run with several codes); tiles of every length from empty to several hundred, all-zero
tiles longer than R (RUN_R repeated), runs of exactly R, runs that end a tile, and single
zeros. Groups take whole tiles, in a shuffled (not cyclic) order, each tile's group named on
all its beats in ``i_stream`` ``group``. Every word, ``last`` flag and bit count is compared;
the main configuration runs the 3 x 3 grid of idle and backpressure patterns and the stress
pairs, the others the diagonal. The throughput test measures a long tile with no stalls
(asserted one coefficient per cycle) and the worst case of a sparse table (the input stall
cycles are reported and bounded). On the three-group configuration a tile naming group 3 (>= G)
sets ``error`` and is coded with group 0.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from golden.codec.errors import AlphabetError
from golden.codec.runlength import build_rl_table, encode_rl_tile, rl_histogram
from golden.codec.tables import HuffmanTable

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import flow_pairs, load_config, primitive_models, run_cocotb

CONFIGS = [
    # Main point: run-time tables, block R = 64, a table of R' = 16; throughput measured.
    {"b": 6, "L": 12, "W": 32, "R": 64, "groups": [[6, 16, None]], "baked": False,
     "main": True, "throughput": True, "errors": True},
    # R = 256, baked, 8-bit words: long codes straddle several words.
    {"b": 4, "L": 10, "W": 8, "R": 256, "groups": [[4, 256, None]], "baked": True},
    # Three groups of mixed widths and R, one with sparse run codes, run-time tables; a
    # group of 3 (>= G) in the 2-bit field is an error.
    {"b": 6, "L": 12, "W": 16, "R": 32, "groups": [[4, 8, None], [6, 32, [2, 3, 7]],
                                                  [3, 1, None]], "baked": False,
     "bad_group": True},
    # R = 1 (every run is RUN_1 repeated) and a sparse baked table, 64-bit words.
    {"b": 5, "L": 9, "W": 64, "R": 8, "groups": [[5, 1, None], [5, 8, [1, 4]]],
     "baked": True},
    # family="ecp5" (the code table in DP16KD tiles, tb/models/DP16KD.v): the main point,
    # whose run plan is read back through the tiles' output register after every load.
    {"b": 6, "L": 12, "W": 32, "R": 64, "groups": [[6, 16, None]], "baked": False,
     "errors": True, "family": "ecp5"},
]

THROUGHPUT = 20_000


def config_name(c):
    family = f"-{c['family']}" if c.get("family", "generic") != "generic" else ""
    return (f"b{c['b']}-L{c['L']}-W{c['W']}-R{c['R']}-G{len(c['groups'])}-"
            f"{'baked' if c['baked'] else 'loaded'}{family}")


def laplace(rng, n, scale, bits):
    lim = (1 << (bits - 1)) - 1
    return np.clip(np.rint(rng.laplace(0, scale, n)), -lim - 1, lim).astype(np.int64)


def rl_tables(cfg):
    """The configuration's tables (a fixed seed: the build and the bench see the same)."""
    rng = np.random.default_rng(4321)
    tables = []
    for bits, r, keep in cfg["groups"]:
        cal = laplace(rng, 3000, 0.4, bits)
        if keep is None:
            tables.append(build_rl_table(cal, bits, cfg["L"], run_max=r))
            continue
        from golden.codec.lengths import lengths_from_histogram
        hist = rl_histogram(cal, bits, True, r)
        base = 1 << bits
        for k in range(1, r + 1):
            hist[base + k] = hist[base + k] + 1 if k in keep else 0
        hist[base] = 1
        tables.append(HuffmanTable(bits, cfg["L"], lengths_from_histogram(hist, cfg["L"]),
                                   escape=True, signed=True, run_max=r))
    return tables


def encodable(values, table):
    try:
        encode_rl_tile(values, table, 32)
    except AlphabetError:
        return False
    return True


def stimulus(cfg, rng):
    """Tiles (values) and their groups: per group the corner cases, then random Laplacian
    tiles (only tiles golden can encode: sparse run codes cannot write every run); the
    (group, tile) pairs are then shuffled, so the groups come in no cyclic order."""
    tables = rl_tables(cfg)
    G = len(tables)
    tiles = []
    i = 0
    while len(tiles) < 12 * G:
        t = tables[i % G]
        r, bits = t.run_max, t.bits
        corners = [
            np.zeros(0, np.int64), np.zeros(1, np.int64), np.array([1]),
            np.zeros(3 * r + 5, np.int64),                       # longer than R
            np.r_[np.zeros(r, np.int64), 1, np.zeros(r, np.int64)],   # exactly R, tile end
            np.r_[1, np.zeros(r - 1, np.int64), -1] if r > 1 else np.array([1, 0, -1]),
            laplace(rng, int(rng.integers(1, 400)), 0.4, bits),
            laplace(rng, int(rng.integers(1, 60)), 1.5, bits),
        ]
        cand = corners[len(tiles) // G % len(corners)] if len(tiles) < 8 * G else laplace(
            rng, int(rng.integers(0, 300)), float(rng.choice([0.2, 0.5, 1.0])), bits)
        if encodable(cand, t):
            tiles.append(cand)
            i += 1
        elif len(tiles) >= 8 * G:
            continue
        else:
            tiles.append(np.ones(20, np.int64))   # a stand-in without zeros
            i += 1
    groups = [j % G for j in range(len(tiles))]
    perm = rng.permutation(len(tiles))
    return tables, [tiles[j] for j in perm], [groups[j] for j in perm]


# ----------------------------------------------------------------------------- cocotb

class Bench:
    def __init__(self, dut, cfg, idle, backpressure, seed):
        from tb.streams import Fields, StreamSink, StreamSource

        self.dut, self.cfg = dut, cfg
        ports = cfg["ports"]
        self.i_fields = Fields.from_manifest(ports["i_stream__payload"])
        self.o_fields = Fields.from_manifest(ports["o_stream__payload"])
        self.n_fields = Fields.from_manifest(ports["o_count__payload"])
        self.source = StreamSource(dut, "i_stream", dut.clk, None, idle, seed)
        self.cfg_source = None
        if "cfg__payload" in ports:
            self.c_fields = Fields.from_manifest(ports["cfg__payload"])
            self.cfg_source = StreamSource(dut, "cfg", dut.clk, None, idle, seed + 7)
        watch = (dut.i_stream__valid, dut.i_stream__ready)
        self.sink = StreamSink(dut, "o_stream", dut.clk, self.o_fields, backpressure,
                               seed + 1, watch)
        self.counts = StreamSink(dut, "o_count", dut.clk, self.n_fields, backpressure,
                                 seed + 2, watch)

    async def start(self, tables):
        from tb.streams import start_clock_and_reset

        await start_clock_and_reset(self.dut)
        if self.cfg_source is not None:
            for g, t in enumerate(tables):
                raw = t.serialize()
                self.cfg_source.send(self.c_fields.pack({"data": x, "group": g,
                                                         "last": int(i == len(raw) - 1)})
                                     for i, x in enumerate(raw))
            await self.cfg_source.wait_sent(2_000_000)

    def send(self, tables, tiles, groups):
        """Queue the tiles, tile i with ``group`` = ``groups[i]`` on every beat (a group >= G
        is coded with group 0); returns the expected (words, counts)."""
        G = len(tables)
        has_group = any(name == "group" for name, _, _ in self.i_fields.fields)
        assert has_group == (G > 1), "i_stream has a group field exactly when G > 1"
        assert len(groups) == len(tiles)
        words, counts = [], []
        for g, v in zip(groups, tiles):
            t = tables[g if g < G else 0]
            pats = np.asarray(v, dtype=np.int64) & ((1 << t.bits) - 1)
            beats = [{"symbol": int(p), "last": 0, "empty": 0} for p in pats]
            if beats:
                beats[-1]["last"] = 1
            else:
                beats = [{"symbol": 0, "last": 1, "empty": 1}]
            if has_group:
                for b in beats:
                    b["group"] = g
            self.source.send(self.i_fields.pack(b) for b in beats)
            w, n = encode_rl_tile(np.asarray(v), t, self.cfg["W"])
            words += [(int(x), int(j == len(w) - 1)) for j, x in enumerate(w)]
            counts.append(n)
        return words, counts

    async def check(self, words, counts, timeout_ns, error=0):
        from cocotb.triggers import ClockCycles

        got_w = await self.sink.wait_for(len(words), timeout_ns)
        got_n = await self.counts.wait_for(len(counts), timeout_ns)
        got = [(w["data"], w["last"]) for w in got_w]
        for i, (g, e) in enumerate(zip(got, words)):
            assert g == e, (f"word {i}: got {g[0]:#x} last={g[1]}, expected {e[0]:#x} "
                            f"last={e[1]}")
        assert [c["nbits"] for c in got_n] == counts, "tile bit counts differ"
        await ClockCycles(self.dut.clk, 30)
        assert len(self.sink.received) == len(words), "encoder emitted extra words"
        assert len(self.counts.received) == len(counts), "encoder emitted extra counts"
        assert int(self.dut.error.value) == error, (
            "error flag set on a valid stream" if not error else "error flag not set")


async def run_test(dut, idle, backpressure):
    cfg = load_config()
    seed = zlib.crc32(f"rl/{idle}/{backpressure}".encode())
    tables, tiles, groups = stimulus(cfg, np.random.default_rng(seed))
    if len(tables) > 1:
        assert groups != [i % len(tables) for i in range(len(groups))], "cyclic order"
    bench = Bench(dut, cfg, idle, backpressure, seed)
    await bench.start(tables)
    words, counts = bench.send(tables, tiles, groups)
    timeout = 400 * (sum(len(v) for v in tiles) + len(words)) + 2_000_000
    await bench.source.wait_sent(timeout)
    await bench.check(words, counts, timeout)
    if backpressure != "none":
        assert bench.sink.rule.stalls > 0, "the output was never stalled"


async def measure(bench, tables, tiles):
    """Send ``tiles`` with no stalls; returns (cycles from first to last handshake, inputs)."""
    first = len(bench.source.handshakes)
    words, counts = bench.send(tables, tiles, [0] * len(tiles))
    await bench.source.wait_sent(100 * THROUGHPUT)
    await bench.check(words, counts, 100 * THROUGHPUT)
    hs = bench.source.handshakes[first:]
    for seen in (bench.sink.received, bench.sink.beat_cycles, bench.counts.received):
        seen.clear()
    return hs[-1] - hs[0] + 1, len(hs)


async def run_throughput(dut):
    """One long zero-heavy tile with no stalls: one coefficient per cycle. Then the worst
    case of a table coding only RUN_1 and RUN_top (a run of top - 1 zeros needs top - 1
    codes): the input stall cycles are measured and reported."""
    cfg = load_config()
    bench = Bench(dut, cfg, "none", "none", 3)
    tables = rl_tables(cfg)
    await bench.start(tables)
    rng = np.random.default_rng(3)
    t = tables[0]
    values = laplace(rng, THROUGHPUT, 0.4, t.bits)
    cycles, n = await measure(bench, tables, [values])
    dut._log.info(f"throughput: {n} coefficients in {cycles} cycles "
                  f"({n / cycles:.4f} per cycle), {encode_rl_tile(values, t, cfg['W'])[1]} bits")
    assert cycles == n == THROUGHPUT, f"{n} coefficients took {cycles} cycles"
    # Worst case: nonzero values each after top - 1 zeros, RUN_1 and RUN_top coded only.
    r = t.run_max
    worst = rl_tables({**cfg, "groups": [[t.bits, r, [1, r]]]})
    if bench.cfg_source is None:
        return
    raw = worst[0].serialize()
    bench.cfg_source.send(bench.c_fields.pack({"data": x, "group": 0,
                                               "last": int(i == len(raw) - 1)})
                          for i, x in enumerate(raw))
    await bench.cfg_source.wait_sent(2_000_000)
    unit = np.r_[np.zeros(r - 1, np.int64), 1]
    values = np.tile(unit, 40)
    cycles, n = await measure(bench, worst, [values])
    per_run = (cycles - n) / 40
    dut._log.info(f"worst case (RUN_1 and RUN_{r} only, runs of {r - 1}): {n} coefficients "
                  f"in {cycles} cycles, {per_run:.2f} stall cycles per run")
    # Each run of r - 1 zeros and its value cost r codes for r inputs: no stall on average;
    # the FIFO's fill shows only in the pipeline start.
    assert cycles <= n + 8, f"{n} coefficients took {cycles} cycles"


async def run_errors(dut):
    """Run-time table checks of run-length mode: a table with R' above the block's R, a
    reserved flag bit, and a run the coded lengths cannot write set the sticky flag; a good
    load clears it, and every tile still ends with its count."""
    from cocotb.triggers import ClockCycles

    cfg = load_config()
    bench = Bench(dut, cfg, "none", "none", 13)
    tables = rl_tables(cfg)
    await bench.start(tables)
    rng = np.random.default_rng(13)
    b = tables[0].bits
    too_long = build_rl_table(laplace(rng, 3000, 0.4, b), b, cfg["L"], run_max=2 * cfg["R"])
    raw = tables[0].serialize()
    bad = {"run max above the block's": too_long.serialize(),
           "reserved flag bit": raw[:2] + bytes([raw[2] | 4]) + raw[3:],
           "run index above R'": raw[:-2] + ((1 << b) + tables[0].run_max + 1).to_bytes(
               2, "little")}

    async def load(data):
        bench.cfg_source.send(bench.c_fields.pack({"data": x, "group": 0,
                                                   "last": int(i == len(data) - 1)})
                              for i, x in enumerate(data))
        await bench.cfg_source.wait_sent(2_000_000)
        await ClockCycles(dut.clk, cfg["R"] + 8)
        return int(dut.error.value)

    for name, data in bad.items():
        assert await load(data) == 1, f"error flag not set by a table with {name}"
        assert await load(raw) == 0, f"a good table after {name} did not clear the flag"
    # Only RUN_2 and RUN_3 coded: a run of 4 zeros is 3 + 1 and cannot be written.
    sparse = rl_tables({**cfg, "groups": [[b, 16, [2, 3]]]})[0]
    assert await load(sparse.serialize()) == 0
    v = np.r_[1, np.zeros(4, np.int64), 1]
    assert not encodable(v, sparse)
    bench.source.send(bench.i_fields.pack({"symbol": int(p), "last": int(i == len(v) - 1),
                                           "empty": 0})
                      for i, p in enumerate(v & ((1 << b) - 1)))
    await bench.source.wait_sent(100_000)
    counts = await bench.counts.wait_for(1, 100_000)
    assert int(dut.error.value) == 1, "an unwritable run did not set the error flag"
    assert len(counts) == 1
    assert await load(raw) == 0
    bench.counts.received.clear()
    bench.sink.received.clear()
    words, counts = bench.send([tables[0]], [laplace(rng, 100, 0.4, b)], [0])
    await bench.check(words, counts, 200_000)


async def run_bad_group(dut):
    """A tile naming group 3 of G = 3 between good tiles: ``error`` is set, that tile is
    coded with group 0's table and the others with their own; a table load clears the flag
    and the next tiles code cleanly."""
    cfg = load_config()
    bench = Bench(dut, cfg, "random", "random", 19)
    tables = rl_tables(cfg)
    G = len(tables)
    assert G == 3 and G & (G - 1), "needs a group field with values >= G"
    await bench.start(tables)
    rng = np.random.default_rng(19)
    order = [2, G, 1, 0]
    tiles = [laplace(rng, 150, 0.4, tables[g if g < G else 0].bits) for g in order]
    tiles = [v if encodable(v, tables[g if g < G else 0]) else np.ones(20, np.int64)
             for g, v in zip(order, tiles)]
    words, counts = bench.send(tables, tiles, order)
    await bench.source.wait_sent(2_000_000)
    await bench.check(words, counts, 2_000_000, error=1)
    # Reloading group 0 clears the flag; good tiles afterwards leave it clear.
    raw = tables[0].serialize()
    bench.cfg_source.send(bench.c_fields.pack({"data": x, "group": 0,
                                               "last": int(i == len(raw) - 1)})
                          for i, x in enumerate(raw))
    await bench.cfg_source.wait_sent(2_000_000)
    for seen in (bench.sink.received, bench.sink.beat_cycles, bench.counts.received):
        seen.clear()
    tiles = [laplace(rng, 80, 0.4, tables[g].bits) for g in (1, 0)]
    tiles = [v if encodable(v, tables[g]) else np.ones(20, np.int64)
             for g, v in zip((1, 0), tiles)]
    words, counts = bench.send(tables, tiles, [1, 0])
    await bench.source.wait_sent(2_000_000)
    await bench.check(words, counts, 2_000_000)


if cocotb is not None:
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(_CFG.get("main", False))))
    async def encoder_rl_matches_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)

    if _CFG.get("throughput"):
        @cocotb.test()
        async def encoder_rl_throughput(dut):
            await run_throughput(dut)

    if _CFG.get("errors"):
        @cocotb.test()
        async def encoder_rl_errors(dut):
            await run_errors(dut)

    if _CFG.get("bad_group"):
        @cocotb.test()
        async def encoder_rl_bad_group(dut):
            await run_bad_group(dut)


def cocotb_tests(cfg) -> int:
    return (len(flow_pairs(cfg.get("main", False))) + bool(cfg.get("throughput"))
            + bool(cfg.get("errors")) + bool(cfg.get("bad_group")))


# ----------------------------------------------------------------------------- pytest

def build_encoder(cfg):
    from hdl.huffman_encoder import HuffmanEncoder

    G = len(cfg["groups"])
    bounds = list(range(G + 1)) if G > 1 else None
    bits = [g[0] for g in cfg["groups"]]
    table = rl_tables(cfg) if cfg["baked"] else None
    return HuffmanEncoder(cfg["b"], cfg["L"], cfg["W"], G, group_bounds=bounds,
                          group_bits=bits, table=table, run_max=cfg["R"],
                          family=cfg.get("family", "generic"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_name)
def test_huffman_encoder_rl(cfg):
    from amaranth.back import verilog

    from hdl.manifest import describe_ports

    comp = build_encoder(cfg)
    ports = {p["name"]: p for p in describe_ports(comp)}
    text = verilog.convert(comp, name="huffman_encoder", emit_src=False)
    sources = {"huffman_encoder.v": text, **primitive_models(cfg.get("family", "generic"))}
    run_cocotb(f"huffman_encoder_rl-{config_name(cfg)}", sources,
               "huffman_encoder", "tb.test_huffman_encoder_rl", {**cfg, "ports": ports},
               tests=cocotb_tests(cfg))
