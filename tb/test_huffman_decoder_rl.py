"""Huffman decoder in run-length mode (bitstream version 2), value for value against
``golden.codec.runlength`` on both simulators.

Each configuration builds a decoder with ``run_max > 0`` (baked or loaded tables, one or two
groups) and streams, under random valid/ready stalls: tiles of real MobileNetV2 PCA
coefficients at a coarse step (mostly zeros) and of sparse random data, runs longer than the
longest run symbol, runs across word and tile boundaries, single values, empty tiles, and
corrupt tiles whose outcome is fixed (a count too small: the count's values then
RUN_OVERFLOW; a count too large: every value, no ``last``, then ENDED_EARLY; an extra word;
non-zero padding), each followed by a good tile. Every tile's header carries its payload bit
count and, with two groups, its group. The error code each tile leaves is read when the next
header is taken. The main configuration also measures the sustained rate through runs with
no stalls (asserted: one value per cycle) and the latency.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.codec.errors import CorruptStreamError
from golden.codec.runlength import build_rl_table, decode_rl_tile, encode_rl_tile

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import flow_pairs, load_config, run_cocotb
from tb.huffman_stimulus import real_coefficients
from tb.streams import Fields

CONFIGS = [
    # Main point: baked table of real coefficients, 32-bit words, the stall grid, rate.
    {"name": "b8L12W32-baked", "b": 8, "L": 12, "W": 32, "groups": [8], "baked": True,
     "main": True},
    # Run-time tables, two groups of different widths, 8-bit words (codes span words).
    {"name": "b6L14W8-g2", "b": 6, "L": 14, "W": 8, "groups": [6, 4], "baked": False},
]
ERR = {"none": 0, "ended_early": 2, "excess_words": 3, "padding": 4, "run_overflow": 7}


def _sparse(n, bits, rng, zero, scale):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = np.rint(rng.laplace(0, scale, n)).astype(np.int64).clip(lo, hi)
    return np.where(rng.random(n) < zero, 0, v)


def _group_data(cfg, g, rng):
    """(fit, test) values of group g: real coefficients at a coarse step for 8-bit groups
    sparse Laplacian data otherwise."""
    bits = cfg["groups"][g]
    if bits == 8:
        # One step for every component, as the joint allocation's coarse levels have: the
        # cached coefficients are scaled per component to +-127, so undo that roughly with
        # a decaying weight (PCA variances fall along the components). Mostly zeros.
        q = real_coefficients().astype(np.float64)
        coarse = np.rint(q * (0.08 * 0.75 ** np.arange(q.shape[1]))).astype(np.int64)
        return coarse[:800].ravel(), coarse[800:].ravel()
    d = _sparse(12000, bits, rng, zero=0.85 + 0.05 * g, scale=2.0 * (g + 1))
    return d[:6000], d[6000:]


def make_plan(cfg, seed=0):
    """Tables and the tile steps: (group, count, nbits, words, expected beats, error)."""
    rng = np.random.default_rng(seed)
    tables, tests = [], []
    for g, bits in enumerate(cfg["groups"]):
        fit, test = _group_data(cfg, g, rng)
        t = build_rl_table(fit, bits, cfg["L"])
        assert t.run_max >= 4, "the data must have runs"
        tables.append(t)
        tests.append(test)
    W = cfg["W"]
    steps = []

    def add(g, values, count=None, words=None, nbits=None, error="none", want=None):
        t = tables[g]
        w, n = encode_rl_tile(values, t, W)
        w = [int(x) for x in w] if words is None else words
        n = int(n) if nbits is None else nbits
        mask = (1 << t.bits) - 1
        count = len(values) if count is None else count
        if want is None:
            want = [(int(x) & mask, int(i == count - 1), int(i == 0))
                    for i, x in enumerate(values[:count])]
        steps.append({"group": g, "count": count, "nbits": n, "words": w, "want": want,
                      "error": ERR[error]})
        return w, n

    for g, t in enumerate(tables):
        test, R = tests[g], t.run_max
        # runs longer than R (greedy RUN_R pieces), a lone value, a run ending the tile
        runs = np.r_[np.zeros(3 * R + 1, np.int64), 1, np.zeros(2 * R - 1, np.int64)]
        for values in (test[:700], runs, test[700:701], test[:0], test[701:1300],
                       np.zeros(5, np.int64)):
            add(g, values)
        v = test[1300:1500]
        w, n = encode_rl_tile(v, t, W)
        w = [int(x) for x in w]
        mask = (1 << t.bits) - 1
        # Corrupt tiles with a fixed outcome, each followed by a good tile.
        add(g, v, count=len(v) - 7, words=w, nbits=int(n), error="run_overflow")
        add(g, v)
        add(g, v, count=len(v) + 1, words=w, nbits=int(n), error="ended_early",
            want=[(int(x) & mask, 0, int(i == 0)) for i, x in enumerate(v)])
        add(g, v)
        add(g, v, words=w + [0], error="excess_words")
        add(g, v)
        if n % W:
            add(g, v, words=w[:-1] + [w[-1] | 1], error="padding")
            add(g, v)
    # golden agrees on the good tiles and refuses the corrupt ones it can see
    for s in steps:
        t = tables[s["group"]]
        args = (np.array(s["words"], dtype=np.uint64), s["nbits"], s["count"], t, W)
        if s["error"] in (ERR["none"], ERR["padding"], ERR["excess_words"]):
            got = decode_rl_tile(*args) if s["error"] == ERR["none"] else None
            assert got is None or [int(x) & ((1 << t.bits) - 1) for x in got] == [
                b[0] for b in s["want"]]
        else:
            with pytest.raises(CorruptStreamError):   # golden refuses it too
                decode_rl_tile(*args)
    return tables, steps


# ----------------------------------------------------------------------------- cocotb

async def _setup(dut, cfg, idle, backpressure, seed):
    from tb.streams import StreamSink, StreamSource, start_clock_and_reset

    ports = cfg["ports"]
    fields = {n: Fields.from_manifest(ports[f"{n}__payload"])
              for n in ("i_count", "i_stream", "o_stream", "cfg")
              if f"{n}__payload" in ports}
    await start_clock_and_reset(dut)
    srcs = {n: StreamSource(dut, n, dut.clk, fields[n], idle, seed + k)
            for k, n in enumerate(("cfg", "i_count", "i_stream")) if n in fields}
    unpack = fields["o_stream"].unpack

    def decode(word):
        b = unpack(word)
        return (b["symbol"], b["last"], b["first"])

    # "fill" holds ready low until the input stalls (the decoder's buffers are full)
    sink = StreamSink(dut, "o_stream", dut.clk, None, backpressure, seed + 101,
                      (dut.i_stream__valid, dut.i_stream__ready), decode=decode)
    return srcs, sink


async def run_test(dut, idle, backpressure):
    from cocotb.triggers import RisingEdge

    cfg = load_config()
    tables, steps = make_plan(cfg, cfg.get("seed", 0))
    srcs, sink = await _setup(dut, cfg, idle, backpressure, 7)
    if not cfg["baked"]:
        for g, t in enumerate(tables):
            raw = t.serialize()
            beats = [{"data": x, "last": int(i == len(raw) - 1),
                      **({"group": g} if len(tables) > 1 else {})} for i, x in enumerate(raw)]
            srcs["cfg"].send(beats)
        await srcs["cfg"].wait_sent(2_000_000)
    errors = []

    async def watch_errors():
        while True:
            await RisingEdge(dut.clk)
            if int(dut.i_count__valid.value) and int(dut.i_count__ready.value):
                errors.append(int(dut.error_code.value))

    cocotb.start_soon(watch_errors())
    for s in steps:
        head = {"count": s["count"], "nbits": s["nbits"]}
        if len(tables) > 1:
            head["group"] = s["group"]
        srcs["i_count"].send([head])
        srcs["i_stream"].send([{"data": w, "last": int(i == len(s["words"]) - 1)}
                               for i, w in enumerate(s["words"])])
    want = [tuple(b) for s in steps for b in s["want"]]
    got = await sink.wait_for(len(want), 400 * len(want) + 100_000)
    await srcs["i_stream"].wait_sent(1_000_000)
    for _ in range(300):
        await RisingEdge(dut.clk)
    errors.append(int(dut.error_code.value))
    assert [tuple(b) for b in got] == want
    assert len(sink.received) == len(want), "values after the last expected one"
    # errors[0]: at the first header (reset state); errors[i + 1]: what tile i left
    assert errors[1:] == [s["error"] for s in steps], errors


async def run_throughput(dut):
    """No stalls: a long tile of real coefficients and runs leaves one value per cycle."""
    cfg = load_config()
    tables, _ = make_plan(cfg)
    t = tables[0]
    rng = np.random.default_rng(5)
    _, test = _group_data(cfg, 0, rng)
    v = np.r_[test[:6000], np.zeros(8 * t.run_max, np.int64)]
    words, nbits = encode_rl_tile(v, t, cfg["W"])
    srcs, sink = await _setup(dut, cfg, "none", "none", 3)
    srcs["i_count"].send([{"count": len(v), "nbits": int(nbits)}])
    srcs["i_stream"].send([{"data": int(w), "last": int(i == len(words) - 1)}
                           for i, w in enumerate(words)])
    got = await sink.wait_for(len(v), 100 * len(v))
    assert [g[0] for g in got] == [int(x) & 255 for x in v]
    cycles = sink.beat_cycles[len(v) - 1] - sink.beat_cycles[0] + 1
    rate = len(v) / cycles
    first_word = srcs["i_stream"].handshakes[0]
    dut._log.info(f"run-length decode: {len(v)} values ({int(np.sum(v == 0))} zeros) in "
                  f"{cycles} cycles, {rate:.4f} values per cycle; first value "
                  f"{sink.beat_cycles[0] - first_word} cycles after the first word")
    assert rate > 0.999, rate


if cocotb is not None:
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(_CFG.get("main", False))))
    async def decoder_rl_matches_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)

    if _CFG.get("main"):
        @cocotb.test()
        async def decoder_rl_throughput(dut):
            await run_throughput(dut)


# ----------------------------------------------------------------------------- pytest

def build_decoder(cfg):
    from golden.codec.container import TableSet
    from hdl.huffman_decoder import HuffmanDecoder

    tables, _ = make_plan(cfg)
    G = len(cfg["groups"])
    # Run-length tiles name their group in the header; the bounds only give G columns.
    bounds = list(range(G + 1)) if G > 1 else None
    run_max = max(t.run_max for t in tables)
    if cfg["baked"]:
        table = TableSet(tables, bounds) if bounds else tables[0]
        return HuffmanDecoder(cfg["b"], cfg["L"], cfg["W"], G, group_bounds=bounds,
                              table=table, run_max=run_max)
    return HuffmanDecoder(cfg["b"], cfg["L"], cfg["W"], G, group_bounds=bounds,
                          group_bits=cfg["groups"], run_max=run_max)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["name"])
def test_huffman_decoder_rl(cfg):
    from amaranth.back import verilog

    from hdl.manifest import describe_ports

    comp = build_decoder(cfg)
    ports = {p["name"]: p for p in describe_ports(comp)}
    text = verilog.convert(comp, name="huffman_decoder", emit_src=False)
    tests = len(flow_pairs(cfg.get("main", False))) + bool(cfg.get("main"))
    run_cocotb(f"huffman_decoder_rl-{cfg['name']}", {"huffman_decoder.v": text},
               "huffman_decoder", "tb.test_huffman_decoder_rl", {**cfg, "ports": ports},
               tests=tests)


def test_plan_is_what_golden_decodes():
    """The plan itself: every good tile decodes to its expected values in golden."""
    for cfg in CONFIGS:
        tables, steps = make_plan(cfg)
        assert sum(s["error"] != 0 for s in steps) >= 3 * len(tables)
        assert any(len(s["want"]) > 3 * tables[s["group"]].run_max for s in steps)
