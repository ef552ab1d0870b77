"""Building blocks of the Huffman coders: a skid buffer, a queue, a canonical length decoder.

Each is a ``wiring.Component`` with its own contract below, its own tests
(``tests/test_coder_parts.py``) and, for the skid buffer, a formal proof
(``tests/formal/test_coder_parts_formal.py``). ``hdl/huffman_decoder.py`` is built from the
queue and the length decoder.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["CanonicalLength", "Queue", "SkidBuffer", "canonical_limits"]


def _check_width(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


class SkidBuffer(wiring.Component):
    """Two-entry skid buffer: cuts the ``ready`` path and registers the output.

    Parameters
    ----------
    width : int
        Payload width in bits (1 to 4096).

    Ports
    -----
    i_stream : In(stream)  payload ``width`` bits.
    o_stream : Out(stream)  the same beats, in order, none lost or duplicated.

    Contract: ``i_stream.ready`` and ``o_stream.valid`` / ``payload`` are register outputs
    (no combinational path from ``o_stream.ready`` or ``i_stream.valid`` to them); a beat
    taken in cycle t is offered from cycle t + 1; with ``o_stream.ready`` held high one beat
    passes per cycle; ``o_stream`` follows the stream rules whatever the input does (proved in
    ``tests/formal/test_coder_parts_formal.py``).
    """

    def __init__(self, width):
        self._width = _check_width("Payload width", width, 1, 4096)
        super().__init__({"i_stream": In(stream.Signature(unsigned(width))),
                          "o_stream": Out(stream.Signature(unsigned(width)))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        skid = Signal(self._width)
        skid_valid = Signal()
        m.d.comb += i.ready.eq(~skid_valid)
        with m.If(o.ready | ~o.valid):
            # The output register moves: from the skid entry if it holds a beat, else from
            # the input.
            m.d.sync += [o.valid.eq(skid_valid | i.valid),
                         o.payload.eq(Mux(skid_valid, skid, i.payload))]
            m.d.sync += skid_valid.eq(0)
        with m.Elif(i.valid & i.ready):
            # The output is stalled and the input delivers: park the beat.
            m.d.sync += [skid.eq(i.payload), skid_valid.eq(1)]
        return m


class Queue(wiring.Component):
    """First-in first-out queue with a registered output (``amaranth.lib.fifo``).

    Parameters
    ----------
    width : int
        Payload width in bits (1 to 4096).
    depth : int
        Beats it holds (2 to 1024).

    Ports
    -----
    i_stream : In(stream)  ``ready`` is high while fewer than ``depth`` beats are held.
    o_stream : Out(stream)  the beats in order; ``valid`` and ``payload`` are registers.
    level : Out(range(depth + 1))  beats held.

    Contract: a beat taken in cycle t is offered from cycle t + 2 at the earliest; with
    ``o_stream.ready`` held high one beat passes per cycle. A producer that counts its own
    beats in flight (a credit counter against ``depth``) may ignore ``i_stream.ready``.
    """

    def __init__(self, width, depth):
        self._width = _check_width("Payload width", width, 1, 4096)
        self._depth = _check_width("Queue depth", depth, 2, 1024)
        super().__init__({"i_stream": In(stream.Signature(unsigned(width))),
                          "o_stream": Out(stream.Signature(unsigned(width))),
                          "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self._width, depth=self._depth)
        i, o = self.i_stream, self.o_stream
        m.d.comb += [fifo.w_en.eq(i.valid), fifo.w_data.eq(i.payload), i.ready.eq(fifo.w_rdy),
                     o.valid.eq(fifo.r_rdy), o.payload.eq(fifo.r_data), fifo.r_en.eq(o.ready),
                     self.level.eq(fifo.level)]
        return m


def canonical_limits(counts, max_len):
    """Per length 1..L: (first code, base position, left-justified limit) of a canonical code
    with ``counts[l - 1]`` codes of length l (the values ``CanonicalLength`` compares with)."""
    first, base, limit = [], [], []
    code = pos = 0
    for length in range(1, max_len + 1):
        n = int(counts[length - 1]) if length <= len(counts) else 0
        first.append(code)
        base.append(pos)
        limit.append((code + n) << (max_len - length))
        code = (code + n) << 1
        pos += n
    return first, base, limit


class CanonicalLength(wiring.Component):
    """Length of the canonical Huffman code at the top of a bit window (combinational).

    The hardware twin of golden's slow lookup (``golden.codec.tables``: the first length l
    whose left-justified limit ``(first_l + count_l) << (L - l)`` lies above the window's top
    L bits). A length-l code is decided by its top l bits, so the compare for length l uses
    only l bits of the window and l + 1 of the limit (a limit of ``2**l`` is never reached);
    the compares form a thermometer code, turned into a one-hot and a binary length.

    Parameters
    ----------
    max_len : int
        Longest code L, 1 to 24.
    extra_width : int
        Width of ``extra`` (the raw bits after ESC), 1 to 8.

    Ports
    -----
    top : In(L)  the window's top L bits, MSB first.
    limits : In(L * (L + 1))  limit of length l at bits ``[(l - 1)(L + 1), l (L + 1))``.
    esc : In(1)  the table has an ESC code; ``esc_lo`` / ``esc_hi`` : In(L + 1) its
        left-justified range ``[code << (L - n), (code + 1) << (L - n))``.
    esc_total : In(range(L + 9))  ESC length plus raw bits.
    onehot : Out(L + 1)  bit l set for a length-l code (none when ``invalid``).
    length : Out(range(L + 1))  the code length (binary).
    is_esc : Out(1)  the code is ESC.
    total : Out(range(L + 9))  bits to consume: ``esc_total`` for ESC, else ``length``.
    invalid : Out(1)  the window lies past the last limit (unassigned code space).
    """

    def __init__(self, max_len, extra_width=8):
        L = self._L = _check_width("Maximum code length", max_len, 1, 24)
        self._x = _check_width("Extra width", extra_width, 1, 8)
        super().__init__({
            "top": In(L), "limits": In(L * (L + 1)), "esc": In(1), "esc_lo": In(L + 1),
            "esc_hi": In(L + 1), "esc_total": In(range(L + extra_width + 1)),
            "onehot": Out(L + 1), "length": Out(range(L + 1)), "is_esc": Out(1),
            "total": Out(range(L + extra_width + 1)), "invalid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        L = self._L
        top = self.top
        ge = Signal(L)
        for j in range(L):
            lim = self.limits[j * (L + 1):(j + 1) * (L + 1)]
            m.d.comb += ge[j].eq(top[L - 1 - j:] >= lim[L - 1 - j:])
        for ln in range(1, L + 1):
            m.d.comb += self.onehot[ln].eq(~ge[ln - 1] & (ge[ln - 2] if ln > 1 else 1))
        for k in range(len(self.length)):
            m.d.comb += self.length[k].eq(
                Cat(self.onehot[t] for t in range(1, L + 1) if t >> k & 1).any())
        m.d.comb += [
            self.is_esc.eq(self.esc & (top >= self.esc_lo) & (top < self.esc_hi)),
            self.total.eq(Mux(self.is_esc, self.esc_total, self.length)),
            self.invalid.eq(ge[L - 1]),
        ]
        return m
