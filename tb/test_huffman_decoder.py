"""Huffman decoder testbench: symbol for symbol against ``golden.codec`` on both simulators.

Per configuration (b, L, W, groups; tables loaded through ``cfg`` or baked): tiles coded by
``encode_tile`` / ``encode_groups`` (every code length 1..L, the longest codes and escapes
straddling words, empty and single-symbol tiles, runs of one symbol, table reloads between
tiles, random alphabets and histograms, real quantized MobileNetV2 PCA coefficients) and, in
the configurations marked ``errors``, corrupt tiles (flipped bits, dropped, truncated and extra
words, non-zero padding, invalid codes on incomplete codes with ESC last and first, a golden
``CorruptStreamError`` case) followed by good ones. The main configuration runs them under the
3 x 3 grid of idle and backpressure patterns and the stress pairs (``tb.common.flow_pairs``),
the others under the diagonal. The expected output of every tile comes from the golden decoder:
the symbols it decodes before the first bad code (each with its ``last`` and ``first`` flag),
the error flag when no payload bit count makes ``decode_tile`` accept the tile; the shared
``StreamRule`` monitor watches ``o_stream``. The main configuration also measures throughput
over 100,000 symbols with no stalls (asserted 1.00 symbol per cycle) and the latency, fuzzes
the decoder with mutated tiles (``run_fuzz``, ``scripts/fuzz_decoder.py``) and checks table
loads without ``last`` (``run_cfg_framing``). Each configuration's cocotb tests are generated
from it (``cocotb_tests``); pytest checks that all of them ran.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from golden.codec.plain import encode_tile
from golden.codec.tables import build_table, symbol_indices

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import BUILD_ROOT, flow_pairs, load_config, run_cocotb
from tb.huffman_stimulus import (
    Plan,
    baked_tables,
    config_name,
    corner_plan,
    corrupt_tiles,
    every_length_table,
    golden_outcome,
    incomplete_table,
    random_table,
    real_coefficients,
    values_from,
)
from tb.streams import Fields

CONFIGS = [
    # Main point: run-time tables, real data, corrupt streams, throughput.
    {"b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False,
     "real": True, "throughput": True, "errors": True, "main": True, "fuzz": True},
    # 32-bit codes (ESC of length 24 + 8 raw bits) from 8-bit words: codes span 4 words.
    {"b": 8, "L": 24, "W": 8, "bounds": None, "bits": None, "baked": False},
    # Small alphabet, short codes, 16-bit words, corrupt streams.
    {"b": 3, "L": 5, "W": 16, "bounds": None, "bits": None, "baked": False, "errors": True},
    # Three groups of mixed widths, run-time tables loaded per group, real data.
    {"b": 6, "L": 16, "W": 16, "bounds": [0, 2, 5, 8], "bits": [4, 6, 5], "baked": False,
     "real": True},
    # Baked table set, two groups, 64-bit words.
    {"b": 5, "L": 10, "W": 64, "bounds": [0, 3, 7], "bits": [5, 3], "baked": True},
    # The map decode loop at the main point: everything the main point runs.
    {"b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False, "loop": "map",
     "real": True, "throughput": True, "errors": True, "main": True, "fuzz": True},
    # The map loop with a baked table, short codes and 16-bit words (codes up to W bits).
    {"b": 3, "L": 5, "W": 16, "bounds": None, "bits": None, "baked": True, "loop": "map"},
    # The map loop decoding 8 positions a cycle (a word in 4 cycles): real data, corrupt
    # streams, throughput.
    {"b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False, "loop": "map",
     "map_bits": 8, "real": True, "throughput": True, "min_rate": 0.998, "errors": True},
    # 4 positions a cycle of 16-bit words (a word in 4 cycles), corrupt streams.
    {"b": 3, "L": 5, "W": 16, "bounds": None, "bits": None, "baked": False, "loop": "map",
     "map_bits": 4, "errors": True},
]

THROUGHPUT_SYMBOLS = 100_000
FUZZ_TILES = {"verilator": 1000, "icarus": 300}   # mutated tiles per CI run
ERROR_NAMES = {1: "invalid code", 2: "ended early", 3: "excess words", 4: "padding",
               5: "bad table", 6: "no table"}


def make_plan(cfg, seed):
    """The corner plan, then (in configurations marked ``errors``) corrupt tiles."""
    rng = np.random.default_rng(seed)
    plan = corner_plan(cfg, rng)
    if cfg.get("errors"):
        corrupt_tiles(plan, cfg, rng)
        plan.tile(values_from(plan.tables[0], 50, rng))
    return plan


# ----------------------------------------------------------------------------- cocotb

class TB:
    """Drives ``i_count``, ``i_stream`` and ``cfg``, takes ``o_stream`` and watches ``error``.

    One coroutine does all of it per clock cycle (the simulation is dominated by Python work
    per cycle); waits are events it sets, each bounded by ``with_timeout``.
    """

    def __init__(self, dut, cfg, idle, backpressure, seed):
        from cocotb.triggers import Event

        from tb.streams import StreamSink, StreamSource

        self.dut = dut
        ports = cfg["ports"]
        self.w_fields = Fields.from_manifest(ports["i_stream__payload"])
        self.n_fields = Fields.from_manifest(ports["i_count__payload"])
        self.o_fields = Fields.from_manifest(ports["o_stream__payload"])
        self.c_fields = (Fields.from_manifest(ports["cfg__payload"])
                         if "cfg__payload" in ports else None)
        names = ["i_count", "i_stream"] + (["cfg"] if self.c_fields else [])
        self.inputs = {n: StreamSource(dut, n, dut.clk, None, idle, seed + k, start=False)
                       for k, n in enumerate(names)}
        unpack = self.o_fields.unpack

        def decode(word):
            beat = unpack(word)
            return beat["symbol"], beat["last"], beat["first"]

        self.sink = StreamSink(dut, "o_stream", dut.clk, None, backpressure, seed + 101,
                               (dut.i_stream__valid, dut.i_stream__ready), decode=decode,
                               start=False)
        self.rule = self.sink.rule
        self.received = self.sink.received          # (symbol, last, first)
        self.beat_cycles = self.sink.beat_cycles
        self.tile_errors = {}       # tile index -> first error code seen
        self.headers = 0
        self.cycle = 0
        self.cond = None
        self.event = Event()
        cocotb.start_soon(self._run())

    def handshakes(self, name):
        return self.inputs[name].handshakes

    def send(self, name, items):
        self.inputs[name].send(items)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        dut = self.dut
        headers = self.inputs["i_count"]
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            # Error first: a flag raised at a tile's end belongs to it, not to the next header.
            if int(dut.error.value):
                self.tile_errors.setdefault(self.headers - 1, int(dut.error_code.value))
            taken = headers.sent
            for source in self.inputs.values():
                source.step()
            self.headers += headers.sent - taken
            self.sink.step()
            if self.cond is not None and self.cond():
                self.cond = None
                self.event.set()

    async def until(self, cond, timeout_ns):
        from cocotb.triggers import with_timeout

        if cond():
            return
        self.event.clear()
        self.cond = cond
        await with_timeout(self.event.wait(), timeout_ns, "ns")

    async def drained(self, *names, timeout_ns):
        await self.until(lambda: not any(self.inputs[n].queue for n in names), timeout_ns)

    async def reset(self):
        from tb.streams import start_clock_and_reset

        await start_clock_and_reset(self.dut)

    async def load(self, tables, timeout_ns):
        """Send serialized tables after every earlier header and word was taken."""
        await self.drained("i_count", "i_stream", timeout_ns=timeout_ns)
        for group, raw in tables:
            self.send("cfg", (self.c_fields.pack({"data": x, "group": group,
                                                  "last": int(i == len(raw) - 1)})
                              for i, x in enumerate(raw)))
        await self.drained("cfg", timeout_ns=timeout_ns)

    async def play(self, plan, timeout_ns):
        for step in plan.steps:
            if step[0] == "load":
                if self.c_fields is not None:
                    await self.load(step[1], timeout_ns)
            else:
                count, words = step[1].count, step[1].words
                self.send("i_count", [self.n_fields.pack({"count": count})])
                self.send("i_stream", (self.w_fields.pack({"data": w,
                                                           "last": int(i == len(words) - 1)})
                                       for i, w in enumerate(words)))
        await self.drained("i_count", "i_stream", timeout_ns=timeout_ns)

    async def check(self, plan, timeout_ns):
        from cocotb.triggers import ClockCycles, SimTimeoutError

        n = len(plan.symbols)
        try:
            await self.until(lambda: len(self.received) >= n, timeout_ns)
        except SimTimeoutError:
            pass
        got = self.received[:n]
        for k, (g, e) in enumerate(zip(got, plan.symbols)):
            assert g == e, (f"symbol {k}: got {g[0]} last={g[1]} first={g[2]}, expected "
                            f"{e[0]} last={e[1]} first={e[2]}")
        assert len(got) == n, (
            f"decoder emitted {len(got)} of {n} symbols; errors seen {self.tile_errors}, "
            f"{self.headers} tile headers taken")
        await ClockCycles(self.dut.clk, 30)
        assert len(self.received) == n, "decoder emitted extra symbols"
        for tile, (expect, codes) in enumerate(plan.errors):
            seen = self.tile_errors.get(tile)
            if not expect:
                assert seen is None, (f"tile {tile}: error {ERROR_NAMES.get(seen, seen)} on a "
                                      f"good tile")
            else:
                assert seen is not None, f"tile {tile}: corrupt tile did not set the error flag"
                assert codes is None or seen in codes, (
                    f"tile {tile}: error code {seen}, expected one of {sorted(codes)}")
        assert self.headers == len(plan.errors), "not every tile header was taken"


async def run_test(dut, idle, backpressure):
    cfg = load_config()
    seed = zlib.crc32(f"{idle}/{backpressure}".encode())
    tb = TB(dut, cfg, idle, backpressure, seed)
    await tb.reset()
    plan = make_plan(cfg, seed)
    timeout = 40 * (len(plan.symbols) + sum(len(t.words) for t in plan.tiles)) + 200_000
    if "long" in (idle, backpressure):
        timeout *= 10
    await tb.play(plan, timeout)
    await tb.check(plan, timeout)
    if backpressure == "fill":
        assert tb.sink.pattern.fills > 0, "backpressure never filled the decoder"
    if backpressure != "none":
        assert tb.rule.stalls > 0, "the output was never stalled"


async def run_throughput(dut):
    """100,000 symbols in one tile, no idle, no backpressure: one symbol per cycle."""
    cfg = load_config()
    tb = TB(dut, cfg, "none", "none", 5)
    await tb.reset()
    q = np.load(cfg["real_path"])
    table = build_table(q.ravel(), cfg["b"], cfg["L"], histogram=False)
    plan = Plan(cfg)
    plan.load([table])
    plan.tile(q.ravel()[:1])
    await tb.play(plan, 100_000)
    await tb.check(plan, 100_000)
    latency = tb.beat_cycles[0] - tb.handshakes("i_stream")[0]
    dut._log.info(f"latency: word handshake to its symbol {latency} cycles")
    assert latency == cfg["latency"], f"latency {latency}, documented {cfg['latency']}"
    tb.received.clear()
    tb.beat_cycles.clear()
    tb.headers = 0
    tb.tile_errors.clear()
    plan = Plan(cfg)
    plan.tables = [table]
    words, nbits = plan.tile(np.resize(q.ravel(), THROUGHPUT_SYMBOLS))
    await tb.play(plan, 100 * THROUGHPUT_SYMBOLS)
    await tb.check(plan, 100 * THROUGHPUT_SYMBOLS)
    beats = tb.beat_cycles
    cycles = beats[-1] - beats[0] + 1
    rate = THROUGHPUT_SYMBOLS / cycles
    dut._log.info(f"throughput: {THROUGHPUT_SYMBOLS} symbols in {cycles} cycles = "
                  f"{rate:.4f} symbols/cycle ({nbits} bits, {len(words)} words)")
    if "min_rate" in cfg:
        # A map stage slower than a word per cycle (``map_bits``): one symbol per cycle
        # while the codes average at most ``map_bits`` bits; bursts of longer codes wait.
        assert cfg["min_rate"] <= rate <= 1.0, (
            f"{rate:.4f} symbols per cycle over {THROUGHPUT_SYMBOLS} symbols, documented at "
            f"least {cfg['min_rate']}")
    else:
        assert f"{rate:.2f}" == "1.00" and cycles == THROUGHPUT_SYMBOLS, (
            f"{rate:.4f} symbols per cycle over {THROUGHPUT_SYMBOLS} symbols")


# ----------------------------------------------------------------------------- fuzzing

MUTATIONS = ("flip", "flip2", "drop", "duplicate", "truncate", "random_word", "random_tile")


def mutate(words, W, rng):
    """One mutation of a tile's word list (never empty: a tile with a count needs a word)."""
    words = [int(w) for w in words]
    top = (1 << W) - 1
    kind = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    n = len(words)
    if kind in ("drop", "truncate") and n < 2:
        kind = "flip"
    if kind.startswith("flip"):
        for _ in range(1 if kind == "flip" else 2):
            bit = int(rng.integers(n * W))
            words[bit // W] ^= 1 << (W - 1 - bit % W)
    elif kind == "drop":
        del words[int(rng.integers(n))]
    elif kind == "duplicate":
        i = int(rng.integers(n))
        words.insert(i, words[i])
    elif kind == "truncate":
        words = words[:int(rng.integers(1, n))]
    elif kind == "random_word":
        words[int(rng.integers(n))] = int(rng.integers(0, top, endpoint=True, dtype=np.uint64))
    else:
        words = [int(rng.integers(0, top, endpoint=True, dtype=np.uint64))
                 for _ in range(max(1, n + int(rng.integers(-1, 2))))]
    return words, kind


def fuzz_plan(cfg, tiles, seed):
    """``tiles`` mutated tiles, each followed by a good tile; tables reloaded every 100 tiles
    (complete codes, random alphabets, incomplete codes with ESC last and first)."""
    rng = np.random.default_rng(seed)
    plan = Plan(cfg)
    b, L, W = cfg["b"], cfg["L"], cfg["W"]
    makers = (lambda: every_length_table(b, L, rng), lambda: random_table(b, L, rng),
              lambda: incomplete_table(b, L, rng),
              lambda: incomplete_table(b, L, rng, esc_last=False))
    kinds = {}
    for i in range(tiles):
        if i % 100 == 0:
            plan.load([makers[(i // 100) % len(makers)]()])
        table = plan.tables[0]
        values = values_from(table, int(rng.integers(1, 60)), rng)
        words, _ = encode_tile(values, table, W)
        words, kind = mutate(words, W, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        plan.raw_tile(words, len(values))
        plan.tile(values_from(table, int(rng.integers(1, 30)), rng))
    return plan, kinds


async def run_fuzz(dut):
    """Mutated tiles back to back through the decoder, each followed by a good tile.

    Per tile: the error flag is raised iff golden rejects the tile (``golden_outcome``), the
    symbols emitted (with ``last`` and ``first``) are golden's symbols before the error, and
    the good tile after it decodes exactly. Random idle and backpressure.
    """
    import json
    import time

    from cocotb.triggers import ClockCycles, SimTimeoutError

    cfg = load_config()
    tiles = int(cfg["fuzz_tiles"])
    seed = int(cfg.get("fuzz_seed", 2024))
    t0 = time.time()
    plan, kinds = fuzz_plan(cfg, tiles, seed)
    t1 = time.time()
    tb = TB(dut, cfg, "random", "random", seed)
    await tb.reset()
    timeout = 40 * (len(plan.symbols) + sum(len(t.words) for t in plan.tiles)) + 200_000
    await tb.play(plan, timeout)
    try:
        await tb.until(lambda: len(tb.received) >= len(plan.symbols), timeout)
    except SimTimeoutError:
        pass
    await ClockCycles(dut.clk, 30)
    # Walk the output tile by tile: a tile whose symbols or flag differ is one mismatch.
    mismatches, pos, flagged, expected = [], 0, 0, 0
    for tile, t in enumerate(plan.tiles):
        want, error = plan.decoder_output(t), t.error
        got = tb.received[pos:pos + len(want)]
        pos += len(want)
        seen = tile in tb.tile_errors
        flagged += seen
        expected += error
        if got != want or seen != error:
            mismatches.append(tile)
    extra = len(tb.received) - len(plan.symbols)
    report = {"tiles": tiles, "good_tiles": tiles, "golden_errors": expected,
              "errors_flagged": flagged, "mismatches": len(mismatches),
              "first_mismatches": mismatches[:10], "extra_symbols": extra,
              "headers_taken": tb.headers, "mutations": kinds, "cycles": tb.cycle,
              "symbols": len(plan.symbols), "plan_seconds": round(t1 - t0, 1),
              "seconds": round(time.time() - t0, 1)}
    dut._log.info(f"fuzz: {tiles} mutated tiles sent (each followed by a good tile), "
                  f"{flagged} errors flagged by the RTL, {expected} by golden, "
                  f"{len(mismatches)} mismatches; {report}")
    if cfg.get("fuzz_report"):
        Path(cfg["fuzz_report"]).write_text(json.dumps(report, indent=1) + "\n")
    assert tb.headers == 2 * tiles, f"{tb.headers} of {2 * tiles} tile headers taken"
    assert not mismatches and extra == 0, (
        f"{len(mismatches)} tiles differ from golden (first: {mismatches[:10]}); "
        f"{extra} symbols more than expected")
    assert 0 < expected < tiles, "the mutations must make some tiles bad and leave some good"


async def run_cfg_framing(dut):
    """Table loads whose ``last`` is missing or misplaced never block the decoder.

    A load ends at the table's final byte (its length follows from the header and counts):
    without ``last`` there it is BAD_TABLE and the next tile is taken (NO_TABLE). A load that
    fails earlier drops bytes up to ``last`` without holding tiles back. A good load then
    restores decoding. A decoder that waited for ``last`` would time out here.
    """
    from cocotb.triggers import ClockCycles

    cfg = load_config()
    tb = TB(dut, cfg, "none", "none", 77)
    await tb.reset()
    rng = np.random.default_rng(77)
    b, W = cfg["b"], cfg["W"]
    table = every_length_table(b, cfg["L"], rng)
    raw = table.serialize()
    timeout = 200_000

    async def load(data, last_at):
        tb.send("cfg", [tb.c_fields.pack({"data": x, "last": int(i == last_at)})
                        for i, x in enumerate(data)])
        await tb.drained("cfg", timeout_ns=timeout)
        await ClockCycles(dut.clk, 8)
        return int(dut.error.value), int(dut.error_code.value)

    async def tile():
        values = values_from(table, 40, rng)
        words, _ = encode_tile(values, table, W)
        mark = len(tb.received)
        tb.send("i_count", [tb.n_fields.pack({"count": len(values)})])
        tb.send("i_stream", [tb.w_fields.pack({"data": int(w), "last": int(i == len(words) - 1)})
                             for i, w in enumerate(words)])
        await tb.drained("i_count", "i_stream", timeout_ns=timeout)
        await ClockCycles(dut.clk, 60)
        pats = symbol_indices(values, b, table.signed)
        want = [(int(p), int(i == len(pats) - 1), int(i == 0)) for i, p in enumerate(pats)]
        return tb.received[mark:], want, int(dut.error_code.value)

    bad, nt = 5, 6      # BAD_TABLE, NO_TABLE
    assert await load(raw, len(raw) - 1) == (0, 0)
    got, want, code = await tile()
    assert got == want and code == 0, "good load, good tile"
    # 1. A whole table without last: BAD_TABLE at its final byte; the next header is taken.
    assert await load(raw, None) == (1, bad), "table without last: BAD_TABLE"
    got, _, code = await tile()
    assert got == [] and code == nt, f"tile after a table without last: {got[:3]}, code {code}"
    assert await load(raw, len(raw) - 1) == (0, 0)
    got, want, code = await tile()
    assert got == want and code == 0, "a good load after a table without last"
    # 2. A malformed first byte and no last at all: BAD_TABLE, the rest is dropped while
    #    tiles go on (the group is unusable); a byte with last ends the drop.
    assert await load(bytes([raw[0] ^ 1]) + raw[1:], None) == (1, bad), "bad first byte"
    got, _, code = await tile()
    assert got == [] and code == nt, "tile during a dropped load"
    assert await load(b"\x00", 0) == (1, nt), "a lone last byte ends the drop"
    assert await load(raw, len(raw) - 1) == (0, 0)
    got, want, code = await tile()
    assert got == want and code == 0, "a good load after a dropped one"
    # 3. A trailing byte carries the last flag: the table's final byte lacks it.
    assert await load(raw + b"\x00", len(raw)) == (1, bad), "trailing byte"
    got, _, code = await tile()
    assert got == [] and code == nt
    assert await load(raw, len(raw) - 1) == (0, 0)
    got, want, code = await tile()
    assert got == want and code == 0
    assert tb.headers == 7


def cocotb_tests(cfg) -> int:
    """How many cocotb tests a configuration generates (pytest checks that all of them ran)."""
    return (len(flow_pairs(cfg.get("main", False))) + bool(cfg.get("throughput"))
            + bool(cfg.get("fuzz")) + bool(cfg.get("main")))


if cocotb is not None:
    # The tests a configuration runs are generated from it: nothing returns early.
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(_CFG.get("main", False))))
    async def decoder_matches_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)

    if _CFG.get("throughput"):
        @cocotb.test()
        async def decoder_throughput(dut):
            await run_throughput(dut)

    if _CFG.get("fuzz"):
        @cocotb.test()
        async def decoder_fuzz(dut):
            await run_fuzz(dut)

    if _CFG.get("main"):
        @cocotb.test()
        async def decoder_cfg_framing(dut):
            await run_cfg_framing(dut)


# ----------------------------------------------------------------------------- pytest

def build_decoder(cfg):
    from golden.codec.container import TableSet
    from hdl.huffman_decoder import HuffmanDecoder

    groups = len(cfg["bounds"]) - 1 if cfg["bounds"] else 1
    table = None
    if cfg["baked"]:
        tables = baked_tables(cfg)
        table = TableSet(tables, cfg["bounds"]) if cfg["bounds"] else tables[0]
    return HuffmanDecoder(cfg["b"], cfg["L"], cfg["W"], groups, group_bounds=cfg["bounds"],
                          group_bits=cfg["bits"], table=table, loop=cfg.get("loop", "shift"),
                          map_bits=cfg.get("map_bits"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_name)
def test_huffman_decoder(cfg):
    run_decoder(cfg, tests=cocotb_tests(cfg))


def run_decoder(cfg, testcase=None, tests=None, **extra):
    """Build the decoder of ``cfg`` and run its cocotb tests (``testcase``: one of them)."""
    from amaranth.back import verilog

    from hdl.manifest import describe_ports
    from tb.common import simulator

    comp = build_decoder(cfg)
    extra["latency"] = comp.latency
    ports = {p["name"]: p for p in describe_ports(comp)}
    text = verilog.convert(comp, name="huffman_decoder", emit_src=False)
    if cfg.get("real"):
        real_coefficients()
        extra["real_path"] = str(BUILD_ROOT / "huffman_encoder_mobilenet_v2.npy")
    if cfg.get("fuzz"):
        extra.setdefault("fuzz_tiles", FUZZ_TILES[simulator()])
    run_cocotb(f"huffman_decoder-{config_name(cfg)}", {"huffman_decoder.v": text},
               "huffman_decoder", "tb.test_huffman_decoder",
               {**cfg, **extra, "ports": ports}, testcase=testcase, tests=tests)


def test_golden_outcome_model():
    """The expected-output model itself: good, truncated and padded tiles."""
    rng = np.random.default_rng(3)
    t = every_length_table(4, 6, rng)
    v = values_from(t, 50, rng)
    words, nbits = encode_tile(v, t, 16)
    pats, err = golden_outcome(words, 50, t, 16)
    assert not err and pats == [int(p) for p in symbol_indices(v, 4)]
    pats, err = golden_outcome(words[:-1], 50, t, 16)
    assert err and len(pats) < 50
    assert golden_outcome(list(words) + [0], 50, t, 16)[1]
    assert golden_outcome([], 0, t, 16) == ([], False)
