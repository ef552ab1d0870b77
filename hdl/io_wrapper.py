"""Registered-I/O wrapper for honest FPGA timing: every port of a block behind a flip-flop.

nextpnr leaves paths that start or end at a top-level port out of its Fmax figure, and a block
with more ports than the package has pins cannot be placed at all. This wrapper feeds every
input of the wrapped component from a serial-in shift register and captures every output into
a register that shifts out serially, so the whole block sits between flip-flops and only five
pins remain: ``clk``, ``rst``, ``din``, ``shift`` and ``dout``.

It is a measurement fixture, not a product interface: the serial chain makes every input and
output observable, so synthesis can neither drop logic nor treat ports as free.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisteredIO"]


class RegisteredIO(wiring.Component):
    """Wrap ``inner`` (a ``wiring.Component``) between serial shift registers.

    Ports
    -----
    din : In(1)
        Serial data shifted into the input register while ``shift`` is high.
    shift : In(1)
        High: shift the input chain and the output chain by one bit. Low: the output register
        captures the block's outputs.
    dout : Out(1)
        The last bit of the output chain.
    """

    din: In(1)
    shift: In(1)
    dout: Out(1)

    def __init__(self, inner: wiring.Component):
        if not isinstance(inner, wiring.Component):
            raise TypeError(f"Wrapped block must be a wiring.Component, not {inner!r}")
        self._inner = inner
        super().__init__()

    def _ports(self):
        ins, outs = [], []
        for _path, member, value in self._inner.signature.flatten(self._inner):
            if not member.is_port:
                continue
            (ins if member.flow == In else outs).append(Value.cast(value))
        return ins, outs

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        ins, outs = self._ports()
        in_width = sum(len(v) for v in ins)
        out_width = sum(len(v) for v in outs)

        in_reg = Signal(max(in_width, 1))
        with m.If(self.shift):
            m.d.sync += in_reg.eq(Cat(self.din, in_reg[:-1]) if in_width > 1 else self.din)
        offset = 0
        for value in ins:
            width = len(value)
            m.d.comb += value.eq(in_reg[offset:offset + width])
            offset += width

        out_reg = Signal(max(out_width, 1))
        with m.If(self.shift):
            m.d.sync += out_reg.eq(out_reg << 1)
        with m.Else():
            m.d.sync += out_reg.eq(Cat(*outs))
        m.d.comb += self.dout.eq(out_reg[-1])
        return m
