"""Canonical Huffman decoder: MSB-first W-bit words in, one symbol per cycle out.

Golden twin: ``golden.codec.plain.decode_tile`` / ``decode_groups`` (plain mode, bitstream version
1,
``docs/bitstream.md``). Ports, the tile-count and table-loading protocols, the error rules and
the timing are described in ``docs/huffman_decoder.md``.

Datapath: a left-aligned bit buffer of ``W + 2 (L + b)`` bits takes one input word per cycle.
The decode loop compares the buffer's top L bits with the current group's left-justified
per-length limits in parallel (DEFLATE canonical code: the code length is the first length whose
limit lies above them), adds b when they are the ESC code, and shifts the buffer by that many
bits: one symbol per cycle. Stage 0 registers the code's window; stage 1 turns its prefix into a
position in canonical order and reads the symbol memory (or takes the raw bits after ESC).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.huffman_encoder import encoder_tables
from hdl.pipeline import stage_enables
from hdl.registry import Block, UsageError, huffman_arguments
from hdl.registry import Module as BuildModule

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


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


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


def _canonical(counts, max_len):
    """Per length 1..L: (first code, base position, left-justified limit) of a canonical code."""
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

    Raises
    ------
    TypeError, ValueError
        On bad parameters (before anything is built); a run-length table raises
        ``ValueError("run-length mode is not supported by the RTL yet")``.
    """

    LATENCY = 3  # handshake of the word completing a code -> that symbol on o_stream

    def __init__(self, symbol_width, max_len, word_width, groups=1, group_bounds=None,
                 group_bits=None, table=None, *, count_width=32):
        b = _check_int("Symbol width", symbol_width, 1, 8)
        L = _check_int("Maximum code length", max_len, 1, 24)
        if isinstance(word_width, bool) or not isinstance(word_width, int):
            raise TypeError(f"Word width must be an integer, not {word_width!r}")
        if word_width not in (8, 16, 32, 64):
            raise ValueError(f"Word width must be one of 8, 16, 32, 64, not {word_width}")
        if isinstance(groups, bool) or not isinstance(groups, int):
            raise TypeError(f"Table group count must be an integer, not {groups!r}")
        if groups < 1:
            raise ValueError(f"Table group count must be a positive integer, not {groups}")
        self._count_width = _check_int("Count width", count_width, 1, 48)
        tables, file_bounds = (None, None) if table is None else encoder_tables(table)
        if tables is not None and len(tables) != groups:
            raise ValueError(f"Table group count is {groups} but {len(tables)} tables were "
                             f"given")
        if group_bounds is None:
            group_bounds = file_bounds
        elif file_bounds is not None and list(group_bounds) != file_bounds:
            raise ValueError(f"Group bounds {list(group_bounds)} differ from the table set's "
                             f"{file_bounds}")
        self._bounds = self._check_bounds(group_bounds, groups)
        if group_bits is None:
            group_bits = [t.bits for t in tables] if tables else [b] * groups
        group_bits = list(group_bits) if isinstance(group_bits, (list, tuple)) else group_bits
        if not isinstance(group_bits, list) or len(group_bits) != groups:
            raise ValueError(f"Group bit widths must be a list of {groups} integers, not "
                             f"{group_bits!r}")
        for g in group_bits:
            _check_int("Group bit width", g, 1, b)
        if tables is not None:
            for i, t in enumerate(tables):
                if t.bits != group_bits[i]:
                    raise ValueError(f"Table {i} codes {t.bits}-bit symbols, but group {i} is "
                                     f"{group_bits[i]} bits wide")
                if t.max_len > L:
                    raise ValueError(f"Table {i} has maximum code length {t.max_len}, more "
                                     f"than {L}")
        self._b, self._L, self._W, self._G = b, L, word_width, groups
        self._group_bits = group_bits
        self._tables = tables

        members = {
            "i_count": In(stream.Signature(data.StructLayout(
                {"count": unsigned(self._count_width)}))),
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
        super().__init__(members)
        # Not a port: high from a table load's first byte to its end or its failure (the
        # formal proofs in tests/formal/ bound how long it stays high).
        self.loading = Signal(name="loading")

    @staticmethod
    def _check_bounds(bounds, groups):
        if bounds is None:
            if groups > 1:
                raise ValueError(f"Group bounds are needed with {groups} table groups")
            return None
        if not isinstance(bounds, (list, tuple)) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in bounds):
            raise TypeError(f"Group bounds must be a list of integers, not {bounds!r}")
        bounds = list(bounds)
        if (len(bounds) != groups + 1 or bounds[0] != 0
                or any(a >= c for a, c in zip(bounds, bounds[1:]))):
            raise ValueError(f"Group bounds must rise from 0 with one group per table, "
                             f"not {bounds}")
        return bounds

    # -----------------------------------------------------------------------------------------
    @property
    def buffer_bits(self):
        """Bits of the input bit buffer, ``W + 2 (L + b)``."""
        return self._W + 2 * (self._L + self._b)

    def _group_regs(self, g):
        """Registers (or baked constants as their reset values) of one group's decode table."""
        L, b = self._L, self._b
        A = b + 1
        lim = [0] * L
        off = [0] * L
        esc_lo = esc_hi = 0
        esc = ok = 0
        if self._tables is not None:
            t = self._tables[g]
            first, base, lim = _canonical(t.counts, L)
            off = [(base[i] - first[i]) % (1 << A) for i in range(L)]
            if t.escape:
                n = int(t.lengths[t.esc_index])
                code = int(t.codes[t.esc_index])
                esc, esc_lo, esc_hi = 1, code << (L - n), (code + 1) << (L - n)
            ok = 1
        return {
            "lim": [Signal(L + 1, name=f"g{g}_lim{i + 1}", init=lim[i]) for i in range(L)],
            "off": [Signal(A, name=f"g{g}_off{i + 1}", init=off[i]) for i in range(L)],
            "esc": Signal(name=f"g{g}_esc", init=esc),
            "esc_lo": Signal(L + 1, name=f"g{g}_esc_lo", init=esc_lo),
            "esc_hi": Signal(L + 1, name=f"g{g}_esc_hi", init=esc_hi),
            "ok": Signal(name=f"g{g}_ok", init=ok),
        }

    def _init(self):
        """Symbol memory contents of baked tables: group g, canonical position p."""
        A = self._b + 1
        init = [0] * (self._G << A)
        for g, t in enumerate(self._tables):
            for p, s in enumerate(t.symbols):
                init[(g << A) | p] = int(s) & ((1 << self._b) - 1)
        return init

    def elaborate(self, platform):
        m = Module()
        b, L, W, G = self._b, self._L, self._W, self._G
        A = b + 1
        CW = L + b             # window: the longest code, ESC + raw bits
        B = self.buffer_bits
        baked = self._tables is not None
        regs = [self._group_regs(g) for g in range(G)]

        m.submodules.symbols = mem = Memory(shape=unsigned(b), depth=G << A,
                                            init=self._init() if baked else [])
        rp = mem.read_port()

        o = self.o_stream
        valid, load = stage_enables(m, o.ready, 2)

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
            K = self._bounds[-1]
            col = Signal(range(K))
            ncol = Signal(range(K))
            ngrp = Signal(range(G))
            m.d.comb += [ncol.eq(Mux(col == K - 1, 0, col + 1)),
                         ngrp.eq(sum((ncol >= e).as_unsigned() for e in self._bounds[1:-1]))]
            grp = Signal(range(G))
            cur = {
                "lim": [Signal(L + 1, name=f"cur_lim{i + 1}") for i in range(L)],
                "esc": Signal(name="cur_esc"),
                "esc_lo": Signal(L + 1, name="cur_esc_lo"),
                "esc_hi": Signal(L + 1, name="cur_esc_hi"),
                "ok": Signal(name="cur_ok"),
                "bits": Signal(4, name="cur_bits"),
            }

            def select(g_sig):
                out = [cur["esc"].eq(Array(r["esc"] for r in regs)[g_sig]),
                       cur["esc_lo"].eq(Array(r["esc_lo"] for r in regs)[g_sig]),
                       cur["esc_hi"].eq(Array(r["esc_hi"] for r in regs)[g_sig]),
                       cur["ok"].eq(Array(r["ok"] for r in regs)[g_sig]),
                       cur["bits"].eq(_lookup(self._group_bits, 4, g_sig))]
                for i in range(L):
                    out.append(cur["lim"][i].eq(Array(r["lim"][i] for r in regs)[g_sig]))
                return out
        else:
            grp = Const(0, 1)
            cur = dict(regs[0], bits=Const(self._group_bits[0], 4))

        # Tile control.
        remaining = Signal(self._count_width)
        seen_last = Signal()
        buf = Signal(B)
        fill = Signal(range(B + 1))
        busy_cfg = Signal()     # a table load is waiting or in progress
        i = self.i_stream
        cnt = self.i_count

        # Decode loop: the code at the top of the buffer.
        top = Signal(L)
        m.d.comb += top.eq(buf[B - L:])
        ge = Signal(L)
        m.d.comb += ge.eq(Cat(top >= cur["lim"][j] for j in range(L)))
        code_len = Signal(range(L + 1))
        # Limits never decrease: the length is the first l with top < limit[l].
        m.d.comb += code_len.eq(sum(ge[:j].all().as_unsigned() for j in range(1, L)) + 1
                                if L > 1 else 1)
        is_esc = Signal()
        m.d.comb += is_esc.eq(cur["esc"] & (top >= cur["esc_lo"]) & (top < cur["esc_hi"]))
        total = Signal(range(CW + 1))
        m.d.comb += total.eq(code_len + Mux(is_esc, cur["bits"], 0))
        invalid = Signal()
        m.d.comb += invalid.eq(ge[L - 1] | ~cur["ok"])
        enough = Signal()
        m.d.comb += enough.eq(total <= fill)

        take_word = Signal()
        step = Signal()
        ins = Signal(B)
        m.d.comb += ins.eq(Mux(take_word, Cat(Const(0, B - W), i.payload.data) >> fill, 0))
        m.d.sync += [buf.eq((buf | ins) << Mux(step, total, 0)),
                     fill.eq(fill + Mux(take_word, W, 0) - Mux(step, total, 0))]

        # Stage 0: the decoded code's window, length, ESC flag, group, last.
        win0 = Signal(CW)
        len0 = Signal(range(L + 1))
        esc0 = Signal()
        grp0 = Signal.like(grp)
        last0 = Signal()
        first0 = Signal()
        first_pend = Signal()   # the tile's first symbol is yet to be decoded
        with m.If(load[0]):
            m.d.sync += valid[0].eq(step)
            with m.If(step):
                m.d.sync += [win0.eq(buf[B - CW:]), len0.eq(code_len), esc0.eq(is_esc),
                             last0.eq(remaining == 1), first0.eq(first_pend),
                             first_pend.eq(0)]
                if G > 1:
                    m.d.sync += grp0.eq(grp)

        # Stage 0 -> 1: canonical position = prefix + (base - first), or the raw bits after ESC.
        sh_pre = Signal(range(CW + 1))
        m.d.comb += sh_pre.eq(CW - len0)
        prefix = Signal(L)
        m.d.comb += prefix.eq(win0 >> sh_pre)
        offs = Array(Array(r["off"][j] for j in range(L)) for r in regs)
        pos = Signal(A)
        m.d.comb += pos.eq(prefix[:A] + offs[grp0][len0 - 1])
        bits0 = _lookup(self._group_bits, 4, grp0)
        after = Signal(CW)
        m.d.comb += after.eq(win0 << len0)
        sh_raw = Signal(range(b + 1))
        m.d.comb += sh_raw.eq(b - bits0)
        raw = Signal(b)
        m.d.comb += raw.eq(after[CW - b:] >> sh_raw)
        m.d.comb += [rp.addr.eq(Cat(pos, grp0) if G > 1 else pos), rp.en.eq(load[1])]
        esc1 = Signal()
        raw1 = Signal(b)
        last1 = Signal()
        first1 = Signal()
        with m.If(load[1]):
            m.d.sync += [esc1.eq(esc0), raw1.eq(raw), last1.eq(last0), first1.eq(first0)]
        m.d.comb += [o.valid.eq(valid[1]),
                     o.payload.symbol.eq(Mux(esc1, raw1, rp.data)),
                     o.payload.last.eq(last1), o.payload.first.eq(first1)]

        with m.FSM(name="tile") as fsm:
            with m.State("IDLE"):
                m.d.comb += cnt.ready.eq(~busy_cfg)
                with m.If(cnt.valid & cnt.ready):
                    m.d.comb += clear.eq(1)
                    m.d.sync += [remaining.eq(cnt.payload.count), seen_last.eq(0),
                                 buf.eq(0), fill.eq(0), first_pend.eq(1)]
                    if G > 1:
                        m.d.sync += [col.eq(0), grp.eq(0)] + select(0)
                    with m.If(cnt.payload.count != 0):
                        m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += [i.ready.eq(~seen_last & (fill <= B - W)),
                             take_word.eq(i.valid & i.ready)]
                with m.If(take_word & i.payload.last):
                    m.d.sync += seen_last.eq(1)
                with m.If(invalid):
                    m.d.comb += raise_code.eq(Mux(cur["ok"], DecoderError.INVALID_CODE,
                                                  DecoderError.NO_TABLE))
                    m.next = "DRAIN"
                with m.Elif(~enough & seen_last):
                    m.d.comb += raise_code.eq(DecoderError.ENDED_EARLY)
                    m.next = "DRAIN"
                with m.Elif(enough & load[0]):
                    m.d.comb += step.eq(1)
                    m.d.sync += remaining.eq(remaining - 1)
                    if G > 1:
                        m.d.sync += [col.eq(ncol), grp.eq(ngrp)] + select(ngrp)
                    with m.If(remaining == 1):
                        m.next = "TAIL"
            with m.State("TAIL"):
                # The final symbol is out: the rest must be the final word's zero padding.
                with m.If(~seen_last | (fill >= W)):
                    m.d.comb += raise_code.eq(DecoderError.EXCESS_WORDS)
                    m.next = "DRAIN"
                with m.Else():
                    with m.If(buf != 0):
                        m.d.comb += raise_code.eq(DecoderError.PADDING)
                    m.next = "IDLE"
            with m.State("DRAIN"):
                # After an error: drop words up to the one flagged last; emit nothing more.
                m.d.comb += i.ready.eq(~seen_last)
                with m.If((i.valid & i.ready & i.payload.last) | seen_last):
                    m.d.sync += seen_last.eq(1)
                    m.next = "IDLE"
        idle = fsm.ongoing("IDLE")

        if baked:
            m.d.comb += busy_cfg.eq(0)
        else:
            self._loader(m, mem, regs, idle & ~valid[0], busy_cfg, raise_code, clear)
        return m

    # -----------------------------------------------------------------------------------------
    def _loader(self, m, mem, regs, may_load, busy_cfg, raise_code, clear):
        """Table loading FSM: parse ``HuffmanTable.serialize()`` bytes into the group's limits,
        offsets, ESC range and symbol memory.

        ``may_load``: between tiles with no symbol waiting for the symbol memory.
        """
        b, L, G = self._b, self._L, self._G
        A = b + 1
        cfg = self.cfg
        wp = mem.write_port()
        byte = cfg.payload.data
        hs = Signal()
        m.d.comb += hs.eq(cfg.valid & cfg.ready)

        grp = Signal(range(G)) if G > 1 else Const(0, 1)
        bits_of = self._group_bits
        n_max = Signal(b + 2)   # 2**b_g + 1 entries, ESC included
        m.d.comb += n_max.eq(_lookup([(1 << x) + 1 for x in self._group_bits], b + 2, grp))
        t_len = Signal(range(L + 1))
        esc_flag = Signal()
        counts = Array(Signal(b + 2, name=f"count{j}") for j in range(L))
        lo = Signal(8)
        value = Signal(16)
        m.d.comb += value.eq(Cat(lo, byte))
        li = Signal(range(L + 1))
        code = Signal(L + 2)      # canonical code counter at the current length
        total = Signal(b + 3)     # codes counted so far
        cur_len = Signal(range(L + 1))
        remaining = Signal(b + 2)
        left = Signal(b + 2)
        wpos = Signal(A)
        esc_seen = Signal()
        lims = Array(Array(r["lim"]) for r in regs)
        offs = Array(Array(r["off"]) for r in regs)
        oks = Array(r["ok"] for r in regs)
        escs = Array(r["esc"] for r in regs)
        esc_los = Array(r["esc_lo"] for r in regs)
        esc_his = Array(r["esc_hi"] for r in regs)
        shift = Signal(range(L + 1))
        m.d.comb += shift.eq(L - 1 - li)

        def fail():
            m.d.comb += raise_code.eq(DecoderError.BAD_TABLE)
            with m.If(cfg.payload.last):
                m.next = "HDR0"
            with m.Else():
                m.next = "SKIP"

        def early_last():
            with m.If(cfg.payload.last):
                m.d.comb += raise_code.eq(DecoderError.BAD_TABLE)
                m.next = "HDR0"

        with m.FSM(name="loader") as fsm:
            with m.State("HDR0"):
                with m.If(hs):
                    m.d.comb += clear.eq(1)
                    g_in = cfg.payload.group if G > 1 else Const(0, 1)
                    if G > 1:
                        m.d.sync += grp.eq(g_in)
                    bad_group = (g_in >= G) if G & (G - 1) else Const(0)
                    with m.If(~bad_group):
                        m.d.sync += oks[g_in].eq(0)
                    with m.If(bad_group | (byte != _lookup(bits_of, 4, g_in)) | cfg.payload.last):
                        fail()
                    with m.Else():
                        m.next = "HDR1"
            with m.State("HDR1"):
                with m.If(hs):
                    m.d.sync += t_len.eq(byte)
                    with m.If((byte == 0) | (byte > L)):
                        fail()
                    with m.Else():
                        m.next = "HDR2"
                        early_last()
            with m.State("HDR2"):
                with m.If(hs):
                    m.d.sync += esc_flag.eq(byte[0])
                    # Bit 1 is the run-length mode, not supported by this RTL; others reserved.
                    with m.If(byte[1:] != 0):
                        fail()
                    with m.Else():
                        m.next = "HDR3"
                        early_last()
            with m.State("HDR3"):
                with m.If(hs):
                    m.d.sync += [li.eq(0), code.eq(0), total.eq(0), esc_seen.eq(0),
                                 escs[grp].eq(0)]
                    with m.If(byte != 0):
                        fail()
                    with m.Else():
                        m.next = "CNT_LO"
                        early_last()
            with m.State("CNT_LO"):
                with m.If(hs):
                    m.d.sync += lo.eq(byte)
                    m.next = "CNT_HI"
                    early_last()
            with m.State("CNT_HI"):
                with m.If(hs):
                    nxt = Signal(L + 2)
                    m.d.comb += nxt.eq(code + value)
                    final = li == t_len - 1
                    # Limits and offsets of length li + 1, left-justified to the decoder's L.
                    m.d.sync += [counts[li].eq(value), total.eq(total + value),
                                 li.eq(li + 1), code.eq(nxt << 1),
                                 lims[grp][li].eq(nxt << shift),
                                 offs[grp][li].eq(total - code)]
                    with m.If(final):
                        # Lengths t_len+1 .. L have no codes: same limit, never reached.
                        for j in range(L):
                            with m.If(j > li):
                                m.d.sync += lims[grp][j].eq(nxt << shift)
                    overfull = nxt > (Const(1, L + 2) << (li + 1))   # Kraft: nxt <= 2**l
                    with m.If((value > n_max) | overfull
                              | (final & ((total + value == 0) | (total + value > n_max)))):
                        fail()
                    with m.Elif(final):
                        m.d.sync += [cur_len.eq(0), code.eq(0), remaining.eq(0),
                                     left.eq(total + value), wpos.eq(0)]
                        m.next = "ADVANCE"
                        early_last()
                    with m.Else():
                        m.next = "CNT_LO"
                        early_last()
            with m.State("ADVANCE"):
                # Step to the next length that has codes (canonical: code <<= 1 per length).
                with m.If(remaining == 0):
                    m.d.sync += [cur_len.eq(cur_len + 1), code.eq(code << 1),
                                 remaining.eq(counts[cur_len])]
                with m.Else():
                    m.next = "SYM_LO"
            with m.State("SYM_LO"):
                with m.If(hs):
                    m.d.sync += lo.eq(byte)
                    m.next = "SYM_HI"
                    early_last()
            with m.State("SYM_HI"):
                with m.If(hs):
                    lit = value < (n_max - 1)
                    is_esc = value == (n_max - 1)
                    m.d.sync += [code.eq(code + 1), remaining.eq(remaining - 1),
                                 left.eq(left - 1), wpos.eq(wpos + 1)]
                    m.d.comb += [wp.addr.eq(Cat(wpos, grp) if G > 1 else wpos),
                                 wp.data.eq(value[:b]), wp.en.eq(lit)]
                    esc_shift = Signal(range(L + 1))
                    m.d.comb += esc_shift.eq(L - cur_len)
                    with m.If(is_esc):
                        m.d.sync += [esc_los[grp].eq(code << esc_shift),
                                     esc_his[grp].eq((code + 1) << esc_shift),
                                     esc_seen.eq(1)]
                    with m.If(~(lit | is_esc)):
                        fail()
                    with m.Elif(left == 1):
                        # The table's final byte (its length follows from the header and the
                        # counts): the load ends here, with or without ``last``; without it, or
                        # with the wrong ESC presence, the table is bad.
                        m.next = "HDR0"
                        with m.If(~cfg.payload.last | ((esc_seen | is_esc) != esc_flag)):
                            m.d.comb += raise_code.eq(DecoderError.BAD_TABLE)
                        with m.Else():
                            m.d.sync += [oks[grp].eq(1), escs[grp].eq(esc_flag)]
                    with m.Elif(remaining == 1):
                        m.next = "ADVANCE"
                        early_last()
                    with m.Else():
                        m.next = "SYM_LO"
                        early_last()
            with m.State("SKIP"):
                # After a malformed table: drop bytes up to the one flagged last. Tiles are
                # not held back meanwhile (the group is already unusable), so a bad load
                # that never sends ``last`` cannot block the decoder.
                with m.If(hs & cfg.payload.last):
                    m.next = "HDR0"
        # cfg waits in HDR0 until the decoder is between tiles with its pipeline empty, and
        # while a length is stepped. One expression (see hdl/huffman_encoder.py on Icarus).
        m.d.comb += cfg.ready.eq(Mux(fsm.ongoing("HDR0"), may_load, ~fsm.ongoing("ADVANCE")))
        # Headers wait while a byte is offered or a good load is unfinished.
        m.d.comb += [self.loading.eq(~(fsm.ongoing("HDR0") | fsm.ongoing("SKIP"))),
                     busy_cfg.eq(cfg.valid | self.loading)]


