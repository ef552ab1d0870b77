"""Huffman encoder testbench: word for word against ``golden.codec`` on both simulators.

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

import zlib

import numpy as np
import pytest

from golden.codec.plain import encode_tile
from golden.codec.tables import build_table, symbol_indices

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import BUILD_ROOT, flow_pairs, load_config, primitive_models, run_cocotb
from tb.huffman_stimulus import (
    Plan,
    baked_tables,
    config_name,
    corner_plan,
    every_length_table,
    random_table,
    real_coefficients,
    values_from,
)
from tb.streams import Fields

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
    # family="ecp5": the code table in DP16KD tiles read through their output register
    # (simulated by tb/models/DP16KD.v): the main point's whole treatment, and a baked table
    # set (the tiles' initial contents).
    {"b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False,
     "real": True, "throughput": True, "errors": True, "main": True, "family": "ecp5"},
    {"b": 5, "L": 10, "W": 64, "bounds": [0, 3, 7], "bits": [5, 3], "baked": True,
     "family": "ecp5"},
    # Five groups of b = 8: 1,280 table entries, two rows of DP16KD tiles (the read picks
    # the row after the output registers).
    {"b": 8, "L": 12, "W": 32, "bounds": [0, 2, 4, 6, 8, 10], "bits": [8, 8, 8, 8, 8],
     "baked": False, "family": "ecp5"},
]

THROUGHPUT_SYMBOLS = 100_000


# ----------------------------------------------------------------------------- cocotb

class TB:
    def __init__(self, dut, cfg, idle, backpressure, seed):
        from tb.streams import StreamSink, StreamSource

        self.dut = dut
        self.cfg = cfg
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
        self.sink = StreamSink(dut, "o_stream", dut.clk, self.o_fields, backpressure, seed + 1,
                               watch)
        self.counts = StreamSink(dut, "o_count", dut.clk, self.n_fields, backpressure,
                                 seed + 2, watch)

    async def reset(self):
        from tb.streams import start_clock_and_reset

        await start_clock_and_reset(self.dut)

    async def load(self, tables, timeout_ns=2_000_000):
        """Send serialized tables (group, bytes) through cfg, after every symbol was taken."""
        await self.source.wait_sent(timeout_ns)
        for group, raw in tables:
            self.cfg_source.send(self.c_fields.pack({"data": x, "group": group,
                                                     "last": int(i == len(raw) - 1)})
                                 for i, x in enumerate(raw))
        await self.cfg_source.wait_sent(timeout_ns)

    async def play(self, plan, timeout_ns):
        for kind, item in plan.steps:
            if kind == "load":
                if self.cfg_source is not None:
                    await self.load(item)
            else:
                self.source.send(self.i_fields.pack(beat) for beat in plan.encoder_beats(item))
        await self.source.wait_sent(timeout_ns)

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
    plan = corner_plan(cfg, np.random.default_rng(seed))
    timeout = 400 * (len(plan.symbols) + len(plan.words)) + 2_000_000
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
    assert latency == cfg["latency"], f"latency {latency}, documented {cfg['latency']}"
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
    await tb.source.wait_sent(100_000)
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
        await tb.cfg_source.wait_sent(timeout)
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
        await tb.source.wait_sent(timeout)
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
    await tb.cfg_source.wait_sent(timeout)
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
    from golden.codec.container import TableSet
    from hdl.huffman_encoder import HuffmanEncoder

    groups = len(cfg["bounds"]) - 1 if cfg["bounds"] else 1
    table = None
    if cfg["baked"]:
        tables = baked_tables(cfg)
        table = TableSet(tables, cfg["bounds"]) if cfg["bounds"] else tables[0]
    return HuffmanEncoder(cfg["b"], cfg["L"], cfg["W"], groups, group_bounds=cfg["bounds"],
                          group_bits=cfg["bits"], table=table,
                          family=cfg.get("family", "generic"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_name)
def test_huffman_encoder(cfg):
    from amaranth.back import verilog

    from hdl.manifest import describe_ports

    comp = build_encoder(cfg)
    ports = {p["name"]: p for p in describe_ports(comp)}
    text = verilog.convert(comp, name="huffman_encoder", emit_src=False)
    extra = {"latency": comp.latency}
    if cfg.get("real"):
        real_coefficients()
        extra["real_path"] = str(BUILD_ROOT / "huffman_encoder_mobilenet_v2.npy")
    sources = {"huffman_encoder.v": text, **primitive_models(cfg.get("family", "generic"))}
    run_cocotb(f"huffman_encoder-{config_name(cfg)}", sources,
               "huffman_encoder", "tb.test_huffman_encoder",
               {**cfg, **extra, "ports": ports}, tests=cocotb_tests(cfg))


def test_real_coefficients_are_not_trivial():
    q = real_coefficients()
    assert q.shape[1] == 16 and q.shape[0] >= 1000
    assert np.unique(q).size > 20, "quantized coefficients collapsed to a few values"

