"""Streaming requantizer: int accumulator -> saturated ``out_width`` integer.

Golden twin: ``golden.datapath.quant.requantize``. The contract is in ``docs/datapath.md``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.multiply import FAMILIES, ecp5_mult18, partial_products, sum_terms
from hdl.pipeline import stage_enables

__all__ = ["REQUANT_MULTS", "REQUANT_STAGES", "Requantizer", "requant_flags", "requant_layouts",
           "requant_logic", "requant_pipeline", "requant_round_saturate", "requant_select",
           "requant_shift", "requant_terms", "check_requant_mult", "check_family",
           "REQUANT_SHIFT_STAGE"]


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
    rounding, as in ``golden.datapath.quant.requantize``.
    """
    t = Signal(signed(len(prod) + 1))
    m.d.comb += t.eq((prod.as_signed() << 1) >> shift)
    return t


def requant_flags(m, t, out_width: int, relu: bool, upper=None):
    """Saturation flags and rounded low bits of ``t`` (combinational): ``(sat_hi, sat_lo, low)``.

    ``upper = (start, any, all)``: the bits of ``t``'s ``h`` from ``start`` up are already
    reduced (``requant_pipeline`` reduces them a stage early, from the shifter's input), so
    only ``t[n:start]`` is reduced here.

    ``y > hi`` exactly when ``t >= 2*hi + 1 = 2**n - 1`` (``n = out_width``), and ``y <= lo``
    when ``t <= 2*lo - 1``: ``t < -2**n``, or ``t < 0`` with ``relu``. Both are tests of
    ``t``'s bits rather than magnitude compares (which map to a carry chain the width of the
    product: the requantizer's iCE40 critical path): with ``h = t >> n``, ``t >= 2**n - 1``
    is ``h >= 1``, or ``h == 0`` with the low ``n`` bits all ones; ``t < -2**n`` is ``h < -1``.
    Between the two, ``t`` fits ``n + 1`` signed bits, so the rounding adder ``low = t + 1``
    is only ``n + 2`` bits wide.
    """
    n = out_width
    w = len(t)
    sign = t[w - 1]
    # The bits of h below its sign; none when t is at most n + 1 bits wide.
    top = w - 1 if upper is None else min(upper[0], w - 1)
    mid = t[n:top] if top > n else None
    mid_any = mid.any() if mid is not None else 0
    mid_all = mid.all() if mid is not None else 1
    if upper is not None:
        mid_any, mid_all = mid_any | upper[1], mid_all & upper[2]
    # With w - 1 < n, t < 2**(w-1) <= 2**n - 1 can never saturate high.
    low_ones = t[:n].all() if w - 1 >= n else 0
    sat_hi = Signal()
    sat_lo = Signal()
    low = Signal(signed(n + 2))
    m.d.comb += [
        sat_hi.eq(~sign & (mid_any | low_ones)),
        sat_lo.eq(sign if relu else sign & ~mid_all),
        low.eq(t[:n + 1].as_signed() + 1),
    ]
    return sat_hi, sat_lo, low


def requant_select(m, sat_hi, sat_lo, low, out_width: int, relu: bool):
    """``y = hi`` if ``sat_hi``, ``lo`` if ``sat_lo``, else ``low >> 1`` (combinational)."""
    n = out_width
    lo = 0 if relu else -(1 << (n - 1))
    hi = (1 << (n - 1)) - 1
    result = Signal(signed(n))
    # One expression, not an If chain: the Verilog is then a continuous assignment, which
    # Icarus evaluates at time 0 (an always block whose registered inputs keep their initial
    # values would leave the result X there).
    m.d.comb += result.eq(Mux(sat_hi, hi, Mux(sat_lo, lo, low >> 1)))
    return result


def requant_round_saturate(m, t, out_width: int, relu: bool):
    """Second half: ``y = clip((t + 1) >> 1, lo, hi)`` (combinational): ``requant_flags``
    then ``requant_select``."""
    return requant_select(m, *requant_flags(m, t, out_width, relu), out_width, relu)


def requant_logic(m, prod, shift, out_width: int, relu: bool):
    """Round, shift and saturate a signed product (combinational); returns the result.

    ``clip((prod + (1 << shift >> 1)) >> shift, lo, hi)``, arithmetic, exact for every shift
    value of the field, saturated to ``out_width`` (lower bound 0 with ``relu``). The blocks
    run the same rule pipelined (``requant_pipeline``).
    """
    return requant_round_saturate(m, requant_shift(m, prod, shift), out_width, relu)


#: ``requant_mult`` values: the wide product on DSP tiles or from LUT partial products.
REQUANT_MULTS = ("dsp", "lut")

#: Registered stages of ``requant_pipeline`` before the block's output register: operands
#: (a DSP tile's input registers), partial products, pairs of them summed, their sum, the
#: high and the low half of the barrel shift, saturation flags and rounded low bits.
REQUANT_STAGES = 7
#: The stage whose input is the shift (the caller delays it by this many stages).
REQUANT_SHIFT_STAGE = 4

