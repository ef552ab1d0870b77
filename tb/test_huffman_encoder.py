"""Huffman encoder testbench: word for word against ``golden.huffman`` on both simulators.

Per configuration (b, L, W, groups; tables loaded through ``cfg`` or baked): a stimulus of
named corner cases (every code length 1..L, the longest code and escapes straddling words,
empty and single-symbol tiles, runs of one symbol, flush-only tile ends, table reloads between
back-to-back tiles), random alphabets and histograms, and real quantized MobileNetV2 PCA
coefficients; on the main configuration under the 3 x 3 grid of idle and backpressure patterns
and the stress pairs (``tb.common.flow_pairs``), on the others under the diagonal. Every word,
``last`` flag and tile bit count is compared with ``encode_tile`` / ``encode_groups``; the
shared ``StreamRule`` monitor watches ``o_stream`` and ``o_count``. The main configuration
also measures throughput over 100,000 symbols with no stalls (asserted 1.00 symbol per cycle),
checks the sticky error flag (malformed table, symbol without a code) and its recovery, and
table loads without ``last`` (``run_cfg_framing``). Each configuration's cocotb tests are
generated from it (``cocotb_tests``); pytest checks that all of them ran.
"""

from __future__ import annotations

import os
import zlib
from collections import deque

import numpy as np
import pytest

from golden.huffman import build_table, encode_groups, encode_tile, symbol_indices

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import BUILD_ROOT, Fields, flow, flow_pairs, load_config, run_cocotb

CONFIGS = [
    # Main point: run-time tables, real data, throughput and error checks.
    {"b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False,
     "real": True, "throughput": True, "errors": True, "main": True},
    # 32-bit codes (ESC of length 24 + 8 raw bits) into 8-bit words: several words per symbol.
    {"b": 8, "L": 24, "W": 8, "bounds": None, "bits": None, "baked": False},
    # Three groups of mixed widths, run-time tables loaded per group, real data.
    {"b": 6, "L": 16, "W": 16, "bounds": [0, 2, 5, 8], "bits": [4, 6, 5], "baked": False,
     "real": True},
    # Baked table set, two groups, 64-bit words.
    {"b": 5, "L": 10, "W": 64, "bounds": [0, 3, 7], "bits": [5, 3], "baked": True},
]

THROUGHPUT_SYMBOLS = 100_000
LATENCY_SEEN = 3  # testbench cycles from a tile's last handshake to its final word


def config_name(c):
    g = f"-g{len(c['bounds']) - 1}" if c["bounds"] else ""
    return f"b{c['b']}L{c['L']}W{c['W']}{g}{'-baked' if c['baked'] else ''}"


# ----------------------------------------------------------------------------- stimulus

def every_length_table(bits, max_len, rng, signed=True):
    """A table whose codes take every length 1..L (the longest being ESC's or a symbol's).

    Weights 2**(L-1), .., 2, 1 on L random patterns plus ESC (count 1) make the Huffman tree a
    comb of depth L when 2**b >= L; with fewer patterns every available length is used.
    """
    n = min(max_len, 1 << bits)
    pats = rng.choice(1 << bits, size=n, replace=False)
    hist = np.zeros(1 << bits, dtype=np.int64)
    hist[pats] = 2 ** np.arange(n, 0, -1, dtype=np.int64)
    table = build_table(hist, bits, max_len, signed=signed, histogram=True)
    if n == max_len:
        assert set(table.lengths[table.lengths > 0]) == set(range(1, max_len + 1))
    return table


def random_table(bits, max_len, rng, signed=True):
    """A random alphabet (a random subset of patterns, maybe all) with a skewed histogram."""
    size = 1 << bits
    n = int(rng.integers(1, size + 1))
    pats = rng.choice(size, size=n, replace=False)
    hist = np.zeros(size, dtype=np.int64)
    hist[pats] = np.maximum(1, (rng.pareto(1.2, n) * 50).astype(np.int64))
    return build_table(hist, bits, max_len, signed=signed, histogram=True)


def values_from(table, n, rng, escapes=0.05):
    """``n`` values drawn from the table's coded patterns, a fraction from anywhere (ESC)."""
    coded = np.flatnonzero(table.lengths[:1 << table.bits])
    weights = 2.0 ** -table.lengths[coded]
    pats = rng.choice(coded, size=n, p=weights / weights.sum())
    wild = rng.random(n) < escapes
    pats[wild] = rng.integers(0, 1 << table.bits, size=int(wild.sum()))
    return to_values(pats, table.bits, table.signed)


