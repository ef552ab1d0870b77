"""``hdl.coder_parts.BitBuffer`` (the decoder's input aligner) on the Amaranth simulator,
against a bit string: random words in, random shifts out (also of bits of a word coming in
the same cycle), random clears; every cycle ``fill`` is the string's length and the top of
``bits`` its first bits, the rest zero."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.coder_parts import BitBuffer


@pytest.mark.parametrize("word_width,buffer_bits,max_shift", [(32, 72, 20), (8, 48, 20),
                                                              (64, 128, 32), (16, 40, 12)])
def test_buffer_is_a_bit_string(word_width, buffer_bits, max_shift):
    W, B, S = word_width, buffer_bits, max_shift
    dut = BitBuffer(W, B, S)
    rng = np.random.default_rng(W + B + S)
    checked = [0, 0]

    async def bench(ctx):
        model = ""
        for cycle in range(3000):
            assert ctx.get(dut.fill) == len(model), cycle
            want = int(model + "0" * (B - len(model)), 2)
            assert ctx.get(dut.bits) == want, cycle
            take = len(model) + W <= B and rng.random() < 0.6
            word = int(rng.integers(0, 1 << W, dtype=np.uint64)) if W < 64 else int(
                rng.integers(0, 1 << 62)) << 2 | int(rng.integers(4))
            avail = len(model) + (W if take else 0)
            shift_en = rng.random() < 0.7
            shift = int(rng.integers(0, min(S, avail) + 1))
            clear = rng.random() < 0.01
            ctx.set(dut.word, word)
            ctx.set(dut.take, take)
            ctx.set(dut.shift, shift)
            ctx.set(dut.shift_en, shift_en)
            ctx.set(dut.clear, clear)
            await ctx.tick()
            if take:
                model += format(word, f"0{W}b")
            if shift_en:
                model = model[shift:]
                checked[0] += bool(take and shift > avail - W)   # into the new word
            if clear:
                model = ""
            checked[1] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert checked[1] == 3000 and checked[0] >= 20


@pytest.mark.parametrize("args,msg", [
    ((24, 72, 20), "Word width must be 8, 16, 32 or 64, not 24"),
    ((32, 32, 20), "Buffer bits must be between 33 and 4096, not 32"),
    ((32, 72, 0), "Longest shift must be between 1 and 72, not 0"),
])
def test_buffer_parameter_errors(args, msg):
    with pytest.raises(ValueError) as e:
        BitBuffer(*args)
    assert str(e.value) == msg
