"""Building blocks of the Huffman coders: a skid buffer, a queue, a canonical length decoder,
the table parser both coders load tables with, the encoder's bit packer and the decoder's bit
buffer.

Each is a ``wiring.Component`` with its own contract below and its own tests
(``tests/test_coder_parts.py``, ``tests/test_table_parser.py``, ``tests/test_bit_packer.py``,
``tests/test_bit_buffer.py``); the skid buffer also has a formal proof
(``tests/formal/test_coder_parts_formal.py``). ``hdl/huffman_encoder.py`` is built from the
parser and the packer, ``hdl/huffman_decoder.py`` from the parser, the bit buffer, the length
decoder and the queue. ``docs/coder_parts.md`` lists them with their costs.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["BitBuffer", "BitPacker", "CODE_MAX", "CanonicalLength", "LEN_BITS", "Queue",
           "SkidBuffer", "TableParser", "canonical_limits", "pick"]

CODE_MAX = 32   # longest code with its raw bits, L + b <= 32
LEN_BITS = 6    # bits of a code length 0 .. 32


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


def pick(items, index):
    """``items[index]`` as one shift expression (a continuous assignment in Verilog).

    Amaranth turns ``Array`` reads into ``always @*`` case processes; Icarus never runs such a
    process until one of its inputs changes, so a mux whose select sits at its reset value
    would read X there. ``word_select`` on a packed vector avoids the process.
    """
    items = [Value.cast(x) for x in items]
    if isinstance(index, Const) or len(items) == 1:
        return items[0]
    width = max(len(x) for x in items)
    items += [items[-1]] * ((1 << len(index)) - len(items))
    return Cat(*(Cat(x, Const(0, width - len(x))) for x in items)).word_select(index, width)


class TableParser(wiring.Component):
    """Parser of one table load: the bytes of ``HuffmanTable.serialize()`` on ``cfg``.

    Shared by ``HuffmanEncoder`` and ``HuffmanDecoder``: it checks every rule of the format
    (``docs/bitstream.md``, "Table format") and tells the block, one event per byte taken,
    what to write; the block owns its memories, registers and error reporting. A byte on
    ``cfg`` first enters an input register (one byte; ``cfg.ready`` is high while it is empty
    or its byte goes on), and is *taken* from there: one cycle after its handshake at the
    earliest. Events are combinational and last the one cycle a byte is taken; the other
    outputs are registers.

    Timing: the checks start from flip-flops (the register keeps what they need of the byte
    alone, such as its high bits being zero; the low byte of a 16-bit field is compared with
    the table's limits for each of the four high parts a good field can have, and the high
    byte selects one), the state machine is one flip-flop per state, and ``failed`` is a
    verdict made apart from the handshake, ANDed with it.

    Parameters
    ----------
    symbol_width : int
        The block's b (1 to 8): widest symbol field of any group.
    max_len : int
        Longest code L (1 to 24).
    groups : int
        Table groups G (1 to 256); ``cfg.payload.group`` names the group of a load.
    group_bits : sequence of int or None
        Each group's symbol width (header byte 0 must match it); None: ``symbol_width``.
    run_max : int
        Longest run R of a run-length table (0: the block refuses run-length tables).
    runtime : bool
        Header byte 0 sets the group's width (1 to b) instead of matching ``group_bits``;
        the block keeps the widths (``set_width``) and gives them back on ``widths``.

    Ports
    -----
    cfg : In(stream)  payload ``{data, group (G > 1), last}``, into the input register.
    pending : Out(1)  comb: a byte is offered on ``cfg`` or waits in the input register (the
        block holds its other work back for the load).
    data : Out(8)  the byte in the input register (``set_width`` stores it).
    may_start : In(1)  a load may begin (the first byte waits while low).
    hold : In(1)  the bytes after the first wait while high (the block clearing a memory).
    widths : In(G x 4 bits)  (``runtime`` only) each group's current width.
    loading : Out(1)  comb: a load is under way (from its first byte to its end or failure).
    group : Out  the load's group (register).
    start : Out(1)  event: the first byte is taken (the block clears its error flag);
        ``start_group`` is the group it came with, ``group_ok`` whether it names a group
        below G, ``set_width`` (runtime) whether the block should store the byte as that
        group's width.
    header : Out(1)  event: the fourth header byte is taken and the header is good; counts
        follow.
    esc_flag, rl_flag : Out(1)  the header's flags (registers).
    esc_index : Out  the ESC entry of the group, ``2**b_g``; ``n_max`` (register from the
        header on) the alphabet size ``2**b_g + 1`` plus ``2**log2_R'`` run symbols.
    count : Out(1)  event: the count of length ``index + 1`` is taken (``value``), with
        ``total`` the codes counted before it and ``final`` set on the last count.
    advance : Out(1)  event: the canonical code steps to the next length (``code_len``
        grows by one, ``code`` doubles).
    symbol : Out(1)  event: a symbol of the table is taken: ``value``, its ``code`` and
        ``code_len`` (registers, canonical order), and ``is_lit`` / ``is_esc`` / ``is_run``.
    end : Out(1)  event: the table's final byte is taken (its entries are all written;
        ``failed`` tells whether the load is good).
    failed : Out(1)  event: the byte taken breaks a rule: the load stops here and the bytes
        up to the next ``last`` are dropped (``loading`` low meanwhile).
    value : Out(16)  comb: the 16-bit little-endian field completed by this byte.

    Rules checked: byte 0 is the group's width and the group is below G; the maximum length
    is 1 to L; flags other than ESC (and run-length, with R > 0) are zero; log2 R' is 0 for a
    plain table and at most log2 R for a run-length one; each count and the counts' sum are
    at most ``n_max``, and the sum is not zero; every symbol is a literal below ``2**b_g``,
    ESC or (run-length) a run symbol; no code reaches ``2**length`` (Kraft); ESC appears
    exactly when flagged; the symbols of each length ascend (canonical order); a table of one
    entry gives it length 1; ``last`` is on the final byte and on no other. Not checked: a
    symbol listed at two different lengths (golden's ``parse_table`` refuses it; telling it
    would take a bit per alphabet entry). The encoder then codes it with the longer code,
    the decoder decodes both codes to it.
    """

    def __init__(self, symbol_width, max_len, groups=1, group_bits=None, *, run_max=0,
                 runtime=False):
        b = self._b = _check_width("Symbol width", symbol_width, 1, 8)
        L = self._L = _check_width("Maximum code length", max_len, 1, 24)
        G = self._G = _check_width("Group count", groups, 1, 256)
        R = self._R = _check_width("Longest run", run_max, 0, 256)
        bits = [b] * G if group_bits is None else [int(x) for x in group_bits]
        if len(bits) != G or not all(1 <= x <= b for x in bits):
            raise ValueError(f"Group widths must be {G} values from 1 to {b}, not {bits}")
        self._bits, self._runtime = bits, bool(runtime)
        na = (1 << b) + 1 + R     # the largest code alphabet: values, ESC, RUN_1 .. RUN_R
        self._na = na
        cfg = {"data": unsigned(8)}
        if G > 1:
            cfg["group"] = unsigned((G - 1).bit_length())
        cfg["last"] = 1
        gw = max(1, (G - 1).bit_length())
        members = {
            "cfg": In(stream.Signature(data.StructLayout(cfg))),
            "may_start": In(1), "hold": In(1),
            "loading": Out(1), "group": Out(gw),
            "start": Out(1), "start_group": Out(gw), "group_ok": Out(1), "set_width": Out(1),
            "header": Out(1), "esc_flag": Out(1), "rl_flag": Out(1),
            "esc_index": Out(range(na + 1)), "n_max": Out(range(na + 1)),
            "count": Out(1), "index": Out(range(L)), "total": Out(range(2 * na + 2)),
            "final": Out(1),
            "advance": Out(1), "symbol": Out(1), "code": Out(L + 1),
            "code_len": Out(range(L + 1)), "is_lit": Out(1), "is_esc": Out(1),
            "is_run": Out(1), "end": Out(1), "failed": Out(1), "value": Out(16),
            "pending": Out(1), "data": Out(8),
        }
        if runtime:
            members["widths"] = In(data.ArrayLayout(unsigned(4), G))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        b, L, G, R, na = self._b, self._L, self._G, self._R, self._na
        cfg = self.cfg
        widths = (list(self.widths) if self._runtime else [Const(x, 4) for x in self._bits])
        gw = len(self.group)

        # Input register: a byte on ``cfg`` enters it whenever it is empty or its byte goes
        # on, and what the checks need of the byte alone is decoded as it enters, so every
        # check starts from flip-flops.
        full = Signal()
        byte = Signal(8, name="in_byte")
        last = Signal(name="in_last")
        g_in = Signal(gw, name="in_group") if G > 1 else Const(0, 1)
        hi_ok = Signal(name="in_hi_ok")     # the byte's six high bits are zero
        zero = Signal(name="in_zero")
        width_bad = Signal(name="in_width_bad")   # byte 0: not the group's width
        len_bad = Signal(name="in_len_bad")       # byte 1: not a length 1 to L
        log_le = Signal(name="in_log_le")         # byte 3: at most log2 R
        d = cfg.payload.data
        g_next = cfg.payload.group if G > 1 else Const(0, 1)
        take = Signal()                     # the register's byte goes on (comb)
        m.d.comb += [cfg.ready.eq(~full | take), self.pending.eq(cfg.valid | full),
                     self.data.eq(byte)]
        with m.If(cfg.valid & cfg.ready):
            m.d.sync += [full.eq(1), byte.eq(d), last.eq(cfg.payload.last),
                         hi_ok.eq(d[2:] == 0), zero.eq(d == 0),
                         width_bad.eq((d == 0) | (d > b) if self._runtime
                                      else d != pick(widths, g_next)),
                         len_bad.eq((d == 0) | (d > L))]
            if R:
                m.d.sync += log_le.eq(d <= R.bit_length() - 1)
            if G > 1:
                m.d.sync += g_in.eq(g_next)
        with m.Elif(take):
            m.d.sync += full.eq(0)

        # The handshake, as each state sees it: in HDR0 the block's ``may_start`` gates it,
        # in the others only ``hold`` (ADVANCE takes no byte and never reads it). ``hs`` is
        # rebound by ``state`` below.
        hs_first, hs_more = Signal(), Signal()
        m.d.comb += [hs_first.eq(full & self.may_start),
                     hs_more.eq(full & ~self.hold)]
        hs = None

        grp = self.group
        m.d.comb += [self.start_group.eq(g_in),
                     self.esc_index.eq(pick([Const(1, b + 1) << w for w in widths],
                                            grp if G > 1 else Const(0, 1)))]
        esc_idx, n_max = self.esc_index, self.n_max
        t_len = Signal(range(L + 1))
        esc_flag, rl_flag = self.esc_flag, self.rl_flag
        counts = [Signal(range(na + 1), name=f"count{i}") for i in range(L)]
        lo = Signal(8)
        lo_zero = Signal()              # the low byte of a count is zero
        value = self.value
        m.d.comb += value.eq(Cat(lo, byte))

        def ahead(low, x):
            """The values ``v = k * 256 + low`` (k = 0 to 3) against ``x`` (below 1024):
            lists over k of ``(v < x, v == x)``, from one compare of the low bytes."""
            xl, xh = x.as_unsigned()[:8], x.as_unsigned()[8:10]
            lt8, eq8 = low < xl, low == xl
            return [((k < xh) | ((k == xh) & lt8), (k == xh) & eq8) for k in range(4)]
        li, total = self.index, self.total
        li_oh = Signal(L)               # li, one-hot (the count registers' write enables)
        # n_max - total, kept as a register so the final count's check is one compare.
        slack = Signal(signed(17))
        # Every 16-bit field checked against the table's limits (counts, symbols) is below
        # 1024 when good: with its low byte the checks are made for each of the four high
        # parts 0 to 3 and registered (``ahead``: the low byte compared once with the
        # limit's, its high part with each k); the high byte's cycle selects one by its
        # two low bits, and a high byte of 4 or more is bad whatever the rest.
        cnt_bad = Signal(4)             # per high part: the count breaks a rule
        final_r = self.final
        code, cur_len = self.code, self.code_len
        remaining = Signal(range(na + 1))
        rem_zero = Signal()             # remaining == 0, kept as a register
        count_zero = Signal(L)          # each length's count is 0 (registered with it)
        left = Signal(range(na + 1))
        esc_seen = Signal()
        prev = Signal(range(na + 1))    # the last symbol, for the order check
        # Per high part, registered with a symbol's low byte: the value is a literal, ESC,
        # a run symbol; the symbol breaks a rule.
        lit_v, esc_v, run_v, sym_bad = (Signal(4, name=n) for n in (
            "sym_lit", "sym_esc", "sym_run", "sym_bad"))
        # Registered with the symbol's low byte: the final symbol, the last of its length.
        last_sym, run_end = Signal(), Signal()
        new_len = Signal()              # no symbol of this length yet
        first_sym = Signal()            # no symbol of the table yet

        # ``failed``: a verdict on the byte on offer that each state computes apart from the
        # handshake (``bad``, in HDR0 ``bad_first``), ANDed with that state's handshake: the
        # two cones (the handshake's through the block's ``may_start`` is as deep as the
        # checks) meet in one gate before the block's flag register.
        bad_first, bad = Signal(), Signal()
        m.d.comb += self.failed.eq((hs_first & bad_first) | (hs_more & bad))
        # (Each verdict and event is one expression, assigned at the end: a continuous
        # assignment in Verilog. As parts of a process whose inputs all keep their initial
        # values until a byte comes, Icarus would leave them X, and the blocks' registers
        # fed by them with it.)
        verdict_of = {}

        # The state machine, one flip-flop per state (yosys keeps an Amaranth FSM's binary
        # code, as its register has an initial value; a state test is then a LUT, on the
        # handshake's path and the checks'). ``goto`` in a state's branches, one per cycle.
        st = {n: Signal(init=int(n == "HDR0"), name=f"parser_{n.lower()}")
              for n in ("HDR0", "HDR1", "HDR2", "HDR3", "CNT_LO", "CNT_HI", "ADVANCE",
                        "SYM_LO", "SYM_HI", "SKIP")}
        here = [None]

        def goto(name):
            if name != here[0]:
                m.d.sync += [st[here[0]].eq(0), st[name].eq(1)]

        @contextmanager
        def state(name):
            nonlocal hs
            here[0] = name
            hs = hs_first if name == "HDR0" else hs_more
            with m.If(st[name]):
                yield

        def check(cond):
            """A byte that breaks a rule (``cond``) or, with more bytes due, is flagged last:
            the load fails (to SKIP, or at once to HDR0 on a ``last`` byte). Returns the
            branch for a good byte (``with check(...): goto(...)``)."""
            verdict_of[here[0]] = cond | last
            with m.If(hs & last):
                goto("HDR0")
            with m.Elif(hs & cond):
                goto("SKIP")
            return m.Elif(hs)

        with state("HDR0"):
            with m.If(hs):
                m.d.sync += rl_flag.eq(0)
                if G > 1:
                    m.d.sync += grp.eq(g_in)
            bad_group = (g_in >= G) if G & (G - 1) else Const(0)
            with check(bad_group | width_bad):
                goto("HDR1")
        with state("HDR1"):
            with m.If(hs):
                m.d.sync += t_len.eq(byte)
            with check(len_bad):
                goto("HDR2")
        with state("HDR2"):
            with m.If(hs):
                m.d.sync += esc_flag.eq(byte[0])
                if R:
                    # Bit 1: run-length mode (version 2); the others are reserved.
                    m.d.sync += rl_flag.eq(byte[1])
            # Bits 2 to 7 reserved; a block without run-length mode (R = 0) refuses bit 1 too.
            with check(~hi_ok | (byte[1] if not R else Const(0))):
                goto("HDR3")
        with state("HDR3"):
            with m.If(hs):
                # Byte 3: log2 R' of a run-length table (at most log2 R), 0 otherwise.
                n_next = Signal(range(na + 1))
                m.d.comb += n_next.eq(esc_idx + 1)
                if R:
                    with m.If(rl_flag):
                        m.d.comb += n_next.eq(
                            esc_idx + 1 + (Const(1, R.bit_length()) << byte[:4]))
                m.d.sync += [li.eq(0), li_oh.eq(1), total.eq(0), n_max.eq(n_next),
                             slack.eq(n_next),
                             esc_seen.eq(0)]
            log_ok = Mux(rl_flag, log_le, zero) if R else zero
            with check(~log_ok):
                goto("CNT_LO")
        with state("CNT_LO"):
            with m.If(hs):
                final_now = li == t_len - 1

                # Above n_max; and for the final count: the counts' sum above n_max (the
                # value above the slack, or the slack negative) or zero.
                none = zero & (total == 0)
                verdicts = [~(lt_m | eq_m) | (final_now & ((slack < 0) | ~(lt_s | eq_s)
                                                           | (none if k == 0 else 0)))
                            for k, ((lt_m, eq_m), (lt_s, eq_s)) in enumerate(
                                zip(ahead(byte, n_max), ahead(byte, slack)))]
                m.d.sync += [lo.eq(byte), lo_zero.eq(zero), final_r.eq(final_now),
                             cnt_bad.eq(Cat(*verdicts))]
            with check(Const(0)):
                goto("CNT_HI")
        with state("CNT_HI"):
            with m.If(hs):
                for i in range(L):
                    with m.If(li_oh[i]):
                        m.d.sync += [counts[i].eq(value),
                                     count_zero[i].eq(zero & lo_zero)]
                m.d.sync += [total.eq(total + value), li.eq(li + 1), li_oh.eq(li_oh << 1),
                             slack.eq(slack - value)]
                with m.If(final_r):
                    # Set whether or not the count fails (a failed load never reads them):
                    # the registers' enables then wait for no check.
                    m.d.sync += [cur_len.eq(0), code.eq(0), remaining.eq(0),
                                 rem_zero.eq(1), left.eq(total + value),
                                 first_sym.eq(1)]
            with check(~hi_ok | cnt_bad.bit_select(byte[:2], 1)):
                with m.If(final_r):
                    goto("ADVANCE")
                with m.Else():
                    goto("CNT_LO")
        with state("ADVANCE"):
            # Step to the next length that has codes (canonical: code <<= 1 per length).
            with m.If(rem_zero):
                m.d.sync += [cur_len.eq(cur_len + 1), code.eq(code << 1),
                             remaining.eq(pick(counts, cur_len)),
                             rem_zero.eq(pick(list(count_zero), cur_len)), new_len.eq(1)]
            with m.Else():
                goto("SYM_LO")
        with state("SYM_LO"):
            with m.If(hs):
                # The symbol's checks, one per high part, from its low byte and registers.
                final = left == 1
                # Kraft: every code of length l must be below 2**l. (``lone``: a table of
                # one entry gives it length 1.)
                overfull = (code >> cur_len) != 0
                lone = first_sym & final & (cur_len != 1)
                lit, esc, run, broken = [], [], [], []
                for (lt_e, eq_e), (lt_m, _), (lt_p, eq_p) in zip(
                        ahead(byte, esc_idx), ahead(byte, n_max), ahead(byte, prev)):
                    is_run = (lt_m & ~lt_e & ~eq_e) if R else Const(0)
                    # Canonical order: the symbols of one length ascend (prev, a symbol of
                    # this table, is below n_max). At the table's final symbol, ESC has
                    # appeared exactly when flagged.
                    unordered = ~new_len & (lt_p | eq_p)
                    esc_wrong = final & ((esc_seen | eq_e) != esc_flag)
                    lit.append(lt_e)
                    esc.append(eq_e)
                    run.append(is_run)
                    broken.append(~(lt_e | eq_e | is_run) | overfull | unordered | lone
                                  | esc_wrong)
                m.d.sync += [lo.eq(byte), lit_v.eq(Cat(*lit)), esc_v.eq(Cat(*esc)),
                             run_v.eq(Cat(*run)), sym_bad.eq(Cat(*broken)),
                             last_sym.eq(final), run_end.eq(remaining == 1)]
            with check(Const(0)):
                goto("SYM_HI")
        with state("SYM_HI"):
            with m.If(hs):
                m.d.sync += [code.eq(code + 1), remaining.eq(remaining - 1),
                             rem_zero.eq(run_end), left.eq(left - 1), prev.eq(value),
                             new_len.eq(0), first_sym.eq(0)]
                with m.If(self.is_esc):
                    m.d.sync += esc_seen.eq(1)
            broken = ~hi_ok | sym_bad.bit_select(byte[:2], 1)
            # The table's final byte (its length follows from the header and the counts)
            # ends the load, with or without ``last`` (without it, the table is bad); any
            # other byte flagged last ends it early.
            verdict_of["SYM_HI"] = broken | (last_sym ^ last)
            with m.If(hs & broken):
                with m.If(last):
                    goto("HDR0")
                with m.Else():
                    goto("SKIP")
            with m.Elif(hs & last_sym):
                goto("HDR0")
            with m.Elif(hs & last):
                goto("HDR0")
            with m.Elif(hs & run_end):
                goto("ADVANCE")
            with m.Elif(hs):
                goto("SYM_LO")
        with state("SKIP"):
            # After a malformed table: drop bytes up to the one flagged last.
            with m.If(hs & last):
                goto("HDR0")
        # (Outside every state's branch, as continuous assignments: see ``verdict_of``.)
        start = st["HDR0"] & hs_first
        m.d.comb += [self.start.eq(start), self.group_ok.eq(~bad_group),
                     self.header.eq(st["HDR3"] & hs_more & log_ok & ~last),
                     self.count.eq(st["CNT_HI"] & hs_more),
                     self.advance.eq(st["ADVANCE"] & rem_zero),
                     self.symbol.eq(st["SYM_HI"] & hs_more),
                     self.end.eq(st["SYM_HI"] & hs_more & ~broken & last_sym),
                     bad_first.eq(st["HDR0"] & verdict_of.pop("HDR0")),
                     bad.eq(Cat(*(st[n] & v for n, v in verdict_of.items())).any())]
        if self._runtime:
            m.d.comb += self.set_width.eq(start & ~bad_group & ~width_bad)
        # The symbol's kind, selected by the high byte like its checks.
        sel = byte[:2]
        m.d.comb += [self.is_lit.eq(hi_ok & lit_v.bit_select(sel, 1)),
                     self.is_esc.eq(hi_ok & esc_v.bit_select(sel, 1)),
                     self.is_run.eq(hi_ok & run_v.bit_select(sel, 1))]
        m.d.comb += self.loading.eq(~(st["HDR0"] | st["SKIP"]))
        # One expression (a continuous assignment in Verilog): a per-state process would stay
        # X in Icarus until its inputs changed.
        m.d.comb += take.eq(full & Mux(st["HDR0"], self.may_start, ~(st["ADVANCE"] | self.hold)))
        return m


class BitPacker(wiring.Component):
    """Bit packer: codes in, MSB-first W-bit words out, one code per cycle.

    The golden twin is ``golden.codec.bitio.pack_codes`` applied to each tile. The code of a
    beat is left-justified in 32 bits (its first bit is bit 31, the bits after its length
    zero); ``length`` bits of it are appended to the tile's bit string, and a beat flagged
    ``last`` ends the tile: the final word is zero-padded and flagged ``last``, and the tile's
    bit count follows on ``o_count``.

    A pipeline with no stall inside it (docs/coder_parts.md): an input register (which cuts a
    code longer than W into W-bit pieces, and gives a ``last`` beat a second cycle, the tile
    end); the position, a ``log2 W``-bit running offset in the current word; the placement of
    the piece at that offset in a 2W-bit window; the assembly of the partial word, which
    pushes at most one finished word per cycle into an output queue. A word that leaves the
    partial word empty is held until the next bits or the tile end show whether it is the
    final one. The input register sends a piece only while the queue has room for every beat
    in flight (a credit count, registered), so nothing after it ever waits.

    Parameters
    ----------
    word_width : int
        Output word width W: 8, 16, 32 or 64.
    max_code : int
        Longest code (1 to 32).
    count_width : int
        Width of the bit count on ``o_count`` (1 to 64).

    Ports
    -----
    i_stream : In(stream)  payload ``{code (32), length (6), last}``; ``length`` 0 is allowed
        (a beat that adds no bits: an empty beat, or ``last`` alone to end a tile). A length
        above ``max_code`` breaks the contract (such a beat is never passed on, and the input
        stalls).
    o_stream : Out(stream)  payload ``{data (W), last}``: the tile's words, the final one
        zero-padded and flagged ``last`` (a tile of no bits has no words).
    o_count : Out(stream)  payload ``{nbits}``: one beat per tile, once its final word has
        gone out.

    Contract: ``i_stream.ready`` is a function of registers only; with ``o_stream.ready``
    high, one code of at most W bits is taken per cycle, a code of n > W bits in
    ``ceil(n / W)`` cycles, and a ``last`` beat in two. ``o_stream.valid`` and its payload are
    the output queue's registers. ``LATENCY`` cycles from the handshake of a tile's last beat
    to its final word; a word finished inside a tile leaves one cycle sooner after the
    handshake of the code that finishes it.
    """

    QUEUE_DEPTH = 8     # output queue beats: the credit loop's round trip, with room to spare
    LATENCY = 6         # a tile's last handshake -> its final word

    def __init__(self, word_width, max_code, count_width=32):
        if word_width not in (8, 16, 32, 64):
            raise ValueError(f"Word width must be 8, 16, 32 or 64, not {word_width}")
        self._W = word_width
        self._cw = _check_width("Longest code", max_code, 1, CODE_MAX)
        self._count_width = _check_width("Count width", count_width, 1, 64)
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout(
                {"code": unsigned(CODE_MAX), "length": unsigned(LEN_BITS), "last": 1}))),
            "o_stream": Out(stream.Signature(data.StructLayout(
                {"data": unsigned(word_width), "last": 1}))),
            "o_count": Out(stream.Signature(data.StructLayout(
                {"nbits": unsigned(count_width)}))),
        })
        # The input register's length and its registered ``length <= max_code`` check (which
        # the input register uses instead of the compare). Made here so formal proofs can
        # state that the two agree in every reachable state (tests/formal/coders.py,
        # ``encoder_invariants``).
        self.len2 = Signal(LEN_BITS, name="len2")
        self.len_ok2 = Signal(init=1, name="len_ok2")

    @property
    def buffer_bits(self):
        """Bits the packer can hold: the input register's code, the piece and its placement
        window, the partial and the held word, and the output queue's words."""
        return CODE_MAX + (5 + self.QUEUE_DEPTH) * self._W

    def elaborate(self, platform):
        m = Module()
        W, cw, D = self._W, self._cw, self.QUEUE_DEPTH
        lw = (W - 1).bit_length()       # bits of an offset in a word
        chop = cw > W                   # codes longer than a word go as W-bit pieces
        i, o = self.i_stream, self.o_stream

        # Input register (the encoder's stage 2). A ``last`` beat takes two steps: its code,
        # then the tile end (``a_end``). ``send``: a piece or the tile end leaves this cycle.
        a_valid = Signal()
        a_code = Signal(CODE_MAX)
        len2, len_ok2 = self.len2, self.len_ok2
        a_last = Signal()
        a_end = Signal()
        a_small = Signal(init=1)        # len2 <= W: the code's last piece (chop only)
        credit = Signal(init=1)         # the queue has room for one more beat in flight
        send = Signal()
        m.d.comb += send.eq(a_valid & len_ok2 & credit)
        if chop:
            done = a_end | (~a_last & a_small)
            length = Mux(a_small, len2, W)
        else:
            done = a_end | ~a_last
            length = len2
        m.d.comb += i.ready.eq(~a_valid | (send & done))
        with m.If(send):
            if chop:
                with m.If(~a_end & ~a_small):
                    m.d.sync += [a_code.eq(a_code << W), len2.eq(len2 - W),
                                 a_small.eq(len2 <= 2 * W)]
                with m.Elif(a_last & ~a_end):
                    m.d.sync += a_end.eq(1)
                with m.Else():
                    m.d.sync += a_valid.eq(0)
            else:
                with m.If(a_last & ~a_end):
                    m.d.sync += a_end.eq(1)
                with m.Else():
                    m.d.sync += a_valid.eq(0)
        with m.If(i.ready):
            m.d.sync += [a_valid.eq(i.valid), a_code.eq(i.payload.code),
                         len2.eq(i.payload.length), len_ok2.eq(i.payload.length <= cw),
                         a_last.eq(i.payload.last), a_end.eq(0)]
            if chop:
                m.d.sync += a_small.eq(i.payload.length <= W)

        # Position: the running offset in the current word; the piece's first W bits (the
        # code's top bits; a code is at most 32 bits, so a 64-bit word pads below).
        off = Signal(lw)
        total = Signal(lw + 1)
        m.d.comb += total.eq(off + Mux(a_end, 0, length))
        piece = a_code[CODE_MAX - W:] if W <= CODE_MAX else Cat(Const(0, W - CODE_MAX), a_code)
        q_v, q_end, q_word, q_full, q_bits = Signal(), Signal(), Signal(), Signal(), Signal()
        q_off = Signal(lw)
        # The placement's shift in two steps: by the offset's multiple of 8 here (from
        # registers), by its low 3 bits in the next step.
        q_window = Signal(2 * W)
        coarse = Cat(Const(0, 3), off[3:]) if lw > 3 else Const(0, 1)
        m.d.sync += q_v.eq(send)
        with m.If(send):
            # q_word: the piece completes a word; q_full: that leaves no bits over;
            # q_bits: it adds bits (a held word is then not the tile's final one).
            m.d.sync += [q_end.eq(a_end), q_word.eq(total[lw] & ~a_end),
                         q_full.eq(total[:lw] == 0), q_bits.eq(~a_end & (length != 0)),
                         q_off.eq(off), q_window.eq(Cat(Const(0, W), piece) >> coarse),
                         off.eq(Mux(a_end, 0, total[:lw]))]

        # Placement: the rest of the shift (the offset's low 3 bits), between registers.
        r_v, r_end, r_word, r_full, r_bits = Signal(), Signal(), Signal(), Signal(), Signal()
        r_off = Signal(lw)
        r_hi = Signal(W)
        r_lo = Signal(W)
        window = q_window >> q_off[:min(3, lw)]
        m.d.sync += [r_v.eq(q_v), r_end.eq(q_end), r_word.eq(q_word), r_full.eq(q_full),
                     r_bits.eq(q_bits), r_off.eq(q_off), r_lo.eq(window[:W]),
                     r_hi.eq(window[W:])]

        # Assembly: the partial word and a held one; at most one queue entry per beat.
        # An entry is a word (its data, ``last``, and for a final word its bits, 0 meaning W)
        # or, for a tile of no bits, the tile end alone.
        part = Signal(W)
        held = Signal(W)
        held_v = Signal()
        joined = Signal(W)
        m.d.comb += joined.eq(part | r_hi)
        entry = data.StructLayout({"data": unsigned(W), "last": 1, "word": 1,
                                   "bits": unsigned(lw)})
        m.submodules.queue = queue = Queue(entry.size, D)
        push = queue.i_stream
        pd = entry(push.payload)
        # The entry as continuous assignments (a process of comb statements under ``If``
        # would stay X in Icarus until one of its inputs changed).
        end_push = Signal()             # the tile end: its final word, or the end alone
        held_push = Signal()            # more bits came: the held word was not the last
        word_push = Signal()            # a word finished with bits left over
        m.d.comb += [end_push.eq(r_v & r_end),
                     held_push.eq(r_v & ~r_end & held_v & r_bits),
                     word_push.eq(r_v & ~r_end & ~(held_v & r_bits) & r_word & ~r_full),
                     push.valid.eq(end_push | held_push | word_push),
                     pd.data.eq(Mux(end_push | held_push, Mux(held_v, held, part), joined)),
                     pd.last.eq(end_push),
                     pd.word.eq(~end_push | held_v | (r_off != 0)),
                     pd.bits.eq(Mux(held_v, 0, r_off))]
        with m.If(r_v & r_end):
            m.d.sync += [part.eq(0), held_v.eq(0)]
        with m.Elif(r_v):
            m.d.sync += part.eq(Mux(r_word, r_lo, joined))
            with m.If(held_v & r_bits):
                # A word completed now starts at bit 0 and fills it exactly: held in turn.
                m.d.sync += [held_v.eq(r_word), held.eq(joined)]
            with m.Elif(r_word & r_full):
                m.d.sync += [held_v.eq(1), held.eq(joined)]

        # Credit: beats sent and not yet either dropped (no entry) or taken from the queue
        # (counted a cycle late). A beat is sent only while fewer than D are outstanding.
        used = Signal(range(D + 1))
        taken_r = Signal()
        used_next = Signal(range(D + 1))
        m.d.comb += used_next.eq(used + send - (r_v & ~push.valid) - taken_r)
        m.d.sync += [used.eq(used_next), credit.eq(used_next < D)]

        # Output: words to ``o_stream``; the tile's bit count once its final word (or its
        # empty end) has left the queue. A final word waits while the count register is full.
        head = queue.o_stream
        hd = entry(head.payload)
        cnt = self.o_count
        # The tile's bits gone out so far are whole words: kept as a word count (and that
        # count plus one beside it), the final count is the word count with the final word's
        # bits below it, and no adder follows the queue.
        wb = max(1, self._count_width - lw)
        words = Signal(wb)
        words1 = Signal(wb, init=1)
        m.d.comb += [o.valid.eq(head.valid & hd.word & ~(hd.last & cnt.valid)),
                     o.payload.data.eq(hd.data), o.payload.last.eq(hd.last),
                     head.ready.eq((o.valid & o.ready) | (head.valid & ~hd.word & ~cnt.valid))]
        taken = Signal()
        m.d.comb += taken.eq(head.valid & head.ready)
        m.d.sync += taken_r.eq(taken)
        with m.If(cnt.ready):
            m.d.sync += cnt.valid.eq(0)
        with m.If(taken):
            with m.If(hd.last):
                whole = hd.word & (hd.bits == 0)
                m.d.sync += [cnt.valid.eq(1),
                             cnt.payload.nbits.eq(Cat(Mux(hd.word, hd.bits, 0),
                                                      Mux(whole, words1, words))),
                             words.eq(0), words1.eq(1)]
            with m.Else():
                m.d.sync += [words.eq(words1), words1.eq(words1 + 1)]
        return m


