"""Fast tests of ``hdl.coder_parts`` on the Amaranth simulator.

- ``CanonicalLength`` against golden's own length rule (``HuffmanTable.limits`` searched as in
  ``golden.codec.tables``), exhaustively over every window of random and edge tables.
- ``SkidBuffer`` and ``Queue``: random valid/ready, every beat out once, in order, and one beat
  per cycle when the output never stalls.
"""

import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.codec.tables import HuffmanTable, build_table
from hdl.coder_parts import CanonicalLength, Queue, SkidBuffer, canonical_limits


def _tables():
    rng = np.random.default_rng(7)
    out = []
    for bits, max_len, escape in [(3, 5, True), (4, 7, False), (5, 9, True), (2, 4, True)]:
        hist = rng.geometric(0.3, size=4000) % (1 << bits)
        out.append(build_table(hist, bits, max_len, signed=False, escape=escape))
    # Every length 1..L used once plus an incomplete tail (unassigned code space).
    lengths = np.zeros((1 << 3) + 1, dtype=np.int64)
    lengths[:6] = [1, 2, 3, 4, 5, 6]
    lengths[8] = 6    # ESC
    out.append(HuffmanTable(3, 6, lengths))
    return out


@pytest.mark.parametrize("table", _tables(), ids=lambda t: f"b{t.bits}L{t.max_len}")
def test_canonical_length_matches_golden(table):
    L, b = table.max_len, table.bits
    dut = CanonicalLength(L, b)
    _, _, limits = canonical_limits(table.counts, L)
    assert [int(x) for x in limits] == [int(x) for x in table.limits]
    esc_len = int(table.lengths[table.esc_index]) if table.escape else 0
    esc_code = int(table.codes[table.esc_index]) if table.escape else 0
    checked = []

    async def bench(ctx):
        ctx.set(dut.limits, sum(int(x) << (j * (L + 1)) for j, x in enumerate(limits)))
        ctx.set(dut.esc, table.escape)
        ctx.set(dut.esc_lo, esc_code << (L - esc_len) if table.escape else 0)
        ctx.set(dut.esc_hi, (esc_code + 1) << (L - esc_len) if table.escape else 0)
        ctx.set(dut.esc_total, esc_len + b)
        for v in range(1 << L):
            ctx.set(dut.top, v)
            length = int(np.searchsorted(table.limits, v, side="right")) + 1
            invalid = length > L
            assert ctx.get(dut.invalid) == invalid, v
            if invalid:
                assert ctx.get(dut.onehot) == 0, v
                continue
            assert ctx.get(dut.onehot) == 1 << length, v
            assert ctx.get(dut.length) == length, v
            esc = bool(table.escape and length == esc_len and v >> (L - length) == esc_code)
            assert ctx.get(dut.is_esc) == esc, v
            assert ctx.get(dut.total) == (esc_len + b if esc else length), v
            checked.append(v)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert checked, "no valid window was checked"


def _run_stream(dut, beats, ready_p, valid_p, seed, cycles_limit=4000):
    """Drive ``beats`` through ``dut`` with random valid/ready; returns (out, cycles)."""
    rng = np.random.default_rng(seed)
    out = []
    cycles = [0]

    async def bench(ctx):
        sent = 0
        for cycle in range(cycles_limit):
            offer = sent < len(beats) and rng.random() < valid_p
            ready = rng.random() < ready_p
            ctx.set(dut.i_stream.valid, offer)
            if offer:
                ctx.set(dut.i_stream.payload, beats[sent])
            ctx.set(dut.o_stream.ready, ready)
            took_in = offer and ctx.get(dut.i_stream.ready)
            if ctx.get(dut.o_stream.valid) and ready:
                out.append(ctx.get(dut.o_stream.payload))
            await ctx.tick()
            if took_in:
                sent += 1
            if len(out) == len(beats):
                cycles[0] = cycle + 1
                return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, cycles[0]


@pytest.mark.parametrize("make", [lambda: SkidBuffer(8), lambda: Queue(8, 4)],
                         ids=["skid", "queue"])
@pytest.mark.parametrize("ready_p,valid_p", [(1.0, 1.0), (0.5, 0.7), (0.9, 0.3), (0.2, 1.0)])
def test_stream_parts_keep_every_beat(make, ready_p, valid_p):
    beats = [int(x) for x in np.random.default_rng(3).integers(0, 256, size=300)]
    out, cycles = _run_stream(make(), beats, ready_p, valid_p, seed=int(ready_p * 10 + valid_p))
    assert out == beats
    if ready_p == 1.0 and valid_p == 1.0:
        # One beat per cycle after the first one's latency (skid: 1 cycle, queue: 2).
        assert cycles <= len(beats) + 2


def test_skid_ready_is_a_register():
    """``i_stream.ready`` does not follow ``o_stream.ready`` within a cycle."""
    dut = SkidBuffer(4)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.i_stream.payload, 5)
        ctx.set(dut.o_stream.ready, 0)
        await ctx.tick()
        await ctx.tick()    # output full, one beat parked: ready low
        before = ctx.get(dut.i_stream.ready)
        ctx.set(dut.o_stream.ready, 1)
        seen.append((before, ctx.get(dut.i_stream.ready)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(0, 0)]


@pytest.mark.parametrize("make,msg", [
    (lambda: SkidBuffer(0), r"^Payload width must be between 1 and 4096, not 0$"),
    (lambda: Queue(8, 1), r"^Queue depth must be between 2 and 1024, not 1$"),
    (lambda: CanonicalLength(25), r"^Maximum code length must be between 1 and 24, not 25$"),
])
def test_part_parameter_errors(make, msg):
    with pytest.raises(ValueError, match=re.compile(msg)):
        make()


def test_part_parameter_type_error():
    with pytest.raises(TypeError, match=r"^Payload width must be an integer, not 'x'$"):
        SkidBuffer("x")
