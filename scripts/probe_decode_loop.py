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
        ges = [Signal(L, name=f"ge{j}") for j in range(W)]
        escs = [Signal(name=f"esc{j}") for j in range(W)]
        load = Signal()
        push = Signal()
        m.d.comb += [push.eq(m0v & q.i_stream.ready),
                     load.eq(xv & self.i_valid & (~m0v | push)),
                     self.i_ready.eq(~xv | load)]
        with m.If(load):
            m.d.sync += [m0v.eq(1), m0x.eq(x)]
            for j in range(W):
                top = both[len(both) - j - L:len(both) - j]
                m.d.sync += [ges[j].eq(Cat(
                    top[L - 1 - t:] >= self.limits[t * (L + 1):(t + 1) * (L + 1)][L - 1 - t:]
                    for t in range(L))),
                    escs[j].eq(self.esc & (top >= self.esc_lo) & (top < self.esc_hi))]
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
    fpga_flow.add_config("loop_lookahead_onehot",
                         lambda: (DecodeLoop(True, onehot=True),
                                  dict(info, family="loop_lookahead_onehot")))
    return fpga_flow.main(["--configs", *args.configs, "--targets",
                           *args.targets, "--seeds", str(args.seeds), "--out", args.out])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