class BitBuffer(wiring.Component):
    """Bit buffer and aligner: W-bit words in at the bottom of the valid bits, bits out at
    the top, a variable number per cycle (the decoder's input side).

    The buffer holds ``fill`` bits of the stream, left-aligned: bit ``B - 1`` of ``bits`` is
    the next bit (MSB first, as ``golden.codec.bitio`` packs them), the bits below the
    ``fill`` valid ones are zero. In one cycle a word may come in (``take``: it lands right
    below the valid bits) and ``shift`` bits may go (``shift_en``; they may include bits of
    the word coming in); ``clear`` empties the buffer (a new tile).

    Parameters
    ----------
    word_width : int
        Input word width W: 8, 16, 32 or 64.
    buffer_bits : int
        Buffer size B, W + 1 to 4096 bits.
    max_shift : int
        Most bits consumed in one cycle (1 to B): the longest code.

    Ports
    -----
    word : In(W)  the input word (used when ``take``).
    take : In(1)  the word comes in (the block keeps ``fill + W <= B``).
    shift : In(range(max_shift + 1))  bits consumed from the top when ``shift_en`` (at most
        the bits held, the word counted when it comes in the same cycle).
    shift_en, clear : In(1)
    bits : Out(B)  the buffer (register), next bit first.
    fill : Out(range(B + 1))  bits held (register).
    """

    def __init__(self, word_width, buffer_bits, max_shift):
        if word_width not in (8, 16, 32, 64):
            raise ValueError(f"Word width must be 8, 16, 32 or 64, not {word_width}")
        self._W = word_width
        self._B = _check_width("Buffer bits", buffer_bits, word_width + 1, 4096)
        B = self._B
        self._S = _check_width("Longest shift", max_shift, 1, B)
        super().__init__({"word": In(word_width), "take": In(1),
                          "shift": In(range(max_shift + 1)),
                          "shift_en": In(1), "clear": In(1), "bits": Out(B),
                          "fill": Out(range(B + 1))})

    def elaborate(self, platform):
        m = Module()
        W, B = self._W, self._B
        buf, fill = self.bits, self.fill
        # The word lands below the valid bits (a word comes in only while fill <= B - W, so
        # the placing shift needs only the bits of B - W); the shift follows.
        ins = Signal(B)
        at = fill[:(B - W).bit_length()]
        m.d.comb += ins.eq(Mux(self.take, Cat(Const(0, B - W), self.word) >> at, 0))
        merged = Signal(B)
        m.d.comb += merged.eq(buf | ins)
        shifted = Signal(B)
        m.d.comb += shifted.eq(merged << self.shift)
        acc = Mux(self.clear, 0, Mux(self.shift_en, shifted, merged))
        m.d.sync += [buf.eq(acc[:B]),
                     fill.eq(Mux(self.clear, 0, fill + Mux(self.take, W, 0)
                                 - Mux(self.shift_en, self.shift, 0)))]
        return m


