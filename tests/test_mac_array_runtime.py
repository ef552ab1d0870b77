"""Run-time-shape MAC arrays (``MacArray(..., runtime_shape=True)``) in the Amaranth simulator.

One array generated for maxima computes layer after layer of other shapes, each loaded through
``cfg`` (descriptor, then the values), bit-exact against ``golden.datapath.mac.matvec``, with
random stalls on every stream; bad descriptors raise ``error`` and change nothing. The cocotb
testbench (``tb/test_mac_array.py``) runs the same on Verilator and Icarus.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.datapath.mac import matvec
from golden.datapath.quant import acc_bits, int_range
from hdl.mac_array import MacArray, layer_cycles, runtime_schedule
from hdl.requantizer import shift_width

W8 = dict(in_width=8, weight_width=8, bias_width=32, mult_width=16, out_width=8)


def layer_params(rng, co, ci, widths=W8):
    w_lo, w_hi = int_range(widths["weight_width"])
    acc = acc_bits(widths["in_width"], widths["weight_width"], ci, widths["bias_width"])
    typical = widths["in_width"] + widths["weight_width"] + int(np.log2(ci) / 2)
    return {"weight": rng.integers(w_lo, w_hi + 1, (co, ci)),
            "bias": rng.integers(-(1 << typical), 1 << typical, co),
            "mult": rng.integers(0, 1 << widths["mult_width"], co),
            "shift": np.clip(rng.integers(0, 8, co) + widths["mult_width"] + typical
                             - widths["out_width"], 0,
                             (1 << shift_width(acc, widths["mult_width"])) - 1)}


def load_beats(co, ci, p, last=True):
    """The cfg beats of one layer: C_out, C_in, W row-major, bias, mult, shift."""
    values = [co, ci] + [int(v) for v in p["weight"].ravel()] + [
        int(v) for key in ("bias", "mult", "shift") for v in p[key]]
    return [(v, int(last and i == len(values) - 1)) for i, v in enumerate(values)]


def run(dut, program, seed=0, stall=0.3, max_cycles=200_000):
    """``program``: [(cfg beats or None, pixels (n, ci))]; each entry's load is offered, then
    its pixels, in order on one driver (so a layer's pixels follow its load). Returns the
    output beats, the pixel handshake cycles per entry and ``error`` after each entry."""
    from amaranth.sim import Simulator

    rng = np.random.default_rng(seed)
    ci_max, lanes_w = dut._ci, dut._in_w
    mask = (1 << lanes_w) - 1
    out, taken, errors = [], [], []
    clock = [0]
    done = [False]

    async def driver(ctx):
        for beats, pixels in program:
            for value, last in beats or []:
                while rng.random() < stall:
                    await ctx.tick()
                ctx.set(dut.cfg.payload.data, value & ((1 << len(dut.cfg.payload.data)) - 1))
                ctx.set(dut.cfg.payload.last, last)
                ctx.set(dut.cfg.valid, 1)
                await ctx.tick().until(dut.cfg.ready)
                ctx.set(dut.cfg.valid, 0)
            cycles = []
            for px in pixels:
                while rng.random() < stall:
                    await ctx.tick()
                # Lanes past the layer's C_in carry garbage: the array must ignore them.
                word = [int(v) for v in px] + [int(v) for v in rng.integers(
                    -(1 << (lanes_w - 1)), 1 << (lanes_w - 1), ci_max - len(px))]
                ctx.set(dut.i_stream.payload.as_value(), sum((v & mask) << (lanes_w * j)
                                                  for j, v in enumerate(word)))
                ctx.set(dut.i_stream.valid, 1)
                await ctx.tick().until(dut.i_stream.ready)
                cycles.append(clock[0])
                ctx.set(dut.i_stream.valid, 0)
            taken.append(cycles)
            await ctx.tick().repeat(2)
            errors.append(ctx.get(dut.error))
        done[0] = True

    async def sink(ctx):
        idle = 0
        async for vals in ctx.tick().sample(dut.o_stream.valid, dut.o_stream.ready,
                                            dut.o_stream.payload.data.as_value(),
                                            dut.o_stream.payload.last):
            clock[0] += 1
            valid, ready, data, last = vals[2:]
            if valid and ready:
                out.append((int(data), int(last)))
            ctx.set(dut.o_stream.ready, int(rng.random() >= stall))
            idle = idle + 1 if done[0] else 0
            if idle > 400 or clock[0] > max_cycles:
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    return out, taken, errors


def expected_beats(dut, layers):
    og, ow = dut._og, dut._o_w
    beats = []
    for params, pixels in layers:
        y = matvec(pixels, params["weight"], params["bias"], params["mult"], params["shift"],
                   in_bits=dut._in_w, w_bits=dut._w_w, bias_bits=dut._b_w, out_bits=ow,
                   relu=dut._relu)
        for row in y:
            for b in range(0, len(row), og):
                beats.append((sum((int(v) & ((1 << ow) - 1)) << (ow * j)
                                  for j, v in enumerate(row[b:b + og])),
                              int(b + og == len(row))))
    return beats


# (max C_out, max C_in, M, out_group, [layer shapes]): smaller, equal and single shapes in
# both directions, last chunks of every fill, one step per pixel (T = 1).
CASES = [
    ("inverse", 12, 6, 4, 1, [(12, 6), (5, 3), (1, 1), (8, 6), (12, 2), (3, 5)]),
    ("forward", 4, 10, 4, 2, [(4, 10), (2, 7), (4, 1), (2, 4), (4, 9)]),
    ("wide", 6, 4, 8, 2, [(6, 4), (2, 2), (4, 3)]),
]


@pytest.mark.parametrize("name, co_max, ci_max, m, og, shapes", CASES,
                         ids=[c[0] for c in CASES])
def test_layers_in_turn_bit_exact(name, co_max, ci_max, m, og, shapes):
    rng = np.random.default_rng(len(shapes))
    dut = MacArray(co_max, ci_max, multipliers=m, out_group=og, runtime_shape=True, **W8)
    program, layers = [], []
    lo, hi = int_range(8)
    for co, ci in shapes:
        p = layer_params(rng, co, ci)
        px = rng.integers(lo, hi + 1, (7, ci))
        program.append((load_beats(co, ci, p), px))
        layers.append((p, px))
    out, _, errors = run(dut, program)
    assert out == expected_beats(dut, layers)
    assert errors == [0] * len(shapes)


@pytest.mark.parametrize("co, ci", [(12, 6), (5, 3), (12, 2), (1, 1), (7, 5)])
def test_cycles_per_pixel_follow_the_layer(co, ci):
    """No stalls: pixels are taken every ``layer_cycles`` cycles, the layer's own count."""
    rng = np.random.default_rng(co * 7 + ci)
    dut = MacArray(12, 6, multipliers=4, runtime_shape=True, **W8)
    p = layer_params(rng, co, ci)
    px = rng.integers(-128, 128, (12, ci))
    out, taken, _ = run(dut, [(load_beats(co, ci, p), px)], stall=0.0)
    assert out == expected_beats(dut, [(p, px)])
    gaps = set(np.diff(taken[0][2:]))
    assert gaps == {layer_cycles(co, ci, 4)} == {co * -(-ci // 4)}


@pytest.mark.parametrize("descriptor, why", [
    ([(0, 0), (3, 0)], "C_out 0"), ([(13, 0), (3, 0)], "C_out over the maximum"),
    ([(4, 0), (0, 0)], "C_in 0"), ([(4, 0), (7, 0)], "C_in over the maximum"),
    ([(3, 0), (2, 0)], "C_out not a multiple of out_group"),
    ([(4, 1)], "last on C_out"), ([(4, 0), (3, 1)], "last on C_in")])
def test_bad_descriptor_is_flagged_and_changes_nothing(descriptor, why):
    """A bad descriptor: ``error`` rises, the load's beats up to ``last`` are dropped (the
    values that follow it here would otherwise load), the previous layer keeps computing; the
    next good load clears ``error``."""
    rng = np.random.default_rng(3)
    dut = MacArray(12, 6, multipliers=4, out_group=2, runtime_shape=True, **W8)
    p1, p2, p3 = (layer_params(rng, 4, 3), layer_params(rng, 4, 3), layer_params(rng, 6, 5))
    px = [rng.integers(-128, 128, (5, 3)), rng.integers(-128, 128, (5, 3)),
          rng.integers(-128, 128, (5, 5))]
    tail = load_beats(4, 3, p2)[2:]           # values of a load, dropped after the bad head
    bad = descriptor + ([] if descriptor[-1][1] else tail)
    out, _, errors = run(dut, [(load_beats(4, 3, p1), px[0]), (bad, px[1]),
                               (load_beats(6, 5, p3), px[2])])
    assert errors == [0, 1, 0], why
    assert out == expected_beats(dut, [(p1, px[0]), (p1, px[1]), (p3, px[2])])


def test_partial_load_keeps_the_rest_of_the_new_shape():
    """An early ``last`` after the weights of a new shape: the shape and the weights change,
    the bias, mult and shift of the rows keep their previous values."""
    rng = np.random.default_rng(5)
    dut = MacArray(8, 4, multipliers=2, runtime_shape=True, **W8)
    p1 = layer_params(rng, 8, 4)
    p2 = layer_params(rng, 5, 3)
    beats = load_beats(5, 3, p2)[:2 + 15]
    beats[-1] = (beats[-1][0], 1)
    kept = {"weight": p2["weight"], **{k: p1[k][:5] for k in ("bias", "mult", "shift")}}
    px = [rng.integers(-128, 128, (4, 4)), rng.integers(-128, 128, (6, 3))]
    out, _, errors = run(dut, [(load_beats(8, 4, p1), px[0]), (beats, px[1])])
    assert out == expected_beats(dut, [(p1, px[0]), (kept, px[1])])
    assert errors == [0, 0]


def test_runtime_schedule_and_facts():
    s = runtime_schedule(1280, 64, 16)
    assert (s["rows"], s["lanes"], s["chunks"], s["cycles"], s["products"]) == (
        1, 16, 4, 5120, 16)
    assert layer_cycles(96, 7, 16) == 96 and layer_cycles(16, 96, 16) == 96
    dut = MacArray(12, 6, multipliers=4, runtime_shape=True, **W8)
    assert dut.cfg_beats == 12 * 6 + 3 * 12 + 2
    assert dut.layer_cycles(5, 3) == 5 and dut.layer_cycles(12, 6) == 24
    assert dut.layer_latency(12, 6) == dut.LATENCY
    assert dut.layer_latency(5, 3) == dut.LATENCY - 1
    assert dut.cfg_data_width == 32
    narrow = MacArray(200, 300, in_width=4, weight_width=4, bias_width=6, mult_width=3,
                      out_width=4, multipliers=8, runtime_shape=True)
    assert narrow.cfg_data_width == 9         # the descriptor's 300


@pytest.mark.parametrize("kwargs, msg", [
    (dict(weights={"weight": np.zeros((4, 3)), "bias": np.zeros(4), "mult": np.zeros(4),
                   "shift": np.zeros(4)}), "baked weights fix the shape"),
    (dict(out_group=3), "power of two"),
    (dict(runtime_shape=1), "must be a bool")])
@pytest.mark.filterwarnings("ignore:.* created but never used")
def test_bad_runtime_parameters(kwargs, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        MacArray(12, 3, multipliers=2, **{"runtime_shape": True, **kwargs})