def to_values(pats, bits, signed):
    pats = np.asarray(pats, dtype=np.int64)
    if signed:
        return np.where(pats >= 1 << (bits - 1), pats - (1 << bits), pats)
    return pats


def real_coefficients():
    """Quantized MobileNetV2 PCA coefficients (pixels, 16), cached under build/sim.

    The ReLU6 output of block 6's depthwise convolution (20 x 20 x 192 at 160 x 160) on four
    crops of the bundled photos; PCA on the first two crops, one max-abs 8-bit scale per
    component (``golden.quant.quantize``). Rows 0..799 come from crops 0-1, the rest from
    crops 2-3, so tables fitted on the first half code the second half out of sample.
    """
    path = BUILD_ROOT / "huffman_encoder_mobilenet_v2.npy"
    if path.exists():
        return np.load(path)
    from golden.capture import activation_points, capture
    from golden.images import bundled_photos, make_batch
    from golden.mobilenet import load_mobilenet_v2
    from golden.projection import pca_fit
    from golden.quant import quantize

    model = load_mobilenet_v2().eval()
    name = "features.6.conv.1.2"
    assert name in activation_points(model)
    x = make_batch(bundled_photos(), 4, size=160, seed=0)
    act = capture(model, x, [name])[name].numpy()
    pix = act.reshape(-1, act.shape[-1])
    half = pix.shape[0] // 2
    proj = pca_fit(pix[:half], k=16)
    y = proj.project(pix)
    scale = np.abs(y[:half]).max(axis=0) / 127
    q = quantize(y, np.maximum(scale, 1e-12), 8).astype(np.int8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
    np.save(tmp, q)
    os.replace(tmp, path)
    return q


class Plan:
    """A host-side script of table loads and tiles, with the golden words of every tile."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.W = cfg["W"]
        self.bounds = cfg["bounds"]
        self.groups = len(self.bounds) - 1 if self.bounds else 1
        self.bits = cfg["bits"] or [cfg["b"]] * self.groups
        self.steps = []        # ("load", [(group, bytes)]) or ("tile", [payload dicts])
        self.words = []        # expected (data, last)
        self.counts = []       # expected nbits per tile
        self.symbols = 0
        self.tables = None

    def load(self, tables):
        self.tables = list(tables)
        self.steps.append(("load", [(g, t.serialize()) for g, t in enumerate(tables)]))

    def tile(self, values, flush_beat=False):
        """One tile: values (n,) for one group, (N, K) for several; golden words appended."""
        values = np.asarray(values, dtype=np.int64)
        if self.groups == 1:
            words, nbits = encode_tile(values.ravel(), self.tables[0], self.W)
            pats = symbol_indices(values.ravel(), self.bits[0], self.tables[0].signed)
        else:
            words, nbits = encode_groups(values, self.tables, self.bounds, self.W)
            pats = np.empty(values.shape, dtype=np.int64)
            for t, lo, hi in zip(self.tables, self.bounds, self.bounds[1:]):
                pats[:, lo:hi] = symbol_indices(values[:, lo:hi], t.bits, t.signed)
            pats = pats.ravel()
        beats = [{"symbol": int(p), "last": 0, "empty": 0} for p in pats]
        if beats and not flush_beat:
            beats[-1]["last"] = 1
        else:
            beats.append({"symbol": 0, "last": 1, "empty": 1})
        self.steps.append(("tile", beats))
        self.words += [(int(w), int(i == len(words) - 1)) for i, w in enumerate(words)]
        self.counts.append(int(nbits))
        self.symbols += pats.size

    def rows(self, n, rng, escapes=0.05):
        """An (n, K) array of values drawn per group from its table."""
        cols = []
        for t, lo, hi in zip(self.tables, self.bounds, self.bounds[1:]):
            cols.append(values_from(t, n * (hi - lo), rng, escapes).reshape(n, hi - lo))
        return np.concatenate(cols, axis=1)


def corner_plan(cfg, seed):
    """Named corner cases, random tables and tiles, reloads between tiles, real data."""
    rng = np.random.default_rng(seed)
    plan = Plan(cfg)
    L = cfg["L"]
    if cfg["baked"]:
        tables = baked_tables(cfg)
    else:
        tables = [every_length_table(b, L, rng) for b in plan.bits]
    plan.load(tables)
    if plan.groups == 1:
        t = tables[0]
        b = t.bits
        longest = int(np.argmax(t.enc_len[:1 << b]))
        shortest = int(np.argmin(np.where(t.enc_len[:1 << b] > 0, t.enc_len[:1 << b], 99)))
        plan.tile(to_values([shortest], b, t.signed))                   # single symbol
        plan.tile([])                                                   # empty tile
        plan.tile(to_values([longest] * 40, b, t.signed))               # run, straddles
        plan.tile(to_values(rng.permutation(1 << b), b, t.signed))      # every code, escapes
        plan.tile(values_from(t, 400, rng), flush_beat=True)            # flush-only end
        exact = to_values([shortest] * (2 * plan.W), b, t.signed)       # 2 W bits exactly
        plan.tile(exact, flush_beat=True)                               # ends on a word edge
        plan.tile(exact)
        esc = np.flatnonzero(t.lengths[:1 << b] == 0)
        if esc.size:
            plan.tile(to_values(esc[:1], b, t.signed))                  # a lone escape
    else:
        plan.tile(np.zeros((0, plan.bounds[-1]), dtype=np.int64))      # empty tile
        plan.tile(plan.rows(1, rng))                                    # one row
        run = np.zeros((30, plan.bounds[-1]), dtype=np.int64)
        for t, lo, hi in zip(tables, plan.bounds, plan.bounds[1:]):
            run[:, lo:hi] = to_values([np.argmax(t.enc_len[:1 << t.bits])], t.bits, t.signed)
        plan.tile(run)                                                  # longest codes
        plan.tile(plan.rows(60, rng), flush_beat=True)
    for _ in range(2):
        if not cfg["baked"]:
            plan.load([random_table(b, L, rng) for b in plan.bits])     # reload between tiles
        for _ in range(2):
            if plan.groups == 1:
                plan.tile(values_from(plan.tables[0], int(rng.integers(0, 300)), rng))
            else:
                plan.tile(plan.rows(int(rng.integers(0, 40)), rng))
        plan.tile([] if plan.groups == 1 else np.zeros((0, plan.bounds[-1]), np.int64))
    if cfg.get("real_path"):
        real_tiles(plan, cfg, np.load(cfg["real_path"]), rng)
    return plan


def real_tiles(plan, cfg, q, rng):
    """Tables fitted on the first half of the pixels, tiles from the second half."""
    half = q.shape[0] // 2
    fit, use = q[:half], q[half:]
    rows = use[rng.choice(use.shape[0], size=min(150, use.shape[0]), replace=False)]
    if plan.groups == 1:
        plan.load([build_table(fit.ravel(), cfg["b"], cfg["L"], histogram=False)])
        plan.tile(rows.ravel())
        return
    k = plan.bounds[-1]
    tables, cols = [], []
    for b, lo, hi in zip(plan.bits, plan.bounds, plan.bounds[1:]):
        # Narrower groups keep the top bits of the value (a coarser step), as mixed precision.
        shift = 8 - b
        tables.append(build_table((fit[:, lo:hi] >> shift).ravel(), b, cfg["L"],
                                  histogram=False))
        cols.append(rows[:, lo:hi].astype(np.int64) >> shift)
    plan.load(tables)
    plan.tile(np.concatenate(cols, axis=1)[:, :k])


def baked_tables(cfg):
    rng = np.random.default_rng(1234)
    return [every_length_table(b, cfg["L"], rng) if i == 0 else random_table(b, cfg["L"], rng)
            for i, b in enumerate(cfg["bits"] or [cfg["b"]])]


# ----------------------------------------------------------------------------- cocotb

class Source:
    """Drive a stream from a deque of packed payloads; record the cycle of every handshake."""

    def __init__(self, dut, prefix, clk, idle="none", seed=0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk
        self.pattern = flow(idle, seed)
        self.queue = deque()
        self.cycle = 0
        self.handshakes = []
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, items):
        self.queue.extend(items)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        driving = False
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            if driving and int(self.ready.value):
                self.queue.popleft()
                self.handshakes.append(self.cycle)
                driving = False
            if not driving and self.queue and next(self.pattern):
                self.payload.value = self.queue[0]
                driving = True
            self.valid.value = int(driving)

    async def drain(self, timeout_ns):
        from cocotb.triggers import RisingEdge, with_timeout

        async def empty():
            while self.queue:
                await RisingEdge(self.clk)
        await with_timeout(empty(), timeout_ns, "ns")


class TB:
    def __init__(self, dut, cfg, idle, backpressure, seed):
        from tb.common import StreamSink

        self.dut = dut
        self.cfg = cfg
        ports = cfg["ports"]
        self.i_fields = Fields.from_manifest(ports["i_stream__payload"])
        self.o_fields = Fields.from_manifest(ports["o_stream__payload"])
        self.n_fields = Fields.from_manifest(ports["o_count__payload"])
        self.source = Source(dut, "i_stream", dut.clk, idle, seed)
        self.cfg_source = None
        if "cfg__payload" in ports:
            self.c_fields = Fields.from_manifest(ports["cfg__payload"])
            self.cfg_source = Source(dut, "cfg", dut.clk, idle, seed + 7)
        watch = (dut.i_stream__valid, dut.i_stream__ready)
        self.sink = StreamSink(dut, "o_stream", dut.clk, self.o_fields, backpressure, seed + 1,
                               watch)
        self.counts = StreamSink(dut, "o_count", dut.clk, self.n_fields, backpressure,
                                 seed + 2, watch)

    async def reset(self):
        from tb.common import start_clock_and_reset

        await start_clock_and_reset(self.dut)

    async def load(self, tables, timeout_ns=2_000_000):
        """Send serialized tables (group, bytes) through cfg, after every symbol was taken."""
        await self.source.drain(timeout_ns)
        for group, raw in tables:
            self.cfg_source.send(self.c_fields.pack({"data": x, "group": group,
                                                     "last": int(i == len(raw) - 1)})
                                 for i, x in enumerate(raw))
        await self.cfg_source.drain(timeout_ns)

    async def play(self, plan, timeout_ns):
        for kind, item in plan.steps:
            if kind == "load":
                if self.cfg_source is not None:
                    await self.load(item)
            else:
                self.source.send(self.i_fields.pack(beat) for beat in item)
        await self.source.drain(timeout_ns)

    async def check(self, plan, timeout_ns):
        from cocotb.triggers import ClockCycles

        words = await self.sink.wait_for(len(plan.words), timeout_ns)
        counts = await self.counts.wait_for(len(plan.counts), timeout_ns)
        got = [(w["data"], w["last"]) for w in words]
        for i, (g, e) in enumerate(zip(got, plan.words)):
            assert g == e, (f"word {i}: got {g[0]:#x} last={g[1]}, expected {e[0]:#x} "
                            f"last={e[1]}")
        assert [c["nbits"] for c in counts] == plan.counts, "tile bit counts differ"
        await ClockCycles(self.dut.clk, 30)
        assert len(self.sink.received) == len(plan.words), "encoder emitted extra words"
        assert len(self.counts.received) == len(plan.counts), "encoder emitted extra counts"
        assert int(self.dut.error.value) == 0, "error flag set on a valid stream"


async def run_test(dut, idle, backpressure):
    cfg = load_config()
    seed = zlib.crc32(f"{idle}/{backpressure}".encode())
    tb = TB(dut, cfg, idle, backpressure, seed)
    await tb.reset()
    plan = corner_plan(cfg, seed)
    timeout = 400 * (plan.symbols + len(plan.words)) + 2_000_000
    await tb.play(plan, timeout)
    await tb.check(plan, timeout)
    if backpressure == "fill":
        assert tb.sink.pattern.fills > 0, "backpressure never filled the encoder"
    if backpressure != "none":
        assert tb.sink.rule.stalls > 0, "the output was never stalled"


async def run_throughput(dut):
    """100,000 symbols in one tile, no idle, no backpressure: one symbol per cycle."""
    cfg = load_config()
    tb = TB(dut, cfg, "none", "none", 5)
    await tb.reset()
    rng = np.random.default_rng(5)
    q = np.load(cfg["real_path"]) if cfg.get("real_path") else None
    plan = Plan(cfg)
    if q is not None and plan.groups == 1:
        table = build_table(q.ravel(), cfg["b"], cfg["L"], histogram=False)
        values = np.resize(q.ravel(), THROUGHPUT_SYMBOLS)
    else:
        table = every_length_table(cfg["b"], cfg["L"], rng)
        values = values_from(table, THROUGHPUT_SYMBOLS, rng)
    # Latency first: a single-symbol tile, from its handshake to its (only, final) word.
    plan.load([table])
    plan.tile(values[:1])
    await tb.play(plan, 100_000)
    await tb.check(plan, 100_000)
    latency = tb.sink.beat_cycles[0] - tb.source.handshakes[0]
    dut._log.info(f"latency: symbol handshake to its word {latency} cycles")
    assert latency == LATENCY_SEEN, f"latency {latency}, documented {LATENCY_SEEN}"
    for seen in (tb.sink.received, tb.sink.beat_cycles, tb.counts.received):
        seen.clear()
    plan = Plan(cfg)
    plan.tables = [table]
    plan.tile(values)
    await tb.play(plan, 100 * THROUGHPUT_SYMBOLS)
    await tb.check(plan, 100 * THROUGHPUT_SYMBOLS)
    hs = tb.source.handshakes[-THROUGHPUT_SYMBOLS:]
    cycles = hs[-1] - hs[0] + 1
    rate = THROUGHPUT_SYMBOLS / cycles
    dut._log.info(f"throughput: {THROUGHPUT_SYMBOLS} symbols in {cycles} cycles = "
                  f"{rate:.4f} symbols/cycle, {plan.counts[0]} bits, {len(plan.words)} words")
    assert f"{rate:.2f}" == "1.00" and cycles == THROUGHPUT_SYMBOLS, (
        f"{rate:.4f} symbols per cycle over {THROUGHPUT_SYMBOLS} symbols")


async def run_errors(dut):
    """Malformed tables and an uncodable symbol set the sticky flag; a good load clears it."""
    from cocotb.triggers import ClockCycles

    cfg = load_config()
    tb = TB(dut, cfg, "none", "none", 9)
    await tb.reset()
    rng = np.random.default_rng(9)
    good = every_length_table(cfg["b"], cfg["L"], rng)
    raw = good.serialize()
    bad_tables = {
        "wrong symbol width": bytes([raw[0] - 1]) + raw[1:],
        "run-length flag": raw[:2] + bytes([raw[2] | 2]) + raw[3:],
        "truncated": raw[:-2],
        "trailing byte": raw + b"\0",
        "index out of range": raw[:-2] + ((1 << cfg["b"]) + 1).to_bytes(2, "little"),
        "over-full code": raw[:4] + (int.from_bytes(raw[4:6], "little") + 1).to_bytes(
            2, "little") + raw[6:] + raw[-2:],
    }
    for name, data in bad_tables.items():
        await tb.load([(0, data)])
        await ClockCycles(dut.clk, 4)
        assert int(dut.error.value) == 1, f"error flag not set by a table with {name}"
        await tb.load([(0, raw)])
        await ClockCycles(dut.clk, 4)
        assert int(dut.error.value) == 0, f"a good table after {name} did not clear the flag"
    # A table without escape: a symbol it cannot code sets the flag; the next tile is fine.
    plan = Plan(cfg)
    hist = np.zeros(1 << cfg["b"], dtype=np.int64)
    hist[:3] = [5, 3, 1]
    plan.load([build_table(hist, cfg["b"], cfg["L"], escape=False, histogram=True)])
    await tb.load(plan.steps[0][1])
    tb.source.send([tb.i_fields.pack({"symbol": 7, "last": 1})])
    await tb.source.drain(100_000)
    await ClockCycles(dut.clk, 10)
    assert int(dut.error.value) == 1, "uncodable symbol did not set the error flag"
    assert not tb.sink.received, "uncodable symbol produced words"
    assert [c["nbits"] for c in tb.counts.received] == [0], "uncodable tile count not 0"


async def run_cfg_framing(dut):
    """Table loads whose ``last`` is missing or misplaced never block the encoder.

    A load ends at the table's final byte (its length follows from the header and counts);
    without ``last`` there the error flag is set, the table (complete) is in place and the
    next tile is coded. A load that fails earlier drops bytes up to ``last`` without holding
    symbols back (the codes in place stay). An encoder that waited for ``last`` would time out.
    """
    from cocotb.triggers import ClockCycles

    cfg = load_config()
    tb = TB(dut, cfg, "none", "none", 21)
    await tb.reset()
    rng = np.random.default_rng(21)
    W = cfg["W"]
    table = every_length_table(cfg["b"], cfg["L"], rng)
    other = random_table(cfg["b"], cfg["L"], rng)
    timeout = 200_000

    async def load(t, last_at, extra=b""):
        data = t.serialize() + extra
        tb.cfg_source.send(tb.c_fields.pack({"data": x, "last": int(i == last_at)})
                           for i, x in enumerate(data))
        await tb.cfg_source.drain(timeout)
        await ClockCycles(dut.clk, 8)
        return int(dut.error.value)

    async def tile(t):
        """A tile coded with ``t``: the words and bit count must be golden's."""
        values = values_from(t, 50, rng)
        want, nbits = encode_tile(values, t, W)
        marks = len(tb.sink.received), len(tb.counts.received)
        pats = symbol_indices(values, t.bits, t.signed)
        tb.source.send(tb.i_fields.pack({"symbol": int(p), "last": int(i == len(pats) - 1)})
                       for i, p in enumerate(pats))
        await tb.source.drain(timeout)
        counts = await tb.counts.wait_for(marks[1] + 1, timeout)
        await ClockCycles(dut.clk, 10)
        got = [w["data"] for w in tb.sink.received[marks[0]:]]
        assert got == [int(w) for w in want] and counts[-1]["nbits"] == nbits, "tile differs"

    n = len(table.serialize())
    assert await load(table, n - 1) == 0
    await tile(table)
    # 1. A whole table without last: the flag is set at its final byte; symbols go on.
    assert await load(other, None) == 1, "a table without last must set the error flag"
    await tile(other)
    # 2. A malformed first byte and no last: the rest is dropped while symbols go on with
    #    the codes in place; a byte with last ends the drop.
    bad = bytes([table.serialize()[0] ^ 1]) + table.serialize()[1:]
    tb.cfg_source.send(tb.c_fields.pack({"data": x, "last": 0}) for x in bad)
    await tb.cfg_source.drain(timeout)
    await ClockCycles(dut.clk, 8)
    assert int(dut.error.value) == 1, "a malformed first byte must set the error flag"
    await tile(other)
    tb.cfg_source.send([tb.c_fields.pack({"data": 0, "last": 1})])
    assert await load(table, len(table.serialize()) - 1) == 0, "a good load clears the flag"
    await tile(table)
    # 3. A trailing byte carries the last flag: the table's final byte lacks it.
    assert await load(other, len(other.serialize()), b"\x00") == 1, "trailing byte"
    await tile(other)


if cocotb is not None:
    # The tests a configuration runs are generated from it: nothing returns early.
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(_CFG.get("main", False))))
    async def encoder_matches_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)

    if _CFG.get("throughput"):
        @cocotb.test()
        async def encoder_throughput(dut):
            await run_throughput(dut)

    if _CFG.get("errors"):
        @cocotb.test()
        async def encoder_error_flag(dut):
            await run_errors(dut)

    if _CFG.get("main"):
        @cocotb.test()
        async def encoder_cfg_framing(dut):
            await run_cfg_framing(dut)


