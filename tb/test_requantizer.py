"""Requantizer testbench: bit-exact against ``golden.datapath.quant.requantize`` on both simulators.

10,000 random beats plus every corner (accumulator extremes, rounding ties of both signs,
shift 0 and the largest shift, multiplier extremes, saturation at both ends), for several
width configurations: the main one under the 3 x 3 grid of idle and backpressure patterns and
the stress pairs of ``tb.common.flow_pairs``, the others under the diagonal. The shared
``StreamRule`` monitor watches ``o_stream``.
"""

import random
import zlib

import numpy as np
import pytest

from golden.datapath.quant import int_range, requantize

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import flow_pairs, load_config, run_cocotb
from tb.streams import Fields

CONFIGS = [
    # Main point: every stall pattern pair; the others run the diagonal.
    {"acc_width": 32, "mult_width": 16, "out_width": 8, "relu": False, "main": True},
    {"acc_width": 20, "mult_width": 8, "out_width": 4, "relu": True},
    {"acc_width": 48, "mult_width": 32, "out_width": 16, "relu": False},
]


# ----------------------------------------------------------------------------- stimulus

def corner_beats(acc_width, mult_width):
    """Named corner cases: extremes, ties in both signs, shift and multiplier limits."""
    from hdl.requantizer import shift_width

    acc_lo, acc_hi = int_range(acc_width)
    mult_max = (1 << mult_width) - 1
    shift_max = (1 << shift_width(acc_width, mult_width)) - 1
    beats = []
    for acc in (acc_lo, acc_hi, 0, -1, 1):
        for mult in (0, 1, mult_max):
            for shift in (0, 1, acc_width // 2, acc_width + mult_width - 1, shift_max):
                beats.append((acc, mult, shift))
    # Rounding ties: acc * mult = (2j + 1) * 2**(shift - 1), both signs.
    for shift in range(1, min(acc_width - 1, 12)):
        for j in (-3, -2, -1, 0, 1, 2):
            beats.append(((2 * j + 1) << (shift - 1), 1, shift))
    # Saturation just inside and outside both ends of the output range, at shift 0.
    for edge in (-(1 << 31), -129, -128, -127, 126, 127, 128, 1 << 20):
        beats.append((max(acc_lo, min(acc_hi, edge)), 1, 0))
    return beats


def random_beats(n, acc_width, mult_width, seed):
    from hdl.requantizer import shift_width

    rng = random.Random(seed)
    acc_lo, acc_hi = int_range(acc_width)
    shift_max = (1 << shift_width(acc_width, mult_width)) - 1
    beats = []
    for _ in range(n):
        # Mix full-range accumulators with small ones so every output value occurs.
        bits = rng.choice([acc_width, acc_width // 2, 12])
        acc = rng.randint(max(acc_lo, -(1 << (bits - 1))), min(acc_hi, (1 << (bits - 1)) - 1))
        mult = rng.randint(0, (1 << mult_width) - 1)
        shift = rng.choice([rng.randint(0, shift_max), rng.randint(0, acc_width)])
        beats.append((acc, mult, shift))
    return beats


# ----------------------------------------------------------------------------- cocotb

class TB:
    def __init__(self, dut, cfg, idle, backpressure, seed):
        from tb.streams import StreamSink, StreamSource

        self.dut = dut
        self.cfg = cfg
        self.i_fields = Fields.from_manifest(cfg["ports"]["i_stream__payload"])
        self.o_fields = Fields.from_manifest(cfg["ports"]["o_stream__payload"])
        self.source = StreamSource(dut, "i_stream", dut.clk, self.i_fields, idle, seed)
        self.sink = StreamSink(dut, "o_stream", dut.clk, self.o_fields, backpressure, seed + 1,
                               (dut.i_stream__valid, dut.i_stream__ready))

    async def reset(self):
        from tb.streams import start_clock_and_reset

        await start_clock_and_reset(self.dut)


async def run_test(dut, idle, backpressure):
    cfg = load_config()
    seed = zlib.crc32(f"{idle}/{backpressure}".encode())
    tb = TB(dut, cfg, idle, backpressure, seed)
    await tb.reset()
    n = 10000 if idle == backpressure else 1000
    beats = corner_beats(cfg["acc_width"], cfg["mult_width"])
    beats += random_beats(n, cfg["acc_width"], cfg["mult_width"], seed)
    acc, mult, shift = (np.array(col, dtype=object) for col in zip(*beats))
    lasts = [int(i % 7 == 6) for i in range(len(beats))]
    tb.source.send({"acc": a, "mult": m, "shift": s, "last": la}
                   for (a, m, s), la in zip(beats, lasts))
    got = await tb.sink.wait_for(len(beats), timeout_ns=400 * len(beats) + 100_000)
    expect = requantize(acc.astype(np.int64) if cfg["acc_width"] <= 48 else acc,
                        mult.astype(np.int64), shift.astype(np.int64),
                        out_bits=cfg["out_width"], relu=cfg["relu"])
    data = np.array([g["data"] for g in got], dtype=np.int64)
    bad = np.flatnonzero(data != expect)
    assert bad.size == 0, (
        f"{bad.size} mismatches; first at beat {bad[0]}: acc={beats[bad[0]][0]} "
        f"mult={beats[bad[0]][1]} shift={beats[bad[0]][2]} got {data[bad[0]]} "
        f"expected {expect[bad[0]]}")
    assert [g["last"] for g in got] == lasts, "last flag not carried through"
    # Nothing extra after the expected beats.
    from cocotb.triggers import ClockCycles
    await ClockCycles(dut.clk, 20)
    assert len(tb.sink.received) == len(beats), "requantizer emitted extra beats"
    if backpressure == "fill":
        assert tb.sink.pattern.fills > 0, "backpressure never filled the requantizer"
    if backpressure != "none":
        assert tb.sink.rule.stalls > 0, "the output was never stalled"


if cocotb is not None:
    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(load_config().get("main", False))))
    async def requantizer_matches_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)


# ----------------------------------------------------------------------------- pytest

@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "a{acc_width}m{mult_width}o{out_width}"
                         "{r}".format(r="-relu" if c["relu"] else "", **c))
def test_requantizer(cfg):
    from amaranth.back import verilog

    from hdl.manifest import describe_ports
    from hdl.requantizer import Requantizer
    from tb.common import config_id

    comp = Requantizer(**{k: v for k, v in cfg.items() if k != "main"})
    ports = {p["name"]: p for p in describe_ports(comp)}
    text = verilog.convert(comp, name="requantizer", emit_src=False)
    name = config_id({k: v for k, v in cfg.items() if k != "main"})
    run_cocotb(f"requantizer-{name}", {"requantizer.v": text}, "requantizer",
               "tb.test_requantizer", {**cfg, "ports": ports},
               tests=len(flow_pairs(cfg.get("main", False))))
