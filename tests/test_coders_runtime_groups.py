"""Coders with run-time groups (``runtime_groups=True``) in the Amaranth simulator.

One encoder and one decoder, generated for at most G groups of at most b bits, code layer after
layer with other column counts K, group bounds and widths: the tables are loaded per layer
(each table's header sets its group's width), the encoder takes each symbol's group on its
input beat and the decoder takes K and the group edges on its ``columns``/``edges`` inputs.
Every word, bit count and symbol equals ``golden.codec.plain``'s; a table of a width the block
cannot hold and a group the block does not have are errors. The tops' testbenches run them on
Verilator and Icarus.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.codec.plain import decode_groups, encode_groups
from golden.codec.tables import build_table
from hdl.huffman_decoder import DecoderError, HuffmanDecoder
from hdl.huffman_encoder import HuffmanEncoder

G_MAX, B, L, W = 3, 8, 12, 16
# (bounds, widths) of each layer: three groups of 8/5/3 bits; two of 4/2; one of 6 bits.
LAYERS = [([0, 3, 7, 12], [8, 5, 3]), ([0, 2, 5], [4, 2]), ([0, 16], [6])]


def layer(bounds, widths, rng, rows):
    """Tables fitted to one sample and ``rows`` pixels of another from the same law."""
    k = bounds[-1]
    tables, cols = [], []
    for lo, hi, b in zip(bounds, bounds[1:], widths):
        scale = (1 << (b - 1)) / 3
        fit = np.clip(np.round(rng.normal(0, scale, 400)), -(1 << (b - 1)), (1 << (b - 1)) - 1)
        tables.append(build_table(fit.astype(np.int64), b, L, histogram=False))
        cols.append(np.clip(np.round(rng.normal(0, scale * 1.3, (rows, hi - lo))),
                            -(1 << (b - 1)), (1 << (b - 1)) - 1).astype(np.int64))
    values = np.concatenate(cols, axis=1)
    assert values.shape == (rows, k)
    return tables, values


def group_of(bounds):
    return [g for g, (lo, hi) in enumerate(zip(bounds, bounds[1:])) for _ in range(hi - lo)]


def patterns(values, bounds, widths):
    out = []
    for row in values:
        for j, v in enumerate(row):
            out.append(int(v) & ((1 << widths[group_of(bounds)[j]]) - 1))
    return out


async def send(ctx, port, payload):
    """One beat on ``port`` (the payload fields it has), waiting for ``ready``."""
    fields = port.payload.shape().members
    ctx.set(port.payload, {k: v for k, v in payload.items() if k in fields})
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


def run_encoder(enc, steps, cycles=40):
    """``steps``: ("cfg", group, bytes) or ("tile", [(symbol, group, last, empty)]). Returns
    the words, the bit counts and ``error`` after each step."""
    from amaranth.sim import Simulator

    words, counts, errors = [], [], []

    async def bench(ctx):
        ctx.set(enc.o_stream.ready, 1)
        ctx.set(enc.o_count.ready, 1)
        for step in steps:
            if step[0] == "cfg":
                for i, x in enumerate(step[2]):
                    await send(ctx, enc.cfg, {"data": x, "group": step[1],
                                              "last": int(i == len(step[2]) - 1)})
            else:
                for sym, grp, last, empty in step[1]:
                    await send(ctx, enc.i_stream, {"symbol": sym, "group": grp, "last": last,
                                                   "empty": empty})
            await ctx.tick().repeat(cycles)
            errors.append(ctx.get(enc.error))

    async def watch(ctx):
        async for _, _, ov, od, cv, cd in ctx.tick().sample(
                enc.o_stream.valid, enc.o_stream.payload, enc.o_count.valid,
                enc.o_count.payload):
            if ov:
                words.append(int(od.data))
            if cv:
                counts.append(int(cd.nbits))

    sim = Simulator(enc)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    return words, counts, errors


def run_decoder(dec, steps, cycles=60):
    """``steps``: ("cfg", group, bytes), ("shape", K, edges) or ("tile", count, words).
    Returns the (symbol, last, first) beats and the error code after each step."""
    from amaranth.sim import Simulator

    out, codes = [], []

    async def bench(ctx):
        ctx.set(dec.o_stream.ready, 1)
        for step in steps:
            if step[0] == "cfg":
                for i, x in enumerate(step[2]):
                    await send(ctx, dec.cfg, {"data": x, "group": step[1],
                                              "last": int(i == len(step[2]) - 1)})
            elif step[0] == "shape":
                ctx.set(dec.columns, step[1])
                ctx.set(dec.edges, step[2])
                await ctx.tick()
            else:
                await send(ctx, dec.i_count, {"count": step[1]})
                for i, w in enumerate(step[2]):
                    await send(ctx, dec.i_stream, {"data": w,
                                                   "last": int(i == len(step[2]) - 1)})
            await ctx.tick().repeat(cycles)
            codes.append(ctx.get(dec.error_code))

    async def watch(ctx):
        async for _, _, ov, od in ctx.tick().sample(dec.o_stream.valid, dec.o_stream.payload):
            if ov:
                out.append((int(od.symbol), int(od.last), int(od.first)))

    sim = Simulator(dec)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    return out, codes


def edges_of(bounds):
    """The decoder's G_MAX - 1 inner edges: unused groups' edges at K (never reached)."""
    inner = bounds[1:-1]
    return inner + [bounds[-1]] * (G_MAX - 1 - len(inner))


def test_layers_in_turn_match_golden():
    rng = np.random.default_rng(11)
    enc = HuffmanEncoder(B, L, W, groups=G_MAX, runtime_groups=True)
    dec = HuffmanDecoder(B, L, W, groups=G_MAX, runtime_groups=True)
    e_steps, d_steps, want_words, want_counts, want_syms = [], [], [], [], []
    for bounds, widths in LAYERS:
        tables, values = layer(bounds, widths, rng, 9)
        for g, t in enumerate(tables):
            e_steps.append(("cfg", g, t.serialize()))
            d_steps.append(("cfg", g, t.serialize()))
        d_steps.append(("shape", bounds[-1], edges_of(bounds)))
        groups = group_of(bounds)
        for tile in (values[:4], values[4:5], values[5:]):
            words, nbits = encode_groups(tile, tables, bounds, W)
            want_words += [int(w) for w in words]
            want_counts.append(int(nbits))
            pats = patterns(tile, bounds, widths)
            beats = [(p, groups[i % bounds[-1]], int(i == len(pats) - 1), 0)
                     for i, p in enumerate(pats)]
            e_steps.append(("tile", beats))
            d_steps.append(("tile", tile.shape[0] * bounds[-1], [int(w) for w in words]))
            want_syms += [(p, int(i == len(pats) - 1), int(i == 0)) for i, p in enumerate(pats)]
            # Golden decodes the same words back to the tile.
            assert (decode_groups(words, nbits, tile.shape[0], tables, bounds, W)
                    == tile).all()
    words, counts, errors = run_encoder(enc, e_steps)
    assert words == want_words and counts == want_counts
    assert not any(errors)
    out, codes = run_decoder(dec, d_steps)
    assert out == want_syms
    assert codes == [0] * len(codes)


def test_table_widths_the_block_cannot_hold_are_errors():
    """A table of 0 bits or wider than the block is refused by both coders (the encoder's
    ``error``, the decoder's BAD_TABLE); a good table of another width then loads."""
    rng = np.random.default_rng(2)
    (t4,), _ = layer([0, 4], [4], rng, 1)
    enc = HuffmanEncoder(4, L, W, groups=1, runtime_groups=True)
    dec = HuffmanDecoder(4, L, W, groups=1, runtime_groups=True)
    raw = t4.serialize()
    steps = [("cfg", 0, bytes([0]) + raw[1:]), ("cfg", 0, bytes([5]) + raw[1:]),
             ("cfg", 0, raw)]
    _, _, errors = run_encoder(enc, steps)
    assert errors == [1, 1, 0]
    _, codes = run_decoder(dec, steps)
    assert codes == [DecoderError.BAD_TABLE, DecoderError.BAD_TABLE, DecoderError.NONE]


def test_encoder_flags_a_group_it_does_not_have():
    """G = 3 takes a 2-bit group field: group 3 is coded with group 0 and sets ``error``."""
    rng = np.random.default_rng(4)
    tables, values = layer([0, 3, 7, 12], [8, 5, 3], rng, 1)
    enc = HuffmanEncoder(B, L, W, groups=G_MAX, runtime_groups=True)
    steps = [("cfg", g, t.serialize()) for g, t in enumerate(tables)]
    pats = patterns(values, [0, 3, 7, 12], [8, 5, 3])
    good = [(p, g, int(i == 11), 0) for i, (p, g) in enumerate(zip(pats, group_of([0, 3, 7, 12])))]
    bad = list(good)
    bad[5] = (bad[5][0], 3, 0, 0)
    _, _, errors = run_encoder(enc, steps + [("tile", good), ("tile", bad)])
    assert errors[-2:] == [0, 1]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("cls", [HuffmanEncoder, HuffmanDecoder])
@pytest.mark.parametrize("kwargs", [dict(run_max=16), dict(group_bounds=[0, 2, 4]),
                                    dict(table="unused")])
def test_runtime_groups_need_plain_run_time_tables(cls, kwargs):
    if kwargs.get("table"):
        rng = np.random.default_rng(0)
        kwargs = dict(table=layer([0, 2], [4], rng, 1)[0] * 2)
    with pytest.raises(ValueError, match="Run-time groups need plain mode"):
        cls(8, L, W, groups=2, runtime_groups=True, **kwargs)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_ports():
    dec = HuffmanDecoder(B, L, W, groups=G_MAX, runtime_groups=True)
    members = dec.signature.members
    assert members["columns"].shape == 13 and members["edges"].shape.length == G_MAX - 1
    enc = HuffmanEncoder(B, L, W, groups=G_MAX, runtime_groups=True)
    assert "group" in enc.signature.members["i_stream"].signature.members[
        "payload"].shape.members
    one = HuffmanDecoder(B, L, W, groups=1, runtime_groups=True)
    assert "columns" not in one.signature.members
