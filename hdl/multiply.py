"""The multipliers the arithmetic blocks choose between (issue 16).

Four ways to build a product, all bit-exact:

* ``a * b``: synthesis infers a DSP tile (ECP5 ``MULT18X18D``, iCE40 ``SB_MAC16`` with
  ``synth_ice40 -dsp``), combinational: ``family="generic"``.
* ``ecp5_mult18``: an ECP5 ``MULT18X18D`` instantiated with its input and output registers
  (``family="ecp5"``). yosys does not move registers into an inferred ``MULT18X18D``,
  whose combinational path (3.9 ns plus routing in and out) capped the MAC array near
  105 MHz; registered inside the tile it leaves fabric routing on both sides only.
* ``partial_products``: shift-and-add over bit groups of one operand, written without ``*`` so
  that synthesis builds it from LUTs and carry chains (the ``dsp_budget`` fallback, and the
  requantizer's ``requant_mult="lut"`` option). The groups are summed in a later pipeline
  stage by the caller.
* ``ice40_dual_mul8``: one iCE40 ``SB_MAC16`` in its dual 8 x 8 mode (``MODE_8x8``, outputs
  selected from the two 8 x 8 multipliers), two signed products per tile
  (``family="ice40"``).

The instances are black boxes to Amaranth; the testbenches simulate them with yosys' own
``SB_MAC16`` model and with ``tb/models/MULT18X18D.v`` (the modes used here).

ECP5's split mode (``MULT9X9D``, two 9 x 9 products per tile) is not offered: the open tools
cannot build it (docs/mac_array.md, "Two products per DSP").
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Mux, Signal, signed

__all__ = ["FAMILIES", "ecp5_mult18", "ice40_dual_mul8", "partial_products", "sum_terms"]

#: ``family`` values: ``"generic"`` (inferred ``*``, any device and every simulator),
#: ``"ecp5"`` (registered ``MULT18X18D`` instances), ``"ice40"`` (two 8 x 8 products per
#: ``SB_MAC16``).
FAMILIES = ("generic", "ecp5", "ice40")


def ecp5_mult18(m, name: str, a, b, en_in, en_out):
    """``a * b`` in one ECP5 ``MULT18X18D`` with input and output registers.

    ``a`` and ``b`` are values of at most 18 bits, signed or unsigned (an unsigned one of 18
    bits does not fit). The operands are registered when ``en_in`` is high (clock enable
    ``CE0``), the product when ``en_out`` is (``CE1``): the returned 36-bit signed signal is
    the product of the operands of two loads back, as two pipeline stages.
    """
    ops = []
    for v in (a, b):
        if len(v) + (0 if v.shape().signed else 1) > 18:
            raise ValueError(f"MULT18X18D operands must fit 18 signed bits, not {v.shape()}")
        ext = Signal(signed(18), name=f"{name}_{'ab'[len(ops)]}")
        m.d.comb += ext.eq(v)
        ops.append(ext)
    p = Signal(signed(36), name=f"{name}_p")
    ports = {f"i_A{i}": ops[0][i] for i in range(18)}
    ports.update({f"i_B{i}": ops[1][i] for i in range(18)})
    ports.update({f"o_P{i}": p[i] for i in range(36)})
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE1", p_REG_OUTPUT_RST="RST0",
        p_REG_PIPELINE_CLK="NONE", p_REG_INPUTC_CLK="NONE",
        p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_SOURCEB_MODE="B_SHIFT",
        p_RESETMODE="SYNC",
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal(), i_CLK1=0, i_CLK2=0, i_CLK3=0,
        i_CE0=en_in, i_CE1=en_out, i_CE2=0, i_CE3=0,
        i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
        **ports,
    )
    return p


def partial_products(a, b, group: int):
    """Split ``a * b`` into ``[(term, offset)]`` with ``sum(term << offset) == a * b``.

    ``a`` and ``b`` are Amaranth values (signed or unsigned); each term is the sum of
    ``group`` shifted copies of ``a`` gated by bits of ``b`` (``b``'s top bit weighs
    ``-2**(n-1)`` when ``b`` is signed), so it uses adders and muxes only, never ``*``.
    """
    n = len(b)
    top_negative = b.shape().signed
    terms = []
    for lo in range(0, n, group):
        parts = []
        for i in range(lo, min(lo + group, n)):
            gated = Mux(b[i], a, 0) << (i - lo)
            parts.append(-gated if top_negative and i == n - 1 else gated)
        terms.append((sum_terms([(p, 0) for p in parts]), lo))
    return terms


def sum_terms(terms):
    """``sum(term << offset)`` as a balanced adder tree (one expression, no registers)."""
    values = [t << off if off else t for t, off in terms]
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def ice40_dual_mul8(m, name: str, a_hi, b_hi, a_lo, b_lo):
    """Two signed 8 x 8 products in one ``SB_MAC16``: returns ``(a_hi * b_hi, a_lo * b_lo)``.

    Combinational (no register inside the tile). Operands are signed values of at most 8
    bits (sign-extended to 8). The tile's top output is its upper 8 x 8 multiplier
    (``TOPOUTPUT_SELECT = 2``), the bottom output the lower one (``BOTOUTPUT_SELECT = 2``);
    ``A_SIGNED``/``B_SIGNED`` with ``MODE_8x8`` make both halves signed.
    """
    for v in (a_hi, b_hi, a_lo, b_lo):
        if len(v) > 8:
            raise ValueError(f"Dual 8 x 8 operands must be at most 8 bits, not {len(v)}")
    top = Signal(signed(16), name=f"{name}_hi")
    bot = Signal(signed(16), name=f"{name}_lo")
    a8 = [Signal(signed(8), name=f"{name}_{n}") for n in ("ah", "bh", "al", "bl")]
    m.d.comb += [s.eq(v) for s, v in zip(a8, (a_hi, b_hi, a_lo, b_lo))]
    m.submodules[name] = Instance(
        "SB_MAC16",
        p_MODE_8x8=1, p_A_SIGNED=1, p_B_SIGNED=1,
        p_TOPOUTPUT_SELECT=2, p_BOTOUTPUT_SELECT=2,
        p_A_REG=0, p_B_REG=0, p_C_REG=0, p_D_REG=0,
        p_TOP_8x8_MULT_REG=0, p_BOT_8x8_MULT_REG=0,
        p_PIPELINE_16x16_MULT_REG1=0, p_PIPELINE_16x16_MULT_REG2=0,
        p_TOPADDSUB_LOWERINPUT=0, p_TOPADDSUB_UPPERINPUT=0, p_TOPADDSUB_CARRYSELECT=0,
        p_BOTADDSUB_LOWERINPUT=0, p_BOTADDSUB_UPPERINPUT=0, p_BOTADDSUB_CARRYSELECT=0,
        p_NEG_TRIGGER=0,
        i_CLK=0, i_CE=1,
        i_A=Cat(a8[2], a8[0]), i_B=Cat(a8[3], a8[1]), i_C=0, i_D=0,
        i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
        i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
        i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
        i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
        o_O=Cat(bot, top),
    )
    return top, bot
