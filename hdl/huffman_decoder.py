"""Canonical Huffman decoder: MSB-first W-bit words in, one symbol per cycle out.

Golden twin: ``golden.codec.plain.decode_tile`` / ``decode_groups`` (plain mode, bitstream version
1,
``docs/bitstream.md``). Ports, the tile-count and table-loading protocols, the error rules and
the timing are described in ``docs/huffman_decoder.md``.

Datapath: a left-aligned bit buffer of ``W + 2 (L + b)`` bits takes one input word per cycle.
The decode loop gives the buffer's top L bits to the canonical length decoder
(``hdl.coder_parts.CanonicalLength``: the current group's left-justified per-length limits
compared in parallel, DEFLATE canonical code), adds b when they are the ESC code, and shifts
the buffer by that many bits: one symbol per cycle. A four-stage pipeline without stalls turns
the code into its position in canonical order, reads the symbol memory (or takes the raw bits
after ESC) and writes the symbol into an output queue (``hdl.coder_parts.Queue``); the loop
decodes only while the queue has room for every symbol in flight, so ``o_stream.ready`` never
reaches it.

``loop="map"`` replaces the bit buffer and its loop by the map loop (``_map_front``): every
word's next-code positions computed ahead, the loop a select of them; the pipeline after it is
the same (docs/huffman_decoder.md, "Decode loops").
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.coder_parts import BitBuffer, CanonicalLength, Queue, canonical_limits, pick
from hdl.coder_params import coder_modules, coder_parser, setup_coder
from hdl.registry import Block, huffman_arguments

__all__ = ["BLOCK", "DecoderError", "HuffmanDecoder"]


class DecoderError:
    """Values of the ``error_code`` output (the first error since it was last cleared)."""

    NONE = 0
    INVALID_CODE = 1    # the next bits are no assigned code
    ENDED_EARLY = 2     # the word flagged last came before the tile's count of symbols
    EXCESS_WORDS = 3    # words after the one holding the tile's final bit
    PADDING = 4         # non-zero bits after the final symbol in the final word
    BAD_TABLE = 5       # a malformed table load on cfg
    NO_TABLE = 6        # a tile used a group whose table is not loaded (or failed to load)
    RUN_OVERFLOW = 7    # run-length mode: the codes stand for more values than the tile's count


def _lookup(values, width, index):
    """``values[index]`` as a shift of one constant (a continuous assignment in Verilog).

    An ``Array`` of constants becomes a ``case`` process that Icarus never evaluates while its
    only input, the index, keeps its reset value: group 0 then read as X.
    """
    packed = sum(int(v) << (i * width) for i, v in enumerate(values))
    table = Const(packed, width * max(len(values), 1))
    if len(values) == 1:
        return table[:width]
    return table.word_select(index, width)


class HuffmanDecoder(wiring.Component):
    """Canonical Huffman decoder, plain mode (bitstream version 1), one symbol per cycle.

    Parameters
    ----------
    symbol_width : int
        Width b of the symbol field, 1 to 8 (the widest group's b).
    max_len : int
        Longest code L a table may use, 1 to 24 (ESC + raw bits: at most ``L + b <= 32``).
    word_width : int
        Input word width W: 8, 16, 32 or 64.
    groups : int
        Number of table groups G (one table each).
    group_bounds : sequence of int or None
        Column edges ``[0, k1, ..., K]`` as in ``golden.codec.plain.decode_groups``; needed when
        ``groups > 1``. The first symbol of a tile is column 0, each symbol advances the column
        modulo K, and column j is decoded with the table of the group holding j.
    group_bits : sequence of int or None
        Symbol width per group, each 1 to ``symbol_width`` (default: ``symbol_width``, or the
        baked tables' widths).
    table : path, TableSet, HuffmanTable, sequence of HuffmanTable, or None
        Bake these tables as constants (no ``cfg`` port). None: load tables through ``cfg``.
    count_width : int
        Width of the symbol count on ``i_count`` (default 32).
    runtime_groups : bool
        Plain mode with run-time tables only: the columns per pixel K and the group edges
        arrive on the ``columns`` and ``edges`` inputs (G > 1) instead of ``group_bounds``,
        and each group's symbol width is its loaded table's (header byte 0, 1 to
        ``symbol_width``; ``group_bits`` are the widths before the first load). One decoder
        then serves layers of any K, bounds and widths.
    loop : str
        The decode loop: ``"shift"`` (default) or ``"map"`` (about 1.6 times the clock at
        about twice the LUTs; one group, plain mode, ``L + b <= W``; latency
        ``MAP_LATENCY``).
    map_bits : int or None
        Map loop only: bit positions of a word the map stage decodes per cycle, D, a power of
        two from 4 to W (default W: a word per cycle). Each step down halves the map stage's
        length decoders and doubles the cycles it spends on a word (W / D); one symbol per
        cycle is then sustained while the codes average at most D bits, and below W the
        latency grows by ``W / D`` cycles (a window register and the chunks).

    Ports
    -----
    i_count : In(stream)  payload ``{count}``: one beat per tile, before its words.
    i_stream : In(stream)  payload ``{data, last}``: the tile's W-bit words, MSB first, the
        final (padded) word flagged ``last``. A tile with count 0 has no words.
    o_stream : Out(stream)  payload ``{symbol, last, first}``: the b-bit symbol pattern (the
        low ``group_bits[g]`` bits, higher bits zero), ``last`` on the tile's final symbol,
        ``first`` on its first (a corrupt tile ends without ``last``; ``first`` tells where
        the next tile's symbols begin).
    cfg : In(stream)  payload ``{data, group, last}`` (run-time tables only): the bytes of
        ``HuffmanTable.serialize()``, ``last`` on the final byte.
    error : Out(1)  sticky error flag; ``error_code`` : Out(3), a ``DecoderError`` value.
        Cleared by reset, by the next ``i_count`` handshake and by the first byte of a table
        load.
    columns, edges : In  (``runtime_groups`` with G > 1) K, 1 to 4096, and the G - 1 inner
        group edges ``bounds[1:-1]`` (rising, below K): column j is decoded with the table of
        group ``sum(j >= edge)``. Held steady while a tile decodes.

    Raises
    ------
    TypeError, ValueError
        On bad parameters (before anything is built); a baked run-length table with a
        longer run than ``run_max`` raises ``ValueError``.
    """

    RUN_LENGTH = True  # run-length tables (bitstream version 2) accepted, with run_max > 0
    LATENCY = 7  # handshake of the word completing a code -> that symbol on o_stream
    QUEUE_DEPTH = 8  # output queue: symbols decoded and not yet taken from o_stream
    #: Decode loops: ``shift`` (a bit buffer shifted by each code's length) or ``map`` (each
    #: word's map of next-code positions computed ahead, the loop a select of it).
    LOOPS = ("shift", "map")
    MAP_LATENCY = 11    # ``LATENCY`` of the map loop
    MAP_QUEUE_DEPTH = 12    # its output queue (two more stages between loop and queue)

    #: Width of ``columns`` and of each of ``edges`` (K up to 4096).
    COLUMN_BITS = 13

    def __init__(self, symbol_width, max_len, word_width, groups=1, group_bounds=None,
                 group_bits=None, table=None, *, count_width=32, run_max=None,
                 runtime_groups=False, loop="shift", map_bits=None):
        setup_coder(self, symbol_width, max_len, word_width, groups, group_bounds, group_bits,
                    table, count_width, 48, run_max, runtime_groups)
        b, tables = self._b, self._tables
        if loop not in self.LOOPS:
            raise ValueError(f"Decode loop must be one of {', '.join(self.LOOPS)}, not "
                             f"{loop!r}")
        if loop == "map" and (groups > 1 or self._run_max or max_len + b > word_width):
            raise ValueError(f"The map decode loop needs one group, plain mode and codes "
                             f"that fit a word (L + b <= W), not G = {groups}, run max "
                             f"{self._run_max}, L + b = {max_len + b}, W = {word_width}")
        self._loop = loop
        if map_bits is not None and loop != "map":
            raise ValueError(f"map_bits applies to the map decode loop only, not {loop!r}")
        if map_bits is None:
            map_bits = word_width
        if isinstance(map_bits, bool) or not isinstance(map_bits, int):
            raise TypeError(f"Map bits must be an integer, not {map_bits!r}")
        if map_bits not in [word_width >> s for s in range(word_width.bit_length())
                            if word_width >> s >= 4]:
            raise ValueError(f"Map bits must be a power of two from 4 to the word width "
                             f"{word_width}, not {map_bits!r}")
        self._map_bits = map_bits

        header = {"count": unsigned(self._count_width)}
        if self._run_max:
            # Run-length builds: a tile ends at its payload bit count, and each tile is coded
            # with the one table its header names (bitstream version 2's layout).
            header["nbits"] = unsigned(self.nbits_width)
            if groups > 1:
                header["group"] = unsigned((groups - 1).bit_length())
        members = {
            "i_count": In(stream.Signature(data.StructLayout(header))),
            "i_stream": In(stream.Signature(data.StructLayout(
                {"data": unsigned(word_width), "last": 1}))),
            "o_stream": Out(stream.Signature(data.StructLayout(
                {"symbol": unsigned(b), "last": 1, "first": 1}))),
            "error": Out(1),
            "error_code": Out(3),
        }
        if tables is None:
            cfg = {"data": unsigned(8)}
            if groups > 1:
                cfg["group"] = unsigned((groups - 1).bit_length())
            cfg["last"] = 1
            members["cfg"] = In(stream.Signature(data.StructLayout(cfg)))
        if self._runtime and groups > 1:
            members["columns"] = In(self.COLUMN_BITS)
            members["edges"] = In(data.ArrayLayout(unsigned(self.COLUMN_BITS), groups - 1))
        super().__init__(members)
        # Not a port: high from a table load's first byte to its end or its failure (the
        # formal proofs in tests/formal/ bound how long it stays high).
        self.loading = Signal(name="loading")

    def _width_of(self, index):
        """Group ``index``'s symbol width (4 bits): a constant, or with ``runtime_groups``
        the register its table's header set."""
        if not self._runtime:
            return _lookup(self._group_bits, 4, index)
        if len(self._gbits) == 1:
            return self._gbits[0]
        return Cat(*self._gbits).word_select(index, 4)

    # -----------------------------------------------------------------------------------------
    @property
    def latency(self):
        """Cycles from the handshake of the word completing a code to its symbol on
        ``o_stream``: ``LATENCY`` (``MAP_LATENCY`` with the map loop), plus the run
        expander's register in run-length builds."""
        if self._loop == "map":
            C = self._W // self._map_bits
            return self.MAP_LATENCY + (C if C > 1 else 0)
        return self.LATENCY + (1 if self._run_max else 0)

    @property
    def queue_depth(self):
        """Entries of the output queue."""
        return self.MAP_QUEUE_DEPTH if self._loop == "map" else self.QUEUE_DEPTH

    @property
    def memory_bits(self):
        """Bits of the symbol memory (every group's canonical positions)."""
        width = self._payload_width + 1 if self._run_max else self._b
        return (self._G << self._pos_width) * width

    @property
    def nbits_width(self):
        """Width of the header's ``nbits`` (run-length builds): the count's plus 5, so any
        tile of ``2**count_width - 1`` codes of up to 32 bits fits."""
        return self._count_width + 5

    @property
    def _pos_width(self):
        """Bits of a canonical position: the code alphabet ``2**b + 1 + run_max`` entries."""
        return ((1 << self._b) + self._run_max).bit_length()

    @property
    def _payload_width(self):
        """Symbol-memory payload: the value (b bits), or in run-length builds also k - 1 of a
        run of k zeros."""
        return max(self._b, (self._run_max - 1).bit_length()) if self._run_max else self._b

    @property
    def buffer_bits(self):
        """Bits of the input bit buffer, ``W + 2 (L + b)``."""
        return self._W + 2 * (self._L + self._b)

    def _group_regs(self, g):
        """Registers (or baked constants as their reset values) of one group's decode table."""
        L, b = self._L, self._b
        A = self._pos_width
        lim = [0] * L
        off = [0] * L
        esc_lo = esc_hi = esc_len = 0
        esc = ok = 0
        if self._tables is not None:
            t = self._tables[g]
            first, base, lim = canonical_limits(t.counts, L)
            off = [(base[i] - first[i]) % (1 << A) for i in range(L)]
            if t.escape:
                n = int(t.lengths[t.esc_index])
                code = int(t.codes[t.esc_index])
                esc, esc_lo, esc_hi = 1, code << (L - n), (code + 1) << (L - n)
                esc_len = n
            ok = 1
        return {
            "lim": [Signal(L + 1, name=f"g{g}_lim{i + 1}", init=lim[i]) for i in range(L)],
            "off": [Signal(A, name=f"g{g}_off{i + 1}", init=off[i]) for i in range(L)],
            "esc": Signal(name=f"g{g}_esc", init=esc),
            "esc_lo": Signal(L + 1, name=f"g{g}_esc_lo", init=esc_lo),
            "esc_hi": Signal(L + 1, name=f"g{g}_esc_hi", init=esc_hi),
            "esc_len": Signal(range(L + 1), name=f"g{g}_esc_len", init=esc_len),
            "ok": Signal(name=f"g{g}_ok", init=ok),
        }

    def _init(self):
        """Symbol memory contents of baked tables: group g, canonical position p. Run-length
        builds store ``(payload, is_run)``: the value, or k - 1 for ``RUN_k``."""
        A, PW = self._pos_width, self._payload_width
        init = [0] * (self._G << A)
        for g, t in enumerate(self._tables):
            esc = 1 << t.bits
            for p, s in enumerate(t.symbols):
                s = int(s)
                if self._run_max and s > esc:
                    init[(g << A) | p] = (s - esc - 1) | (1 << PW)
                elif s != esc:
                    init[(g << A) | p] = s & ((1 << self._b) - 1)
        return init

    def elaborate(self, platform):
        m = Module()
        if self._runtime:
            self._gbits = [Signal(4, init=x, name=f"gbits{g}")
                           for g, x in enumerate(self._group_bits)]
        b, L, W, G = self._b, self._L, self._W, self._G
        RL = self._run_max > 0
        A = self._pos_width
        PW = self._payload_width
        CW = L + b             # window: the longest code, ESC + raw bits
        B = self.buffer_bits
        baked = self._tables is not None
        regs = [self._group_regs(g) for g in range(G)]

        m.submodules.symbols = mem = Memory(shape=unsigned(PW + 1 if RL else b), depth=G << A,
                                            init=self._init() if baked else [])
        rp = mem.read_port()

        o = self.o_stream

        # Error flag and code (first error wins until cleared).
        error = Signal()
        error_code = Signal(3)
        m.d.comb += [self.error.eq(error), self.error_code.eq(error_code)]
        raise_code = Signal(3)  # set by the decode and loader logic, comb
        clear = Signal()
        # An error raised in the cycle that clears the flag (a table's first byte that is
        # already malformed) is recorded, not lost.
        with m.If((raise_code != 0) & (~error | clear)):
            m.d.sync += [error.eq(1), error_code.eq(raise_code)]
        with m.Elif(clear):
            m.d.sync += [error.eq(0), error_code.eq(0)]

        # Current group: column counter, and that group's registers selected one symbol ahead
        # so the decode loop sees plain registers.
        if G > 1:
            if not RL and self._runtime:
                # K and the edges from the inputs (K - 1 and the compares of the next column
                # against the edges from registers and ports only).
                col = Signal(self.COLUMN_BITS)
                ncol = Signal(self.COLUMN_BITS)
                ngrp = Signal(range(G))
                m.d.comb += [ncol.eq(Mux(col == self.columns - 1, 0, col + 1)),
                             ngrp.eq(sum((ncol >= self.edges[i]).as_unsigned()
                                         for i in range(G - 1)))]
            elif not RL:
                K = self._bounds[-1]
                col = Signal(range(K))
                ncol = Signal(range(K))
                ngrp = Signal(range(G))
                m.d.comb += [ncol.eq(Mux(col == K - 1, 0, col + 1)),
                             ngrp.eq(sum((ncol >= e).as_unsigned()
                                         for e in self._bounds[1:-1]))]
            grp = Signal(range(G))
            cur = {
                "lim": [Signal(L + 1, name=f"cur_lim{i + 1}") for i in range(L)],
                "esc": Signal(name="cur_esc"),
                "esc_lo": Signal(L + 1, name="cur_esc_lo"),
                "esc_hi": Signal(L + 1, name="cur_esc_hi"),
                "esc_len": Signal(range(L + 1), name="cur_esc_len"),
                "ok": Signal(name="cur_ok"),
                "bits": Signal(4, name="cur_bits"),
            }

            def select(g_sig):
                out = [cur["esc"].eq(Array(r["esc"] for r in regs)[g_sig]),
                       cur["esc_lo"].eq(Array(r["esc_lo"] for r in regs)[g_sig]),
                       cur["esc_hi"].eq(Array(r["esc_hi"] for r in regs)[g_sig]),
                       cur["esc_len"].eq(Array(r["esc_len"] for r in regs)[g_sig]),
                       cur["ok"].eq(Array(r["ok"] for r in regs)[g_sig]),
                       cur["bits"].eq(self._width_of(g_sig))]
                for i in range(L):
                    out.append(cur["lim"][i].eq(Array(r["lim"][i] for r in regs)[g_sig]))
                return out
        else:
            grp = Const(0, 1)
            cur = dict(regs[0], bits=self._width_of(Const(0, 1)))

        # Tile control.
        remaining = Signal(self._count_width)
        seen_last = Signal()
        MAP = self._loop == "map"
        QD = self.queue_depth
        busy_cfg = Signal()     # a table load is waiting or in progress
        i = self.i_stream
        cnt = self.i_count

        # Output queue and credit: every symbol the loop decodes flows through the fixed
        # pipeline below (no stall) into the queue; the loop decodes only while the queue has
        # room for every symbol in flight (``occ`` counts them), so ``o_stream.ready`` reaches
        # nothing but the queue and that counter.
        m.submodules.queue = queue = Queue(PW + 1 if RL else b + 2, QD)
        occ = Signal(range(QD + 1))
        room = Signal()
        # Map loop: ``occ`` counts a step a cycle later (from the registered step ``va``, not
        # from the select), and the room check adds that step back.
        step_seen = Signal()
        if MAP:
            m.d.comb += room.eq(occ + step_seen < QD)
        else:
            m.d.comb += room.eq(occ != QD)
        pop = Signal()
        if not RL:
            m.d.comb += [o.valid.eq(queue.o_stream.valid), queue.o_stream.ready.eq(o.ready),
                         pop.eq(o.valid & o.ready),
                         Cat(o.payload.symbol, o.payload.last, o.payload.first).eq(
                             queue.o_stream.payload)]

        decoding = Signal()
        step = Signal()
        first_pend = Signal()   # the tile's first symbol is yet to be decoded
        if not MAP:
            # Input bit buffer (``hdl.coder_parts.BitBuffer``): words in below the valid
            # bits, the decoded code's bits out at the top.
            m.submodules.bits = bb = BitBuffer(W, B, CW)
            buf, fill = bb.bits, bb.fill
            # Decode loop: the length of the code at the top of the buffer.
            m.submodules.length = cl = CanonicalLength(L, b)
            top = Signal(L)
            m.d.comb += [top.eq(buf[B - L:]), cl.top.eq(top), cl.limits.eq(Cat(cur["lim"])),
                         cl.esc.eq(cur["esc"]), cl.esc_lo.eq(cur["esc_lo"]),
                         cl.esc_hi.eq(cur["esc_hi"]),
                         cl.esc_total.eq(cur["esc_len"] + cur["bits"])]
            oh_len, is_esc, total = cl.onehot, cl.is_esc, cl.total
            invalid = Signal()
            m.d.comb += invalid.eq(cl.invalid | ~cur["ok"])
            enough = Signal()       # the code lies within the buffered bits
            m.d.comb += enough.eq(total <= fill)
            # The buffer shifts without waiting for the length check: with CW bits buffered every
            # code fits; after the tile's final word every bit is in, and a code that does not
            # fit is ENDED_EARLY (the shift is then harmless: the decoder drains). With fewer
            # bits while words are still due (a starved input) the check is registered in
            # ``tail_ok`` and the code is shifted out on the next cycle. A symbol is decoded
            # (``step``) only when it fits.
            fast = Signal()
            m.d.comb += fast.eq(fill >= CW)
            tail_ok = Signal()
            shift_en = Signal()
            m.d.comb += shift_en.eq(decoding & room & (fast | seen_last | tail_ok))
            # Run-length builds: the tile's bits end at its header's nbits (``left`` to go); a
            # code past that end is not decoded.
            left = Signal(self.nbits_width if RL else 1)
            fits = Signal()
            # ``left`` is kept as a high part and a low part of LB bits (2^LB > L + b, the longest
            # code), so the loop compares and subtracts only LB bits: ``left >= 2^LB`` comes
            # straight from the register, and the high part's decrement is ready before the
            # code's length is (a carry-select subtract).
            LB = max(1, (L + b).bit_length())
            split = RL and len(left) > LB
            left_big = Signal()
            left_end = Signal()     # the code ends exactly at nbits
            left_next = Signal.like(left)
            if split:
                lo_next = Signal(LB + 1)
                hi = left[LB:]
                m.d.comb += [left_big.eq(hi != 0),
                             fits.eq(left_big | (total <= left[:LB])),
                             left_end.eq(~left_big & (left[:LB] == total)),
                             lo_next.eq(left[:LB] - total),
                             left_next.eq(Cat(lo_next[:LB], Mux(lo_next[LB], hi - 1, hi)))]
            elif RL:
                m.d.comb += [fits.eq(total <= left), left_end.eq(left == total),
                             left_next.eq(left - total)]
            else:
                m.d.comb += fits.eq(1)
            m.d.comb += step.eq(shift_en & ~invalid & (fast | tail_ok | enough) & fits)
            m.d.sync += tail_ok.eq(decoding & ~shift_en & enough & ~invalid)

            take_word = bb.take
            clear_buf = bb.clear    # a tile header: the buffer starts empty
            # The shift: by the code's length (plus the raw bits after ESC), or none.
            m.d.comb += [bb.word.eq(i.payload.data), bb.shift.eq(total), bb.shift_en.eq(shift_en)]

        # Stage 0: the decoded code's window, one-hot length, ESC flag, group, last, first.
        v0 = Signal()
        win0 = Signal(CW)
        oh0 = Signal(L + 1)
        esc0 = Signal()
        grp0 = Signal.like(grp)
        last0 = Signal()
        first0 = Signal()
        if MAP:
            fr = self._map_front(m, cur, room, decoding, step, first_pend, remaining)
            m.d.sync += [v0.eq(fr.v), win0.eq(fr.window), oh0.eq(fr.onehot),
                         esc0.eq(fr.is_esc), last0.eq(fr.last), first0.eq(fr.first)]
            m.d.comb += step_seen.eq(fr.va)
        else:
            m.d.sync += v0.eq(step)
            with m.If(step):
                m.d.sync += [win0.eq(buf[B - CW:]), oh0.eq(oh_len), esc0.eq(is_esc),
                             last0.eq(remaining == 1), first0.eq(first_pend), first_pend.eq(0)]
                if G > 1:
                    m.d.sync += grp0.eq(grp)

        # Stage 1: the code's value (its top l bits) and the offset of its length, selected by
        # the one-hot length; the raw bits after an ESC code.
        # Per-group reads as shifts of one vector (continuous assignments: Icarus leaves an
        # ``Array`` read of registers that never change X, see "Simulator notes").
        esc_len0 = pick([r["esc_len"] for r in regs], grp0)
        v1 = Signal()
        prefix1 = Signal(A)
        off1 = Signal(A)
        esc1 = Signal()
        raw1 = Signal(b)
        grp1 = Signal.like(grp)
        last1 = Signal()
        first1 = Signal()
        pre_terms = []
        off_terms = []
        for ln in range(1, L + 1):
            pre_terms.append(Mux(oh0[ln], win0[CW - ln:].as_unsigned(), 0))
            off_terms.append(Mux(oh0[ln], pick([r["off"][ln - 1] for r in regs], grp0), 0))
        pre = pre_terms[0]
        for t in pre_terms[1:]:
            pre = pre | t
        off = off_terms[0]
        for t in off_terms[1:]:
            off = off | t
        bits0 = self._width_of(grp0)
        after = Signal(CW)
        m.d.comb += after.eq(win0 << esc_len0)
        sh_raw = Signal(range(b + 1))
        m.d.comb += sh_raw.eq(b - bits0)
        m.d.sync += [v1.eq(v0), prefix1.eq(pre[:A]), off1.eq(off), esc1.eq(esc0),
                     raw1.eq(after[CW - b:] >> sh_raw), last1.eq(last0), first1.eq(first0)]
        if G > 1:
            m.d.sync += grp1.eq(grp0)

        # Stage 2: canonical position = prefix + (base - first) addresses the symbol memory.
        pos = Signal(A)
        m.d.comb += pos.eq(prefix1 + off1)
        m.d.comb += [rp.addr.eq(Cat(pos, grp1) if G > 1 else pos), rp.en.eq(1)]
        v2 = Signal()
        esc2 = Signal()
        raw2 = Signal(b)
        last2 = Signal()
        first2 = Signal()
        m.d.sync += [v2.eq(v1), esc2.eq(esc1), raw2.eq(raw1), last2.eq(last1),
                     first2.eq(first1)]
        # Stage 3: the memory's data in a fabric register (the block RAM's clock-to-output
        # is most of a cycle), then the ESC choice into the queue.
        v3 = Signal()
        sym3 = Signal(PW + 1 if RL else b)   # run-length builds: (payload, is_run)
        esc3 = Signal()
        raw3 = Signal(b)
        last3 = Signal()
        first3 = Signal()
        m.d.sync += [v3.eq(v2), sym3.eq(rp.data), esc3.eq(esc2), raw3.eq(raw2),
                     last3.eq(last2), first3.eq(first2)]
        # Into the queue: the credit (``occ``) guarantees room, its ready is not needed.
        if RL:
            m.d.comb += [queue.i_stream.valid.eq(v3),
                         queue.i_stream.payload.eq(Mux(esc3, Cat(raw3, Const(0, PW + 1 - b)),
                                                       sym3))]
        else:
            m.d.comb += [queue.i_stream.valid.eq(v3),
                         queue.i_stream.payload.eq(Cat(Mux(esc3, raw3, sym3), last3, first3))]
        m.d.sync += occ.eq(occ + (step_seen if MAP else step) - pop)
        pre_mem = Signal()      # a symbol is yet to read the symbol memory
        m.d.comb += pre_mem.eq(v0 | v1 | (fr.pre_mem if MAP else 0))

        if RL:
            # Run expander: one value per cycle from the queue's entries, RUN_k as k zeros;
            # ``last`` / ``first`` from the values emitted against the tile's count. Values
            # past the count are RUN_OVERFLOW, and the rest of the tile's entries are
            # dropped (``ovf``).
            count_r = Signal(self._count_width)
            emitted = Signal(self._count_width)
            ovf = Signal()
            run_left = Signal(range(max(self._run_max, 1) + 1))
            head = queue.o_stream
            hp = head.payload
            p_val, is_run = hp[:PW], hp[PW]
            # Every combinational signal here is one expression (a continuous assignment):
            # Icarus never evaluates a process whose inputs keep their first values, and the
            # output's ready may be held at 1 from the start.
            adv, drop, take = Signal(), Signal(), Signal()
            m.d.comb += [adv.eq(~o.valid | o.ready),
                         drop.eq(head.valid & (ovf | (emitted == count_r))),
                         take.eq(head.valid & ~(ovf | (emitted == count_r)))]
            k_left = Signal(range(max(self._run_max, 1) + 1))
            m.d.comb += [k_left.eq(Mux(run_left != 0, run_left, p_val + 1)),
                         pop.eq(adv & (drop | (take & (~is_run | (k_left == 1))))),
                         head.ready.eq(pop)]
            with m.If(adv & drop & ~ovf):
                m.d.comb += raise_code.eq(DecoderError.RUN_OVERFLOW)
            with m.If(adv):
                m.d.sync += o.valid.eq(take)
                with m.If(drop):
                    m.d.sync += [run_left.eq(0), ovf.eq(1)]
                with m.If(take):
                    m.d.sync += [o.payload.symbol.eq(Mux(is_run, 0, p_val[:b])),
                                 o.payload.last.eq(emitted == count_r - 1),
                                 o.payload.first.eq(emitted == 0),
                                 emitted.eq(emitted + 1),
                                 run_left.eq(Mux(is_run, k_left - 1, 0))]

        with m.FSM(name="tile") as fsm:
            with m.State("IDLE"):
                if not RL:
                    # (Map loop: its words are all gone between tiles, DRAIN waits for that.)
                    m.d.comb += cnt.ready.eq(~busy_cfg)
                with m.If(cnt.valid & cnt.ready):
                    m.d.comb += [clear.eq(1), fr.clear.eq(1) if MAP else clear_buf.eq(1)]
                    m.d.sync += [remaining.eq(cnt.payload.count), seen_last.eq(0),
                                 first_pend.eq(1)]
                    if RL:
                        m.d.sync += [left.eq(cnt.payload.nbits),
                                     count_r.eq(cnt.payload.count), emitted.eq(0),
                                     ovf.eq(0)]
                        bad_group = Const(0)
                        if G > 1:
                            g_in = cnt.payload.group
                            m.d.sync += [grp.eq(g_in)] + select(g_in)
                            if G & (G - 1):
                                bad_group = g_in >= G
                        with m.If(cnt.payload.count != 0):
                            with m.If(bad_group):
                                m.d.comb += raise_code.eq(DecoderError.NO_TABLE)
                                m.next = "DRAIN"
                            with m.Elif(cnt.payload.nbits == 0):
                                m.next = "RL_END"
                            with m.Else():
                                m.next = "DECODE"
                    else:
                        if G > 1:
                            m.d.sync += [col.eq(0), grp.eq(0)] + select(0)
                        with m.If(cnt.payload.count != 0):
                            m.next = "DECODE"
            with m.State("DECODE"):
                if MAP:
                    take_word = fr.take
                    # Decremented on every run of the loop: a run that decodes nothing is an
                    # error, and the tile is drained.
                    with m.If(fr.run):
                        m.d.sync += remaining.eq(remaining - 1)
                    # (Cleared a cycle after the first step, from its register: the loop's
                    # select reaches no more than the step's own flip-flop.)
                    with m.If(fr.va):
                        m.d.sync += first_pend.eq(0)
                    invalid = Signal()
                    m.d.comb += invalid.eq(fr.bad_hit | ~cur["ok"])
                with m.If(take_word & i.payload.last):
                    m.d.sync += seen_last.eq(1)
                with m.If(invalid):
                    m.d.comb += raise_code.eq(Mux(cur["ok"], DecoderError.INVALID_CODE,
                                                  DecoderError.NO_TABLE))
                    m.next = "DRAIN"
                if MAP:
                    # (The final code may end exactly at the last word's end: then it is
                    # ``beyond`` it too.)
                    with m.Elif(fr.final_hit):
                        m.next = "TAIL"
                with m.Elif(fr.beyond if MAP else ~enough & seen_last):
                    m.d.comb += raise_code.eq(DecoderError.ENDED_EARLY)
                    m.next = "DRAIN"
                if RL:
                    # Every payload bit is buffered and the code runs past nbits.
                    with m.Elif(~fits & (fill >= left)):
                        m.d.comb += raise_code.eq(DecoderError.ENDED_EARLY)
                        m.next = "DRAIN"
                    with m.Elif(ovf):
                        m.next = "DRAIN"
                    with m.Elif(step):
                        m.d.sync += left.eq(left_next)
                        with m.If(left_end):
                            m.next = "RL_END"
                elif not MAP:
                    with m.Elif(step):
                        m.d.sync += remaining.eq(remaining - 1)
                        if G > 1:
                            m.d.sync += [col.eq(ncol), grp.eq(ngrp)] + select(ngrp)
                        with m.If(remaining == 1):
                            m.next = "TAIL"
            if RL:
                with m.State("RL_END"):
                    # The tile's bits are decoded: once its values are out, they must be
                    # exactly its count.
                    with m.If(ovf):
                        m.next = "DRAIN"
                    with m.Elif(occ == 0):
                        with m.If(emitted != count_r):
                            m.d.comb += raise_code.eq(DecoderError.ENDED_EARLY)
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "TAIL"
            with m.State("TAIL"):
                # The final symbol is out: the rest must be the final word's zero padding.
                # Map loop: the word holding the code's final bit (the one before if the
                # code ended at its word's end) must be the last.
                if MAP:
                    excess = Mux(fr.at_start, ~fr.prev_last, ~fr.cur_last)
                    pad_nz = ~fr.at_start & fr.pad_nz
                else:
                    excess = ~seen_last | (fill >= W)
                    pad_nz = buf != 0
                with m.If(excess):
                    m.d.comb += raise_code.eq(DecoderError.EXCESS_WORDS)
                    m.next = "DRAIN"
                with m.Else():
                    with m.If(pad_nz):
                        m.d.comb += raise_code.eq(DecoderError.PADDING)
                    m.next = "IDLE"
            with m.State("DRAIN"):
                # After an error: drop words up to the one flagged last; emit nothing more.
                if MAP:
                    # ... and the words in the map stage (the slots are cleared at the next
                    # header).
                    with m.If(fr.take & i.payload.last):
                        m.d.sync += seen_last.eq(1)
                    with m.If(seen_last & fr.front_empty):
                        m.next = "IDLE"
                else:
                    with m.If((i.valid & i.ready & i.payload.last) | seen_last):
                        m.d.sync += seen_last.eq(1)
                        m.next = "IDLE"
        idle = fsm.ongoing("IDLE")
        if MAP:
            # Continuous assignments, not parts of the state machine's process (Icarus left
            # that process's outputs X until the state first changed).
            drain = fsm.ongoing("DRAIN")
            m.d.comb += [decoding.eq(fsm.ongoing("DECODE")), fr.flush.eq(drain),
                         fr.accept.eq((decoding | drain) & ~seen_last)]
        else:
            # The same for the shift loop: words are taken while decoding with room for a
            # word, and dropped while draining (with a word waiting while the decoder is
            # idle, the state machine's process would leave ``ready`` X in Icarus).
            m.d.comb += [decoding.eq(fsm.ongoing("DECODE")),
                         i.ready.eq(~seen_last & ((decoding & (fill <= B - W))
                                                  | fsm.ongoing("DRAIN"))),
                         take_word.eq(decoding & i.valid & i.ready)]
        if RL:
            # Run-length builds take a header only with the previous tile's values all out
            # of the queue (its count is checked against them). One expression: in a baked
            # build its inputs may never change, and Icarus never evaluates such a process.
            m.d.comb += cnt.ready.eq(idle & ~busy_cfg & (occ == 0))

        if baked:
            m.d.comb += busy_cfg.eq(0)
        else:
            self._loader(m, mem, regs, idle & ~pre_mem, busy_cfg, raise_code, clear)
        return m

    # -----------------------------------------------------------------------------------------
    def _map_front(self, m, cur, room, decoding, step, first_pend, remaining):
        """The map decode loop (``loop="map"``, docs/huffman_decoder.md "Decode loops"): words
        in, per decoded code its window, one-hot length, ESC flag, ``last`` and ``first``
        (``v`` high) two cycles after its ``step``. Drives ``step``; returns the signals
        the tile control reads and drives (a namespace).

        Map stage: a word waits for its successor (or is the tile's last word, then zeros
        follow it); then, per bit position j of the word, a canonical length decoder
        (``CanonicalLength``) on the L bits from j (one register stage), and the position where the
        next code would start, ``next[j] = j + total`` (an AND-OR of constants over the
        one-hot length), with three flags: ``bad`` (no code starts with these bits; its
        next is j itself), ``near`` (next lies in its word's last L + b positions, from
        where a code may run into the following word) and ``over`` (next lies past the
        following word's first bit). The word, its ``last`` and its map go into a free slot
        of the loop (the map stage holds them while both slots are full).

        Loop: a ring of two word slots and a position (slot, p). Each cycle it runs, ``p <-
        next[slot, p]`` and the slot flips when next passes the word's end: one select of
        2W entries and an XOR. Its enable comes from registers only: decoding, room in
        the output queue, the current slot filled, and, at a ``near`` position, the other
        slot filled too (or the current word the tile's last). A slot the loop has left is
        refilled from the map stage a cycle later.

        With ``map_bits`` D < W the map stage decodes D positions a cycle: the word and the
        L - 1 bits after it wait in a window register that D length decoders read and that
        shifts by D after each of the W / D cycles.
        """
        b, L, W = self._b, self._L, self._W
        CW = L + b
        P = (W - 1).bit_length()        # bits of a position in a word
        N = P + 1                       # bits of a next position (below 2 W)
        ENT = N + 3                     # next, bad, near, over
        i = self.i_stream
        f = SimpleNamespace(clear=Signal(name="map_clear"), flush=Signal(name="map_flush"),
                            accept=Signal(name="map_accept"))
        lims = Cat(cur["lim"])
        esc_total = Signal(range(CW + 1))
        m.d.comb += esc_total.eq(cur["esc_len"] + cur["bits"])

        # Map stage. x: the word waiting for its successor; M0: the compares; then a slot.
        x = Signal(W)
        xlast = Signal()
        xv = Signal()
        m0v = Signal()
        m0x = Signal(W)
        m0last = Signal()
        ohs = [Signal(L + 1, name=f"map_onehot{j}") for j in range(W)]
        bads = [Signal(name=f"map_bad{j}") for j in range(W)]
        escs = [Signal(name=f"map_esc{j}") for j in range(W)]
        push = Signal()
        load = Signal()
        take = Signal()
        D = self._map_bits
        C = W // D
        free_m = ~m0v | push
        ahead = Mux(xlast, 0, i.payload.data[W - (L - 1):]) if L > 1 else Const(0, 0)
        both = Cat(ahead, x)     # x's bits, then the first L - 1 bits after it
        if C == 1:
            # The word's map in one cycle, with its successor taken (or the word the tile's
            # last), when the map register is free or gives its map to a slot.
            m.d.comb += [i.ready.eq(f.accept & (~xv | free_m)),
                         take.eq(i.valid & i.ready),
                         load.eq(xv & (xlast | take) & free_m)]
            windows, step_m = both, load
            f.front_empty = Signal()
            m.d.comb += f.front_empty.eq(~xv & ~m0v)
        else:
            # ``map_bits`` D < W: the word and the L - 1 bits after it go into a window
            # register S when its successor is taken (or it is the tile's last), and S is
            # decoded D positions a cycle over C = W / D cycles, shifted by D after each, so
            # that the length decoders read fixed flip-flops (no select in front of them).
            S = Signal(len(both), name="map_window")
            sword = Signal(W, name="map_window_word")
            slast = Signal(name="map_window_last")
            wv = Signal(name="map_window_valid")
            chunk = Signal(C, name="map_chunk", init=1)   # one-hot: the chunk S holds now
            step_m = Signal()           # a chunk decoded
            s_load = Signal()
            s_done = Signal()
            m.d.comb += [step_m.eq(wv & free_m),
                         s_done.eq(step_m & chunk[C - 1]),
                         i.ready.eq(f.accept & (~xv | ~wv | s_done)),
                         take.eq(i.valid & i.ready),
                         # (The successor offered is taken exactly then: ``ready`` is
                         # not on this path.)
                         s_load.eq(xv & (xlast | (i.valid & f.accept)) & (~wv | s_done)),
                         load.eq(s_done)]
            with m.If(s_load):
                m.d.sync += [S.eq(both), sword.eq(x), slast.eq(xlast), wv.eq(1)]
            with m.Elif(step_m):
                m.d.sync += S.eq(S << D)
                with m.If(s_done):
                    m.d.sync += wv.eq(0)
            # The chunk's bit moves on with every chunk decoded and is back at chunk 0 after
            # the last: a new word always starts there.
            with m.If(step_m):
                m.d.sync += chunk.eq(chunk.rotate_left(1))
            windows = S
            f.front_empty = Signal()
            m.d.comb += f.front_empty.eq(~xv & ~wv & ~m0v)
            with m.If(f.clear):
                m.d.sync += [wv.eq(0), chunk.eq(1)]
        f.take = take
        # D canonical length decoders, decoder d on the L bits from position d of the chunk,
        # registered into the map register's entries c D + d.
        for d in range(D):
            cl = CanonicalLength(L, b)
            m.submodules[f"map_length{d}"] = cl
            m.d.comb += [cl.top.eq(windows[len(windows) - d - L:len(windows) - d]),
                         cl.limits.eq(lims), cl.esc.eq(cur["esc"]),
                         cl.esc_lo.eq(cur["esc_lo"]), cl.esc_hi.eq(cur["esc_hi"]),
                         cl.esc_total.eq(esc_total)]
            for k, j in enumerate(range(d, W, D)):
                with m.If(step_m & chunk[k] if C > 1 else step_m):
                    m.d.sync += [ohs[j].eq(cl.onehot), bads[j].eq(cl.invalid),
                                 escs[j].eq(cl.is_esc)]
        with m.If(load):
            m.d.sync += [m0v.eq(1), m0x.eq(x if C == 1 else sword),
                         m0last.eq(xlast if C == 1 else slast)]
        with m.Elif(push):
            m.d.sync += m0v.eq(0)
        with m.If(take):
            m.d.sync += [x.eq(i.payload.data), xlast.eq(i.payload.last), xv.eq(1)]
        with m.Elif(load if C == 1 else s_load):
            m.d.sync += xv.eq(0)
        entries = []
        for j in range(W):
            terms = [Mux(ohs[j][t], j + t, 0) for t in range(1, L + 1)]
            by_len = terms[0]
            for t in terms[1:]:
                by_len = by_len | t
            esc_next = Signal(N, name=f"map_esc_next{j}")
            m.d.comb += esc_next.eq(j + esc_total)
            nxt = Signal(N, name=f"map_next{j}")
            m.d.comb += nxt.eq(Mux(bads[j], j, Mux(escs[j], esc_next, by_len)))
            entries.append(Cat(nxt, bads[j], nxt[:P] >= W - CW, nxt > W))
        mapped = Cat(m0x, m0last, *entries)    # what a slot takes: word, last, map
        with m.If(f.clear):
            m.d.sync += [xv.eq(0), m0v.eq(0)]

        # The loop.
        bits = [Signal(W, name=f"map_s{k}_bits") for k in range(2)]
        lasts = [Signal(name=f"map_s{k}_last") for k in range(2)]
        maps = [Signal(W * ENT, name=f"map_s{k}_map") for k in range(2)]
        sv = [Signal(name=f"map_s{k}_valid") for k in range(2)]
        slot = Signal()
        p = Signal(P)
        near = Signal()
        ent = Signal(ENT)
        m.d.comb += ent.eq(Cat(maps[0], maps[1]).word_select(Cat(p, slot), ENT))
        nxt, bad, over = ent[:N], ent[N], ent[N + 2]
        cross = nxt[P]
        # ``left[k]``: the loop left slot k in the previous cycle (a register, so that the
        # select feeds no more than one gate before a flip-flop); the slot is free for a word
        # from then on, and not a slot to cross into.
        left = [Signal(name=f"map_s{k}_left") for k in range(2)]
        free = [~sv[k] | left[k] for k in range(2)]
        cur_ok = Mux(slot, sv[1], sv[0])
        cur_last = Mux(slot, lasts[1], lasts[0])
        other_ok = Mux(slot, sv[0] & ~left[0], sv[1] & ~left[1])
        # The tile's final code and an unassigned code are registered too (``final_hit``,
        # ``bad_hit``): the tile control acts on them a cycle later; the loop does not run
        # in that cycle after the final code, and does not move at an unassigned one.
        f.final_hit = Signal(name="map_final_hit")
        f.bad_hit = Signal(name="map_bad_hit")
        go = Signal()
        m.d.comb += go.eq(decoding & ~f.final_hit)
        run = Signal()
        m.d.comb += run.eq(go & room & cur_ok & (other_ok | ~near | cur_last))
        with m.If(run):
            m.d.sync += [p.eq(nxt[:P]), slot.eq(slot ^ cross), near.eq(ent[N + 1])]
        # A code running past the tile's last word is not decoded (ENDED_EARLY); neither is
        # a code after one that ended exactly at its end (``beyond``).
        ended = Signal()
        m.d.comb += [ended.eq(cur_last & over), step.eq(run & ~bad & ~ended)]
        beyond = Signal()
        with m.If(run & cur_last & cross):
            m.d.sync += beyond.eq(1)
        m.d.sync += [f.final_hit.eq(step & (remaining == 1)),
                     f.bad_hit.eq(decoding & cur_ok & bad)]
        for k in range(2):
            m.d.sync += left[k].eq(run & cross & (slot == k))
        f.run, f.beyond = run, beyond
        # Refill: the map stage's word goes into a free slot (slot 0 first), from registers
        # only; while flushing, it is dropped.
        m.d.comb += push.eq(m0v & (f.flush | (go & (free[0] | free[1]))))
        for k in range(2):
            target = free[0] if k == 0 else ~free[0]
            # The slot's bits, last flag and map (over 300 flip-flops) load whenever it is
            # the free slot the next word goes to, word or not (from registers only, a short
            # path to a wide enable); its valid flag says whether a word came.
            with m.If(go & target & free[k]):
                m.d.sync += [bits[k].eq(mapped[:W]), lasts[k].eq(mapped[W]),
                             maps[k].eq(mapped[W + 1:])]
            with m.If(f.clear):
                m.d.sync += sv[k].eq(0)
            with m.Elif(push & ~f.flush & target):
                m.d.sync += sv[k].eq(1)
            with m.Elif(left[k]):
                m.d.sync += sv[k].eq(0)
        with m.If(f.clear):
            m.d.sync += [slot.eq(0), p.eq(0), near.eq(0), beyond.eq(0)]

        # The tile's end, for the tail checks: the final code ended exactly at its word's end
        # (p = 0 after it), the last flags of both slots, and whether the bits from p on in
        # the current slot are all zero (a register: read the cycle after the final step).
        f.at_start = p == 0
        f.cur_last = cur_last
        f.prev_last = Mux(slot, lasts[0], lasts[1])
        f.pad_nz = Signal()
        cur_bits = Mux(slot, bits[1], bits[0])
        m.d.sync += f.pad_nz.eq((cur_bits << p)[:W] != 0)

        # After the loop: stage A holds the step's position, stage W the code's window (a
        # select of both slots' bits; the slot a code starts in is refilled two cycles after
        # its step at the earliest) and its flags; its length and ESC flag are recomputed
        # from the window (a valid code's length depends on its own bits only).
        va, pa, sa, lasta, firsta = Signal(), Signal(P), Signal(), Signal(), Signal()
        m.d.sync += [va.eq(step), pa.eq(p), sa.eq(slot), lasta.eq(remaining == 1),
                     firsta.eq(first_pend & ~va)]
        f.v = Signal()
        f.window = Signal(CW)
        f.last = Signal()
        f.first = Signal()
        two = Mux(sa, Cat(bits[0], bits[1]), Cat(bits[1], bits[0]))
        m.d.sync += [f.v.eq(va), f.window.eq((two << pa)[2 * W - CW:2 * W]),
                     f.last.eq(lasta), f.first.eq(firsta)]
        m.submodules.map_length = cl = CanonicalLength(L, b)
        m.d.comb += [cl.top.eq(f.window[CW - L:]), cl.limits.eq(lims), cl.esc.eq(cur["esc"]),
                     cl.esc_lo.eq(cur["esc_lo"]), cl.esc_hi.eq(cur["esc_hi"]),
                     cl.esc_total.eq(esc_total)]
        f.onehot, f.is_esc = cl.onehot, cl.is_esc
        f.pre_mem = va | f.v
        f.va = va
        return f

    # -----------------------------------------------------------------------------------------
    def _loader(self, m, mem, regs, may_load, busy_cfg, raise_code, clear):
        """Table loading: ``hdl.coder_parts.TableParser`` checks the bytes of
        ``HuffmanTable.serialize()``; this writes the group's limits and offsets (per count),
        its ESC range and the symbol memory in canonical order (per symbol).

        ``may_load``: between tiles with no symbol waiting for the symbol memory.
        """
        b, L, G = self._b, self._L, self._G
        RL = self._run_max > 0
        A, PW = self._pos_width, self._payload_width
        p, may_start, hold = coder_parser(self, m)
        wp = mem.write_port()
        grp = p.group if G > 1 else Const(0, 1)
        value = p.value
        first = Signal(L + 2)     # canonical code of the count's length (the count phase)
        nxt = Signal(L + 2)
        m.d.comb += nxt.eq(first + value)
        wpos = Signal(A)
        lims = Array(Array(r["lim"]) for r in regs)
        offs = Array(Array(r["off"]) for r in regs)
        oks = Array(r["ok"] for r in regs)
        escs = Array(r["esc"] for r in regs)
        esc_los = Array(r["esc_lo"] for r in regs)
        esc_his = Array(r["esc_hi"] for r in regs)
        esc_lens = Array(r["esc_len"] for r in regs)
        li = p.index
        shift = Signal(range(L + 1))
        m.d.comb += shift.eq(L - 1 - li)

        with m.If(p.start):
            m.d.comb += clear.eq(1)
            with m.If(p.group_ok):
                m.d.sync += oks[p.start_group].eq(0)
        if self._runtime:
            # The table sets its group's width (1 to b).
            with m.If(p.set_width):
                for g in range(G):
                    with m.If(p.start_group == g):
                        m.d.sync += self._gbits[g].eq(p.data)
        with m.If(p.header):
            m.d.sync += [first.eq(0), escs[grp].eq(0)]
        with m.If(p.count):
            # Limits and offsets of length li + 1, left-justified to the decoder's L.
            m.d.sync += [first.eq(nxt << 1), lims[grp][li].eq(nxt << shift),
                         offs[grp][li].eq(p.total - first)]
            with m.If(p.final):
                # Lengths t_len+1 .. L have no codes: same limit, never reached.
                for j in range(L):
                    with m.If(j > li):
                        m.d.sync += lims[grp][j].eq(nxt << shift)
                m.d.sync += wpos.eq(0)
        with m.If(p.symbol):
            m.d.sync += wpos.eq(wpos + 1)
            m.d.comb += wp.addr.eq(Cat(wpos, grp) if G > 1 else wpos)
            if RL:
                # Run-length builds store (payload, is_run): the value, or k - 1 of RUN_k
                # (alphabet index 2**b_g + k).
                run_k1 = Signal(len(value))
                m.d.comb += run_k1.eq(value - p.esc_index - 1)
                m.d.comb += [wp.data.eq(Mux(p.is_run, Cat(run_k1[:PW], 1),
                                            Cat(value[:b], Const(0, PW + 1 - b)))),
                             wp.en.eq(p.is_lit | p.is_run)]
            else:
                m.d.comb += [wp.data.eq(value[:b]), wp.en.eq(p.is_lit)]
            esc_shift = Signal(range(L + 1))
            m.d.comb += esc_shift.eq(L - p.code_len)
            with m.If(p.is_esc):
                m.d.sync += [esc_los[grp].eq(p.code << esc_shift),
                             esc_his[grp].eq((p.code + 1) << esc_shift),
                             esc_lens[grp].eq(p.code_len)]
        with m.If(p.end & ~p.failed):
            m.d.sync += [oks[grp].eq(1), escs[grp].eq(p.esc_flag)]
        # A failed load raises BAD_TABLE a cycle later (``failed_r``: the byte's checks reach
        # a flip-flop, not the error flag's logic); in that cycle no load starts and no
        # header is taken (either would clear the flag as it is raised).
        failed_r = Signal()
        m.d.sync += failed_r.eq(p.failed)
        with m.If(failed_r):
            m.d.comb += raise_code.eq(DecoderError.BAD_TABLE)
        # cfg waits for the first byte until the decoder is between tiles with its pipeline
        # empty. Headers wait while a byte is offered or a good load is unfinished.
        m.d.comb += [may_start.eq(may_load & ~failed_r), hold.eq(0),
                     self.loading.eq(p.loading),
                     busy_cfg.eq(p.pending | self.loading | failed_r)]


# ---------------------------------------------------------------------------------------------
# python -m hdl.build


def _modules(args):
    return coder_modules(args, HuffmanDecoder, "huffman_decoder")


BLOCK = Block("huffman_decoder", huffman_arguments, _modules)