# An ECP5 MULT18X18D multiplies 18 x 18 signed bits: 17 unsigned bits plus a sign.
_DSP_CHUNK = 17
# LUT partial products: one term per 4 multiplier bits (two adder levels each, then two more
# to sum the terms), so each stage stays within two carry chains.
_LUT_GROUP = 4


def requant_terms(acc, mult, requant_mult: str, chunk: int = _DSP_CHUNK, product=None):
    """``acc * mult`` (signed by unsigned) as ``[(term, offset)]`` summed one stage later.

    ``"dsp"``: the accumulator in 17-bit slices (the top one signed, at most 18 bits) times
    the multiplier in 17-bit slices, each product small enough for one ECP5 ``MULT18X18D``;
    33 x 16 bits gives two tiles and one 50-bit adder in the next stage. ``"lut"``:
    ``hdl.multiply.partial_products`` over 4-bit groups of the multiplier. ``chunk``
    changes the slice width (tests use small ones to reach every slice boundary).
    ``product(i, a, b)`` builds slice product ``i`` (default ``a * b``).
    """
    if requant_mult == "lut":
        return partial_products(acc.as_signed(), mult, _LUT_GROUP)

    def slices(width, signed_top):
        bounds, lo = [], 0
        while width - lo > chunk + (1 if signed_top else 0):
            bounds.append((lo, lo + chunk, False))
            lo += chunk
        bounds.append((lo, width, signed_top))
        return bounds

    terms = []
    for a_lo, a_hi, a_signed in slices(len(acc), True):
        a = acc[a_lo:a_hi].as_signed() if a_signed else acc[a_lo:a_hi]
        for m_lo, m_hi, _ in slices(len(mult), False):
            b = mult[m_lo:m_hi]
            terms.append((product(len(terms), a, b) if product else a * b, a_lo + m_lo))
    return terms


def check_requant_mult(requant_mult):
    """``ValueError`` unless ``requant_mult`` is one of ``REQUANT_MULTS``."""
    if requant_mult not in REQUANT_MULTS:
        raise ValueError(f"Requantizer multiplier must be one of {', '.join(REQUANT_MULTS)}, "
                         f"not {requant_mult!r}")


def check_family(family):
    """``ValueError`` unless ``family`` is one of ``hdl.multiply.FAMILIES``."""
    if family not in FAMILIES:
        raise ValueError(f"FPGA family must be one of {', '.join(FAMILIES)}, not "
                         f"{family!r}")


def _register(m, value, en, name):
    reg = Signal(value.shape(), name=name)
    with m.If(en):
        m.d.sync += reg.eq(value)
    return reg