class ParserView:
    """What one coder sees of a ``TableParser``: the coder's own, or one shared by the lanes
    of a lane coder (``hdl/huffman_lanes.py``), of which a lane sees only the loads of the
    groups it meets.

    ``present`` None: every output of ``parser`` as it is. Otherwise the global indices of
    the groups the lane meets, in order: ``group`` and ``start_group`` become indices among
    them, and the events (``start``, ``header``, ``count``, ``advance``, ``symbol``, ``end``,
    ``failed``) are those of loads of those groups only.
    """

    _PASS = ("index", "value", "total", "final", "code", "code_len", "is_lit", "is_esc",
             "is_run", "esc_index", "n_max", "esc_flag", "rl_flag", "loading", "cfg",
             "group_ok", "set_width", "pending", "data")
    _EVENTS = ("header", "count", "advance", "symbol", "end")

    def __init__(self, parser, present=None):
        self.parser = parser
        for name in self._PASS:
            setattr(self, name, getattr(parser, name))
        if present is None:
            self.group, self.start_group = parser.group, parser.start_group
            for name in self._EVENTS + ("start", "failed"):
                setattr(self, name, getattr(parser, name))
            return
        width = max(1, (len(present) - 1).bit_length())

        def meets(g):
            return Cat(*(Const(int(x in present), 1) for x in range(1 << len(g)))).bit_select(
                g, 1)

        def local(g):
            return Cat(*(Const(present.index(x) if x in present else 0, width)
                         for x in range(1 << len(g)))).word_select(g, width)

        here, starting = meets(parser.group), meets(parser.start_group)
        self.group, self.start_group = local(parser.group), local(parser.start_group)
        for name in self._EVENTS:
            setattr(self, name, getattr(parser, name) & here)
        self.start = parser.start & starting
        # A failure on a load's first byte belongs to the group that byte names.
        self.failed = parser.failed & Mux(parser.start, starting, here)
