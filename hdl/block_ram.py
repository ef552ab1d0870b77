"""A RAM whose read data passes an output register: one write port, one read port.

The encoder's code table is read in one cycle and used in the next. On ECP5 the block RAM's
clock-to-output (5.8 ns in nextpnr's timing model) followed by routing to a fabric register
was the encoder's critical path; the ``DP16KD`` tile has an output register of its own
(``REGMODE = "OUTREG"``) that takes that delay out of the fabric, but yosys' block-RAM
mapping never uses it. So the ``ecp5`` family instantiates the tiles itself.

Writes are registered: ``w_addr``, ``w_data`` and ``w_en`` go into registers, and the RAM
is written from them a cycle later (``w_pending`` is high while such a write waits), so the
logic that computes a write ends at a fabric register, not at the block RAM's pins.

Both families have the same two-step read, which is what the encoder's pipeline expects:

* cycle t: ``r_addr`` with ``r_en`` high: the address is latched;
* cycle t + 1: the word is read; with ``o_en`` high it goes into the output register;
* cycle t + 2 on: ``r_data`` holds it (until the next ``o_en``).

``family="generic"``: an Amaranth ``Memory`` with a synchronous read port (the latch and the
read) and a fabric register (the output register): any device and every simulator.
``family="ecp5"``: ``ceil(width / 18)`` ``DP16KD`` tiles in their 1024 x 18 mode side by side
(and ``ceil(depth / 1024)`` such rows, the read picking a row after the output registers),
port A writing, port B reading through its output register. The testbenches simulate the
tiles with ``tb/models/DP16KD.v`` (the mode used here).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Mux, Signal
from amaranth.lib.memory import Memory

__all__ = ["DP16KD_DEPTH", "RegisteredRam"]

DP16KD_DEPTH = 1024     # words of a DP16KD tile in its 18-bit mode
_TILE_WIDTH = 18


def _initval(words, tile, block):
    """``INITVAL_xx`` of one tile: 16 words of 20 bits (18 used) per 320-bit value."""
    value = 0
    for i in range(16):
        addr = block * 16 + i
        if addr < len(words):
            bits = (words[addr] >> (tile * _TILE_WIDTH)) & ((1 << _TILE_WIDTH) - 1)
            value |= bits << (20 * i)
    return Const(value, 320)


class RegisteredRam:
    """A ``depth`` x ``width`` RAM with a registered read (see the module docstring).

    Signals to drive: ``w_addr``, ``w_data``, ``w_en`` (a write, done from registers in the
    next cycle), ``r_addr``, ``r_en``, ``o_en``; to read: ``r_data`` and ``w_pending`` (a
    registered write not yet done: a read of its address must wait a cycle). ``init``: the
    initial words (a list of ints, or empty: zeros). ``elaborate(m, name)`` adds the RAM to
    module ``m``.
    """

    def __init__(self, depth, width, family="generic", init=()):
        if family not in ("generic", "ecp5"):
            raise ValueError(f"Unknown RAM family {family!r}")
        self.depth, self.width, self.family = depth, width, family
        self.init = [int(x) for x in init]
        abits = max(1, (depth - 1).bit_length())
        self.w_addr = Signal(abits, name="ram_w_addr")
        self.w_data = Signal(width, name="ram_w_data")
        self.w_en = Signal(name="ram_w_en")
        self.r_addr = Signal(abits, name="ram_r_addr")
        self.r_en = Signal(name="ram_r_en")
        self.o_en = Signal(name="ram_o_en")
        self.r_data = Signal(width, name="ram_r_data")
        self.w_pending = Signal(name="ram_w_pending")

    @property
    def tiles(self):
        """``DP16KD`` tiles of the ``ecp5`` family (0 for ``generic``): ``ceil(width / 18)``
        side by side, ``ceil(depth / 1024)`` deep."""
        if self.family != "ecp5":
            return 0
        return -(-self.width // _TILE_WIDTH) * -(-self.depth // DP16KD_DEPTH)

    def elaborate(self, m, name):
        w_addr = Signal.like(self.w_addr, name=f"{name}_w_addr_r")
        w_data = Signal.like(self.w_data, name=f"{name}_w_data_r")
        w_en = self.w_pending
        m.d.sync += [w_addr.eq(self.w_addr), w_data.eq(self.w_data), w_en.eq(self.w_en)]
        if self.family == "generic":
            m.submodules[name] = mem = Memory(shape=self.width, depth=self.depth,
                                              init=self.init)
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(w_addr), wp.data.eq(w_data),
                         wp.en.eq(w_en), rp.addr.eq(self.r_addr), rp.en.eq(self.r_en)]
            with m.If(self.o_en):
                m.d.sync += self.r_data.eq(rp.data)
            return
        across = -(-self.width // _TILE_WIDTH)
        deep = -(-self.depth // DP16KD_DEPTH)
        wide = across * _TILE_WIDTH
        addr_w = Signal(10, name=f"{name}_wa")
        addr_r = Signal(10, name=f"{name}_ra")
        data_w = Signal(wide, name=f"{name}_wd")
        m.d.comb += [addr_w.eq(w_addr), addr_r.eq(self.r_addr), data_w.eq(w_data)]
        # Deeper than one tile: the address's high part picks the tile to write, and (kept
        # with the read, two registers on) the output register to use.
        hi_w = w_addr[10:]
        hi_r = Signal(max(1, len(self.r_addr) - 10), name=f"{name}_rhi")
        hi_o = Signal.like(hi_r, name=f"{name}_ohi")
        if deep > 1:
            with m.If(self.r_en):
                m.d.sync += hi_r.eq(self.r_addr[10:])
            with m.If(self.o_en):
                m.d.sync += hi_o.eq(hi_r)
        outs = []
        for d in range(deep):
            data_r = Signal(wide, name=f"{name}_rd{d}")
            outs.append(data_r)
            tile_w_en = w_en & (hi_w == d) if deep > 1 else w_en
            base = d * DP16KD_DEPTH
            words = self.init[base:base + DP16KD_DEPTH]
            for t in range(across):
                ports = {
                    "i_CLKA": ClockSignal(), "i_CLKB": ClockSignal(),
                    # x18 mode: the word address on AD13..AD4, AD1..AD0 the write byte
                    # enables.
                    **{f"i_ADA{k}": addr_w[k - 4] if k >= 4 else Const(int(k < 2))
                       for k in range(14)},
                    **{f"i_ADB{k}": addr_r[k - 4] if k >= 4 else Const(0) for k in range(14)},
                    **{f"i_DIA{k}": data_w[t * _TILE_WIDTH + k] for k in range(_TILE_WIDTH)},
                    **{f"i_DIB{k}": Const(0) for k in range(_TILE_WIDTH)},
                    **{f"o_DOB{k}": data_r[t * _TILE_WIDTH + k] for k in range(_TILE_WIDTH)},
                    "i_CEA": Const(1), "i_OCEA": Const(1), "i_WEA": tile_w_en,
                    "i_RSTA": Const(0),
                    "i_CEB": self.r_en, "i_OCEB": self.o_en, "i_WEB": Const(0),
                    "i_RSTB": Const(0),
                    **{f"i_CS{p}{k}": Const(0) for p in "AB" for k in range(3)},
                }
                params = {f"p_INITVAL_{b:02X}": _initval(words, t, b) for b in range(64)}
                m.submodules[f"{name}_{d}_{t}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=18, p_DATA_WIDTH_B=18, p_REGMODE_A="NOREG",
                    p_REGMODE_B="OUTREG", p_RESETMODE="SYNC", p_CSDECODE_A="0b000",
                    p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                    p_GSR="DISABLED", **params, **ports)
        picked = outs[0]
        for d in range(1, deep):
            picked = Mux(hi_o == d, outs[d], picked)
        m.d.comb += self.r_data.eq(picked[:self.width])
