"""Streaming requantizer: int accumulator -> saturated ``out_width`` integer.

Golden twin: ``golden.quant.requantize``. The contract is in ``docs/datapath.md``.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.pipeline import stage_enables

__all__ = ["Requantizer", "requant_layouts", "requant_logic", "requant_round_saturate",
           "requant_shift"]


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


def requant_shift(m, prod, shift):
    """First half of the rule: ``t = (prod << 1) >> shift``, arithmetic (combinational).

    With ``q = prod >> (shift - 1)``, ``(prod + 2**(shift-1)) >> shift == (q + 1) >> 1``, and
    ``(prod << 1) >> shift`` is ``q`` for ``shift >= 1`` and ``2 * prod`` for ``shift == 0``
    (where ``(2 * prod + 1) >> 1 == prod``), so one barrel shift serves every shift and the
    wide rounding adder disappears. Shifts past the width give 0 or -1, and then 0 after
    rounding, as in ``golden.quant.requantize``.
    """
    t = Signal(signed(len(prod) + 1))
    m.d.comb += t.eq((prod.as_signed() << 1) >> shift)
    return t


def requant_round_saturate(m, t, out_width: int, relu: bool):
    """Second half: ``y = clip((t + 1) >> 1, lo, hi)`` (combinational).

    ``y > hi`` exactly when ``t >= 2*hi + 1 = 2**n - 1`` (``n = out_width``), and ``y <= lo``
    when ``t <= 2*lo - 1``: ``t < -2**n``, or ``t < 0`` with ``relu``. Both are tests of
    ``t``'s bits rather than magnitude compares (which map to a carry chain the width of the
    product: the requantizer's iCE40 critical path): with ``h = t >> n``, ``t >= 2**n - 1``
    is ``h >= 1``, or ``h == 0`` with the low ``n`` bits all ones; ``t < -2**n`` is ``h < -1``.
    Between the two, ``t`` fits ``n + 1`` signed bits, so the rounding adder is only ``n + 2``
    bits wide.
    """
    n = out_width
    lo = 0 if relu else -(1 << (n - 1))
    hi = (1 << (n - 1)) - 1
    w = len(t)
    sign = t[w - 1]
    # The bits of h below its sign; none when t is at most n + 1 bits wide.
    mid = t[n:w - 1] if w - 1 > n else None
    mid_any = mid.any() if mid is not None else 0
    mid_all = mid.all() if mid is not None else 1
    # With w - 1 < n, t < 2**(w-1) <= 2**n - 1 can never saturate high.
    low_ones = t[:n].all() if w - 1 >= n else 0
    sat_hi = Signal()
    sat_lo = Signal()
    m.d.comb += [
        sat_hi.eq(~sign & (mid_any | low_ones)),
        sat_lo.eq(sign if relu else sign & ~mid_all),
    ]
    low = Signal(signed(n + 2))
    m.d.comb += low.eq(t[:n + 1].as_signed() + 1)
    result = Signal(signed(n))
    with m.If(sat_hi):
        m.d.comb += result.eq(hi)
    with m.Elif(sat_lo):
        m.d.comb += result.eq(lo)
    with m.Else():
        m.d.comb += result.eq(low >> 1)
    return result


def requant_logic(m, prod, shift, out_width: int, relu: bool):
    """Round, shift and saturate a signed product (combinational); returns the result.

    ``clip((prod + (1 << shift >> 1)) >> shift, lo, hi)``, arithmetic, exact for every shift
    value of the field, saturated to ``out_width`` (lower bound 0 with ``relu``). Shared with
    the MAC array so the rule is written once in RTL too. Blocks that can afford a register
    in between call ``requant_shift`` and ``requant_round_saturate`` in two stages.
    """
    return requant_round_saturate(m, requant_shift(m, prod, shift), out_width, relu)


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

    Latency is 3 cycles (``LATENCY``); one beat per cycle sustained; valid/ready per
    AXI4-Stream, with ``i_stream.ready`` depending on ``o_stream.ready`` only.
    """

    LATENCY = 3

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
        valid, load = stage_enables(m, self.o_stream.ready, 3)
        m.d.comb += self.i_stream.ready.eq(load[0])
        payload = self.i_stream.payload

        # Stage 0: the product (signed * unsigned: Amaranth zero-extends mult, so it is exact).
        prod = Signal(signed(self._acc_width + self._mult_width + 1))
        shift = Signal.like(payload.shift)
        last = [Signal(name=f"last{i}") for i in range(2)]
        with m.If(load[0]):
            m.d.sync += [
                valid[0].eq(self.i_stream.valid),
                prod.eq(payload.acc * payload.mult),
                shift.eq(payload.shift),
                last[0].eq(payload.last),
            ]

        # Stage 1: the barrel shift.
        shifted = requant_shift(m, prod, shift)
        t = Signal.like(shifted)
        with m.If(load[1]):
            m.d.sync += [t.eq(shifted), last[1].eq(last[0])]

        # Stage 2: round and saturate.
        result = requant_round_saturate(m, t, self._out_width, self._relu)
        with m.If(load[2]):
            m.d.sync += [
                self.o_stream.payload.data.eq(result),
                self.o_stream.payload.last.eq(last[1]),
            ]
        m.d.comb += self.o_stream.valid.eq(valid[2])
        return m
