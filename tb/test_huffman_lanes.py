"""N-lane Huffman coders testbench: lane for lane against ``golden.codec.lanes`` on both
simulators.

Per configuration (block, lanes N, b, L, W, groups; tables loaded through ``cfg`` or baked):
the named corner tiles of ``tb.huffman_stimulus.corner_plan`` (every code length, escapes,
empty and single-symbol tiles, tiles shorter than N, flush-only ends, reloads between tiles,
real quantized MobileNetV2 PCA coefficients) coded as version 3. The encoder's words on every
lane port and its per-tile lane bit counts are compared with ``encode_lanes``; the decoder gets
each lane's golden words on its own port and must put out the tile's symbols in beats of N,
``first``/``last`` included. Configurations marked ``errors`` add corrupt tiles: one or two
lanes' words flipped, dropped, truncated, extended, padded with ones or replaced by an invalid
code, each followed by a good tile; per tile the error flag must be raised exactly when golden
rejects a lane (``golden_outcome`` per lane), the beats before the first one a corrupt lane
cannot fill must be golden's, and nothing else may come out. Stalls: the main configurations
run the 3 x 3 grid of idle and backpressure patterns and the stress pairs
(``tb.common.flow_pairs``), every input port under its own seed, the others the diagonal; the
shared ``StreamRule`` monitor watches every output. Configurations marked ``throughput``
measure the sustained rate on one 40,000-symbol tile of real data without stalls and assert N
symbols per cycle (cycles between the first and the last beat), and the latency.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from golden.codec.lanes import decode_lanes, encode_lanes, lane_counts
from golden.codec.tables import build_table

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import BUILD_ROOT, flow_pairs, load_config, run_cocotb
from tb.huffman_stimulus import (
    baked_tables,
    corner_plan,
    every_length_table,
    golden_outcome,
    incomplete_table,
    real_coefficients,
    to_values,
    values_from,
)
from tb.streams import Fields

_COMMON = [
    # Main points: run-time tables, real data, 4 lanes, the full stall grid.
    {"lanes": 4, "b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False,
     "real": True, "throughput": True, "main": True},
    # One and two lanes: the rate scales (throughput), diagonal stalls.
    {"lanes": 1, "b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False,
     "real": True, "throughput": True},
    {"lanes": 2, "b": 8, "L": 12, "W": 32, "bounds": None, "bits": None, "baked": False,
     "real": True, "throughput": True},
    # Three groups of mixed widths over K = 8 in 4 lanes: each lane meets its own groups
    # (lane 0 columns 0, 4: groups 0, 1; lane 2 columns 2, 6: groups 1, 2), tables per group.
    {"lanes": 4, "b": 6, "L": 16, "W": 16, "bounds": [0, 2, 5, 8], "bits": [4, 6, 5],
     "baked": False, "real": True},
    # Eight lanes, baked table set of two groups over K = 16, 64-bit words.
    {"lanes": 8, "b": 5, "L": 10, "W": 64, "bounds": [0, 3, 16], "bits": [5, 3],
     "baked": True},
]
CONFIGS = ([{"block": "encoder", **c} for c in _COMMON]
           + [{"block": "decoder", **c, **({"errors": True} if c.get("main") or
                                             c["lanes"] == 2 else {})} for c in _COMMON]
           # Four lanes of map-loop decoders, 8 positions a cycle each: real data,
           # corrupt lanes, throughput (one symbol per lane per cycle while the codes
           # average at most 8 bits: here 0.996 of it or more).
           + [{"block": "decoder", "lanes": 4, "b": 8, "L": 12, "W": 32, "bounds": None,
               "bits": None, "baked": False, "loop": "map", "map_bits": 8, "real": True,
               "throughput": True, "min_rate": 0.996, "errors": True,
               # A tile's first word waits for the window register and 4 chunk cycles:
               # 64-symbol tiles cost about 18 cycles more than 64 / N (measured,
               # docs/huffman_lanes.md).
               "tile_overhead": 18}])

THROUGHPUT_SYMBOLS = 40_000
SHORT_TILES = 100
# Cycles a tile boundary may add to 64 / N (measured: docs/huffman_lanes.md, "Timing").
TILE_OVERHEAD = {"encoder": 4, "decoder": 8}
ERROR_ROUNDS = 40   # corrupt tiles per table in the error configurations


def config_name(c):
    g = f"-g{len(c['bounds']) - 1}" if c["bounds"] else ""
    return (f"{c['block'][:3]}-n{c['lanes']}-b{c['b']}L{c['L']}W{c['W']}{g}"
            f"{'-baked' if c['baked'] else ''}"
            f"{'-map' + str(c['map_bits']) if c.get('loop') == 'map' else ''}")


# ----------------------------------------------------------------------------- golden side

class LaneTile:
    """One tile in lanes: the encoder's beats and lane words, the decoder's expected beats."""

    def __init__(self, pats, values2d, tables, bounds, cfg, flush_beat=False):
        n, W = cfg["lanes"], cfg["W"]
        self.count = len(pats)
        self.pats = [int(p) for p in pats]
        parts = encode_lanes(values2d, tables, bounds, W, n)
        back = decode_lanes(parts, values2d.shape[0], tables, bounds, W)
        np.testing.assert_array_equal(back, values2d, err_msg="golden lane round trip")
        self.lane_words = [[int(w) for w in words] for words, _ in parts]
        self.nbits = [int(nbits) for _, nbits in parts]
        self.flush_beat = flush_beat and self.count % n == 0
        self.lane_pats = [self.pats[lane::n] for lane in range(n)]   # what each lane decodes
        self.error = False

    def encoder_beats(self, n):
        beats = []
        for i in range(0, self.count, n):
            chunk = self.pats[i:i + n]
            beats.append({"symbols": chunk, "n": len(chunk), "last": 0})
        if beats and not self.flush_beat:
            beats[-1]["last"] = 1
        else:
            beats.append({"symbols": [], "n": 0, "last": 1})
        return beats

    def decoder_beats(self, n):
        """(symbols, n, last, first) per beat the decoder must put out."""
        avail = [len(p) for p in self.lane_pats]
        beats = []
        for j, i in enumerate(range(0, self.count, n)):
            k = min(n, self.count - i)
            if any(j >= avail[lane] for lane in range(k)):
                break       # a corrupt lane cannot fill this beat: the tile stops here
            beats.append(([self.lane_pats[lane][j] for lane in range(k)], k,
                          int(i + k == self.count), int(j == 0)))
        return beats


def _values(pats, table):
    return to_values(np.asarray(pats, dtype=np.int64), table.bits, table.signed)


def lane_plan(plan, cfg):
    """The steps of a single-lane ``Plan`` as version-3 tiles: ("load", ..) or ("tile", ..)."""
    steps = []
    tables = None
    bounds = plan.bounds
    for kind, item in plan.steps:
        if kind == "load":
            tables = _tables_of(item)
            steps.append(("load", item))
            continue
        if bounds:
            k = bounds[-1]
            arr = np.asarray(item.pats, dtype=np.int64).reshape(-1, k)
            values = np.empty(arr.shape, dtype=np.int64)
            for t, lo, hi in zip(tables, bounds, bounds[1:]):
                values[:, lo:hi] = _values(arr[:, lo:hi], t)
            steps.append(("tile", LaneTile(item.pats, values, tables, bounds, cfg,
                                           item.flush_beat)))
        else:
            values = _values(item.pats, tables[0]).reshape(-1, 1)
            steps.append(("tile", LaneTile(item.pats, values, tables, [0, 1], cfg,
                                           item.flush_beat)))
    return steps


def _tables_of(load):
    from golden.codec.container import parse_table

    return [parse_table(raw) for _, raw in load]


def corrupt_steps(cfg, rng):
    """Corrupt version-3 tiles (single group), each followed by a good one."""
    n, W, b, L = cfg["lanes"], cfg["W"], cfg["b"], cfg["L"]
    mask = (1 << W) - 1
    steps = []
    kinds = {}
    for table in (every_length_table(b, L, rng), incomplete_table(b, L, rng),
                  incomplete_table(b, L, rng, esc_last=False)):
        steps.append(("load", [(0, table.serialize())]))
        for _ in range(ERROR_ROUNDS):
            count = int(rng.integers(n, 40 * n))
            values = values_from(table, count, rng)
            tile = LaneTile(_pats(values, table), values.reshape(-1, 1), [table], [0, 1], cfg)
            counts = lane_counts(count, n)
            for lane in rng.choice(n, size=min(n, int(rng.integers(1, 3))), replace=False):
                lane = int(lane)
                words = tile.lane_words[lane]
                nbits = tile.nbits[lane]
                case = ["flip", "drop", "truncate", "extra", "padding", "invalid"][
                    int(rng.integers(6))]
                if case == "flip":
                    bit = int(rng.integers(0, nbits))
                    words[bit // W] ^= 1 << (W - 1 - bit % W)
                elif case == "drop" and len(words) > 2:
                    del words[int(rng.integers(0, len(words) - 1))]
                elif case == "truncate" and len(words) > 1:
                    words[:] = words[:-1]
                elif case == "extra":
                    words.append(int(rng.integers(0, 1 << min(W, 62))))
                elif case == "padding" and nbits % W:
                    words[-1] |= 1
                elif case == "invalid" and table.limits[-1] < (1 << L):
                    words[:] = [mask] * max(1, -(-L // W))
                else:
                    case = "flip"
                    bit = int(rng.integers(0, nbits))
                    words[bit // W] ^= 1 << (W - 1 - bit % W)
                kinds[case] = kinds.get(case, 0) + 1
                pats, error = golden_outcome(words, counts[lane], table, W)
                tile.lane_pats[lane] = pats
                tile.error |= error
            steps.append(("tile", tile))
            good = values_from(table, int(rng.integers(0, 30)), rng)
            steps.append(("tile", LaneTile(_pats(good, table), good.reshape(-1, 1), [table],
                                           [0, 1], cfg)))
    return steps, kinds


def _pats(values, table):
    return [int(v) & ((1 << table.bits) - 1) for v in values]


# ----------------------------------------------------------------------------- cocotb

def _split(word, width, n):
    return [(word >> (width * i)) & ((1 << width) - 1) for i in range(n)]


def _join(items, width):
    return sum(int(x) << (width * i) for i, x in enumerate(items))


class TB:
    """Every stream of the block driven and watched from one per-cycle coroutine."""

    def __init__(self, dut, cfg, idle, backpressure, seed):
        from cocotb.triggers import Event

        from tb.streams import StreamSink, StreamSource

        self.dut, self.cfg = dut, cfg
        self.n = cfg["lanes"]
        ports = cfg["ports"]
        self.fields = {name[:-len("__payload")]: Fields.from_manifest(p)
                       for name, p in ports.items() if name.endswith("__payload")}
        self.encoder = cfg["block"] == "encoder"
        lanes = [f"{'o' if self.encoder else 'i'}_stream__{lane}" for lane in range(self.n)]
        if self.encoder:
            inputs = ["i_stream"]
            outputs = lanes + ["o_count"]
            watch = (dut.i_stream__valid, dut.i_stream__ready)
        else:
            inputs = ["i_count"] + lanes
            outputs = ["o_stream"]
            watch = (getattr(dut, "i_stream__0__valid"), getattr(dut, "i_stream__0__ready"))
        if "cfg" in self.fields:
            inputs.append("cfg")
        self.inputs = {name: StreamSource(dut, name, dut.clk, None, idle, seed + k,
                                          start=False) for k, name in enumerate(inputs)}
        self.sinks = {name: StreamSink(dut, name, dut.clk, self.fields[name], backpressure,
                                       seed + 101 + k, watch, start=False)
                      for k, name in enumerate(outputs)}
        self.lanes = lanes
        self.tile_errors = set()
        self.headers = 0
        self.cycle = 0
        self.cond = None
        self.event = Event()
        cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import RisingEdge

        dut = self.dut
        headers = self.inputs.get("i_count")
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if not self.encoder and int(dut.error.value):
                self.tile_errors.add(self.headers - 1)
            taken = headers.sent if headers else 0
            for source in self.inputs.values():
                source.step()
            if headers:
                self.headers += headers.sent - taken
            for sink in self.sinks.values():
                sink.step()
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

    async def drained(self, names, timeout_ns):
        await self.until(lambda: not any(self.inputs[n].queue for n in names), timeout_ns)

    async def reset(self):
        from tb.streams import start_clock_and_reset

        await start_clock_and_reset(self.dut)

    async def play(self, steps, timeout_ns):
        data_inputs = [n for n in self.inputs if n != "cfg"]
        b, n = self.cfg["b"], self.n
        for kind, item in steps:
            if kind == "load":
                if "cfg" in self.inputs:
                    await self.drained(data_inputs, timeout_ns)
                    for group, raw in item:
                        self.inputs["cfg"].send(
                            self.fields["cfg"].pack({"data": x, "group": group,
                                                     "last": int(i == len(raw) - 1)})
                            for i, x in enumerate(raw))
                    await self.drained(["cfg"], timeout_ns)
            elif self.encoder:
                f = self.fields["i_stream"]
                self.inputs["i_stream"].send(
                    f.pack({"symbols": _join(beat["symbols"], b), "n": beat["n"],
                            "last": beat["last"]}) for beat in item.encoder_beats(n))
            else:
                self.inputs["i_count"].send([self.fields["i_count"].pack(
                    {"count": item.count})])
                for lane, name in enumerate(self.lanes):
                    words = item.lane_words[lane]
                    self.inputs[name].send(
                        self.fields[name].pack({"data": w, "last": int(i == len(words) - 1)})
                        for i, w in enumerate(words))
        await self.drained(data_inputs, timeout_ns)

    async def check(self, steps, timeout_ns):
        from cocotb.triggers import ClockCycles, SimTimeoutError

        tiles = [item for kind, item in steps if kind == "tile"]
        n, b, cw = self.n, self.cfg["b"], 32
        if self.encoder:
            want = {name: [(w, int(i == len(t.lane_words[lane]) - 1)) for t in tiles
                           for i, w in enumerate(t.lane_words[lane])]
                    for lane, name in enumerate(self.lanes)}
            want["o_count"] = [t.nbits for t in tiles]
        else:
            want = {"o_stream": [beat for t in tiles for beat in t.decoder_beats(n)]}
        try:
            await self.until(lambda: all(len(self.sinks[k].received) >= len(v)
                                         for k, v in want.items()), timeout_ns)
        except SimTimeoutError:
            pass
        await ClockCycles(self.dut.clk, 40)
        for name, expect in want.items():
            got = self.sinks[name].received
            for k, (g, e) in enumerate(zip(got, expect)):
                if name == "o_count":
                    g = _split(g["nbits"], cw, n)
                elif name == "o_stream":
                    g = (_split(g["symbols"], b, n)[:g["n"]], g["n"], g["last"], g["first"])
                else:
                    g = (g["data"], g["last"])
                assert g == e, f"{name} beat {k}: got {g}, expected {e}"
            assert len(got) == len(expect), (
                f"{name}: {len(got)} beats, expected {len(expect)}; errors on tiles "
                f"{sorted(self.tile_errors)}, {self.headers} headers taken")
        if self.encoder:
            assert int(self.dut.error.value) == 0, "error flag set on a valid stream"
        else:
            expect = {i for i, t in enumerate(tiles) if t.error}
            assert self.tile_errors == expect, (
                f"error flagged on tiles {sorted(self.tile_errors - expect)} that golden "
                f"accepts, missed on {sorted(expect - self.tile_errors)}")
            assert self.headers == len(tiles), "not every tile header was taken"


def make_steps(cfg, seed):
    rng = np.random.default_rng(seed)
    steps = lane_plan(corner_plan(cfg, rng), cfg)
    if cfg.get("errors"):
        more, _ = corrupt_steps(cfg, rng)
        steps += more
    return steps


async def run_test(dut, idle, backpressure):
    cfg = load_config()
    seed = zlib.crc32(f"{idle}/{backpressure}".encode())
    tb = TB(dut, cfg, idle, backpressure, seed)
    await tb.reset()
    steps = make_steps(cfg, seed)
    size = sum(t.count + sum(map(len, t.lane_words)) for k, t in steps if k == "tile")
    timeout = 60 * size + 400_000
    if "long" in (idle, backpressure):
        timeout *= 10
    await tb.play(steps, timeout)
    await tb.check(steps, timeout)
    if backpressure == "fill":
        assert any(s.pattern.fills for s in tb.sinks.values()), "backpressure never filled"
    if backpressure != "none":
        # The word (or symbol) outputs; the encoder's count port carries one beat per tile
        # (about ten here), too few for a fixed pattern to be sure to meet one of its stalls
        # (its valid/ready rule is still checked every cycle), as for the single encoder.
        stalls = {k: s.rule.stalls for k, s in tb.sinks.items() if k != "o_count"}
        assert all(stalls.values()), f"an output was never stalled: {stalls}"


async def run_throughput(dut):
    """One 40,000-symbol tile of real data, no stalls: N symbols per cycle, and the latency."""
    cfg = load_config()
    n = cfg["lanes"]
    tb = TB(dut, cfg, "none", "none", 5)
    await tb.reset()
    q = np.load(cfg["real_path"])
    table = build_table(q.ravel(), cfg["b"], cfg["L"], histogram=False)
    load = ("load", [(0, table.serialize())])

    def tile(values):
        return LaneTile(_pats(values, table), values.reshape(-1, 1).astype(np.int64), [table],
                        [0, 1], cfg)

    # Latency: a one-symbol tile, from its (only) input handshake to its first output beat.
    steps = [load, ("tile", tile(q.ravel()[:1]))]
    await tb.play(steps, 200_000)
    await tb.check(steps, 200_000)
    if tb.encoder:
        latency = tb.sinks[tb.lanes[0]].beat_cycles[0] - tb.inputs["i_stream"].handshakes[0]
    else:
        latency = (tb.sinks["o_stream"].beat_cycles[0]
                   - tb.inputs[tb.lanes[0]].handshakes[-1])
    dut._log.info(f"latency ({n} lanes): {latency} cycles")
    assert latency == cfg["latency"], f"latency {latency}, documented {cfg['latency']}"
    for s in tb.sinks.values():
        s.received.clear()
        s.beat_cycles.clear()
    for s in tb.inputs.values():
        s.handshakes.clear()
    tb.headers = 0
    big = tile(np.resize(q.ravel(), THROUGHPUT_SYMBOLS))
    steps = [("tile", big)]
    await tb.play(steps, 100 * THROUGHPUT_SYMBOLS)
    await tb.check(steps, 100 * THROUGHPUT_SYMBOLS)
    if tb.encoder:
        marks = tb.inputs["i_stream"].handshakes
    else:
        marks = tb.sinks["o_stream"].beat_cycles
    cycles = marks[-1] - marks[0] + 1
    rate = THROUGHPUT_SYMBOLS / cycles
    dut._log.info(f"throughput ({cfg['block']}, {n} lanes): {THROUGHPUT_SYMBOLS} symbols in "
                  f"{cycles} cycles = {rate:.4f} symbols/cycle; lane bits {big.nbits}")
    if "min_rate" in cfg:
        # Map-loop lanes decoding fewer than W positions a cycle (``map_bits``).
        assert cfg["min_rate"] * n <= rate <= n, (
            f"{rate:.4f} symbols per cycle over {THROUGHPUT_SYMBOLS} symbols, documented "
            f"at least {cfg['min_rate'] * n}")
    else:
        assert cycles == -(-THROUGHPUT_SYMBOLS // n), (
            f"{rate:.4f} symbols per cycle, not {n}, over {THROUGHPUT_SYMBOLS} symbols")
    # Back-to-back short tiles (64 symbols, the decompressor's pixel at K = 64): the cost of a
    # tile boundary on top of 64 / N cycles.
    for sink in tb.sinks.values():
        sink.received.clear()
        sink.beat_cycles.clear()
    for source in tb.inputs.values():
        source.handshakes.clear()
    tb.headers = 0
    steps = [("tile", tile(q.ravel()[64 * i:64 * (i + 1)])) for i in range(SHORT_TILES)]
    await tb.play(steps, 200_000)
    await tb.check(steps, 200_000)
    if tb.encoder:
        marks = tb.inputs["i_stream"].handshakes
    else:
        marks = tb.sinks["o_stream"].beat_cycles
    per_tile = (marks[-1] - marks[0] + 1) / SHORT_TILES
    dut._log.info(f"back-to-back 64-symbol tiles ({cfg['block']}, {n} lanes): {per_tile:.2f} "
                  f"cycles per tile, {64 / per_tile:.2f} symbols/cycle ({64 // n} beats each)")
    assert per_tile <= 64 / n + cfg.get("tile_overhead", TILE_OVERHEAD[cfg["block"]]), (
        f"{per_tile:.2f} cycles per 64-symbol tile")


if cocotb is not None:
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(_CFG.get("main", False))))
    async def lanes_match_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)

    if _CFG.get("throughput"):
        @cocotb.test()
        async def lanes_throughput(dut):
            await run_throughput(dut)


def cocotb_tests(cfg) -> int:
    return len(flow_pairs(cfg.get("main", False))) + bool(cfg.get("throughput"))


# ----------------------------------------------------------------------------- pytest

def build_lanes(cfg):
    from golden.codec.container import TableSet
    from hdl.huffman_lanes import HuffmanLaneDecoder, HuffmanLaneEncoder

    groups = len(cfg["bounds"]) - 1 if cfg["bounds"] else 1
    table = None
    if cfg["baked"]:
        tables = baked_tables(cfg)
        table = TableSet(tables, cfg["bounds"]) if cfg["bounds"] else tables[0]
    cls = HuffmanLaneEncoder if cfg["block"] == "encoder" else HuffmanLaneDecoder
    kw = ({"loop": cfg["loop"], "map_bits": cfg.get("map_bits")} if cfg.get("loop") else {})
    return cls(cfg["lanes"], cfg["b"], cfg["L"], cfg["W"], groups, group_bounds=cfg["bounds"],
               group_bits=cfg["bits"], table=table, **kw)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_name)
def test_huffman_lanes(cfg):
    from amaranth.back import verilog

    from hdl.manifest import describe_ports

    comp = build_lanes(cfg)
    ports = {p["name"]: p for p in describe_ports(comp)}
    name = f"huffman_lane_{cfg['block']}"
    text = verilog.convert(comp, name=name, emit_src=False)
    extra = {"latency": comp.LATENCY}
    if cfg.get("real"):
        real_coefficients()
        extra["real_path"] = str(BUILD_ROOT / "huffman_encoder_mobilenet_v2.npy")
    run_cocotb(f"huffman_lanes-{config_name(cfg)}", {f"{name}.v": text}, name,
               "tb.test_huffman_lanes", {**cfg, **extra, "ports": ports},
               tests=cocotb_tests(cfg))


def test_corrupt_plan_covers_every_case():
    """The corrupt tiles exercise every case, and golden rejects some but not all of them."""
    cfg = {"lanes": 4, "b": 8, "L": 12, "W": 32}
    steps, kinds = corrupt_steps(cfg, np.random.default_rng(0))
    assert set(kinds) == {"flip", "drop", "truncate", "extra", "padding", "invalid"}, kinds
    tiles = [t for k, t in steps if k == "tile"]
    flagged = sum(t.error for t in tiles)
    assert 0.3 * len(tiles) / 2 < flagged <= len(tiles) / 2
    # A corrupt tile's expected beats stop early or carry every symbol.
    assert any(len(t.decoder_beats(4)) < -(-t.count // 4) for t in tiles if t.error)
