"""Streaming requantizer: int accumulator -> saturated ``out_width`` integer.

Golden twin: ``golden.quant.requantize``. The contract is in ``docs/datapath.md``.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.pipeline import stage_enables

__all__ = ["Requantizer", "requant_layouts"]


def _check_width(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")


def shift_width(acc_width: int, mult_width: int) -> int:
    """Bits of the shift field: enough for every shift up to the product width."""
    return (acc_width + mult_width).bit_length()


def requant_layouts(acc_width: int, mult_width: int, out_width: int):
    """Input and output payload layouts of the requantizer."""
    i_layout = data.StructLayout({
        "acc": signed(acc_width),
        "mult": unsigned(mult_width),
        "shift": unsigned(shift_width(acc_width, mult_width)),
        "last": unsigned(1),
    })
    o_layout = data.StructLayout({"data": signed(out_width), "last": unsigned(1)})
    return i_layout, o_layout


def requant_logic(m, prod, shift, out_width: int, relu: bool):
    """Round, shift and saturate a signed product (combinational); returns the result.

    ``(prod + (1 << shift >> 1)) >> shift``, arithmetic, computed wide enough that no shift
    value of the field can overflow, then saturated to ``out_width`` (lower bound 0 with
    ``relu``). Shared with the MAC array so the rule is written once in RTL too.
    """
    half = (Signal(unsigned(1), init=1) << shift) >> 1
    width = max(len(prod), len(half)) + 1
    rounded = Signal(signed(width))
    m.d.comb += rounded.eq(prod + half)
    shifted = Signal(signed(width))
    m.d.comb += shifted.eq(rounded >> shift)
    lo = 0 if relu else -(1 << (out_width - 1))
    hi = (1 << (out_width - 1)) - 1
    result = Signal(signed(out_width))
    with m.If(shifted > hi):
        m.d.comb += result.eq(hi)
    with m.Elif(shifted < lo):
        m.d.comb += result.eq(lo)
    with m.Else():
        m.d.comb += result.eq(shifted)
    return result


class Requantizer(wiring.Component):
    """Requantize a stream of accumulators by per-beat multiplier and shift.

    Parameters
    ----------
    acc_width : int
        Signed accumulator width, 2 to 48 (32 is the contract's default).
    mult_width : int
        Unsigned multiplier width, 1 to 32.
    out_width : int
        Signed output width, 2 to 32.
    relu : bool
        Clamp outputs below zero to zero.

    Ports
    -----
    i_stream : In(stream)  payload ``{acc, mult, shift, last}``
    o_stream : Out(stream) payload ``{data, last}``; ``last`` passes through unchanged.

    Latency is 2 cycles (``LATENCY``); one beat per cycle sustained; valid/ready per
    AXI4-Stream, with ``i_stream.ready`` depending on ``o_stream.ready`` only.
    """

    LATENCY = 2

    def __init__(self, *, acc_width=32, mult_width=16, out_width=8, relu=False):
        _check_width("Accumulator width", acc_width, 2, 48)
        _check_width("Multiplier width", mult_width, 1, 32)
        _check_width("Output width", out_width, 2, 32)
        if not isinstance(relu, bool):
            raise TypeError(f"ReLU flag must be a bool, not {relu!r}")
        self._acc_width = acc_width
        self._mult_width = mult_width
        self._out_width = out_width
        self._relu = relu
        i_layout, o_layout = requant_layouts(acc_width, mult_width, out_width)
        super().__init__({
            "i_stream": In(stream.Signature(i_layout)),
            "o_stream": Out(stream.Signature(o_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        valid, load = stage_enables(m, self.o_stream.ready, 2)
        m.d.comb += self.i_stream.ready.eq(load[0])

        # Stage 0: the product. mult is unsigned, so widen it by a zero sign bit.
        prod = Signal(signed(self._acc_width + self._mult_width + 1))
        shift = Signal.like(self.i_stream.payload.shift)
        last0 = Signal()
        with m.If(load[0]):
            m.d.sync += [
                valid[0].eq(self.i_stream.valid),
                # signed * unsigned: Amaranth zero-extends mult, so the product is exact.
                prod.eq(self.i_stream.payload.acc * self.i_stream.payload.mult),
                shift.eq(self.i_stream.payload.shift),
                last0.eq(self.i_stream.payload.last),
            ]

        # Stage 1: round, shift, saturate.
        result = requant_logic(m, prod, shift, self._out_width, self._relu)
        with m.If(load[1]):
            m.d.sync += [
                self.o_stream.payload.data.eq(result),
                self.o_stream.payload.last.eq(last0),
            ]
        m.d.comb += self.o_stream.valid.eq(valid[1])
        return m