def cocotb_tests(cfg) -> int:
    """How many cocotb tests a configuration generates (pytest checks that all of them ran)."""
    return (len(flow_pairs(cfg.get("main", False))) + bool(cfg.get("throughput"))
            + bool(cfg.get("errors")) + bool(cfg.get("main")))


# ----------------------------------------------------------------------------- pytest

def build_encoder(cfg):
    from golden.huffman_container import TableSet
    from hdl.huffman_encoder import HuffmanEncoder

    groups = len(cfg["bounds"]) - 1 if cfg["bounds"] else 1
    table = None
    if cfg["baked"]:
        tables = baked_tables(cfg)
        table = TableSet(tables, cfg["bounds"]) if cfg["bounds"] else tables[0]
    return HuffmanEncoder(cfg["b"], cfg["L"], cfg["W"], groups, group_bounds=cfg["bounds"],
                          group_bits=cfg["bits"], table=table)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_name)
def test_huffman_encoder(cfg):
    from amaranth.back import verilog

    from hdl.manifest import describe_ports

    comp = build_encoder(cfg)
    ports = {p["name"]: p for p in describe_ports(comp)}
    text = verilog.convert(comp, name="huffman_encoder", emit_src=False)
    extra = {}
    if cfg.get("real"):
        real_coefficients()
        extra["real_path"] = str(BUILD_ROOT / "huffman_encoder_mobilenet_v2.npy")
    run_cocotb(f"huffman_encoder-{config_name(cfg)}", {"huffman_encoder.v": text},
               "huffman_encoder", "tb.test_huffman_encoder",
               {**cfg, **extra, "ports": ports}, tests=cocotb_tests(cfg))


def test_real_coefficients_are_not_trivial():
    q = real_coefficients()
    assert q.shape[1] == 16 and q.shape[0] >= 1000
    assert np.unique(q).size > 20, "quantized coefficients collapsed to a few values"

