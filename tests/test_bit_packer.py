"""``hdl.coder_parts.BitPacker`` (the encoder's packer) on the Amaranth simulator, against
golden's ``golden.codec.bitio.pack_codes`` tile by tile.

- Random codes of every length 0..max_code, tiles ended by the last code or by a beat of
  length 0, tiles of no bits, under random valid/ready on the input and on both outputs: the
  words, their ``last`` flags and the bit counts are golden's.
- Word boundaries: codes of exactly W bits and halves of it, so that words end exactly at
  code ends (the held word), tiles ending on a word boundary, then by a length-0 beat.
- Rate: with codes of at most W bits and the outputs always ready, one code is taken per
  cycle; a code of n > W bits takes ``ceil(n / W)`` cycles and a ``last`` beat two.
- Latency: ``BitPacker.LATENCY`` cycles from a tile's last handshake to its final word.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.codec.bitio import pack_codes
from hdl.coder_parts import BitPacker


def _tiles(rng, max_code, n_tiles):
    """[(codes, lens, flush_beat)]: a tile's codes and whether a length-0 beat ends it."""
    out = []
    for t in range(n_tiles):
        n = 0 if t % 7 == 3 else int(rng.integers(1, 40))
        lens = rng.integers(0, max_code + 1, size=n)
        if t % 11 == 5:
            lens[:] = 0         # codes, but no bits
        codes = [int(rng.integers(0, 1 << int(x))) if x else 0 for x in lens]
        out.append((codes, [int(x) for x in lens], n == 0 or bool(rng.integers(2))))
    return out


def _beats(tiles):
    beats = []
    for codes, lens, flush in tiles:
        for j, (c, n) in enumerate(zip(codes, lens)):
            beats.append((c << (32 - n) if n else 0, n, int(j == len(codes) - 1 and not flush)))
        if flush:
            beats.append((0, 0, 1))
    return beats


def _run(dut, beats, n_tiles, p_valid, p_ready, seed, limit=200_000, word_cycles=False):
    rng = np.random.default_rng(seed)
    words, counts, took = [], [], []

    async def bench(ctx):
        sent = 0
        for cycle in range(limit):
            offer = sent < len(beats) and rng.random() < p_valid
            ctx.set(dut.i_stream.valid, offer)
            if offer:
                code, length, last = beats[sent]
                ctx.set(dut.i_stream.payload.code, code)
                ctx.set(dut.i_stream.payload.length, length)
                ctx.set(dut.i_stream.payload.last, last)
            o_ready = rng.random() < p_ready
            c_ready = rng.random() < p_ready
            ctx.set(dut.o_stream.ready, o_ready)
            ctx.set(dut.o_count.ready, c_ready)
            if offer and ctx.get(dut.i_stream.ready):
                sent += 1
                took.append(cycle)
            if ctx.get(dut.o_stream.valid) and o_ready:
                words.append((ctx.get(dut.o_stream.payload.data),
                              ctx.get(dut.o_stream.payload.last))
                             + ((cycle,) if word_cycles else ()))
            if ctx.get(dut.o_count.valid) and c_ready:
                counts.append(ctx.get(dut.o_count.payload.nbits))
            await ctx.tick()
            if len(counts) == n_tiles:
                return
        raise AssertionError(f"{len(counts)} of {n_tiles} tiles done in {limit} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return words, counts, took


@pytest.mark.parametrize("word_width,max_code", [(32, 20), (8, 32), (16, 13), (64, 32)])
@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.6, 0.5), (1.0, 0.2), (0.3, 0.9)])
def test_packer_matches_golden(word_width, max_code, p_valid, p_ready):
    rng = np.random.default_rng(word_width * 100 + max_code)
    tiles = _tiles(rng, max_code, 30)
    dut = BitPacker(word_width, max_code)
    words, counts, _ = _run(dut, _beats(tiles), len(tiles), p_valid, p_ready,
                            seed=int(p_valid * 10 + p_ready * 100))
    _check(tiles, words, counts, word_width)


def _check(tiles, words, counts, word_width):
    at = 0
    for (codes, lens, _), nbits in zip(tiles, counts, strict=True):
        want, want_bits = pack_codes(np.asarray(codes, dtype=np.uint64),
                                     np.asarray(lens, dtype=np.int64), word_width)
        assert nbits == want_bits
        got = words[at:at + len(want)]
        at += len(want)
        assert [w for w, _ in got] == [int(x) for x in want]
        assert [last for _, last in got] == [0] * (len(want) - 1) + [1] * bool(len(want))
    assert at == len(words)


@pytest.mark.parametrize("word_width", [8, 32])
@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.7, 0.4)])
def test_packer_word_boundaries(word_width, p_valid, p_ready):
    W = word_width
    rng = np.random.default_rng(W)
    tiles = []
    for t in range(40):
        lens = [int(x) for x in rng.choice([0, W // 2, W], size=int(rng.integers(1, 12)))]
        codes = [int(rng.integers(0, 1 << n)) if n else 0 for n in lens]
        tiles.append((codes, lens, bool(t % 2)))
    dut = BitPacker(W, W)
    words, counts, _ = _run(dut, _beats(tiles), len(tiles), p_valid, p_ready, seed=W)
    _check(tiles, words, counts, W)


def test_packer_rate_and_latency():
    """Outputs always ready: a code of n bits into 8-bit words takes ceil(n / 8) cycles, a
    ``last`` beat two; the final word leaves ``LATENCY`` cycles after the last handshake."""
    lens = [3, 8, 9, 20, 1, 16, 32, 5]
    codes = [(1 << n) - 1 for n in lens]
    tiles = [(codes, lens, False), ([1], [1], False)]     # a second tile after the first
    dut = BitPacker(8, 32)
    words, counts, took = _run(dut, _beats(tiles), 2, 1.0, 1.0, seed=0)
    _check(tiles, words, counts, 8)
    cycles = [max(1, -(-n // 8)) for n in lens]
    cycles[-1] += 1                                     # the tile end's second cycle
    assert [b - a for a, b in zip(took, took[1:])] == cycles
    one = BitPacker(32, 20)
    words, counts, took = _run(one, _beats([([5], [3], False)]), 1, 1.0, 1.0, seed=0,
                               word_cycles=True)
    assert [c for _, _, c in words] == [took[0] + BitPacker.LATENCY]


def test_packer_takes_one_code_per_cycle():
    """Codes of 1..20 bits into 32-bit words, outputs always ready: no input stall."""
    rng = np.random.default_rng(4)
    lens = [int(x) for x in rng.integers(1, 21, size=2000)]
    codes = [int(rng.integers(0, 1 << n)) for n in lens]
    beats = _beats([(codes, lens, False)])
    _, counts, took = _run(BitPacker(32, 20), beats, 1, 1.0, 1.0, seed=0)
    assert counts == [sum(lens)]
    assert took == list(range(len(beats)))


@pytest.mark.parametrize("args,msg", [
    ((12, 20), "Word width must be 8, 16, 32 or 64, not 12"),
    ((32, 33), "Longest code must be between 1 and 32, not 33"),
    ((32, 20, 0), "Count width must be between 1 and 64, not 0"),
])
def test_packer_parameter_errors(args, msg):
    with pytest.raises(ValueError) as e:
        BitPacker(*args)
    assert str(e.value) == msg