# ---------------------------------------------------------------------------------------------
# python -m hdl.build


def _modules(args):
    try:
        tables = None
        bounds = None
        if args.table is not None:
            tables, bounds = encoder_tables(args.table)
            groups = len(tables)
            if args.groups not in (1, groups):
                raise UsageError(f"--groups {args.groups} does not match the table file's "
                                 f"{groups} groups")
            if groups > 1 and bounds[-1] != args.k:
                raise UsageError(f"Table file covers {bounds[-1]} components, not --k "
                                 f"{args.k}")
        else:
            groups = args.groups
            if groups > args.k:
                raise UsageError(f"Table group count {groups} must not exceed component count "
                                 f"{args.k}")
            if groups > 1:
                bounds = [g * args.k // groups for g in range(groups + 1)]
        b = max(t.bits for t in tables) if tables else args.symbol_width
        if tables and args.symbol_width < b:
            raise UsageError(f"Symbol width {args.symbol_width} is narrower than the table "
                             f"file's {b} bits")
        comp = HuffmanDecoder(args.symbol_width, args.max_len, args.word_width, groups,
                              group_bounds=bounds, table=tables if tables else None)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    return [BuildModule("huffman_decoder", comp, {
        "latency": HuffmanDecoder.LATENCY,
        "throughput": "1 symbol per cycle",
        "parameters": {"symbol_width": args.symbol_width, "max_len": args.max_len,
                       "word_width": args.word_width, "groups": groups,
                       "group_bounds": bounds, "group_bits": comp._group_bits,
                       "baked_table": args.table, "buffer_bits": comp.buffer_bits},
    })]


BLOCK = Block("huffman_decoder", huffman_arguments, _modules)