def requant_pipeline(m, acc, mult, shift, en, *, out_width: int, relu: bool,
                     requant_mult: str = "dsp", name: str = "rq", chunk: int = _DSP_CHUNK,
                     family: str = "generic"):
    """The requantization rule over ``REQUANT_STAGES`` registered stages.

    ``acc`` and ``mult`` enter the first stage (stage enable ``en[0]``); ``shift`` enters
    stage ``REQUANT_SHIFT_STAGE`` (``en[4]``: the caller delays it by four stages); ``en``
    holds one load enable per stage. Returns the combinational result of the last stage's
    registers (``requant_select``), which the caller registers as its output, so
    ``REQUANT_STAGES + 1`` cycles from ``acc`` to a registered result. Bit for bit
    ``requant_logic``:

    1. the operands (with ``family="ecp5"`` and ``requant_mult="dsp"``, the input
       registers of ``MULT18X18D`` tiles, ``hdl.multiply.ecp5_mult18``);
    2. partial products of ``acc * mult`` (``requant_terms``);
    3. adjacent pairs of them summed when there are more than two (LUT partial products),
       else registered again (a DSP tile's output routing gets its own cycle);
    4. their sum, the exact product;
    5. ``(prod << 1) >> (shift & ~(2**k - 1))``, ``k = len(shift) // 2`` (arithmetic shifts
       compose: ``(x >> a) >> b == x >> (a + b)``);
    6. ``>> (shift & (2**k - 1))``: ``t`` of ``requant_shift``; beside it, the OR and AND of
       the bits of stage 5's value that land in ``t``'s range above the output for every low
       shift;
    7. ``requant_flags(t)``, which then reduces only ``t``'s few bits below those.
    """
    if family == "ecp5" and requant_mult == "dsp":
        def product(i, a, b):
            return ecp5_mult18(m, f"{name}_dsp{i}", a, b, en[0], en[1])
        regs = [(term, off) for term, off in
                requant_terms(acc, mult, requant_mult, chunk, product)]
    else:
        acc_r = _register(m, acc, en[0], f"{name}_acc")
        mult_r = _register(m, mult, en[0], f"{name}_mult")
        regs = [(_register(m, term, en[1], f"{name}_pp{i}"), off) for i, (term, off) in
                enumerate(requant_terms(acc_r, mult_r, requant_mult, chunk))]
    if len(regs) > 2:
        pairs = [regs[i:i + 2] for i in range(0, len(regs), 2)]
        base = [min(o for _, o in p) for p in pairs]
        regs = [(_register(m, sum_terms([(t, o - b) for t, o in p]), en[2], f"{name}_pair{i}"),
                 b) for i, (p, b) in enumerate(zip(pairs, base))]
    else:
        regs = [(_register(m, t, en[2], f"{name}_pq{i}"), o) for i, (t, o) in enumerate(regs)]
    prod = Signal(signed(len(acc) + len(mult) + 1), name=f"{name}_prod")
    with m.If(en[3]):
        m.d.sync += prod.eq(sum_terms(regs))
    k = len(shift) // 2
    high = Cat(Const(0, k), shift[k:])
    u = _register(m, (prod.as_signed() << 1) >> high, en[4], f"{name}_u")
    shift_lo = _register(m, shift[:k], en[4], f"{name}_shlo")
    t = _register(m, u >> shift_lo, en[5], f"{name}_t")
    # The saturation flags reduce t's bits above the output range, a wide OR (the iCE40
    # critical path at 57 MHz). Bits of u from n + 2**k - 1 up (below its sign) land in that
    # range for every low shift, so they are reduced beside the low shift, a stage early;
    # where they do not, any extra bit t[n:start] covers is a copy of the sign or a bit of
    # u above start, so the flags are unchanged (they matter only for one sign each).
    start = out_width + (1 << k) - 1
    upper = None
    if start < len(u) - 1:
        upper = (start, _register(m, u[start:len(u) - 1].any(), en[5], f"{name}_uany"),
                 _register(m, u[start:len(u) - 1].all(), en[5], f"{name}_uall"))
    flags = requant_flags(m, t, out_width, relu, upper)
    sat_hi, sat_lo, low = (_register(m, v, en[6], f"{name}_{n}")
                           for v, n in zip(flags, ("sathi", "satlo", "low")))
    return requant_select(m, sat_hi, sat_lo, low, out_width, relu)


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

    requant_mult : str
        ``"dsp"`` (default): the wide product on DSP tiles in 17-bit slices; ``"lut"``: from
        LUT partial products (``requant_terms``).
    family : str
        ``"generic"`` (inferred multipliers) or ``"ecp5"`` (registered ``MULT18X18D``
        instances, ``hdl.multiply``); ``"ice40"`` is accepted and builds the generic form.

    Ports
    -----
    i_stream : In(stream)  payload ``{acc, mult, shift, last}``
    o_stream : Out(stream) payload ``{data, last}``; ``last`` passes through unchanged.

    Latency is ``LATENCY`` = ``REQUANT_STAGES + 1`` = 8 cycles (3 before issue 16 pipelined
    the product, the shift and the saturation for ECP5 at 150 MHz); one beat per cycle
    sustained; valid/ready per AXI4-Stream, with ``i_stream.ready`` depending on
    ``o_stream.ready`` only.
    """

    LATENCY = REQUANT_STAGES + 1

    def __init__(self, *, acc_width=32, mult_width=16, out_width=8, relu=False,
                 requant_mult="dsp", family="generic"):
        _check_width("Accumulator width", acc_width, 2, 48)
        _check_width("Multiplier width", mult_width, 1, 32)
        _check_width("Output width", out_width, 2, 32)
        if not isinstance(relu, bool):
            raise TypeError(f"ReLU flag must be a bool, not {relu!r}")
        check_requant_mult(requant_mult)
        check_family(family)
        self._family = family
        self._acc_width = acc_width
        self._mult_width = mult_width
        self._out_width = out_width
        self._relu = relu
        self._requant_mult = requant_mult
        i_layout, o_layout = requant_layouts(acc_width, mult_width, out_width)
        super().__init__({
            "i_stream": In(stream.Signature(i_layout)),
            "o_stream": Out(stream.Signature(o_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        n = REQUANT_STAGES
        valid, load = stage_enables(m, self.o_stream.ready, n + 1)
        m.d.comb += self.i_stream.ready.eq(load[0])
        payload = self.i_stream.payload
        with m.If(load[0]):
            m.d.sync += valid[0].eq(self.i_stream.valid)
        # The shift enters the pipeline at REQUANT_SHIFT_STAGE, last at its output: delay lines.
        delayed = [(payload.shift, payload.last)]
        for i in range(n):
            shift, last = delayed[-1]
            regs = (Signal.like(shift, name=f"shift{i}"), Signal(name=f"last{i}"))
            with m.If(load[i]):
                m.d.sync += [regs[0].eq(shift), regs[1].eq(last)]
            delayed.append(regs)
        result = requant_pipeline(m, payload.acc, payload.mult,
                                  delayed[REQUANT_SHIFT_STAGE][0], load[:n],
                                  out_width=self._out_width, relu=self._relu,
                                  requant_mult=self._requant_mult, family=self._family)
        with m.If(load[n]):
            m.d.sync += [
                self.o_stream.payload.data.eq(result),
                self.o_stream.payload.last.eq(delayed[n][1]),
            ]
        m.d.comb += self.o_stream.valid.eq(valid[n])
        return m
