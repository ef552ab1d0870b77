"""Canonical Huffman encoder: symbols in, MSB-first W-bit words out, one symbol per cycle.

Golden twin: ``golden.codec.plain.encode_tile`` / ``encode_groups`` (plain mode, bitstream
version 1) and, with ``run_max`` R > 0, ``golden.codec.runlength.encode_rl_tile`` (run-length
mode, version 2), ``docs/bitstream.md``. Ports, the table-loading protocol and the timing are described in
``docs/huffman_encoder.md``.

Datapath: the input stage looks the symbol up in a code memory (one entry per symbol pattern and
group: valid, code, length), read through an output register (``hdl.block_ram``; with
``family="ecp5"`` the ``DP16KD`` tiles' own); stage 1 resolves escapes (ESC code followed by the
raw b bits, one code of up to ``L + b`` bits) and left-justifies the code; the packer
(``hdl.coder_parts.BitPacker``, a pipeline with no stall inside and an output queue) places it
in the tile's bit string and emits each word as it fills. A tile ends with a beat flagged
``last``: the packer zero-pads the final word, flags it ``last`` and reports the tile's payload
bit count on ``o_count``.

Run-length mode (R > 0) puts a front end before the look-up: zeros are counted, and an event
(pending run, the value after it) per nonzero value or tile end is queued; an issuer turns each
event into code requests, one per cycle (RUN_k by the greedy rule, then the value), for the
same look-up and packer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.block_ram import RegisteredRam
from hdl.coder_params import coder_modules, coder_parser, encoder_tables, setup_coder
from hdl.coder_parts import CODE_MAX, LEN_BITS, BitPacker, pick
from hdl.multiply import FAMILIES
from hdl.pipeline import stage_enables
from hdl.registry import Block, huffman_arguments

__all__ = ["BLOCK", "HuffmanEncoder", "encoder_tables"]


class HuffmanEncoder(wiring.Component):
    """Canonical Huffman encoder, plain mode (bitstream version 1) and, with ``run_max`` > 0,
    run-length mode (version 2); one symbol per cycle.

    Parameters
    ----------
    symbol_width : int
        Width b of the symbol field, 1 to 8 (the widest group's b).
    max_len : int
        Longest code L a table may use, 1 to 24 (ESC + raw bits: at most ``L + b <= 32``).
    word_width : int
        Output word width W: 8, 16, 32 or 64.
    groups : int
        Number of table groups G (one table each).
    group_bounds : sequence of int or None
        Column edges ``[0, k1, ..., K]`` as in ``golden.codec.plain.encode_groups``; needed when
        ``groups > 1``. The encoder counts columns itself: the first symbol of a tile is column
        0, each symbol advances the column modulo K, and column j uses the group holding j.
    group_bits : sequence of int or None
        Symbol width per group, each 1 to ``symbol_width`` (default: every group
        ``symbol_width``, or the baked tables' widths). A group's symbol is the low b_g bits of
        the symbol field.
    table : path, TableSet, HuffmanTable, sequence of HuffmanTable, or None
        Bake these tables as constants (no ``cfg`` port). None: tables are loaded at run time
        through ``cfg``.
    count_width : int
        Width of the bit count on ``o_count`` (default 32; tiles of more bits wrap).
    run_max : int or None
        Longest zero run symbol R: 0 (plain mode only, the version-1 block) or a power of two
        up to 256. None: the baked tables' longest run (0 without run-length tables). With
        R > 0 a group's tile is coded in its table's mode. In version 2 (group 0's table is
        run-length) a tile is one group's, and the host names that group on every beat of
        the tile in ``i_stream.payload.group`` (present when R > 0 and G > 1), as the
        decoder's tile header does; in version 1 the group follows the column (see
        ``docs/huffman_encoder.md``).
    runtime_groups : bool
        Plain mode with run-time tables only: the host names each symbol's group in
        ``i_stream.payload.group`` (G > 1) instead of the encoder counting columns against
        ``group_bounds``, and each group's symbol width is its loaded table's (header byte 0,
        1 to ``symbol_width``; ``group_bits`` are the widths before the first load). One
        encoder then serves layers of any K, bounds and widths (``docs/huffman_encoder.md``).
    family : str
        FPGA family (``hdl.multiply.FAMILIES``): ``"ecp5"`` builds the code table from
        ``DP16KD`` tiles read through their own output register (``hdl.block_ram``), which
        takes the block RAM's clock-to-output off the fabric's paths; ``"generic"`` (default)
        and ``"ice40"`` infer the memory.

    Ports
    -----
    i_stream : In(stream)  payload ``{symbol, last, empty}``, and ``group`` after them in a
        build with R > 0 and G > 1; ``empty`` beats carry no symbol (an empty tile is one
        beat with ``empty`` and ``last``). ``group`` ((G - 1).bit_length() bits) is read in
        version 2 only and must stay the same on every beat of a tile, its final ``last``
        or ``empty`` beat included. With ``runtime_groups`` (plain mode) it is present when
        G > 1 and names the group of each symbol.
    o_stream : Out(stream)  payload ``{data, last}``: W-bit words, MSB first, the tile's final
        word zero-padded and flagged ``last``.
    o_count : Out(stream)  payload ``{nbits}``: one beat per tile, the payload bits before
        padding.
    cfg : In(stream)  payload ``{data, group, last}`` (run-time tables only): the bytes of
        ``HuffmanTable.serialize()``, ``last`` on the final byte.
    error : Out(1)  sticky: a malformed table load, a symbol without a code in a table
        without escape, or (version 2) a beat whose ``group`` is G or more (the beat is
        coded with group 0). Cleared by reset or by the first byte of the next table load.

    Raises
    ------
    TypeError, ValueError
        On bad parameters (before anything is built); a baked run-length table with a longer
        run than ``run_max`` raises ``ValueError``.
    """

    RUN_LENGTH = True  # run-length tables (bitstream version 2) accepted
    FAMILY = True  # takes ``family`` (python -m hdl.build --family)
    # A tile's last handshake -> its final word: the code-memory read, its register, then the
    # packer (a word finished inside a tile leaves a cycle sooner).
    LATENCY = 2 + BitPacker.LATENCY

    @property
    def latency(self):
        """``LATENCY``, plus the run-length front end's 4 registers in a build with
        ``run_max > 0`` (the manifest's ``latency``)."""
        return self.LATENCY + (4 if self._run_max else 0)

    def __init__(self, symbol_width, max_len, word_width, groups=1, group_bounds=None,
                 group_bits=None, table=None, *, count_width=32, run_max=None,
                 runtime_groups=False, family="generic"):
        setup_coder(self, symbol_width, max_len, word_width, groups, group_bounds, group_bits,
                    table, count_width, 64, run_max, runtime_groups)
        if family not in FAMILIES:
            raise ValueError(f"FPGA family must be one of {', '.join(FAMILIES)}, not "
                             f"{family!r}")
        self._family = family
        b, tables = self._b, self._tables

        i_fields = {"symbol": unsigned(b), "last": 1, "empty": 1}
        if (self._run_max or self._runtime) and groups > 1:
            # Version 2: the tile's group, named by the host (appended: the other fields
            # keep their bits).
            i_fields["group"] = unsigned((groups - 1).bit_length())
        i_layout = data.StructLayout(i_fields)
        o_layout = data.StructLayout({"data": unsigned(word_width), "last": 1})
        n_layout = data.StructLayout({"nbits": unsigned(self._count_width)})
        members = {
            "i_stream": In(stream.Signature(i_layout)),
            "o_stream": Out(stream.Signature(o_layout)),
            "o_count": Out(stream.Signature(n_layout)),
            "error": Out(1),
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
        # The bit packer (``hdl.coder_parts.BitPacker``, stage 2 is its input register). Made
        # here so the formal proofs reach its code length and the registered ``len2 <= L + b``
        # check (tests/formal/coders.py, ``encoder_invariants``).
        self._packer = BitPacker(word_width, self._code_width(), self._count_width)
        # Elaborated with the encoder; an encoder never elaborated warns for both already.
        self._packer._MustUse__silence = True
        self._len2, self._len_ok2 = self._packer.len2, self._packer.len_ok2

    # -----------------------------------------------------------------------------------------
    @property
    def memory_bits(self):
        """Bits of the code memory (every group's ``2**b`` codes, plus the run symbols and
        the run plan in run-length builds)."""
        entry = 1 + self._code_width() + LEN_BITS
        bits = (self._G << self._addr_bits()) * entry
        if self._run_max:
            bits += (self._G << self._run_bits()) * (self._run_bits() + 1)
        return bits

    @property
    def buffer_bits(self):
        """Bits the packer can hold (``BitPacker.buffer_bits``, ``32 + 13 W``)."""
        return self._packer.buffer_bits

    def _code_width(self):
        return self._L + self._b

    def _entry(self, valid, code, length):
        """A code-memory word: valid, the code left-justified in ``L + b`` bits, its length."""
        cw = self._code_width()
        return valid | ((code << (cw - length)) << 1) | (length << (1 + cw))

    def _addr_bits(self):
        """Code-memory address bits per group: the 2**b values, then with ``run_max`` R > 0
        RUN_1 .. RUN_R at ``2**b + k - 1``."""
        if not self._run_max:
            return self._b
        return max(self._b + 1, ((1 << self._b) + self._run_max - 1).bit_length())

    def _run_bits(self):
        """Bits of a run length 0 .. R."""
        return self._run_max.bit_length()

    def _init(self):
        """Memory contents of baked tables (escapes folded into every uncoded pattern)."""
        ab = self._addr_bits()
        init = [0] * (self._G << ab)
        for g, t in enumerate(self._tables):
            for s in range(1 << t.bits):
                if t.enc_len[s]:
                    init[(g << ab) | s] = self._entry(1, int(t.enc_code[s]),
                                                      int(t.enc_len[s]))
            for k in range(1, t.run_max + 1):
                i = (1 << t.bits) + k
                if t.enc_len[i]:
                    init[(g << ab) | ((1 << self._b) + k - 1)] = self._entry(
                        1, int(t.enc_code[i]), int(t.enc_len[i]))
        return init

    def _plan_init(self):
        """Per group and pending run n = 0 .. R, the longest coded run length k <= n (0: none)
        and above it a bit telling k == n (the run ends with this code): golden ``_greedy``'s
        choice, one output code per step. Also each group's longest coded
        run (the counter's wrap point) and whether its table is run-length."""
        rb = self._run_bits()
        plan = [0] * (self._G << rb)
        tops, modes = [], []
        for g, t in enumerate(self._tables):
            best = 0
            for n in range(self._run_max + 1):
                if 1 <= n <= t.run_max and t.enc_len[(1 << t.bits) + n]:
                    best = n
                plan[(g << rb) | n] = best | (int(best == n and n > 0) << rb)
            tops.append(best)
            modes.append(int(t.run_max > 0))
        return plan, tops, modes

    def elaborate(self, platform):
        m = Module()
        b, L, G = self._b, self._L, self._G
        # Each group's symbol width and mask: constants, or with runtime_groups registers the
        # loader sets from the table's header.
        if self._runtime:
            self._gbits = [Signal(4, init=x, name=f"gbits{g}")
                           for g, x in enumerate(self._group_bits)]
            self._gmask = [Signal(b, init=(1 << x) - 1, name=f"gmask{g}")
                           for g, x in enumerate(self._group_bits)]
        else:
            self._gbits = [Const(x, 4) for x in self._group_bits]
            self._gmask = [Const((1 << x) - 1, b) for x in self._group_bits]
        cw = self._code_width()
        baked = self._tables is not None
        entry_width = 1 + cw + LEN_BITS

        # The code memory, read in two steps (hdl.block_ram): the address latched with stage
        # 0, the word in the output register with stage 1 (a fabric register, or with
        # family="ecp5" the block RAM's own: its clock-to-output is most of a cycle).
        ram = RegisteredRam(G << self._addr_bits(), entry_width,
                            "ecp5" if self._family == "ecp5" else "generic",
                            self._init() if baked else [])
        ram.elaborate(m, "codes")

        # Stage enables: stage 0 (the code-memory read), stage 1 (its data in the output
        # register) and stage 2 (the resolved, left-justified code).
        m.submodules.packer = packer = self._packer
        error = Signal()
        valid, load = stage_enables(m, packer.i_stream.ready, 2)
        loading = self.loading
        blocked = loading
        pending = Signal(name="cfg_pending")    # a table byte is offered or in the parser
        if not baked:
            blocked = loading | pending  # a waiting table load holds new symbols back
        if self._run_max:
            front = self._run_front(m, load[0], blocked, valid[0])
        else:
            front = self._plain_front(m, load[0], blocked, valid[0])
        rq_valid, rq_sym, rq_addr, rq_grp, rq_last, rq_empty, rq_run, busy = front
        # The loader reads the code memory too (which run lengths have a code, to build the
        # plan after a run-length table); symbols are held back meanwhile.
        self._ld_rsel = ld_rsel = Signal()
        self._ld_raddr = ld_raddr = Signal(len(ram.r_addr))
        ld_rsel_d = Signal()
        m.d.sync += ld_rsel_d.eq(ld_rsel)
        m.d.comb += [ram.r_addr.eq(Mux(ld_rsel, ld_raddr,
                                       Cat(rq_addr, rq_grp) if G > 1 else rq_addr)),
                     ram.r_en.eq(load[0] | ld_rsel), ram.o_en.eq(load[1] | ld_rsel_d)]
        self._ram = ram

        sym0 = Signal(b)
        grp0 = Signal(range(G)) if G > 1 else Const(0, 1)
        last0, empty0, run0 = Signal(), Signal(), Signal()
        with m.If(load[0]):
            m.d.sync += [valid[0].eq(rq_valid & ~blocked), sym0.eq(rq_sym),
                         last0.eq(rq_last), empty0.eq(rq_empty), run0.eq(rq_run)]
            if G > 1:
                m.d.sync += grp0.eq(rq_grp)

        # ESC registers per group, written by the loader: the ESC code left-justified in
        # CODE_MAX bits, the one-hot position of the raw bits after it, the total length.
        esc_code = Array(Signal(L, name=f"esc_code{g}") for g in range(G))
        esc_len = Array(Signal(range(L + 1), name=f"esc_len{g}") for g in range(G))
        esc_present = Array(Signal(name=f"esc_present{g}") for g in range(G))
        esc_lj = [Signal(CODE_MAX, name=f"esc_lj{g}") for g in range(G)]
        esc_pos = [Signal(CODE_MAX, name=f"esc_pos{g}") for g in range(G)]
        esc_total = [Signal(LEN_BITS, name=f"esc_total{g}") for g in range(G)]

        # Stage 1: the memory word in the output register; the escaped code (ESC code, then
        # the raw bits placed by the one-hot position) from registers only.
        e1 = ram.r_data
        sym_at = 0
        for s_ in range(CODE_MAX):
            sym_at = sym_at | Mux(pick(esc_pos, grp0)[s_], (sym0 << s_)[:CODE_MAX], 0)
        esc1 = Signal(CODE_MAX)
        esc_len1 = Signal(LEN_BITS)
        esc_ok1 = Signal()
        last1, empty1, run1 = Signal(), Signal(), Signal()
        with m.If(load[1]):
            m.d.sync += [last1.eq(last0), empty1.eq(empty0), run1.eq(run0)]
            if not baked:
                m.d.sync += [esc1.eq(pick(esc_lj, grp0) | sym_at),
                             esc_len1.eq(pick(esc_total, grp0)),
                             esc_ok1.eq(pick(list(esc_present), grp0))]

        # Stage 1 -> 2: the entry (its code already left-justified in L + b bits), or
        # ESC + raw bits, or nothing (an empty beat, or an uncodable symbol).
        e_valid = e1[0]
        e_code = e1[1:1 + cw]
        e_len = e1[1 + cw:]
        use_entry = Signal()
        use_esc = Signal()
        # A run request always has an entry (the plan picks coded runs only): never ESC.
        m.d.comb += [use_entry.eq(~empty1 & e_valid),
                     use_esc.eq(~empty1 & ~e_valid & esc_ok1 & ~run1)]
        uncodable = Signal()
        m.d.comb += uncodable.eq(~empty1 & ~e_valid & (~esc_ok1 | run1))
        # Stage 2 is the packer's input register.
        pi = packer.i_stream
        m.d.comb += [pi.valid.eq(valid[1]),
                     pi.payload.code.eq(Mux(use_entry, Cat(Const(0, CODE_MAX - cw), e_code),
                                            Mux(use_esc, esc1, 0))),
                     pi.payload.length.eq(Mux(use_entry, e_len, Mux(use_esc, esc_len1, 0))),
                     pi.payload.last.eq(last1)]
        code_error = Signal()
        m.d.comb += code_error.eq(valid[1] & pi.ready & uncodable)

        # The packer: words out, and the bit count of each tile once its final word is out.
        wiring.connect(m, packer.o_stream, wiring.flipped(self.o_stream))
        wiring.connect(m, packer.o_count, wiring.flipped(self.o_count))

        m.d.comb += self.error.eq(error)
        with m.If(code_error | self._front_error):
            m.d.sync += error.eq(1)

        if not baked:
            self._loader(m, ram, busy, loading, pending, error, esc_code, esc_len,
                         esc_present, esc_lj, esc_pos, esc_total)
        return m

    def _plan_pass(self, m, grp, rl_flag):
        """Loader state PLAN (after a good table's last byte, R > 0): for n = 1 .. R read
        whether RUN_n has a code (the code memory's valid bit; entries above the table's R'
        were cleared) and write plan[n] = the longest coded run <= n; the last one is the
        group's ``top``. R + 3 cycles; cfg and symbols wait."""
        b, G, R = self._b, self._G, self._run_max
        ab = self._addr_bits()
        rb = self._run_bits()
        pn = Signal(range(R + 3))       # address phase: n being read
        pn_d = Signal(range(R + 3))     # data phase: n whose valid bit is being read
        pn_r = Signal(range(R + 3))     # that bit in the memory's output register
        pv_d = Signal()
        pv_r = Signal()
        coded = self._ram.r_data[0]
        best = Signal(rb)
        pw = self._plan_mem.write_port()
        best_n = Signal(rb)
        m.d.comb += best_n.eq(Mux(coded, pn_r, best))
        with m.State("PLAN"):
            run_addr = ((1 << b) - 1 + pn)[:ab]
            m.d.comb += [self._ld_rsel.eq(1),
                         self._ld_raddr.eq(Cat(run_addr, grp) if G > 1 else run_addr)]
            m.d.sync += [pn.eq(Mux(pn == R + 2, pn, pn + 1)), pn_d.eq(pn),
                         pv_d.eq((pn >= 1) & (pn <= R)), pn_r.eq(pn_d), pv_r.eq(pv_d)]
            with m.If(pv_r):
                m.d.comb += [pw.addr.eq(Cat(pn_r[:rb], grp) if G > 1 else pn_r[:rb]),
                             pw.data.eq(Cat(best_n, coded)), pw.en.eq(1)]
                m.d.sync += best.eq(best_n)
                with m.If(pn_r == R):
                    for g in range(G):
                        with m.If(grp == g):
                            m.d.sync += [self._rl_top[g].eq(best_n),
                                         self._rl_mode[g].eq(rl_flag)]
                    m.d.sync += [pn.eq(0), pn_d.eq(0), pv_d.eq(0), pn_r.eq(0), pv_r.eq(0),
                                 best.eq(0)]
                    m.next = "IDLE"

    # -----------------------------------------------------------------------------------------
    def _plain_front(self, m, load0, blocked, valid0):
        """Plain mode only (R = 0): the input beat is the code request; the group follows the
        column (``encode_groups``' rule)."""
        b, G = self._b, self._G
        ip = self.i_stream.payload
        m.d.comb += self.i_stream.ready.eq(load0 & ~blocked)
        self._front_error = Const(0)
        if self._runtime and G > 1:
            # The beat names the group; one of G or more (G not a power of two) is coded
            # with group 0 and sets ``error``.
            group_now = ip.group
            if G & (G - 1):
                bad = Signal()
                m.d.comb += bad.eq(ip.group >= G)
                group_now = Mux(bad, 0, ip.group)
                self._front_error = Signal()
                m.d.sync += self._front_error.eq(self.i_stream.valid & self.i_stream.ready
                                                 & ~ip.empty & bad)
        else:
            group_now = self._column_group(m)
        sym_masked = Signal(b)
        m.d.comb += sym_masked.eq(ip.symbol & pick(self._gmask, group_now))
        return (self.i_stream.valid, sym_masked, sym_masked, group_now, ip.last, ip.empty,
                Const(0), valid0)

    def _column_group(self, m):
        """Column counter -> group (encode_groups' rule), reset at every tile start."""
        G = self._G
        ip = self.i_stream.payload
        group_now = Signal(range(G)) if G > 1 else Const(0, 1)
        if G > 1:
            K = self._bounds[-1]
            col = Signal(range(K))
            m.d.comb += group_now.eq(sum((col >= edge).as_unsigned()
                                         for edge in self._bounds[1:-1]))
            with m.If(self.i_stream.valid & self.i_stream.ready):
                with m.If(ip.last):
                    m.d.sync += col.eq(0)
                with m.Elif(~ip.empty):
                    m.d.sync += col.eq(Mux(col == K - 1, 0, col + 1))
        return group_now

    def _run_front(self, m, load0, blocked, valid0):
        """Run-length front end (R > 0): counts zeros, queues events, issues code requests.

        Counter: input beats are taken one per cycle; a zero of a run-length group only counts
        (a run never exceeds the group's longest coded run ``top``: reaching it queues RUN_top
        at once). A nonzero value, or the tile's end, queues one event ``{rem, lit, sym,
        last}``: the pending zeros and what follows them. Events wait in a 4-entry FIFO.

        Issuer: takes one event at a time and puts one code request per cycle into a register
        in front of the code-memory read: while ``rem > 0``, RUN_k with k = plan[rem] (the
        longest coded run <= rem, an asynchronous read of a small per-group table) and rem -=
        k; then the literal (or an empty beat carrying ``last``). An event costs at most
        ``rem + 1`` requests and covers ``rem + 1`` inputs, so the issuer keeps up on average;
        the FIFO absorbs the bursts.
        """
        b, G, R = self._b, self._G, self._run_max
        rb = self._run_bits()
        baked = self._tables is not None
        ip = self.i_stream.payload
        gbits = max(1, (G - 1).bit_length())

        # Per-group run-length state: table mode (run-length or plain), longest coded run,
        # and the plan memory. Constants for baked tables, loader registers otherwise.
        if baked:
            plan_init, tops, modes = self._plan_init()
            top = [Const(x, rb) for x in tops]
            mode = [Const(x, 1) for x in modes]
        else:
            plan_init = []
            top = [Signal(rb, name=f"run_top{g}") for g in range(G)]
            mode = [Signal(name=f"run_mode{g}") for g in range(G)]
        self._rl_top, self._rl_mode = top, mode
        m.submodules.plan = plan = Memory(shape=unsigned(rb + 1), depth=G << rb,
                                          init=plan_init)
        self._plan_mem = plan

        # Group: version 2 (group 0's table is run-length) takes the beat's ``group`` (the
        # host holds it for the whole tile); version 1 follows the column. A group of G or
        # more (G not a power of two) codes the beat with group 0 and sets ``error``.
        col_group = self._column_group(m)
        group_now = col_group
        bad_group = Const(0)
        if G > 1:
            g_in = ip.group
            group_now = Signal(range(G))
            if G & (G - 1):
                bad_group = Signal()
                m.d.comb += bad_group.eq(mode[0] & (g_in >= G))
                g_in = Mux(bad_group, 0, g_in)
            m.d.comb += group_now.eq(Mux(mode[0], g_in, col_group))
        sym_masked = Signal(b)
        m.d.comb += sym_masked.eq(ip.symbol & pick(self._gmask, group_now))

        # Counter and event FIFO.
        from amaranth.lib.fifo import SyncFIFOBuffered
        ev_layout = data.StructLayout({"rem": unsigned(rb), "lit": 1, "last": 1,
                                       "sym": unsigned(b), "grp": unsigned(gbits)})
        m.submodules.events = fifo = SyncFIFOBuffered(width=ev_layout.size, depth=4)
        cnt = Signal(rb)
        top_now = Signal(rb)
        m.d.comb += top_now.eq(pick(top, group_now))
        hs = Signal()
        m.d.comb += [self.i_stream.ready.eq(fifo.w_rdy & ~blocked),
                     hs.eq(self.i_stream.valid & self.i_stream.ready)]
        # Set at the bad beat's handshake (a table load cannot start in that cycle: a waiting
        # cfg byte holds symbols back), so the next load's first byte clears it.
        group_error = hs & bad_group
        zero = Signal()
        m.d.comb += zero.eq(~ip.empty & (sym_masked == 0) & pick(mode, group_now))
        no_run = Signal()   # a zero in a table without any run code
        m.d.comb += no_run.eq(zero & (top_now == 0))
        full = Signal()
        m.d.comb += full.eq(zero & ~no_run & (cnt + 1 == top_now))
        ev_in = Signal(ev_layout)
        m.d.comb += [ev_in.rem.eq(Mux(zero & ~no_run, cnt + 1, cnt)),
                     ev_in.lit.eq(~zero & ~ip.empty), ev_in.last.eq(ip.last),
                     ev_in.sym.eq(sym_masked), ev_in.grp.eq(group_now),
                     fifo.w_data.eq(ev_in),
                     fifo.w_en.eq(hs & ((~zero & ~ip.empty) | full | ip.last))]
        with m.If(hs):
            with m.If(zero & ~no_run & ~full & ~ip.last):
                m.d.sync += cnt.eq(cnt + 1)
            with m.Elif(~zero | full | ip.last):
                m.d.sync += cnt.eq(0)

        # Issuer.
        ev = Signal(ev_layout)
        ev_valid = Signal()
        rq_valid = Signal()
        rq_sym = Signal(b)
        ab = self._addr_bits()
        rq_addr = Signal(ab)
        rq_grp = Signal(range(G)) if G > 1 else Const(0, 1)
        rq_last, rq_empty, rq_run = Signal(), Signal(), Signal()
        rq_free = Signal()
        m.d.comb += rq_free.eq(~rq_valid | (load0 & ~blocked))
        with m.If(load0 & ~blocked):
            m.d.sync += rq_valid.eq(0)
        rd = plan.read_port(domain="comb")
        k = Signal(rb)
        exact = Signal()   # k == rem, read from the plan: no compare on the way to the FIFO
        m.d.comb += [rd.addr.eq(Cat(ev.rem, ev.grp) if G > 1 else ev.rem),
                     k.eq(rd.data[:rb]), exact.eq(rd.data[rb])]
        done = Signal()
        step = Signal()
        m.d.comb += step.eq(ev_valid & rq_free)
        # Registered: the flag is sticky, one cycle later is fine, and it keeps the plan read
        # off the error flag's path.
        front_error = Signal()
        self._front_error = front_error | group_error
        m.d.sync += front_error.eq(step & (ev.rem != 0) & (k == 0))
        with m.If(step):
            m.d.sync += [rq_valid.eq(1), rq_sym.eq(ev.sym)]
            if G > 1:
                m.d.sync += rq_grp.eq(ev.grp)
            with m.If(ev.rem != 0):
                rest = ev.rem - k
                m.d.sync += [rq_addr.eq((1 << b) + k - 1), rq_run.eq(k != 0),
                             rq_empty.eq(k == 0),
                             rq_last.eq(ev.last & ~ev.lit & exact),
                             ev.rem.eq(Mux(k == 0, 0, rest))]
                # A run that cannot be written (no code fits) is dropped with the error (an
                # empty request); the literal or the tile end follows as usual.
                m.d.comb += done.eq(exact & ~ev.lit)
            with m.Else():
                m.d.sync += [rq_addr.eq(ev.sym), rq_run.eq(0), rq_empty.eq(~ev.lit),
                             rq_last.eq(ev.last)]
                m.d.comb += done.eq(1)
        m.d.comb += fifo.r_en.eq(~ev_valid | done)
        with m.If(~ev_valid | done):
            m.d.sync += [ev_valid.eq(fifo.r_rdy), ev.eq(fifo.r_data)]
        # A table load waits for everything queued: the old table codes it.
        busy = Signal()
        m.d.comb += busy.eq(valid0 | rq_valid | ev_valid | fifo.r_rdy)
        return rq_valid, rq_sym, rq_addr, rq_grp, rq_last, rq_empty, rq_run, busy

    # -----------------------------------------------------------------------------------------
    def _loader(self, m, ram, busy, loading, pending, error, esc_code, esc_len, esc_present,
                esc_lj, esc_pos, esc_total):
        """Table loading: ``hdl.coder_parts.TableParser`` checks the bytes of
        ``HuffmanTable.serialize()``; this writes what it finds into the code memory (after
        the header, a pass that invalidates the group's entries) and the ESC registers."""
        b, L, G, R = self._b, self._L, self._G, self._run_max
        cw = self._code_width()
        ab = self._addr_bits()
        p, may_start, hold = coder_parser(self, m)
        grp = p.group if G > 1 else Const(0, 1)
        bits_of = self._gbits
        code = p.code
        clearing = Signal()
        clr = Signal(ab)
        pad = Signal(range(cw + 1))     # cw - code length, kept as a register (no subtract
        #                                 before the code's shift into the memory word)
        code_field = Signal(cw)
        m.d.comb += code_field.eq(code[:L] << pad)
        # The written word does not depend on which write this is (only the address and the
        # enable do): a cleared entry is the same word with its valid bit low.
        m.d.comb += ram.w_data.eq(Cat(~clearing, code_field, p.code_len[:LEN_BITS]))

        with m.If(p.start):
            m.d.sync += error.eq(0)
        if self._runtime:
            # The table sets its group's width (1 to b).
            with m.If(p.set_width):
                for g in range(G):
                    with m.If(p.start_group == g):
                        m.d.sync += [self._gbits[g].eq(p.data),
                                     self._gmask[g].eq((Const(1, b + 1) << p.data[:4]) - 1)]
        with m.If(p.header):
            # Invalidate the group's entries, one per cycle, before the counts; cfg waits.
            m.d.sync += [clr.eq(0), clearing.eq(1), esc_present[grp].eq(0)]
        # The memory's write: an entry cleared, a literal's code, a run symbol's code. One
        # expression each for the enable and the address (continuous assignments: as a
        # process whose inputs all keep their initial values until a table comes, Icarus
        # would leave the enable X, and the registered write flag with it).
        value = p.value
        lit_w = p.symbol & p.is_lit
        lit_addr = Cat(value[:b], Const(0, ab - b), grp) if G > 1 else value[:b]
        clr_addr = Cat(clr, grp) if G > 1 else clr
        if R:
            run_w = p.symbol & p.is_run
            run_addr = (value - p.esc_index + ((1 << b) - 1))[:ab]
            run_addr = Cat(run_addr, grp) if G > 1 else run_addr
            lit_addr = Mux(run_w, run_addr, lit_addr)
        else:
            run_w = Const(0)
        m.d.comb += [ram.w_en.eq(clearing | lit_w | run_w),
                     ram.w_addr.eq(Mux(clearing, clr_addr, lit_addr))]
        with m.If(clearing):
            m.d.sync += clr.eq(clr + 1)
            with m.If(clr == (1 << ab) - 1):
                m.d.sync += clearing.eq(0)
        with m.If(p.count & p.final):
            m.d.sync += pad.eq(cw)
        with m.If(p.advance):
            m.d.sync += pad.eq(pad - 1)
        with m.If(p.symbol):
            with m.If(p.is_esc):
                m.d.sync += [esc_code[grp].eq(code[:L]), esc_len[grp].eq(p.code_len),
                             esc_present[grp].eq(1)]
                for g in range(G):
                    with m.If(grp == g):
                        raw_at = CODE_MAX - bits_of[g] - p.code_len
                        m.d.sync += [
                            esc_lj[g].eq(code[:L] << (CODE_MAX - p.code_len).as_unsigned()),
                            esc_pos[g].eq(Const(1, CODE_MAX) << raw_at.as_unsigned()),
                            esc_total[g].eq(p.code_len + bits_of[g])]
        # A failed load raises the error flag a cycle later (``failed_r``: the byte's checks
        # reach a register, not the flag's logic); no load starts in that cycle (the flag is
        # never cleared as it is raised), and symbols wait for it.
        failed_r = Signal()
        m.d.sync += failed_r.eq(p.failed)
        with m.If(failed_r):
            m.d.sync += error.eq(1)
        planning = Const(0)
        if R:
            # After a table's final byte (good or not: its entries are written), the run
            # plan is rebuilt from them; cfg and symbols wait.
            with m.FSM(name="plan") as plan_fsm:
                with m.State("IDLE"):
                    with m.If(p.end):
                        m.next = "PLAN"
                self._plan_pass(m, grp, p.rl_flag)
            planning = plan_fsm.ongoing("PLAN")
        # Symbols wait while a byte is offered or a good load (or its plan) is unfinished;
        # cfg waits until no accepted symbol still needs the old table.
        # The code memory's writes are registered (hdl.block_ram): the last one is done a cycle
        # after its byte, and symbols (and the next load) wait for it.
        m.d.comb += [pending.eq(p.pending),
                     loading.eq(p.loading | planning | ram.w_pending | failed_r),
                     may_start.eq(~busy & ~planning & ~ram.w_pending & ~failed_r),
                     hold.eq(clearing)]


# ---------------------------------------------------------------------------------------------
# python -m hdl.build


def _modules(args):
    return coder_modules(args, HuffmanEncoder, "huffman_encoder")


BLOCK = Block("huffman_encoder", huffman_arguments, _modules)
