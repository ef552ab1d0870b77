"""Property building blocks shared by the formal specs: stream rules, past values, reset.

Amaranth 0.5 has no ``Past``: ``past`` keeps a reset-less register of the previous cycle.
A stream follows the rules (``amaranth.lib.stream``, AXI4-Stream) when, once ``valid`` is
high, it stays high with ``payload`` unchanged until the cycle ``ready`` is high too.
"""

from __future__ import annotations

from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.hdl import Assert, Assume, Cover, Signal, Value

__all__ = ["Axi", "Counter", "any_const", "any_seq", "past", "reset_free", "reset_once", "sink",
           "source", "transfer"]


def past(m, value, init=0, name=None):
    """``value`` one cycle ago (``init`` in the first cycle); not cleared by reset."""
    value = Value.cast(value)
    reg = Signal(len(value), init=init, reset_less=True, name=name)
    m.d.sync += reg.eq(value)
    return reg


class Axi:
    """An AXI4-Stream port group ``<prefix>_tdata/tvalid/tready[/tlast/tuser]`` of a top, seen
    as a stream (``valid``, ``ready``, ``payload``) by ``source`` and ``sink``."""

    class _Payload:
        def __init__(self, value):
            self._value = value

        def as_value(self):
            return self._value

        def eq(self, value):
            return self._value.eq(value)

    def __init__(self, top, prefix):
        from amaranth.hdl import Cat
        self.valid = getattr(top, f"{prefix}_tvalid")
        self.ready = getattr(top, f"{prefix}_tready")
        fields = [getattr(top, f"{prefix}_{f}") for f in ("tdata", "tlast", "tuser")
                  if hasattr(top, f"{prefix}_{f}")]
        self.payload = self._Payload(Cat(*fields))


def _payload(port):
    """A port's payload as a value: a view or ``Axi`` group (``as_value``) or a plain signal."""
    p = port.payload
    return p.as_value() if hasattr(p, "as_value") else Value.cast(p)


def any_seq(m, width, name):
    """A fresh arbitrary value every cycle."""
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(AnySeq(width))
    return sig


def any_const(m, width, name):
    """One arbitrary value, fixed for the whole trace."""
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(AnyConst(width))
    return sig


def reset_free(m):
    """Leave the reset input free (asserted in any cycle); returns "reset was high in the
    previous cycle", high in the first cycle too (the state then is the reset state)."""
    from amaranth.hdl import ResetSignal
    return past(m, ResetSignal(), init=1, name="rst_past")


def reset_once(m):
    """Reset in the first cycle only; returns the same "after reset" signal as ``reset_free``."""
    from amaranth.hdl import ResetSignal
    m.d.comb += Assume(ResetSignal() == Initial())
    return past(m, ResetSignal(), init=1, name="rst_past")


def transfer(port):
    return port.valid & port.ready


def source(m, port, after_rst, name, *, valid=None, payload=None):
    """Drive the input stream ``port`` with arbitrary beats that follow the stream rules.

    ``valid`` / ``payload`` replace the arbitrary ones when given (e.g. valid held high).
    """
    width = len(_payload(port))
    if valid is None:
        valid = any_seq(m, 1, f"{name}_valid")
    if payload is None:
        payload = any_seq(m, width, f"{name}_payload")
    m.d.comb += [port.valid.eq(valid), port.payload.eq(payload)]
    waiting = past(m, port.valid & ~port.ready, name=f"{name}_waiting")
    held = past(m, _payload(port), name=f"{name}_held")
    with m.If(waiting & ~after_rst):
        m.d.comb += Assume(port.valid & (_payload(port) == held))


def sink(m, port, after_rst, name, *, ready=None):
    """Take the output stream ``port`` with arbitrary ``ready`` (or ``ready`` given) and
    assert the stream rules on it; with arbitrary ``ready``, cover a transfer after a stalled
    cycle."""
    cover = ready is None
    if ready is None:
        ready = any_seq(m, 1, f"{name}_ready")
    m.d.comb += port.ready.eq(ready)
    waiting = past(m, port.valid & ~port.ready, name=f"{name}_waiting")
    held = past(m, _payload(port), name=f"{name}_held")
    with m.If(after_rst):
        m.d.comb += Assert(~port.valid)
    with m.Elif(waiting):
        m.d.comb += [Assert(port.valid), Assert(_payload(port) == held)]
    if cover:
        m.d.comb += Cover(waiting & transfer(port))


class Counter:
    """A saturating cycle counter: ``clear`` restarts it at 0, else it counts ``step`` cycles."""

    def __init__(self, m, limit, step, clear, name):
        self.value = Signal(range(limit + 2), name=name)
        with m.If(clear):
            m.d.sync += self.value.eq(0)
        with m.Elif(step & (self.value <= limit)):
            m.d.sync += self.value.eq(self.value + 1)


class Token:
    """FIFO-contract tracker: one arbitrary input unit followed through a block.

    An arbitrary cycle (``AnySeq``) picks one input transfer; the spec keeps its ``value`` and
    counts the units still ahead of it. A unit is one input transfer in and the output beats
    up to one with ``out_end`` (a single beat for one-to-one blocks). ``ours`` is high on
    every output transfer of the picked unit; ``done`` after its final one; ``age`` counts
    cycles since the pick. Asserted here: no output unit ends while the block holds none
    (nothing created or duplicated) and no more than ``capacity`` units are inside.
    """

    def __init__(self, m, value, in_x, out_x, out_end, capacity, age_limit, name="tok"):
        value = Value.cast(value)
        width = range(capacity + 2)
        pick = any_seq(m, 1, f"{name}_pick")
        self.taken = Signal(name=f"{name}_taken")
        self.done = Signal(name=f"{name}_done")
        self.value = Signal(len(value), name=f"{name}_value")
        inside = Signal(width, name=f"{name}_inside")
        self.ahead = Signal(width, name=f"{name}_ahead")
        self.ahead_at_start = Signal(width, name=f"{name}_ahead_at_start")
        self.start = Signal(name=f"{name}_start")
        self.ours = Signal(name=f"{name}_ours")
        self.pending = Signal(name=f"{name}_pending")
        m.d.comb += [
            self.start.eq(in_x & pick & ~self.taken),
            self.pending.eq(self.taken & ~self.done),
            self.ours.eq(self.pending & out_x & (self.ahead == 0)),
        ]
        m.d.comb += Assert(~out_end | (inside != 0) | self.taken)
        m.d.comb += Assert(inside <= capacity)
        with m.If(~self.taken):
            m.d.sync += inside.eq(inside + in_x - out_end)
        with m.If(self.start):
            m.d.sync += [self.taken.eq(1), self.value.eq(value),
                         self.ahead.eq(inside - out_end), self.ahead_at_start.eq(inside)]
        with m.Elif(self.pending & out_end):
            with m.If(self.ahead == 0):
                m.d.sync += self.done.eq(1)
            with m.Else():
                m.d.sync += self.ahead.eq(self.ahead - 1)
        # Cycles since the pick: k in the k-th cycle after it (saturating past the limit).
        self.age = Signal(range(age_limit + 2), name=f"{name}_age")
        with m.If(self.start):
            m.d.sync += self.age.eq(1)
        with m.Elif(self.pending & (self.age <= age_limit)):
            m.d.sync += self.age.eq(self.age + 1)
