"""``hdl.huffman_decoder`` in run-length builds (``run_max > 0``, bitstream version 2) on the
Amaranth simulator, value for value against ``golden.codec.runlength``: baked and loaded
tables, runs longer than the table's longest run symbol, runs across word boundaries, groups
(one tile per group, the group named in the header), plain tables in a run-length build,
corrupt tiles (each reports its error, drains, and the next tile decodes) and the sustained
rate of one value per cycle through runs."""

import numpy as np
import pytest

from golden.codec.errors import CorruptStreamError
from golden.codec.plain import encode_tile
from golden.codec.runlength import build_rl_table, decode_rl_tile, encode_rl_tile
from golden.codec.tables import build_table
from hdl.huffman_decoder import DecoderError, HuffmanDecoder

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def sparse(n, rng, zero=0.8, scale=2.0, bits=4):
    """Mostly zeros, the rest rounded Laplacian: the coefficients of a coarse layer."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = np.rint(rng.laplace(0, scale, n)).astype(np.int64).clip(lo, hi)
    return np.where(rng.random(n) < zero, 0, v)


def simulate(dec, steps, cycles=300, ready=None):
    """Drive ``steps`` through the simulator: ("cfg", bytes[, group]) or
    ("tile", count, nbits, words[, group]). Returns the (symbol, last, first) beats, the error
    code after each step, and the cycles each step took from its header to its last beat."""
    from amaranth.sim import Simulator

    out, codes, spans = [], [], []
    clock = [0]

    async def send(ctx, port, payload):
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def bench(ctx):
        ctx.set(dec.o_stream.ready, 1)
        for step in steps:
            if step[0] == "cfg":
                raw = step[1]
                for i, x in enumerate(raw):
                    beat = {"data": x, "last": int(i == len(raw) - 1)}
                    if len(step) > 2:
                        beat["group"] = step[2]
                    await send(ctx, dec.cfg, beat)
            else:
                head = {"count": step[1], "nbits": step[2]}
                if len(step) > 4:
                    head["group"] = step[4]
                start, n0 = clock[0], len(out)
                await send(ctx, dec.i_count, head)
                for i, w in enumerate(step[3]):
                    await send(ctx, dec.i_stream, {"data": w, "last": int(i == len(step[3]) - 1)})
                await ctx.tick().repeat(cycles)
                spans.append((start, len(out) - n0))
            await ctx.tick().repeat(4)
            codes.append(ctx.get(dec.error_code))

    async def watch(ctx):
        async for _, _, ov, od in ctx.tick().sample(dec.o_stream.valid, dec.o_stream.payload):
            clock[0] += 1
            if ov:
                out.append((int(od.symbol), int(od.last), int(od.first), clock[0]))

    sim = Simulator(dec)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    return [o[:3] for o in out], codes, [o[3] for o in out]


def beats(values, bits):
    n = len(values)
    return [(int(x) & ((1 << bits) - 1), int(i == n - 1), int(i == 0))
            for i, x in enumerate(values)]


def rl_tile(values, t, w):
    words, nbits = encode_rl_tile(values, t, w)
    return ("tile", len(values), int(nbits), [int(x) for x in words])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return sparse(6000, rng)


@pytest.mark.parametrize("baked", [True, False], ids=["baked", "loaded"])
@pytest.mark.parametrize("w", [8, 32])
def test_tiles_match_golden(data, baked, w):
    """Tiles of real-looking sparse data, a run far longer than the longest run symbol, all
    zeros, one value, an empty tile; every value, flag and no error."""
    t = build_rl_table(data, 4, 10)
    assert t.run_max >= 8
    tiles = [data[:300], np.zeros(3 * t.run_max + 5, np.int64), data[300:301],
             np.zeros(0, np.int64), np.r_[np.zeros(t.run_max + 1, np.int64), 3, 0, 0],
             data[301:1500]]
    dec = (HuffmanDecoder(4, 10, w, table=t) if baked
           else HuffmanDecoder(4, 10, w, run_max=t.run_max))
    steps = [] if baked else [("cfg", t.serialize())]
    steps += [rl_tile(v, t, w) for v in tiles]
    out, codes, _ = simulate(dec, steps, cycles=3 * t.run_max + 40)
    assert out == sum((beats(v, 4) for v in tiles), [])
    assert codes == [0] * len(steps)


def test_groups_one_tile_each_and_plain_tables(data):
    """Two groups of different widths: each tile names its group in the header; a plain
    table loaded into a run-length build decodes its tiles by the same nbits rule."""
    rng = np.random.default_rng(1)
    t0 = build_rl_table(data, 4, 10)
    d1 = sparse(3000, rng, zero=0.5, scale=6.0, bits=6)
    t1 = build_rl_table(d1, 6, 12)
    plain = build_table(d1, 6, 12)
    dec = HuffmanDecoder(6, 12, 16, 2, group_bounds=[0, 3, 8], group_bits=[4, 6],
                         run_max=max(t0.run_max, t1.run_max))
    a, b, c = data[:200], d1[:150], d1[150:260]
    pw, pn = encode_tile(c, plain, 16)
    steps = [("cfg", t0.serialize(), 0), ("cfg", t1.serialize(), 1),
             rl_tile(a, t0, 16) + (0,), rl_tile(b, t1, 16) + (1,),
             ("cfg", plain.serialize(), 1),
             ("tile", len(c), int(pn), [int(x) for x in pw], 1)]
    out, codes, _ = simulate(dec, steps, cycles=40)
    assert out == beats(a, 4) + beats(b, 6) + beats(c, 6)
    assert codes == [0] * len(steps)


def test_corrupt_tiles_flag_drain_and_recover(data):
    """Each corrupt tile sets its error code, emits what golden would have decoded before
    the fault at most, and the good tile after it decodes in full."""
    t = build_rl_table(data, 4, 10)
    v = np.r_[data[:40], np.zeros(2 * t.run_max, np.int64), data[40:80]]
    good = rl_tile(v, t, 16)
    _, n, nbits, words = good
    cases = {
        "count too small": (("tile", n - 5, nbits, words), DecoderError.RUN_OVERFLOW),
        "count too large": (("tile", n + 1, nbits, words), DecoderError.ENDED_EARLY),
        "nbits short": (("tile", n, nbits - 1, words), DecoderError.ENDED_EARLY),
        "nbits beyond the words": (("tile", n, nbits + 16 * 3, words),
                                   DecoderError.ENDED_EARLY),
        "extra word": (("tile", n, nbits, words + [0]), DecoderError.EXCESS_WORDS),
        "padding": (("tile", n, nbits, words[:-1] + [words[-1] | 1]), DecoderError.PADDING),
    }
    assert nbits % 16, "the padding case needs padding bits"
    for name, (bad, code) in cases.items():
        if name in ("count too small", "count too large", "nbits short"):
            with pytest.raises(CorruptStreamError):   # golden refuses them too
                decode_rl_tile(np.array(bad[3], dtype=np.uint64), bad[2], bad[1], t, 16)
        out, codes, _ = simulate(HuffmanDecoder(4, 10, 16, table=t), [bad, good], cycles=400)
        assert codes == [code, 0], name
        assert out[-n:] == beats(v, 4), name
        prefix = out[:-n]
        # Before the fault, the tile's own values: with its count's flags where the count is
        # wrong, else exactly golden's.
        assert [p[0] for p in prefix] == [int(x) & 15 for x in v[:len(prefix)]], name
        if code == DecoderError.RUN_OVERFLOW:
            assert prefix == beats(v[:n - 5], 4), name   # the count's values, the rest dropped


def test_bad_table_loads():
    """A run-length table whose longest run exceeds the build's, and one loaded into a plain
    build, are BAD_TABLE; the group stays unusable (NO_TABLE) until a good load."""
    rng = np.random.default_rng(2)
    d = sparse(4000, rng, zero=0.95)
    t = build_rl_table(d, 4, 10)
    assert t.run_max >= 4
    v = d[:100]
    tile = rl_tile(v, t, 16)
    small = HuffmanDecoder(4, 10, 16, run_max=t.run_max // 2)
    out, codes, _ = simulate(small, [("cfg", t.serialize()), tile], cycles=40)
    assert codes == [DecoderError.BAD_TABLE, DecoderError.NO_TABLE] and out == []
    out, codes, _ = simulate(HuffmanDecoder(4, 10, 16), [("cfg", t.serialize())], cycles=10)
    assert codes == [DecoderError.BAD_TABLE]


def test_one_value_per_cycle_through_runs(data):
    """With the output always ready, the values of a long sparse tile leave one per cycle
    once the first is out: a run symbol costs as many cycles as it has zeros, a value one."""
    t = build_rl_table(data, 4, 10)
    v = np.r_[data[:2000], np.zeros(5 * t.run_max, np.int64)]
    out, codes, cycles = simulate(HuffmanDecoder(4, 10, 32, table=t), [rl_tile(v, t, 32)],
                                  cycles=len(v) + 50)
    assert out == beats(v, 4) and codes == [0]
    span = cycles[-1] - cycles[0] + 1
    assert span <= len(v) + 8, (span, len(v))   # a few bubbles at most


def test_rtl_encoder_into_rtl_decoder():
    """The RTL encoder's words and bit counts, under random stalls, into the RTL decoder:
    every value back, with the tables loaded at run time into both (two groups; each tile's
    group, in no cyclic order, named on the encoder's beats and in the decoder's header)."""
    from hdl.huffman_encoder import HuffmanEncoder
    from tests.test_huffman_encoder_rl import run_tiles

    rng = np.random.default_rng(11)
    d0, d1 = sparse(4000, rng, bits=4), sparse(4000, rng, zero=0.6, scale=5.0, bits=6)
    tables = [build_rl_table(d0, 4, 10), build_rl_table(d1, 6, 12)]
    R = max(t.run_max for t in tables)
    plan = [(1, d1[:300]), (0, d0[:500]), (0, np.zeros(3 * R + 2, np.int64)),
            (1, d1[300:301]), (1, d1[301:900]), (0, d0[500:501])]
    order = [g for g, _ in plan]
    tiles = [v for _, v in plan]
    masked = [np.asarray(v) & ((1 << tables[g].bits) - 1) for g, v in plan]
    enc = HuffmanEncoder(6, 12, 16, 2, group_bounds=[0, 1, 2], group_bits=[4, 6], run_max=R)
    out = run_tiles(enc, masked, 2, 16, rng, 0.3, 0.3,
                    [(g, t.serialize()) for g, t in enumerate(tables)], tile_groups=order)
    assert not out["error"] and len(out["counts"]) == len(tiles)
    dec = HuffmanDecoder(6, 12, 16, 2, group_bounds=[0, 1, 2], group_bits=[4, 6], run_max=R)
    steps = [("cfg", t.serialize(), g) for g, t in enumerate(tables)]
    steps += [("tile", len(v), int(out["counts"][i]), [int(w) for w in out["words"][i]], g)
              for i, (g, v) in enumerate(plan)]
    got, codes, _ = simulate(dec, steps, cycles=3 * R + 40)
    assert got == sum((beats(v, tables[g].bits) for g, v in plan), [])
    assert codes == [0] * len(steps)
