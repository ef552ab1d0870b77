"""Probe: how fast can a one-code-per-cycle Huffman decode loop run on the open FPGA flow, in
which structure? The measurement behind docs/fpga.md, "Decode loop probe".

    python scripts/probe_decode_loop.py [--targets ecp5-25k] [--seeds 3] [--out build/probe]

Builds bare decode loops at the default point (b = 8, L = 12, W = 32, one group, limits
and ESC range as inputs) and runs each through ``scripts/fpga_flow.py`` (registered I/O,
synthesis, nextpnr, median of the seeds):

- ``loop_now``: the structure of ``hdl.huffman_decoder`` today. Each cycle the canonical
  length decoder (``hdl.coder_parts.CanonicalLength``) reads the buffer's top L bits, and the
  buffer shifts by the result: compare, select and shift all lie in one cycle.
- ``loop_lookahead``: the length of the code at the top is a register. Each cycle the buffer
  shifts by it while L + 1 length decoders read the buffer at offsets 0 .. L (where the next
  code starts for each possible current length), and the register takes the one the current
  length selects: compare and shift fall into two paths, buffer -> compares -> select ->
  length register and length register -> shift -> buffer, instead of one. After an ESC code
  (its length with the raw bits is not among the offsets) the next length is read at offset
  0 a cycle later: one bubble per escape.
- ``loop_lookahead_onehot``: the same with only the one-hot length and the ESC flag as loop
  registers, the shift amount encoded from them at the start of the cycle.
- ``loop_short``: the length of a code of at most 6 bits read from a 64-entry distributed-RAM
  table at the buffer's top; longer codes take a second cycle (``ShortTableLoop``).
- ``loop_slow2``, ``loop_slow3``, ``loop_slow4``: 2, 3 or 4 lanes taking turns in one loop cut
  into as many register stages (``InterleavedLoop``): one code per cycle in total, each lane
  one per C cycles.
- ``loop_map``: the lengths first, then the loop (``MapLoop``): a feed-forward stage gives
  each bit position of a word the position where the next code would start; the loop is one
  select of that map by its position. docs/fpga.md, "Decode loop probe, second pass".
- ``loop_pair``: the map loop with two codes a turn (``PairMapLoop``): the map gives each
  position the position after the next two codes, and a turn's select is cut into two
  register stages. docs/fpga.md, "Decode loop probe, third pass".

They are loops only (no symbol memory, queue, tile control or table loader): the symbol's
window and length go to registered outputs, which is what the decoder's pipeline takes from
its loop. They differ only in the loop, so their Fmax and LUTs compare the structures.
``tests/test_probe_decode_loop.py`` checks that they all decode a coded tile alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amaranth.hdl import Cat, Const, Module, Mux, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hdl.coder_parts import CanonicalLength  # noqa: E402

B_BITS, MAX_LEN, WORD = 8, 12, 32


class DecodeLoop(wiring.Component):
    """A bare decode loop: W-bit words in, per cycle one code's window and total out.

    Ports: ``i_word``/``i_valid``/``i_ready`` the words (MSB first); ``room`` gates decoding
    (the decoder's output credit); ``limits``, ``esc``, ``esc_lo``, ``esc_hi``, ``esc_total``
    the table (``CanonicalLength``'s inputs); ``o_valid``, ``o_window`` (L + b bits),
    ``o_total`` the decoded code each cycle.
    """

    def __init__(self, lookahead: bool, b=B_BITS, max_len=MAX_LEN, word_width=WORD, *,
                 onehot=False, extra=None):
        self._la = lookahead
        self._onehot = onehot
        self._b, self._L, self._W = b, max_len, word_width
        L, CW = max_len, max_len + b
        super().__init__({
            "i_word": In(word_width), "i_valid": In(1), "i_ready": Out(1), "room": In(1),
            "limits": In(L * (L + 1)), "esc": In(1), "esc_lo": In(L + 1),
            "esc_hi": In(L + 1), "esc_total": In(range(CW + 1)),
            "o_valid": Out(1), "o_window": Out(CW), "o_total": Out(range(CW + 1)),
            **(extra or {})})

    def _length_unit(self, m, name, top):
        cl = CanonicalLength(self._L, self._b)
        m.submodules[name] = cl
        m.d.comb += [cl.top.eq(top), cl.limits.eq(self.limits), cl.esc.eq(self.esc),
                     cl.esc_lo.eq(self.esc_lo), cl.esc_hi.eq(self.esc_hi),
                     cl.esc_total.eq(self.esc_total)]
        return cl

    def _map_compares(self, m, both, load):
        """Map stage M0 of the map loops: on ``load``, per position j of the word (0 = its
        MSB) the L limit compares of the L bits of ``both`` from there (a thermometer) and
        the ESC range check, registered. Returns the registers ``(ges, escs)``."""
        L, W = self._L, self._W
        ges = [Signal(L, name=f"ge{j}") for j in range(W)]
        escs = [Signal(name=f"esc{j}") for j in range(W)]
        with m.If(load):
            for j in range(W):
                top = both[len(both) - j - L:len(both) - j]
                m.d.sync += [ges[j].eq(Cat(
                    top[L - 1 - t:] >= self.limits[t * (L + 1):(t + 1) * (L + 1)][L - 1 - t:]
                    for t in range(L))),
                    escs[j].eq(self.esc & (top >= self.esc_lo) & (top < self.esc_hi))]
        return ges, escs

    def _buffer(self, m):
        """The bit buffer and its word input: (B, buf, fill, take, merged), ``merged`` the
        buffer with this cycle's word placed below its ``fill`` bits."""
        W, CW = self._W, self._L + self._b
        B = W + 2 * CW
        buf = Signal(B)
        fill = Signal(range(B + 1))
        take = Signal()
        m.d.comb += [take.eq(self.i_valid & (fill <= B - W)), self.i_ready.eq(take)]
        merged = Signal(B)
        m.d.comb += merged.eq(buf | Mux(take, Cat(Const(0, B - W), self.i_word) >> fill, 0))
        return B, buf, fill, take, merged

    def elaborate(self, platform):
        m = Module()
        b, L, W = self._b, self._L, self._W
        CW = L + b
        B, buf, fill, take, merged = self._buffer(m)
        need = 2 * L if self._la else CW     # bits the loop reads past the top

        step = Signal()
        total = Signal(range(CW + 1))
        if not self._la:
            cl = self._length_unit(m, "length", buf[B - L:])
            m.d.comb += [total.eq(cl.total),
                         step.eq(self.room & (fill >= need) & ~cl.invalid)]
        else:
            # The current code's length: a register (binary for the shift, one-hot over
            # 1 .. L for the select), valid unless the previous code was ESC.
            known = Signal()
            cur_total = Signal(range(CW + 1))
            if self._onehot:
                # Only the one-hot length and the ESC flag are loop registers; the shift
                # amount is encoded from them (registers) at the start of the next cycle.
                cur_total_r = Signal(range(CW + 1))
            else:
                cur_total_r = cur_total
            cur_sel = Signal(L + 1)
            cur_esc = Signal()
            units = [self._length_unit(m, f"length{s}", buf[B - s - L:B - s])
                     for s in range(L + 1)]
            m.d.comb += [total.eq(cur_total),
                         step.eq(self.room & (fill >= need) & known)]
            pick_total = 0
            pick_sel = 0
            pick_esc = 0
            pick_bad = 0
            for s in range(1, L + 1):
                u = units[s]
                pick_total = pick_total | Mux(cur_sel[s], u.total, 0)
                pick_sel = pick_sel | Mux(cur_sel[s], u.onehot, 0)
                pick_esc = pick_esc | (cur_sel[s] & u.is_esc)
                pick_bad = pick_bad | (cur_sel[s] & u.invalid)
            u0 = units[0]
            if self._onehot:
                binary = Signal(range(L + 1))
                for k in range(len(binary)):
                    m.d.comb += binary[k].eq(
                        Cat(cur_sel[t] for t in range(1, L + 1) if t >> k & 1).any())
                m.d.comb += cur_total.eq(Mux(cur_esc, self.esc_total, binary))
            with m.If(step):
                # Shift past this code; the next one's length is the unit at its offset
                # (unknown after ESC: read at offset 0 next cycle).
                m.d.sync += [cur_total_r.eq(pick_total), cur_sel.eq(pick_sel),
                             cur_esc.eq(pick_esc), known.eq(~cur_esc & ~pick_bad)]
            with m.Elif(~known & (fill >= need)):
                m.d.sync += [cur_total_r.eq(u0.total), cur_sel.eq(u0.onehot),
                             cur_esc.eq(u0.is_esc), known.eq(~u0.invalid)]

        if not self._la:
            shifted = Signal(B)
            m.d.comb += shifted.eq(merged << total)
            m.d.sync += [buf.eq(Mux(step, shifted[:B], merged)),
                         fill.eq(fill + Mux(take, W, 0) - Mux(step, total, 0))]
        else:
            # Everything the shift needs comes from registers: the buffer shifted by the
            # current length, the word placed below the bits left after that shift (at
            # fill - length) or below all of them; step and take only pick.
            word = Cat(Const(0, B - W), self.i_word)
            after = Signal(range(B + 1))
            m.d.comb += after.eq(fill - cur_total)
            kept = Signal(B)
            m.d.comb += kept.eq((buf << cur_total)[:B] | Mux(take, word >> after, 0))
            m.d.sync += [buf.eq(Mux(step, kept, merged)),
                         fill.eq(Mux(step, after, fill) + Mux(take, W, 0))]
        m.d.sync += [self.o_valid.eq(step), self.o_window.eq(buf[B - CW:]),
                     self.o_total.eq(total)]
        return m


SHORT = 6   # short-code table index bits (loop_short)


def short_entries(limits, esc_lo, esc_hi, max_len=MAX_LEN, short=SHORT):
    """``ShortTableLoop``'s table for a canonical code: for each ``short``-bit prefix, its entry
    ``len | short_flag << 3 | esc_flag << 4`` (a code of at most ``short`` bits: its length;
    the ESC code of at most ``short`` bits: the ESC flag; else 0, resolved by the compares).
    ``limits`` are the left-justified limits per length (``canonical_limits``)."""
    out = []
    for p in range(1 << short):
        top = p << (max_len - short)
        length = next((ln for ln in range(1, max_len + 1) if top < limits[ln - 1]), 0)
        if not 1 <= length <= short:
            out.append(0)
            continue
        # The whole code lies in the prefix: every window with this prefix has this length.
        if esc_lo <= top < esc_hi:
            out.append(length | 1 << 4)
        else:
            out.append(length | 1 << 3)
    return out


class ShortTableLoop(DecodeLoop):
    """``loop_short``: the length of a code of at most ``SHORT`` bits from a ``2**SHORT``-entry
    table read at the buffer's top (distributed RAM, written through ``t_addr``/``t_data``/
    ``t_en``), so the loop is table read, shift; a longer code (or ESC with a longer code) takes
    a second cycle: the length decoder's one-hot result is registered in the first and the
    shift uses it in the second."""

    def __init__(self, **kw):
        super().__init__(False, extra={"t_addr": In(SHORT), "t_data": In(5), "t_en": In(1)},
                         **kw)

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory

        m = Module()
        b, L, W = self._b, self._L, self._W
        CW = L + b
        B, buf, fill, take, merged = self._buffer(m)

        m.submodules.table = table = Memory(shape=5, depth=1 << SHORT, init=[])
        wp = table.write_port()
        rp = table.read_port(domain="comb")
        m.d.comb += [wp.addr.eq(self.t_addr), wp.data.eq(self.t_data), wp.en.eq(self.t_en),
                     rp.addr.eq(buf[B - SHORT:])]
        ent = rp.data
        cl = self._length_unit(m, "length", buf[B - L:])
        slow = Signal()
        s_sel = Signal(L + 1)
        s_esc = Signal()
        binary = Signal(range(L + 1))
        for k in range(len(binary)):
            m.d.comb += binary[k].eq(Cat(s_sel[t] for t in range(1, L + 1) if t >> k & 1).any())
        fast_ok = ent[3] | ent[4]
        total = Signal(range(CW + 1))
        m.d.comb += total.eq(Mux(slow, Mux(s_esc, self.esc_total, binary),
                                 Mux(ent[4], self.esc_total, ent[:3])))
        ready = Signal()
        step = Signal()
        m.d.comb += [ready.eq(self.room & (fill >= CW)), step.eq(ready & (slow | fast_ok))]
        with m.If(ready):
            with m.If(slow):
                m.d.sync += slow.eq(0)
            with m.Elif(~fast_ok & ~cl.invalid):
                m.d.sync += [slow.eq(1), s_sel.eq(cl.onehot), s_esc.eq(cl.is_esc)]
        shifted = Signal(B)
        m.d.comb += shifted.eq(merged << total)
        m.d.sync += [buf.eq(Mux(step, shifted[:B], merged)),
                     fill.eq(fill + Mux(take, W, 0) - Mux(step, total, 0)),
                     self.o_valid.eq(step), self.o_window.eq(buf[B - CW:]),
                     self.o_total.eq(total)]
        return m


class InterleavedLoop(wiring.Component):
    """``loop_slow2`` / ``loop_slow3``: C substreams (lanes) take turns in one decode loop cut
    into C register stages (C-slow): each lane's code is decided and shifted out over C
    cycles, while the other lanes use the other stages, so the loop still gives one code per
    cycle in total. C = 2: compares and length | shift. C = 3: compares (to a one-hot length)
    | binary length and ESC select | shift. The lanes' buffers rotate through the stages (no
    multiplexer in front of any stage); each lane's words enter at the shift stage.

    Ports as ``DecodeLoop`` but one word input per lane (``i_word{l}``, ``i_valid{l}``,
    ``i_ready{l}``) and ``o_lane``, the lane of the code on the outputs.
    """

    def __init__(self, slow, b=B_BITS, max_len=MAX_LEN, word_width=WORD):
        if slow not in (2, 3, 4):
            raise ValueError(f"Interleaving of 2, 3 or 4 lanes, not {slow}")
        self._c = slow
        self._b, self._L, self._W = b, max_len, word_width
        L, CW = max_len, max_len + b
        ports = {"room": In(1), "limits": In(L * (L + 1)), "esc": In(1),
                 "esc_lo": In(L + 1), "esc_hi": In(L + 1), "esc_total": In(range(CW + 1)),
                 "o_valid": Out(1), "o_window": Out(CW), "o_total": Out(range(CW + 1)),
                 "o_lane": Out(range(slow))}
        for lane in range(slow):
            ports.update({f"i_word{lane}": In(word_width), f"i_valid{lane}": In(1),
                          f"i_ready{lane}": Out(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        b, L, W, C = self._b, self._L, self._W, self._c
        CW = L + b
        B = W + 2 * CW
        bufs = [Signal(B, name=f"buf{k}") for k in range(C)]
        fills = [Signal(range(B + 1), name=f"fill{k}") for k in range(C)]
        lanes = [Signal(range(C), name=f"lane{k}", init=k) for k in range(C)]
        cl = CanonicalLength(L, b)
        m.submodules.length = cl
        m.d.comb += [cl.top.eq(bufs[0][B - L:]), cl.limits.eq(self.limits),
                     cl.esc.eq(self.esc), cl.esc_lo.eq(self.esc_lo), cl.esc_hi.eq(self.esc_hi),
                     cl.esc_total.eq(self.esc_total)]
        ok0 = self.room & (fills[0] >= CW) & ~cl.invalid
        # Stage registers carrying the decision from stage 0 to the shift stage.
        total = Signal(range(CW + 1))
        ok = Signal()
        if C == 2:
            m.d.sync += [total.eq(cl.total), ok.eq(ok0)]
        else:
            sel = Signal(L + 1)
            is_esc = Signal()
            ok1 = Signal()
            m.d.sync += [sel.eq(cl.onehot), is_esc.eq(cl.is_esc), ok1.eq(ok0)]
            binary = Signal(range(L + 1))
            for k in range(len(binary)):
                m.d.comb += binary[k].eq(Cat(sel[t] for t in range(1, L + 1) if t >> k & 1).any())
            length1 = Signal(range(CW + 1))
            m.d.comb += length1.eq(Mux(is_esc, self.esc_total, binary))
            if C == 3:
                m.d.sync += [total.eq(length1), ok.eq(ok1)]
            else:
                # One more stage: the length and its flag wait a cycle for the placement.
                total2 = Signal(range(CW + 1))
                ok2 = Signal()
                m.d.sync += [total2.eq(length1), ok2.eq(ok1), total.eq(total2), ok.eq(ok2)]
        last = C - 1
        buf, fill, lane = bufs[last], fills[last], lanes[last]
        # The word for the lane entering the shift stage is taken in an earlier stage (its fill
        # is final from stage 0 on), so the shift stage gets it from a register; it is placed
        # below the bits left after the shift (at fill - length) while the buffer shifts. With
        # C = 4 the placement itself is a stage of its own.
        wstage = last - 1 if C < 4 else 1
        pre_fill, pre_lane = fills[wstage], lanes[wstage]
        word = Signal(W)
        take = Signal()
        take_r = Signal()
        valid = Cat(*[getattr(self, f"i_valid{x}") for x in range(C)]).bit_select(pre_lane, 1)
        m.d.comb += take.eq(valid & (pre_fill <= B - W))
        for x in range(C):
            m.d.comb += getattr(self, f"i_ready{x}").eq(take & (pre_lane == x))
        m.d.sync += [word.eq(Cat(*[getattr(self, f"i_word{x}") for x in range(C)])
                             .word_select(pre_lane, W)), take_r.eq(take)]
        wide = Cat(Const(0, B - W), word)
        amt = Signal(range(B + 1))       # where the word goes: fill - length, or fill
        if C == 2:
            m.d.comb += amt.eq(Mux(ok, fill - total, fill))
        else:
            # From stage 1's registers and its length (C = 3: for the shift stage; C = 4: for
            # the placement stage, which registers the placed word and the take).
            m.d.sync += amt.eq(Mux(ok1, pre_fill - length1, pre_fill))
        if C == 4:
            placed = Signal(B)
            take_p = Signal()
            m.d.sync += [placed.eq(Mux(take_r, wide >> amt, 0)), take_p.eq(take_r)]
            take_r = take_p
        else:
            placed = Mux(take_r, wide >> amt, 0)
        shifted = Signal(B)
        m.d.comb += shifted.eq(Mux(ok, buf << total, buf)[:B] | placed)
        take = take_r
        # Rotate: the shifted lane re-enters stage 0; the others move one stage on.
        m.d.sync += [bufs[0].eq(shifted),
                     fills[0].eq(fill + Mux(take, W, 0) - Mux(ok, total, 0)),
                     lanes[0].eq(lane)]
        for k in range(1, C):
            m.d.sync += [bufs[k].eq(bufs[k - 1]), fills[k].eq(fills[k - 1]),
                         lanes[k].eq(lanes[k - 1])]
        m.d.sync += [self.o_valid.eq(ok), self.o_window.eq(buf[B - CW:]),
                     self.o_total.eq(total), self.o_lane.eq(lane)]
        return m


class MapLoop(DecodeLoop):
    """``loop_map``: lengths first, then the loop. A feed-forward map stage gives every bit
    position j of a word, before the word reaches the loop, the position where the next code
    would start if a code started at j: ``next[j] = j + total``. It is two register stages:
    the L limit compares and the ESC range check at each of the W positions (reading the
    word and the first L - 1 bits of the one after it), then ``next[j]`` (an AND-OR of
    constants over the one-hot length, or ``j`` + the ESC total) and whether it falls in its
    word's last L + b positions, into a queue (``hdl.coder_parts.Queue``) of words with their
    maps. ``next[j]`` is at most ``W - 1 + L + b``: in this word or the next.

    The loop holds two word slots in a ring (bits and map each) and a position (slot, p).
    Each cycle ``p <- next[slot, p]`` (low bits) and the slot flips on its top bit: one
    2W-to-1 select and an XOR, no compare, add or shift. A slot the loop has left is
    refilled from the queue the cycle after, from registers only; a step into the other
    slot waits until it is filled. The code's window (the ``L + b`` bits from p) is a
    feed-forward select of the registers; its bits past the code are undefined (the other
    slot may already hold a later word). The tile's last word needs a word (or a flush)
    behind it before its map exists, which this probe does not model.
    """

    QUEUE_DEPTH = 3

    def __init__(self, **kw):
        super().__init__(False, **kw)

    def elaborate(self, platform):
        from hdl.coder_parts import Queue

        m = Module()
        b, L, W = self._b, self._L, self._W
        CW = L + b
        P = (W - 1).bit_length()         # bits of a position in a word
        N = P + 1                        # bits of a next position (< 2 W)
        ENT = N + 2                      # next position, the invalid flag, its near_end
        # The map stage: word x waits for its successor (the input word), then x with its
        # map goes into the queue.
        x = Signal(W)
        xv = Signal()
        m.submodules.queue = q = Queue(W + W * ENT, self.QUEUE_DEPTH)
        both = Cat(self.i_word[W - (L - 1):], x)     # x's bits, then L - 1 of the next word
        # Stage M0 (registered): per position j (0 = x's first bit, its MSB), the L compares
        # of the L bits from there with the limits (a thermometer) and the ESC range check.
        # Stage M1 (into the queue): thermometer -> next position and its near-end bit.
        m0v = Signal()
        m0x = Signal(W)
        load = Signal()
        push = Signal()
        m.d.comb += [push.eq(m0v & q.i_stream.ready),
                     load.eq(xv & self.i_valid & (~m0v | push)),
                     self.i_ready.eq(~xv | load)]
        ges, escs = self._map_compares(m, both, load)
        with m.If(load):
            m.d.sync += [m0v.eq(1), m0x.eq(x)]
        with m.Elif(push):
            m.d.sync += m0v.eq(0)
        with m.If(self.i_valid & self.i_ready):
            m.d.sync += [x.eq(self.i_word), xv.eq(1)]
        entries = []
        for j in range(W):
            # next = j + length as an AND-OR of constants over the one-hot length (no adder
            # after the compares); j + the ESC total from registers beside it. An unassigned
            # code (past the last limit) points at itself.
            ge = ges[j]
            terms = [Mux(~ge[t - 1] & (ge[t - 2] if t > 1 else 1), (j + t) % (1 << N), 0)
                     for t in range(1, L + 1)]
            by_len = terms[0]
            for t in terms[1:]:
                by_len = by_len | t
            esc_next = Signal(N, name=f"esc_next{j}")
            m.d.comb += esc_next.eq(j + self.esc_total)
            nxt_j = Mux(ge[L - 1], j, Mux(escs[j], esc_next, by_len))
            # And whether the next position lies in its word's last L + b positions.
            near_j = Signal(name=f"near{j}")
            m.d.comb += near_j.eq(nxt_j[:P] >= W - CW)
            entries.append(Cat(nxt_j[:N], ge[L - 1], near_j))
        m.d.comb += [q.i_stream.valid.eq(push), q.i_stream.payload.eq(Cat(m0x, *entries))]

        # The loop: two word slots in a ring (their bits and maps); the ring position is
        # (slot, p). A code's next position lies in its own slot or the other one: p takes
        # its low bits, the slot flips on the top bit. Nothing but that select is in the
        # loop: the clock enable of (slot, p) comes from registers only. A code at an
        # unassigned position (``bad``) has itself as its next position (the map stores so),
        # so the loop stays there without a condition; so do the maps at reset. A code can
        # run into the other slot only from the slot's last L + b positions (``near_end``,
        # taken from the map with the position): there the loop waits for the other slot. A
        # slot the loop has left is refilled from the queue from registers only.
        bits = [Signal(W, name=f"s{k}_bits") for k in range(2)]
        selfs = sum(((j | 1 << N | int(j >= W - CW) << (N + 1)) << (j * ENT))
                    for j in range(W))      # next = j, bad
        maps = [Signal(W * ENT, name=f"s{k}_map", init=selfs) for k in range(2)]
        sv = [Signal(name=f"s{k}_valid") for k in range(2)]
        slot = Signal()
        p = Signal(P)
        near_end = Signal()
        head = q.o_stream
        ent = Signal(ENT)
        m.d.comb += ent.eq(Cat(maps[0], maps[1]).word_select(Cat(p, slot), ENT))
        nxt, bad = ent[:N], ent[N]
        cross = nxt[P]
        other_ok = Mux(slot, sv[0], sv[1])
        run = Signal()
        m.d.comb += run.eq(self.room & (other_ok | ~near_end))
        with m.If(run):
            m.d.sync += [p.eq(nxt[:P]), slot.eq(slot ^ cross),
                         near_end.eq(ent[N + 1])]
        step = Signal()
        m.d.comb += step.eq(run & ~bad)
        # Refill: an empty slot (slot 0 first), from registers only.
        target = Signal()
        m.d.comb += [target.eq(sv[0]), head.ready.eq(~(sv[0] & sv[1]))]
        for k in range(2):
            with m.If(head.valid & head.ready & (target == k)):
                m.d.sync += [bits[k].eq(head.payload[:W]), maps[k].eq(head.payload[W:]),
                             sv[k].eq(1)]
            with m.Elif(run & cross & (slot == k)):
                m.d.sync += sv[k].eq(0)
        # The code's window and total, a cycle later from registers (outside the loop; the
        # slot a code starts in is refilled two cycles after the step at the earliest).
        v0, p0, slot0, nxt0 = Signal(), Signal(P), Signal(), Signal(N)
        m.d.sync += [v0.eq(step), p0.eq(p), slot0.eq(slot), nxt0.eq(nxt)]
        two = Mux(slot0, Cat(bits[0], bits[1]), Cat(bits[1], bits[0]))
        m.d.sync += [self.o_valid.eq(v0),
                     self.o_window.eq((two << p0)[2 * W - CW:2 * W]),
                     self.o_total.eq(nxt0 - p0)]
        return m



class PairMapLoop(MapLoop):
    """``loop_pair``: two codes per turn of the loop, the turn cut into two register stages.

    ``loop_map``'s loop is one select of a word's map by its position, and that select is
    the whole critical path. Here the map gives each position j of word w the position
    after the *two* codes from j (``next2[j] = next[next[j]]``, where ``next[j]`` may lie in
    word w + 1, and ``next2[j]`` in w + 2), so one turn decodes two codes, and a turn may
    take two cycles: stage A selects, for each of the 16 groups of 8 entries of the four
    slots, the entry at the position's low 3 bits (registered); stage B selects one of the
    16 by the slot and the position's high bits and adds the word step (0 to 2) to the
    slot. One code per cycle in total, as ``loop_map``, with each cycle's logic a 16-to-1
    select or less.

    Map stages (all feed-forward, each registered; a stage moves on when the next one was
    empty at the start of the cycle, so at most one word every two cycles, more than the
    loop's 20 bits a cycle at most on codes that average under 16 bits):
    M0 the limit compares and the ESC range check at each position (as ``loop_map``);
    M1 each position's total as a one-hot (``t = 0`` for an unassigned code, which points at
    itself), M2 ``next[j]`` and the total from it (AND-ORs of constants); then P, which holds
    word w until word w + 1 is in M2, and Q and R, which compute each entry of word w:
    ``next2`` and the second code's total, AND-ORs over the first code's one-hot total of
    the next positions and totals of both words (a quarter of the terms each in Q), and the
    first code's total.

    The loop: four word slots in a ring, a slot pointer ``s`` (3 bits, mod 8 against the
    fill pointer) and a position p. A turn starts (stage A) when the output has room and
    the words ``s``, ``s + 1`` and ``s + 2`` are in (from registers); those three words are
    registered in the turn's first cycle, the 2 (L + b) bits from p in its second, and the
    two codes' windows and totals go out in the two cycles after it, from registers; a slot
    is refilled a cycle after the position has left it. The tile's end and the error cases
    are not modelled (as ``loop_map``).
    """

    SLOTS = 4   # word slots in the ring (the 3-bit pointers and 2-bit slot indices assume 4)

    def elaborate(self, platform):
        m = Module()
        b, L, W = self._b, self._L, self._W
        CW = L + b
        P = (W - 1).bit_length()        # bits of a position in a word (5)
        N1 = P + 1                      # next: below 2 W
        N2 = P + 2                      # next2: below 3 W (W - 1 + 2 CW <= 3 W - 1)
        T = CW + 1                      # one-hot total, t = 0 .. CW
        TB = CW.bit_length()            # bits of a total
        ENT = N2 + 2 * TB               # a map entry: next2, the two codes' totals
        assert W - 1 + 2 * CW < 3 * W and (W - 1) + CW < 2 * W

        # M0: the word x waits for its successor; then the compares at each position.
        x = Signal(W)
        xv = Signal()
        m0v, m0x = Signal(), Signal(W)
        both = Cat(self.i_word[W - (L - 1):], x)
        load0 = Signal()
        m.d.comb += [load0.eq(xv & self.i_valid & ~m0v), self.i_ready.eq(~xv | load0)]
        ges, escs = self._map_compares(m, both, load0)
        with m.If(load0):
            m.d.sync += [m0v.eq(1), m0x.eq(x)]
        with m.If(self.i_valid & self.i_ready):
            m.d.sync += [x.eq(self.i_word), xv.eq(1)]

        # M1: the one-hot total of each position.
        m1v, m1x = Signal(), Signal(W)
        tohs = [Signal(T, name=f"toh{j}") for j in range(W)]
        esc_oh = Signal(T)
        m.d.comb += esc_oh.eq(Const(1, T) << self.esc_total)
        with m.If(m0v & ~m1v):
            m.d.sync += [m1v.eq(1), m0v.eq(0), m1x.eq(m0x)]
            for j in range(W):
                ge = ges[j]
                by_len = Cat(Const(0, 1), *[~ge[t - 1] & (ge[t - 2] if t > 1 else 1)
                                            for t in range(1, L + 1)], Const(0, T - L - 1))
                m.d.sync += tohs[j].eq(Mux(ge[L - 1], 1, Mux(escs[j], esc_oh, by_len)))

        # M2: next[j] = j + t and the total t from the one-hot total (constants ORed).
        m2v, m2x = Signal(), Signal(W)
        m2toh = [Signal(T, name=f"m2_toh{j}") for j in range(W)]
        nexts = [Signal(N1, name=f"next{j}") for j in range(W)]
        tots = [Signal(TB, name=f"total{j}") for j in range(W)]

        def and_or(onehot, values):
            acc = Mux(onehot[0], values[0], 0)
            for t in range(1, len(values)):
                acc = acc | Mux(onehot[t], values[t], 0)
            return acc

        with m.If(m1v & ~m2v):
            m.d.sync += [m2v.eq(1), m1v.eq(0), m2x.eq(m1x)]
            for j in range(W):
                m.d.sync += [m2toh[j].eq(tohs[j]),
                             nexts[j].eq(and_or(tohs[j], [j + t for t in range(T)])),
                             tots[j].eq(and_or(tohs[j], list(range(T))))]

        # P: word w waits here for word w + 1 in M2; then word w's entries go to the output
        # register R: ``next2`` and the totals of the two codes from j, while w + 1 takes
        # its place.
        av, ax = Signal(), Signal(W)
        atoh = [Signal(T, name=f"a_toh{j}") for j in range(W)]
        anext = [Signal(N1, name=f"a_next{j}") for j in range(W)]
        atot = [Signal(TB, name=f"a_total{j}") for j in range(W)]
        qv, qx = Signal(), Signal(W)
        rv, rx = Signal(), Signal(W)
        rent = [Signal(ENT, name=f"r_entry{j}") for j in range(W)]
        pair = Signal()
        q_to_r = Signal()
        take_r = Signal()
        # (Each move from registers only: into a stage that was empty at the start of the
        # cycle, as in M0 to M2.)
        m.d.comb += [q_to_r.eq(qv & ~rv), pair.eq(av & m2v & ~qv)]
        with m.If(m2v & (~av | pair)):
            m.d.sync += [av.eq(1), m2v.eq(0), ax.eq(m2x)]
            m.d.sync += [atoh[j].eq(m2toh[j]) for j in range(W)]
            m.d.sync += [anext[j].eq(nexts[j]) for j in range(W)]
            m.d.sync += [atot[j].eq(tots[j]) for j in range(W)]
        # Next position and total of any position k of words w, w + 1 (k < 2 W; positions
        # from w's start). ``next2`` and the second total are AND-ORs over the one-hot total
        # (t = 0: an unassigned code, which points at itself), in two stages: Q holds the
        # OR of each quarter of the terms, R the OR of the quarters.
        absnext = [anext[k] for k in range(W)] + [W + nexts[k] for k in range(W)]
        abstot = [atot[k] for k in range(W)] + [tots[k] for k in range(W)]
        quarters = [range(q, T, 4) for q in range(4)]
        qn2 = [[Signal(N2, name=f"q_next2_{j}_{q}") for q in range(4)] for j in range(W)]
        qt2 = [[Signal(TB, name=f"q_total2_{j}_{q}") for q in range(4)] for j in range(W)]
        qt1 = [Signal(TB, name=f"q_total{j}") for j in range(W)]
        with m.If(pair):
            m.d.sync += [qv.eq(1), qx.eq(ax)]
            for j in range(W):
                m.d.sync += qt1[j].eq(atot[j])
                for q, ts in enumerate(quarters):
                    h = atoh[j]
                    m.d.sync += [
                        qn2[j][q].eq(and_or([h[t] for t in ts],
                                            [absnext[j + t] if t else j for t in ts])),
                        qt2[j][q].eq(and_or([h[t] for t in ts],
                                            [abstot[j + t] if t else 0 for t in ts]))]
        with m.Elif(q_to_r):
            m.d.sync += qv.eq(0)
        with m.If(q_to_r):
            m.d.sync += [rv.eq(1), rx.eq(qx)]
            for j in range(W):
                n2 = qn2[j][0] | qn2[j][1] | qn2[j][2] | qn2[j][3]
                t2 = qt2[j][0] | qt2[j][1] | qt2[j][2] | qt2[j][3]
                m.d.sync += rent[j].eq(Cat(n2, qt1[j], t2))
        with m.Elif(take_r):
            m.d.sync += rv.eq(0)

        # The loop's slots: a ring of four, filled in order at ``wp``; a slot is free a cycle
        # after the position has left it (its words are read in the turn that leaves it).
        S = self.SLOTS
        bits = [Signal(W, name=f"s{k}_bits") for k in range(S)]
        maps = [Signal(W * ENT, name=f"s{k}_map") for k in range(S)]
        s = Signal(3)       # the slot the position is in (mod 8 against wp)
        wp = Signal(3)
        # ``open_[k]``: slot k is the next to fill and free, decided a cycle ahead (from the
        # position of the cycle before, so a slot left in a turn is read to the end first).
        # Its data flip-flops load whenever it is open, word or not (the enable a flip-flop
        # of its own); ``wp`` moves on when a word came.
        open_ = Signal(S, name="slot_open")
        m.d.comb += take_r.eq(rv & open_.any())
        wp_next = Signal(3)
        m.d.comb += wp_next.eq(wp + take_r)
        m.d.sync += wp.eq(wp_next)
        for k in range(S):
            m.d.sync += open_[k].eq((wp_next[:2] == k) & ((wp_next - s)[:3] < S))
            with m.If(open_[k]):
                m.d.sync += [bits[k].eq(rx), maps[k].eq(Cat(*rent))]

        p = Signal(P)
        phase = Signal()
        run = Signal()
        m.d.comb += run.eq(~phase & self.room & ((wp - s)[:3] >= 3))
        # Stage A: every cycle, per group of 8 entries, the entry at p's low 3 bits; and the
        # words at s, s + 1, s + 2 (the turn's two codes lie in them).
        groups = W // 8
        cand = [Signal(ENT, name=f"cand{g}") for g in range(S * groups)]
        for k in range(S):
            for h in range(groups):
                m.d.sync += cand[k * groups + h].eq(
                    maps[k][h * 8 * ENT:(h + 1) * 8 * ENT].word_select(p[:3], ENT))
        ring = Cat(*bits, *bits)
        three = Signal(3 * W)
        m.d.sync += three.eq(Cat(*[ring.word_select(s[:2] + i, W) for i in (2, 1, 0)]))
        # Stage B: the group's entry by (slot, p's high bits); the slot steps by its top bits.
        e = Signal(ENT)
        m.d.comb += e.eq(Cat(*cand).word_select(Cat(p[3:], s[:2]), ENT))
        with m.If(run):
            m.d.sync += phase.eq(1)
        with m.If(phase):
            m.d.sync += [phase.eq(0), p.eq(e[:P]), s.eq(s + e[P:N2])]

        # The two codes of a turn, from registers: in the turn's second cycle the 2 CW bits
        # from p and the two totals; a cycle later the first code, and the window of the
        # second (those bits shifted by the first total); a cycle later the second code.
        wide = Signal(2 * CW)
        t1r, t2r = Signal(TB), Signal(TB)
        em1v, em2v = Signal(), Signal()
        w2 = Signal(CW)
        m.d.sync += [em1v.eq(phase), em2v.eq(em1v)]
        with m.If(phase):
            m.d.sync += [wide.eq((three << p)[3 * W - 2 * CW:3 * W]),
                         t1r.eq(e[N2:N2 + TB]), t2r.eq(e[N2 + TB:])]
        m.d.sync += w2.eq((wide << t1r)[CW:2 * CW])
        with m.If(em1v):
            m.d.sync += [self.o_window.eq(wide[CW:]), self.o_total.eq(t1r)]
        with m.Elif(em2v):
            m.d.sync += [self.o_window.eq(w2), self.o_total.eq(t2r)]
        m.d.sync += self.o_valid.eq(em1v | em2v)
        return m

def main(argv=None):
    import fpga_flow

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+",
                   default=["loop_now", "loop_lookahead", "loop_lookahead_onehot",
                            "loop_short", "loop_slow2", "loop_slow3", "loop_slow4",
                            "loop_map"])
    p.add_argument("--targets", nargs="+", default=["ecp5-25k"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="build/probe_decode_loop")
    p.add_argument("--jobs", type=int, default=1, help="seeds placed and routed at once")
    args = p.parse_args(argv)
    info = {"parallelism": 1, "multipliers": 0, "values_per_cycle": 1.0}
    fpga_flow.add_config("loop_now", lambda: (DecodeLoop(False), dict(info, family="loop_now")))
    fpga_flow.add_config("loop_lookahead",
                         lambda: (DecodeLoop(True), dict(info, family="loop_lookahead")))
    fpga_flow.add_config("loop_short",
                         lambda: (ShortTableLoop(), dict(info, family="loop_short")))
    for c in (2, 3, 4):
        fpga_flow.add_config(f"loop_slow{c}",
                             lambda c=c: (InterleavedLoop(c), dict(info, family=f"loop_slow{c}")))
    fpga_flow.add_config("loop_map", lambda: (MapLoop(), dict(info, family="loop_map")))
    fpga_flow.add_config("loop_pair", lambda: (PairMapLoop(), dict(info, family="loop_pair")))
    fpga_flow.add_config("loop_lookahead_onehot",
                         lambda: (DecodeLoop(True, onehot=True),
                                  dict(info, family="loop_lookahead_onehot")))
    return fpga_flow.main(["--configs", *args.configs, "--targets",
                           *args.targets, "--seeds", str(args.seeds), "--out", args.out,
                           "--jobs", str(args.jobs)])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
