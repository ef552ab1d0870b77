"""Top-level compressor and decompressor with AXI4-Stream ports.

``Compressor``: activations (one pixel of C values per beat) -> forward projection MAC array ->
per-group clamp to the coefficient widths -> canonical Huffman encoder -> bitstream words.
``Decompressor``: bitstream words -> Huffman decoder -> K coefficients per pixel (sign-extended
per group) -> inverse projection MAC array -> reconstructed activations.

Both compute exactly what ``golden.datapath.pipeline`` computes for a ``LayerArtifact``:
``forward_int`` then ``encode_groups`` (one tile per ``tlast``), and ``decode_groups`` then
``inverse_int``. Ports, protocols and timing: ``docs/top.md``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.utils import exact_log2
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from golden.datapath.quant import int_range
from hdl.huffman_decoder import DecoderError, HuffmanDecoder
from hdl.huffman_encoder import HuffmanEncoder
from hdl.mac_array import MacArray, schedule
from hdl.registry import Block, UsageError, huffman_arguments
from hdl.registry import Module as BuildModule

__all__ = ["BLOCK", "Compressor", "Decompressor", "fpga_configs"]

_MAC_KEYS = ("weight", "bias", "mult", "shift")


def _check_groups(k, group_bounds, group_bits):
    """Normalise ``(bounds, bits)``: one group of 8 bits by default; raise on bad values."""
    if group_bits is None:
        group_bits = [8]
    if not isinstance(group_bits, (list, tuple)) or not group_bits:
        raise TypeError(f"Group bit widths must be a non-empty list of integers, not "
                        f"{group_bits!r}")
    bits = []
    for b in group_bits:
        if isinstance(b, bool) or not isinstance(b, int):
            raise TypeError(f"Group bit width must be an integer, not {b!r}")
        if not 2 <= b <= 8:
            raise ValueError(f"Group bit width must be between 2 and 8, not {b}")
        bits.append(int(b))
    if group_bounds is None:
        if len(bits) != 1:
            raise ValueError(f"Group bounds are needed with {len(bits)} groups")
        group_bounds = [0, k]
    bounds = [int(x) for x in group_bounds]
    if (len(bounds) != len(bits) + 1 or bounds[0] != 0 or bounds[-1] != k
            or any(a >= b for a, b in zip(bounds, bounds[1:]))):
        raise ValueError(f"Group bounds must rise from 0 to {k} with one more entry than the "
                         f"{len(bits)} group widths, not {bounds}")
    return bounds, bits


def _group_of(col, bounds):
    """One-hot group membership of column ``col`` (a Signal): a list of 1-bit values."""
    if len(bounds) == 2:
        return [Const(1, 1)]
    return [(col >= lo) & (col < hi) for lo, hi in zip(bounds, bounds[1:])]


def _select(onehot, values, width):
    """OR of ``values[g]`` where ``onehot[g]``: a mux without an ``always @*`` case process
    (Icarus leaves those X until an input changes; see ``hdl.coder_parts.pick``)."""
    out = Const(0, width)
    for sel, v in zip(onehot, values):
        out = out | Mux(sel, v, 0)
    return out


class _AxiPorts:
    """Helpers naming flat AXI4-Stream ports ``<prefix>_tdata/tvalid/tready/tlast/tuser``."""

    @staticmethod
    def slave(prefix, data_width, last=True, user=0):
        members = {f"{prefix}_tdata": In(data_width), f"{prefix}_tvalid": In(1),
                   f"{prefix}_tready": Out(1)}
        if last:
            members[f"{prefix}_tlast"] = In(1)
        if user:
            members[f"{prefix}_tuser"] = In(user)
        return members

    @staticmethod
    def master(prefix, data_width, last=True):
        members = {f"{prefix}_tdata": Out(data_width), f"{prefix}_tvalid": Out(1),
                   f"{prefix}_tready": In(1)}
        if last:
            members[f"{prefix}_tlast"] = Out(1)
        return members


class _Flat:
    """The flat AXI4-Stream signals ``<prefix>_tdata/tvalid/tready/tlast`` of ``top`` as
    attributes ``tdata``, ``tvalid``, ..."""

    def __init__(self, top, prefix):
        self._top, self._prefix = top, prefix

    def __getattr__(self, name):
        return getattr(self._top, f"{self._prefix}_{name}")


def _connect_cfg(m, top, prefix, port, has_group):
    """Drive a block's ``cfg`` stream from the AXI slave ``prefix``."""
    m.d.comb += [port.valid.eq(getattr(top, f"{prefix}_tvalid")),
                 getattr(top, f"{prefix}_tready").eq(port.ready),
                 port.payload.data.eq(getattr(top, f"{prefix}_tdata")),
                 port.payload.last.eq(getattr(top, f"{prefix}_tlast"))]
    if has_group:
        m.d.comb += port.payload.group.eq(getattr(top, f"{prefix}_tuser"))


class _LayerPort:
    """Run-time-shape tops: the layer descriptor at the head of every ``s_axis_weights`` load.

    Beats (``docs/top.md``): C, K, G, the ``G_MAX - 1`` inner group edges (those past the
    layer's G - 1 are ignored), the ``G_MAX`` group widths (those past G ignored); then the MAC
    array's values (W row-major, bias, mult, shift), which go on to the MAC array after its own
    descriptor (C_out, C_in). The descriptor is taken only while the top is ``idle`` (every
    pixel it took has left); pixels wait from its first beat offered to the load's end. A
    load ends at ``tlast`` or after its final value. A bad descriptor sets ``layer_error``
    and its load's beats up to ``tlast`` are dropped; nothing changes.
    """

    def __init__(self, top, mac, forward):
        self.top, self.mac, self.forward = top, mac, forward
        gm = top._gm
        self.k = Signal(range(top._k + 1), init=top._k, name="layer_k")
        self.c = Signal(range(top._c + 1), init=top._c, name="layer_c")
        # Group edges: bounds[1 .. G_MAX - 1] (groups past the layer's G start at K: empty).
        self.edges = [Signal(range(top._k + 1), init=top._bounds[g + 1], name=f"layer_edge{g}")
                      for g in range(gm - 1)]
        self.widths = [Signal(4, init=b, name=f"layer_bits{g}")
                       for g, b in enumerate(top._bits)]
        self.loading = Signal(name="layer_loading")
        self.error = Signal(name="layer_error")

    def group_onehot(self, col):
        """One-hot group of column ``col`` under the loaded edges."""
        gm = self.top._gm
        if gm == 1:
            return [Const(1, 1)]
        lows = [Const(0)] + self.edges
        highs = self.edges + [self.k]
        return [(col >= lo) & (col < hi) for lo, hi in zip(lows, highs)]

    def elaborate(self, m, idle):
        top, mac = self.top, self.mac
        gm, cw = top._gm, top._cw
        w = _Flat(top, "s_axis_weights")
        d = w.tdata
        n_head = 2 + 2 * gm
        idx = Signal(range(n_head), name="layer_idx")
        state = Signal(range(5), name="layer_state")   # head, mac C_out, mac C_in, body, drop
        HEAD, MAC0, MAC1, BODY, DROP = range(5)
        new_c = Signal.like(self.c, name="layer_new_c")
        new_k = Signal.like(self.k, name="layer_new_k")
        new_g = Signal(range(gm + 1), name="layer_new_g")
        new_edges = [Signal.like(e, name=f"layer_new_edge{g}") for g, e in enumerate(self.edges)]
        new_widths = [Signal(4, name=f"layer_new_bits{g}") for g in range(gm)]
        prev = Signal.like(self.k, name="layer_prev_edge")
        bad = Signal(name="layer_bad")
        co, ci = (new_k, new_c) if self.forward else (new_c, new_k)
        # Body: the MAC array's values, counted so that a load without tlast ends at its final
        # value, as the MAC array's does: ci weights per row, co rows, then 3 * co values.
        w_in = Signal(range(max(top._c, top._k) + 1), name="layer_w_in")
        w_rows = Signal(range(max(top._c, top._k) + 1), name="layer_w_rows")
        tail = Signal(range(3 * max(top._c, top._k) + 1), name="layer_tail")
        in_tail = Signal(name="layer_in_tail")
        head_ok = Signal()
        m.d.comb += head_ok.eq((state == HEAD) & ((idx != 0) | idle))
        hs = w.tvalid & w.tready
        mc = mac.cfg
        with m.Switch(state):
            with m.Case(HEAD):
                m.d.comb += w.tready.eq(head_ok)
            with m.Case(MAC0, MAC1):
                m.d.comb += [mc.valid.eq(1), mc.payload.data.eq(Mux(state == MAC0, co, ci))]
                with m.If(mc.ready):
                    m.d.sync += state.eq(Mux(state == MAC0, MAC1, BODY))
            with m.Case(BODY):
                m.d.comb += [mc.valid.eq(w.tvalid), w.tready.eq(mc.ready),
                             mc.payload.data.eq(d), mc.payload.last.eq(w.tlast)]
            with m.Case(DROP):
                m.d.comb += w.tready.eq(1)
        m.d.comb += self.loading.eq((state != HEAD) | (idx != 0))

        # Head beats, checked one by one (``bad`` collects the failures).
        beat_bad = Signal()
        first_edge, first_width = 3, 3 + gm - 1
        with m.Switch(idx):
            with m.Case(0):
                m.d.comb += beat_bad.eq((d == 0) | (d > top._c))
                if not self.forward and top._og > 1:
                    m.d.comb += beat_bad.eq((d == 0) | (d > top._c)
                                            | (d[:exact_log2(top._og)] != 0))
            with m.Case(1):
                m.d.comb += beat_bad.eq((d == 0) | (d > top._k) | (d > new_c))
            with m.Case(2):
                m.d.comb += beat_bad.eq((d == 0) | (d > gm) | (d > new_k))
            for i in range(gm - 1):
                with m.Case(first_edge + i):
                    used = i + 1 < new_g
                    m.d.comb += beat_bad.eq(used & ((d <= prev) | (d >= new_k)))
            for g in range(gm):
                with m.Case(first_width + g):
                    used = g < new_g
                    m.d.comb += beat_bad.eq(used & ((d < 2) | (d > cw)))
        with m.If(hs & (state == HEAD)):
            m.d.sync += idx.eq(idx + 1)
            with m.Switch(idx):
                with m.Case(0):
                    m.d.sync += [new_c.eq(d), bad.eq(beat_bad)]
                with m.Case(1):
                    m.d.sync += new_k.eq(d)
                with m.Case(2):
                    m.d.sync += [new_g.eq(d), prev.eq(0)]
                for i in range(gm - 1):
                    with m.Case(first_edge + i):
                        m.d.sync += [new_edges[i].eq(Mux(i + 1 < new_g, d, new_k)),
                                     prev.eq(d)]
                for g in range(gm):
                    with m.Case(first_width + g):
                        m.d.sync += new_widths[g].eq(Mux(g < new_g, d, cw))
            with m.If(idx != 0):
                m.d.sync += bad.eq(bad | beat_bad)
            with m.If(w.tlast):
                # A descriptor cut short: an error, the load ends here.
                m.d.sync += [idx.eq(0), self.error.eq(1)]
            with m.Elif(idx == n_head - 1):
                m.d.sync += idx.eq(0)
                with m.If(bad | beat_bad):
                    m.d.sync += [state.eq(DROP), self.error.eq(1)]
                with m.Else():
                    widths = new_widths[:gm - 1] + [Mux(gm - 1 < new_g, d, cw)]
                    m.d.sync += [state.eq(MAC0), self.error.eq(0), self.c.eq(new_c),
                                 self.k.eq(new_k)]
                    m.d.sync += [e.eq(v) for e, v in zip(self.edges, new_edges)]
                    m.d.sync += [x.eq(v) for x, v in zip(self.widths, widths)]
                    m.d.sync += [w_in.eq(ci - 1), w_rows.eq(co - 1), in_tail.eq(0),
                                 tail.eq((co << 1) + co - 1)]
        with m.If(hs & (state == BODY)):
            final = in_tail & (tail == 0)
            with m.If(w.tlast | final):
                m.d.sync += state.eq(HEAD)
            with m.If(in_tail):
                m.d.sync += tail.eq(tail - 1)
            with m.Elif(w_in == 0):
                m.d.sync += w_in.eq(ci - 1)
                with m.If(w_rows == 0):
                    m.d.sync += in_tail.eq(1)
                with m.Else():
                    m.d.sync += w_rows.eq(w_rows - 1)
            with m.Else():
                m.d.sync += w_in.eq(w_in - 1)
        with m.If(hs & (state == DROP) & w.tlast):
            m.d.sync += state.eq(HEAD)


class _Common(wiring.Component):
    """Parameter checks shared by the compressor and the decompressor."""

    def _setup(self, channels, k, multipliers, max_len, word_width, group_bounds, group_bits,
               runtime_shape=False, max_groups=None):
        if not isinstance(runtime_shape, bool):
            raise TypeError(f"Run-time shape flag must be a bool, not {runtime_shape!r}")
        self._runtime = runtime_shape
        if runtime_shape:
            self._setup_runtime(channels, k, multipliers, max_len, word_width, group_bounds,
                                group_bits, max_groups)
            return
        if max_groups is not None:
            raise ValueError("max_groups is for run-time-shape tops (runtime_shape=True)")
        for name, v in (("Channel count", channels), ("Component count", k)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 1 <= v <= 4096:
                raise ValueError(f"{name} must be between 1 and 4096, not {v}")
        if k > channels:
            raise ValueError(f"Component count {k} must not exceed channel count {channels}")
        self._c, self._k, self._M = channels, k, multipliers
        self._L, self._W = max_len, word_width
        self._bounds, self._bits = _check_groups(k, group_bounds, group_bits)
        self._cw = max(self._bits)          # coefficient bus width (golden's coef_bits)
        self._gm = len(self._bits)

    def _setup_runtime(self, channels, k, multipliers, max_len, word_width, group_bounds,
                       group_bits, max_groups):
        """Maxima: C <= channels, K <= k, G <= max_groups groups of at most max(group_bits)
        bits (default 4 groups of 8 bits); bounds and widths arrive per layer."""
        if group_bounds is not None:
            raise ValueError("A run-time-shape top takes its group bounds per layer, not "
                             "group_bounds")
        if max_groups is None:
            max_groups = len(group_bits) if group_bits else 4
        if isinstance(max_groups, bool) or not isinstance(max_groups, int):
            raise TypeError(f"Most groups must be an integer, not {max_groups!r}")
        if not 1 <= max_groups <= min(k, 16):
            raise ValueError(f"Most groups must be between 1 and {min(k, 16)}, not "
                             f"{max_groups}")
        if group_bits is None:
            group_bits = [8] * max_groups
        if len(group_bits) != max_groups:
            raise ValueError(f"{len(group_bits)} group widths for {max_groups} groups")
        # The checks of a fixed build, on a placeholder layer of the maxima.
        self._setup(channels, k, multipliers, max_len, word_width,
                    [min(g, k) for g in range(max_groups)] + [k], group_bits)
        self._runtime = True
        self._bounds = [0] + [k] * max_groups     # reset: every column in group 0
        self._gm = max_groups
    def _config_members(self, members, weights, table):
        """The weight and table ports (run-time constants), and ``layer_error``."""
        if weights is None:
            members.update(_AxiPorts.slave("s_axis_weights", self.mac.cfg_data_width))
        if table is None:
            g = self._gm
            members.update(_AxiPorts.slave("s_axis_table", 8,
                                           user=(g - 1).bit_length() if g > 1 else 0))
        if self._runtime:
            members["layer_error"] = Out(1)

    @property
    def runtime_shape(self) -> bool:
        return self._runtime

    @property
    def max_groups(self) -> int:
        return self._gm

    def layer_cycles(self, channels, k) -> int:
        """Cycles per pixel of a layer: the MAC array's or the coder's K symbols."""
        if not self._runtime:
            return self.cycles_per_pixel
        forward = isinstance(self, Compressor)
        co, ci = (k, channels) if forward else (channels, k)
        return max(self.mac.layer_cycles(co, ci), k)

    @property
    def group_bounds(self):
        return list(self._bounds)

    @property
    def group_bits(self):
        return list(self._bits)

    @property
    def coef_width(self) -> int:
        return self._cw

    def _coding_mode(self, table, run_max):
        """Set ``self._R`` (0: plain, version 1; R > 0: run-length, version 2) and
        ``self._tables`` (the baked tables, or None) from ``table`` and ``run_max``."""
        from hdl.coder_params import RUN_MAX_VALUES, encoder_tables
        if self._runtime and (table is not None or run_max):
            raise ValueError("A run-time-shape top loads its tables at run time and codes "
                             "plain tables (run max 0)")
        tables = None
        if table is not None:
            tables, file_bounds = encoder_tables(table, run_length=True)
            if file_bounds is not None and file_bounds != self._bounds:
                raise ValueError(f"Table groups {file_bounds} differ from the group bounds "
                                 f"{self._bounds}")
            if len(tables) != len(self._bits):
                raise ValueError(f"{len(tables)} tables for {len(self._bits)} groups")
            if len({bool(t.run_max) for t in tables}) != 1:
                raise ValueError("Tables must be all plain or all run-length (one coding mode "
                                 "per layer)")
        table_r = max((t.run_max for t in tables), default=0) if tables else 0
        if run_max is None:
            run_max = table_r
        if isinstance(run_max, bool) or not isinstance(run_max, int):
            raise TypeError(f"Run max must be an integer, not {run_max!r}")
        if run_max not in RUN_MAX_VALUES:
            raise ValueError(f"Run max must be 0 or a power of two up to 256, not {run_max}")
        if table_r > run_max:
            raise ValueError(f"Table run max {table_r} exceeds the block's run max {run_max}")
        if tables is not None and run_max and not table_r:
            raise ValueError("Baked plain tables need run max 0: a run-length build codes "
                             "each group as its own tile (bitstream version 2)")
        self._R, self._tables = run_max, tables

    @property
    def run_max(self) -> int:
        """Longest zero run symbol: 0 in a plain (version 1) build."""
        return self._R

    @property
    def mode(self) -> str:
        return "run-length" if self._R else "plain"

    def _huffman_kwargs(self):
        if self._runtime:
            return dict(groups=self._gm, group_bits=self._bits, runtime_groups=True)
        g = len(self._bits)
        return dict(groups=g, group_bounds=self._bounds if g > 1 else None,
                    group_bits=self._bits, table=self._tables)

    def _group_coders(self, cls, **kwargs):
        """Run-length builds: one single-group coder per table group (each group is a tile
        of its own in version 2), coding ``group_bits[g]``-bit symbols."""
        return [cls(bits, self._L, self._W, table=None if self._tables is None
                    else [self._tables[g]], run_max=self._R, **kwargs)
                for g, bits in enumerate(self._bits)]

    def _suffix(self, g):
        """Port name suffix of group g's streams in a run-length build."""
        return "" if len(self._bits) == 1 else f"_g{g}"

    def _table_demux(self, m, coders):
        """Route ``s_axis_table`` bytes to the coder of group ``tuser`` (run-length builds).
        A byte for a group that does not exist is taken and dropped, and sets the sticky
        ``bad`` flag until a byte for an existing group arrives."""
        G = len(coders)
        user = self.s_axis_table_tuser if G > 1 else Const(0, 1)
        bad = Signal(name="table_bad_group")
        readies = []
        for g, c in enumerate(coders):
            hit = user == g
            m.d.comb += [c.cfg.valid.eq(self.s_axis_table_tvalid & hit),
                         c.cfg.payload.data.eq(self.s_axis_table_tdata),
                         c.cfg.payload.last.eq(self.s_axis_table_tlast)]
            readies.append(hit & c.cfg.ready)
        exists = user < G
        ready = ~exists
        for r in readies:
            ready = ready | r
        m.d.comb += self.s_axis_table_tready.eq(ready)
        with m.If(self.s_axis_table_tvalid & self.s_axis_table_tready):
            m.d.sync += bad.eq(~exists)
        return bad


class Compressor(_Common):
    """Activations in, canonical Huffman bitstream out (``golden.datapath.pipeline.forward_int``
    then
    ``golden.codec.plain.encode_groups``, one tile per ``s_axis_tlast``).

    Parameters
    ----------
    channels, k : int
        Channels C of a pixel and projected components K (``k <= channels``).
    act_width : int
        Signed activation width (the artifact's ``in_bits``).
    weight_width, bias_width, mult_width : int
        Forward MAC array widths (``hdl.mac_array.MacArray``).
    multipliers : int
        The most multipliers M of the forward MAC array (K outputs from C inputs; any M,
        ``hdl.mac_array.schedule``). One pixel per ``max(MAC cycles, K)`` cycles, the MAC
        cycles ``C * K / M`` for a clean count (the encoder codes one coefficient per cycle).
    max_len, word_width : int
        Huffman maximum code length L and output word width W (8, 16, 32 or 64).
    group_bounds, group_bits : list of int or None
        Table groups as in ``LayerArtifact``: columns ``bounds[g]..bounds[g+1]-1`` are
        ``bits[g]``-bit coefficients (2-8). Default: one 8-bit group.
    weights : dict or None
        Forward constants ``{weight, bias, mult, shift}`` to bake (no weights port).
    table : TableSet, list of HuffmanTable, path, or None
        Tables to bake (no table port).
    family : str
        FPGA family of the MAC array (``hdl.mac_array.MacArray``'s ``family``): ``"generic"``
        (default), ``"ecp5"`` or ``"ice40"``.
    run_max : int or None
        Longest zero-run symbol (run-length mode, bitstream version 2): 0 plain, else a
        power of two up to 256; None takes the baked tables' (0 without tables). A
        run-length build has one encoder per group, each group's tile on ports of its own
        (``m_axis_g<g>``, ``m_axis_g<g>_bits`` with several groups; ``docs/top.md``).
    runtime_shape : bool
        ``channels`` and ``k`` are maxima and the layer (C, K, groups, their bounds and
        widths) arrives at run time: a layer descriptor heads every ``s_axis_weights`` load
        (``docs/top.md``). Plain tables, loaded at run time; the MAC array is run-time-shape
        (``hdl.mac_array.runtime_schedule``). Adds ``layer_error``.
    max_groups : int or None
        Most table groups of a layer (``runtime_shape``; default ``len(group_bits)`` or 4);
        ``group_bits`` then gives the most bits of each (default 8).

    Ports
    -----
    s_axis_tdata/tvalid/tready/tlast : in
        One pixel per beat, C signed ``act_width`` values, channel 0 in the low bits;
        ``tlast`` on a tile's final pixel (the encoder flushes there).
    m_axis_tdata/tvalid/tready/tlast : out
        W-bit words, MSB first; ``tlast`` on a tile's final, zero-padded word.
    m_axis_bits_tdata/tvalid/tready : out
        One beat per tile: its payload bits before padding.
    s_axis_weights_* : in (run-time weights only)
        The forward MAC array's ``cfg`` stream (``docs/mac_array.md``).
    s_axis_table_tdata/tvalid/tready/tlast/tuser : in (run-time tables only)
        The encoder's ``cfg`` stream: ``HuffmanTable.serialize()`` bytes, ``tuser`` the group.
    error : out
        Sticky encoder error (a malformed table load; see ``docs/huffman_encoder.md``).
    layer_error : out (``runtime_shape`` only)
        The last layer descriptor was bad (its load was dropped); cleared by a good one.
    """

    def __init__(self, channels, k, *, act_width=8, weight_width=8, bias_width=32,
                 mult_width=16, multipliers=16, max_len=12, word_width=32, group_bounds=None,
                 group_bits=None, weights=None, table=None, count_width=32,
                 family="generic", run_max=None, runtime_shape=False, max_groups=None):
        self._setup(channels, k, multipliers, max_len, word_width, group_bounds, group_bits,
                    runtime_shape, max_groups)
        self._coding_mode(table, run_max)
        if runtime_shape and weights is not None:
            raise ValueError("A run-time-shape top loads its weights at run time")
        rows = 1 if runtime_shape else schedule(k, channels, multipliers)["rows"]
        self.mac = MacArray(k, channels, in_width=act_width, weight_width=weight_width,
                            bias_width=bias_width, mult_width=mult_width,
                            out_width=self._cw, multipliers=multipliers, out_group=rows,
                            weights=weights, family=family, runtime_shape=runtime_shape)
        self._og = rows
        if self._R:
            self.encs = self._group_coders(HuffmanEncoder, count_width=count_width,
                                           family=family)
            self.enc = None
        else:
            self.enc = HuffmanEncoder(self._cw, max_len, word_width, count_width=count_width,
                                      family=family, **self._huffman_kwargs())
            self.encs = [self.enc]
        self._act_w = act_width
        members = {**_AxiPorts.slave("s_axis", channels * act_width)}
        for g in range(len(self.encs)):
            sfx = self._suffix(g) if self._R else ""
            members.update(_AxiPorts.master(f"m_axis{sfx}", word_width))
            members.update(_AxiPorts.master(f"m_axis{sfx}_bits", count_width, last=False))
        members["error"] = Out(1)
        self._config_members(members, weights, table)
        super().__init__(members)

    @property
    def cycles_per_pixel(self) -> int:
        return max(self.mac.CYCLES_PER_PIXEL, self._k)

    @property
    def fifo_depth(self) -> int:
        # Pixels inside the MAC array never exceed its latency in cycles (one per cycle at
        # most) plus its output register; the FIFO also gates its input, so this is a bound
        # for speed, not for correctness.
        return self.mac.LATENCY + 2

    @property
    def latency(self) -> dict:
        return {"mac_array": self.mac.LATENCY, "huffman": self.encs[0].latency}

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = self.mac
        if self._R:
            for g, e in enumerate(self.encs):
                m.submodules[f"enc{g}"] = e
        else:
            m.submodules.enc = self.enc
        K, cw = self._k, self._cw
        og = len(mac.o_stream.payload.data)
        layer = _LayerPort(self, mac, forward=True) if self._runtime else None
        # Pixels wait while a layer descriptor is offered or loading (run-time shapes).
        hold = (self.s_axis_weights_tvalid | layer.loading) if layer else Const(0)

        # Tile-end flags ride beside the MAC array, one per pixel.
        m.submodules.tile_end = fifo = SyncFIFO(width=1, depth=self.fifo_depth)
        m.d.comb += [
            mac.i_stream.valid.eq(self.s_axis_tvalid & fifo.w_rdy & ~hold),
            mac.i_stream.payload.eq(self.s_axis_tdata),
            self.s_axis_tready.eq(mac.i_stream.ready & fifo.w_rdy & ~hold),
            fifo.w_data.eq(self.s_axis_tlast),
            fifo.w_en.eq(self.s_axis_tvalid & self.s_axis_tready),
        ]

        # Serializer: one MAC output beat (og coefficients) -> one coefficient per cycle.
        buf = Signal(og * cw)
        idx = Signal(range(og))
        full = Signal()
        pix_last = Signal()
        tile_last = Signal()
        col = Signal(range(K))
        last_elem = Signal()
        take = Signal()
        enc_ready = Signal()
        m.d.comb += [last_elem.eq(idx == og - 1), take.eq(full & enc_ready)]
        o = mac.o_stream
        m.d.comb += o.ready.eq(~full | (take & last_elem))
        # The current pixel's tile-end flag: registered once its last beat is in the buffer,
        # before that still at the head of the FIFO (a run-length group's last column may
        # come before the pixel's last beat).
        if self._R:
            pixel_ends_tile = Signal()
            m.d.comb += pixel_ends_tile.eq(Mux(pix_last, tile_last, fifo.r_data))
        with m.If(o.valid & o.ready):
            m.d.sync += [buf.eq(o.payload.data.as_value()), idx.eq(0), full.eq(1),
                         pix_last.eq(o.payload.last)]
            with m.If(o.payload.last):
                m.d.comb += fifo.r_en.eq(1)
                m.d.sync += tile_last.eq(fifo.r_data)
        with m.Elif(take & last_elem):
            m.d.sync += full.eq(0)
        with m.Elif(take):
            m.d.sync += idx.eq(idx + 1)
        k_last = (layer.k - 1) if layer else K - 1
        with m.If(take):
            m.d.sync += col.eq(Mux(col == k_last, 0, col + 1))

        # The coefficient, clamped to its group's range; its low bits are the symbol.
        v = Signal(unsigned(cw))
        m.d.comb += v.eq((buf >> (idx * cw))[:cw] if og > 1 else buf)
        sv = v.as_signed()
        syms = []
        if layer:
            # Each group's range and mask, registered from the layer's widths (they change
            # only while no pixel is inside).
            for g, width in enumerate(layer.widths):
                hi = Signal(signed(cw + 1), name=f"clamp_hi{g}")
                lo = Signal(signed(cw + 1), name=f"clamp_lo{g}")
                mask = Signal(cw, name=f"sym_mask{g}")
                half = Const(1, cw + 1) << (width - 1).as_unsigned()[:4]
                m.d.sync += [hi.eq(half - 1), lo.eq(-half.as_signed()),
                             mask.eq((half << 1) - 1)]
                clamped = Mux(sv < lo, lo, Mux(sv > hi, hi, sv))
                syms.append(clamped.as_unsigned()[:cw] & mask)
        for bits in ([] if layer else self._bits):
            if bits == cw:
                syms.append(v)
                continue
            lo, hi = int_range(bits)
            clamped = Mux(sv < lo, lo, Mux(sv > hi, hi, sv))
            syms.append(clamped.as_unsigned()[:bits])
        onehot = layer.group_onehot(col) if layer else _group_of(col, self._bounds)
        if self._R:
            # Run-length: coefficient j goes to its group's encoder; group g's tile ends at
            # its last column of the tile's final pixel.
            m.d.comb += enc_ready.eq(_select(onehot, [e.i_stream.ready for e in self.encs],
                                             1))
            for g, (e, sym_g, hi) in enumerate(zip(self.encs, syms, self._bounds[1:])):
                m.d.comb += [e.i_stream.valid.eq(full & onehot[g]),
                             e.i_stream.payload.symbol.eq(sym_g),
                             e.i_stream.payload.last.eq(pixel_ends_tile & (col == hi - 1)),
                             e.i_stream.payload.empty.eq(0)]
        else:
            enc = self.enc
            sym = _select(onehot, syms, cw)
            m.d.comb += [enc_ready.eq(enc.i_stream.ready),
                         enc.i_stream.valid.eq(full),
                         enc.i_stream.payload.symbol.eq(sym),
                         enc.i_stream.payload.last.eq(last_elem & pix_last & tile_last),
                         enc.i_stream.payload.empty.eq(0)]
            if layer and self._gm > 1:
                m.d.comb += enc.i_stream.payload.group.eq(
                    _select(onehot, [Const(g, (self._gm - 1).bit_length())
                                     for g in range(self._gm)], (self._gm - 1).bit_length()))

        error = Const(0)
        for g, e in enumerate(self.encs):
            sfx = self._suffix(g) if self._R else ""
            words, bits = f"m_axis{sfx}", f"m_axis{sfx}_bits"
            m.d.comb += [getattr(self, f"{words}_tdata").eq(e.o_stream.payload.data),
                         getattr(self, f"{words}_tlast").eq(e.o_stream.payload.last),
                         getattr(self, f"{words}_tvalid").eq(e.o_stream.valid),
                         e.o_stream.ready.eq(getattr(self, f"{words}_tready")),
                         getattr(self, f"{bits}_tdata").eq(e.o_count.payload.nbits),
                         getattr(self, f"{bits}_tvalid").eq(e.o_count.valid),
                         e.o_count.ready.eq(getattr(self, f"{bits}_tready"))]
            error = error | e.error
        if layer:
            # Idle: every pixel taken has had its last coefficient handed to the encoder.
            inside = Signal(range(self.fifo_depth + 2), name="pixels_inside")
            enter = self.s_axis_tvalid & self.s_axis_tready
            leave = take & last_elem & pix_last
            m.d.sync += inside.eq(inside + enter - leave)
            layer.elaborate(m, (inside == 0) & ~full)
            m.d.comb += self.layer_error.eq(layer.error | mac.error)
        elif "cfg" in mac.signature.members:
            _connect_cfg(m, self, "s_axis_weights", mac.cfg, False)
        if self._tables is None:
            if self._R:
                error = error | self._table_demux(m, self.encs)
            else:
                _connect_cfg(m, self, "s_axis_table", self.enc.cfg, len(self._bits) > 1)
        m.d.comb += self.error.eq(error)
        return m


class Decompressor(_Common):
    """Canonical Huffman bitstream in, reconstructed activations out
    (``golden.codec.plain.decode_groups`` then ``golden.datapath.pipeline.inverse_int``).

    Parameters
    ----------
    channels, k, weight_width, bias_width, mult_width, max_len, word_width, group_bounds,
    group_bits, weights, table, family
        As for ``Compressor`` (``weights`` are the inverse constants).
    out_width : int
        Signed output width (the artifact's ``out_bits``).
    multipliers : int
        The most multipliers M of the inverse MAC array (C outputs from K inputs; any M).
        One pixel per ``max(MAC cycles, K)`` cycles.
    out_group : int or None
        Output channels per ``m_axis`` beat (default: the fewest the schedule allows).
    relu : bool
        Clamp the reconstruction at zero.
    pixels_width : int
        Width of the pixel count on ``s_axis_pixels``.
    run_max : int or None
        As for ``Compressor``: a run-length build has one decoder per group, each taking its
        group's words and bit count (``s_axis_g<g>``, ``s_axis_g<g>_bits`` with several
        groups; ``s_axis_bits`` with one); ``docs/top.md`` describes the tile sequencing.
    runtime_shape, max_groups : bool, int or None
        As for ``Compressor``; ``out_group`` must then be a power of two dividing every C.
    decoder_loop : str
        The decoder's decode loop, ``"shift"`` (default) or ``"map"`` (faster, more LUTs;
        plain mode with one table group; ``docs/huffman_decoder.md``, "Decode loops").
    decoder_map_bits : int or None
        The map loop's positions decoded per cycle (``HuffmanDecoder``'s ``map_bits``).

    Ports
    -----
    s_axis_pixels_tdata/tvalid/tready : in
        One beat per tile, before or with its words: the tile's pixel count (0: no words).
    s_axis_tdata/tvalid/tready/tlast : in
        The tile's W-bit words, MSB first; ``tlast`` on its final word.
    m_axis_tdata/tvalid/tready/tlast : out
        ``out_group`` signed ``out_width`` channels per beat, channel 0 in the low bits, the
        beats of a pixel in channel order; ``tlast`` on the final beat of a tile's last pixel.
    s_axis_weights_*, s_axis_table_* : in (run-time constants only)
        As for ``Compressor``.
    error, error_code : out
        The decoder's sticky flag and code (``docs/huffman_decoder.md``). A corrupt tile
        yields the whole pixels decoded before the error and no ``tlast``; the decoder
        drains the tile's words and the next tile decodes normally.
    layer_error : out (``runtime_shape`` only)
        As for ``Compressor``.
    """

    def __init__(self, channels, k, *, out_width=8, weight_width=8, bias_width=32,
                 mult_width=16, multipliers=16, out_group=None, relu=False, max_len=12,
                 word_width=32, group_bounds=None, group_bits=None, weights=None, table=None,
                 pixels_width=32, family="generic", run_max=None, runtime_shape=False,
                 max_groups=None, decoder_loop="shift", decoder_map_bits=None):
        self._setup(channels, k, multipliers, max_len, word_width, group_bounds, group_bits,
                    runtime_shape, max_groups)
        self._coding_mode(table, run_max)
        if runtime_shape and weights is not None:
            raise ValueError("A run-time-shape top loads its weights at run time")
        if (decoder_loop != "shift" or decoder_map_bits is not None) and self._R:
            raise ValueError("The map decode loop needs plain mode (run max 0)")
        if isinstance(pixels_width, bool) or not isinstance(pixels_width, int):
            raise TypeError(f"Pixel count width must be an integer, not {pixels_width!r}")
        if not 1 <= pixels_width <= 32:
            raise ValueError(f"Pixel count width must be between 1 and 32, not {pixels_width}")
        rows = 1 if runtime_shape else schedule(channels, k, multipliers)["rows"]
        self.mac = MacArray(channels, k, in_width=self._cw, weight_width=weight_width,
                            bias_width=bias_width, mult_width=mult_width, out_width=out_width,
                            multipliers=multipliers, out_group=out_group or rows, relu=relu,
                            weights=weights, family=family, runtime_shape=runtime_shape)
        self._og = out_group or rows
        self._kbits = (k - 1).bit_length()
        self._pw = pixels_width
        if self._R:
            self.decs = self._group_coders(HuffmanDecoder,
                                           count_width=pixels_width + self._kbits)
            self.dec = None
        else:
            self.dec = HuffmanDecoder(self._cw, max_len, word_width,
                                      count_width=pixels_width + self._kbits,
                                      loop=decoder_loop, map_bits=decoder_map_bits,
                                      **self._huffman_kwargs())
            self.decs = [self.dec]
        og = out_group or rows
        members = {**_AxiPorts.slave("s_axis_pixels", pixels_width, last=False)}
        for g, d in enumerate(self.decs):
            sfx = self._suffix(g) if self._R else ""
            members.update(_AxiPorts.slave(f"s_axis{sfx}", word_width))
            if self._R:
                members.update(_AxiPorts.slave(f"s_axis{sfx}_bits", d.nbits_width,
                                               last=False))
        members.update({
            **_AxiPorts.master("m_axis", og * out_width),
            "error": Out(1),
            "error_code": Out(3),
        })
        self._config_members(members, weights, table)
        super().__init__(members)

    @property
    def cycles_per_pixel(self) -> int:
        return max(self.mac.CYCLES_PER_PIXEL, self._k)

    @property
    def fifo_depth(self) -> int:
        return self.mac.LATENCY + 2

    @property
    def latency(self) -> dict:
        return {"mac_array": self.mac.LATENCY, "huffman": self.decs[0].latency}

    @staticmethod
    def _extend(symbol, bits, cw):
        """A group's ``bits``-bit symbol sign-extended to the coefficient width."""
        return (symbol[:bits].as_signed().as_unsigned() if bits == cw else
                Cat(symbol[:bits], symbol[bits - 1].replicate(cw - bits)))

    def _plain_front(self, m, layer=None, hold=Const(0)):
        """Version 1: one decoder for every group; returns the packer's symbol source
        ``(valid, value, last, restart, ready)``. ``first`` restarts at column 0, dropping
        what a corrupt tile left half-packed. ``layer``: run-time shapes (K and the group
        edges from the layer registers; tile counts wait while ``hold``)."""
        dec, K, cw = self.dec, self._k, self._cw
        if layer:
            K = layer.k
            if self._gm > 1:
                m.d.comb += [dec.columns.eq(layer.k)]
                m.d.comb += [dec.edges[i].eq(e) for i, e in enumerate(layer.edges)]
        m.d.comb += [dec.i_count.valid.eq(self.s_axis_pixels_tvalid & ~hold),
                     self.s_axis_pixels_tready.eq(dec.i_count.ready & ~hold),
                     dec.i_count.payload.count.eq(self.s_axis_pixels_tdata * K),
                     dec.i_stream.valid.eq(self.s_axis_tvalid),
                     self.s_axis_tready.eq(dec.i_stream.ready),
                     dec.i_stream.payload.data.eq(self.s_axis_tdata),
                     dec.i_stream.payload.last.eq(self.s_axis_tlast),
                     self.error.eq(dec.error), self.error_code.eq(dec.error_code)]
        if self._tables is None:
            _connect_cfg(m, self, "s_axis_table", dec.cfg, len(self._bits) > 1)
        s = dec.o_stream
        return dict(valid=s.valid, value=s.payload.symbol, last=s.payload.last,
                    first=s.payload.first, restart=Const(0), ready=s.ready)

    def _rl_front(self, m, col):
        """Version 2: one decoder per group, each decoding its group's tile. Returns the
        packer's source like ``_plain_front`` (values already in group-width patterns).

        The top sequences the tiles itself: a tile's pixel count and the groups' bit counts
        start every decoder at once (``active``), the packer takes column j from its group's
        decoder and counts the tile's pixels, and the next tile's headers wait until the
        packer is done. A decoder error during a tile aborts it: the half-packed pixel is
        dropped, every decoder's remaining values of the tile are drained (``aborting``) until
        each is idle and empty, and then the next tile starts."""
        K, G = self._k, len(self.decs)
        decs = self.decs
        active = Signal()
        aborting = Signal()
        rows_left = Signal(self._pw)
        # Header fork: one pixel count, G bit counts, G decoders; ``taken[g]`` once g has it.
        taken = [Signal(name=f"hdr_taken{g}") for g in range(G)]
        start_ok = ~active & ~aborting
        pv = self.s_axis_pixels_tvalid
        all_in = Const(1)
        for g, d in enumerate(decs):
            bits = _Flat(self, f"s_axis{self._suffix(g)}_bits")
            width = self._bounds[g + 1] - self._bounds[g]
            fire = Signal(name=f"hdr_fire{g}")
            m.d.comb += [d.i_count.valid.eq(start_ok & pv & bits.tvalid & ~taken[g]),
                         d.i_count.payload.count.eq(self.s_axis_pixels_tdata * width),
                         d.i_count.payload.nbits.eq(bits.tdata),
                         fire.eq(d.i_count.valid & d.i_count.ready),
                         bits.tready.eq(fire)]
            all_in = all_in & (taken[g] | fire)
            words = _Flat(self, f"s_axis{self._suffix(g)}")
            m.d.comb += [d.i_stream.valid.eq(words.tvalid),
                         words.tready.eq(d.i_stream.ready),
                         d.i_stream.payload.data.eq(words.tdata),
                         d.i_stream.payload.last.eq(words.tlast)]
            with m.If(fire):
                m.d.sync += taken[g].eq(1)
        start = Signal()
        m.d.comb += [start.eq(start_ok & pv & all_in),
                     self.s_axis_pixels_tready.eq(start)]
        with m.If(start):
            m.d.sync += [t.eq(0) for t in taken]
            m.d.sync += [active.eq(self.s_axis_pixels_tdata != 0),
                         rows_left.eq(self.s_axis_pixels_tdata)]

        # Errors: any decoder's (lowest group first), or a table byte for no group.
        err = Const(0)
        code = Const(0, 3)
        for d in reversed(decs):
            code = Mux(d.error, d.error_code, code)
            err = err | d.error
        if self._tables is None:
            bad = self._table_demux(m, decs)
            code = Mux(err, code, Mux(bad, DecoderError.BAD_TABLE, 0))
            err = err | bad
        m.d.comb += [self.error.eq(err), self.error_code.eq(code)]

        # Packer source: column ``col``'s decoder, while a tile is active and not aborted.
        onehot = _group_of(col, self._bounds)
        valid, last, ready = Signal(), Signal(), Signal()
        value = _select(onehot, [d.o_stream.payload.symbol for d in decs],
                        max(self._bits))
        # A decoder is done with its tile when it takes headers again and holds no value.
        done = [Signal(name=f"dec_done{g}") for g in range(G)]
        all_done = Const(1)
        stuck = Const(0)
        for g, d in enumerate(decs):
            s = d.o_stream
            m.d.comb += [s.ready.eq(Mux(active & ~aborting, onehot[g] & ready, 1)),
                         done[g].eq(d.i_count.ready & ~s.valid)]
            all_done = all_done & done[g]
            # The packer waits on a decoder that failed and has given every value it had.
            stuck = stuck | (onehot[g] & d.error & done[g])
        live = Signal()
        m.d.comb += [live.eq(active & ~aborting),
                     valid.eq(live & _select(onehot, [d.o_stream.valid for d in decs], 1)),
                     last.eq(rows_left == 1)]
        with m.If(valid & ready & (col == K - 1)):
            m.d.sync += rows_left.eq(rows_left - 1)
            with m.If(rows_left == 1):
                m.d.sync += active.eq(0)
        restart = Signal()
        with m.If(live & stuck):
            m.d.comb += restart.eq(1)
            m.d.sync += [aborting.eq(1), active.eq(0)]
        with m.If(aborting & all_done):
            m.d.sync += aborting.eq(0)
        return dict(valid=valid, value=value, last=last, first=Const(0), restart=restart,
                    ready=ready)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = self.mac
        K, cw = self._k, self._cw
        col = Signal(range(K))
        layer = _LayerPort(self, mac, forward=False) if self._runtime else None
        hold = (self.s_axis_weights_tvalid | layer.loading) if layer else Const(0)
        if self._R:
            for g, d in enumerate(self.decs):
                m.submodules[f"dec{g}"] = d
            src = self._rl_front(m, col)
        else:
            m.submodules.dec = self.dec
            src = self._plain_front(m, layer, hold)
        s_valid, s_sym, s_last, s_ready = src["valid"], src["value"], src["last"], src["ready"]

        # Packer: K symbols -> one pixel of coefficients, sign-extended per group.
        m.submodules.tile_end = fifo = SyncFIFO(width=1, depth=self.fifo_depth)
        c = Signal.like(col)
        m.d.comb += c.eq(Mux(src["first"], 0, col))
        if layer:
            # Sign extension from each group's width: (x ^ half) - half on the low bits,
            # half and the mask registered from the layer's widths.
            exts = []
            for g, width in enumerate(layer.widths):
                half = Signal(cw, name=f"ext_half{g}")
                mask = Signal(cw, name=f"ext_mask{g}")
                h = Const(1, cw + 1) << (width - 1).as_unsigned()[:4]
                m.d.sync += [half.eq(h), mask.eq((h << 1) - 1)]
                exts.append((((s_sym[:cw] & mask) ^ half) - half)[:cw])
            v = _select(layer.group_onehot(c), exts, cw)
        else:
            exts = [self._extend(s_sym, bits, cw) for bits in self._bits]
            v = _select(_group_of(c, self._bounds), exts, cw)
        vec = Signal(K * cw)                  # element j in bits j*cw.. once full
        pix = Signal(K * cw)
        pix_valid = Signal()
        pix_last = Signal()
        mac_take = Signal()
        m.d.comb += [mac_take.eq(pix_valid & mac.i_stream.ready & fifo.w_rdy),
                     mac.i_stream.valid.eq(pix_valid & fifo.w_rdy),
                     mac.i_stream.payload.eq(pix),
                     fifo.w_data.eq(pix_last), fifo.w_en.eq(mac_take)]
        if layer:
            # Column c goes to lane c (lanes from the layer's K up are ignored by the MAC).
            shifted = Cat(*[Mux(c == j, v, vec[j * cw:(j + 1) * cw]) for j in range(K)])
            end = c == layer.k - 1
        else:
            shifted = Cat(vec[cw:], v) if K > 1 else v
            end = c == K - 1
        m.d.comb += s_ready.eq(~end | ~pix_valid | mac_take)
        with m.If(mac_take):
            m.d.sync += pix_valid.eq(0)
        with m.If(s_valid & s_ready):
            m.d.sync += [vec.eq(shifted), col.eq(Mux(end, 0, c + 1))]
            with m.If(end):
                m.d.sync += [pix.eq(shifted), pix_valid.eq(1), pix_last.eq(s_last)]
        with m.Elif(src["restart"]):
            m.d.sync += col.eq(0)

        o = mac.o_stream
        m.d.comb += [self.m_axis_tdata.eq(o.payload.data.as_value()),
                     self.m_axis_tvalid.eq(o.valid),
                     o.ready.eq(self.m_axis_tready),
                     self.m_axis_tlast.eq(o.payload.last & fifo.r_data),
                     fifo.r_en.eq(o.valid & o.ready & o.payload.last)]
        if layer:
            self._layer_idle(m, layer, src, s_valid, s_ready, s_last, col, pix_valid, mac_take)
        elif "cfg" in mac.signature.members:
            _connect_cfg(m, self, "s_axis_weights", mac.cfg, False)
        return m

    def _layer_idle(self, m, layer, src, s_valid, s_ready, s_last, col, pix_valid, mac_take):
        """Run-time shapes: the layer descriptor waits until no tile is open (its final
        symbol packed, or its decoder failed and fell quiet) and every pixel packed has left
        ``m_axis``."""
        dec, mac, o = self.dec, self.mac, self.mac.o_stream
        tile_open = Signal(name="tile_open")
        with m.If(self.s_axis_pixels_tvalid & self.s_axis_pixels_tready):
            m.d.sync += tile_open.eq(self.s_axis_pixels_tdata != 0)
        with m.Elif(s_valid & s_ready & s_last):
            m.d.sync += tile_open.eq(0)
        # A failed tile never shows its last symbol: once the decoder takes headers again
        # and nothing came out for its latency, nothing more will.
        quiet = Signal(range(dec.latency + 3), name="dec_quiet")
        with m.If(dec.o_stream.valid | ~dec.i_count.ready):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != dec.latency + 2):
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(dec.error & (quiet == dec.latency + 2)):
            m.d.sync += tile_open.eq(0)
        inside = Signal(range(self.fifo_depth + 2), name="pixels_inside")
        leave = o.valid & o.ready & o.payload.last
        m.d.sync += inside.eq(inside + mac_take - leave)
        layer.elaborate(m, ~tile_open & ~pix_valid & (inside == 0) & ((col == 0) | dec.error))
        m.d.comb += self.layer_error.eq(layer.error | mac.error)


# ---------------------------------------------------------------------------- FPGA flow

def fpga_configs():
    """Configurations for ``scripts/fpga_flow.py``: the default build's tops at M = 16, with
    the generic MAC arrays and (suffix ``_ecp5``) with ``family="ecp5"``."""
    out = {}
    for suffix, family in (("", "generic"), ("_ecp5", "ecp5")):
        def comp(family=family):
            c = Compressor(64, 16, multipliers=16, family=family)
            return c, {"family": "compressor", "parallelism": 16,
                       "values_per_cycle": round(64 / c.cycles_per_pixel, 3)}

        def decomp(family=family):
            d = Decompressor(64, 16, multipliers=16, family=family)
            return d, {"family": "decompressor", "parallelism": 16,
                       "values_per_cycle": round(64 / d.cycles_per_pixel, 3)}
        out[f"compressor_m16{suffix}"] = comp
        out[f"decompressor_m16{suffix}"] = decomp

        def decomp_map(family=family):
            d = Decompressor(64, 16, multipliers=16, family=family, decoder_loop="map")
            return d, {"family": "decompressor_map", "parallelism": 16,
                       "values_per_cycle": round(64 / d.cycles_per_pixel, 3)}
        out[f"decompressor_m16_map{suffix}"] = decomp_map

    # Run-length mode (run-time tables, longest run symbol 64), ECP5 MAC arrays.
    def comp_rl():
        c = Compressor(64, 16, multipliers=16, family="ecp5", run_max=64)
        return c, {"family": "compressor", "parallelism": 16,
                   "values_per_cycle": round(64 / c.cycles_per_pixel, 3)}

    def decomp_rl():
        d = Decompressor(64, 16, multipliers=16, family="ecp5", run_max=64)
        return d, {"family": "decompressor", "parallelism": 16,
                   "values_per_cycle": round(64 / d.cycles_per_pixel, 3)}
    out["compressor_m16_rl_ecp5"] = comp_rl
    out["decompressor_m16_rl_ecp5"] = decomp_rl

    # Run-time shapes (one pair for every layer of a network), ECP5 MAC arrays: maxima of
    # the default build's layer (C = 64, K = 16, 3 groups) and MobileNetV2's (RUNTIME_MAXIMA).
    for tag, (c_max, k_max, g_max) in RUNTIME_MAXIMA.items():
        for kind, cls in (("compressor", Compressor), ("decompressor", Decompressor)):
            def top(cls=cls, kind=kind, c_max=c_max, k_max=k_max, g_max=g_max):
                t = cls(c_max, k_max, multipliers=16, family="ecp5", runtime_shape=True,
                        max_groups=g_max)
                return t, {"family": kind, "parallelism": 16,
                           "values_per_cycle": round(c_max / t.cycles_per_pixel, 3)}
            out[f"{kind}_rt_{tag}_ecp5"] = top
    return out


#: Maxima of the run-time-shape FPGA configurations: (C, K, groups).
RUNTIME_MAXIMA = {"c64k16g3": (64, 16, 3), "c1280k256g4": (1280, 256, 4)}


# ---------------------------------------------------------------------------- hdl.build

TOPS = ("compressor", "decompressor")


def _add_arguments(parser):
    huffman_arguments(parser)
    parser.add_argument("--top", choices=("all", "blocks") + TOPS, default="all",
                        help="what to emit: every block and both tops (all, default), the "
                             "blocks only, or one top")


def _artifact(args):
    """The ``--weights`` artifact's constants and groups, checked against the build, or None."""
    if args.weights is None:
        return None
    from golden.datapath.artifacts import load_artifact
    try:
        art = load_artifact(args.weights)
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from None
    if art.in_bits != args.out_width:
        raise UsageError(f"--weights file has activation bits {art.in_bits}, but the build "
                         f"asks for {args.out_width} (--out-width)")
    return art


def _runtime_modules(args):
    """``--max-channels``/``--max-k``: the run-time-shape tops (``docs/runtime.md``)."""
    if getattr(args, "decoder_loop", "shift") != "shift" or \
            getattr(args, "map_bits", None) is not None:
        raise UsageError("The map decode loop needs one table group known at build time, "
                         "not run-time shapes (--max-channels)")
    if args.in_width > 8:
        raise UsageError(f"The compressor and decompressor code coefficients of at most 8 "
                         f"bits, not --in-width {args.in_width}")
    common = dict(weight_width=args.weight_width, bias_width=args.bias_width,
                  mult_width=args.mult_width, multipliers=args.multipliers,
                  max_len=args.max_len, word_width=args.word_width,
                  group_bits=[args.in_width] * args.max_groups, max_groups=args.max_groups,
                  family=getattr(args, "family", "generic"), runtime_shape=True)
    out = []
    try:
        if args.top in ("all", "compressor"):
            c = Compressor(args.channels, args.k, act_width=args.out_width, **common)
            out.append(BuildModule("compressor", c, _info(c, "compressor")))
        if args.top in ("all", "decompressor"):
            d = Decompressor(args.channels, args.k, out_width=args.out_width,
                             out_group=args.out_group, relu=args.relu, **common)
            out.append(BuildModule("decompressor", d, _info(d, "decompressor")))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{args.top}: {e}") from None
    return out


def _modules(args):
    if args.top == "blocks":
        return []
    if getattr(args, "runtime", False):
        return _runtime_modules(args)
    art = _artifact(args)
    if art is not None:
        bounds, bits = art.group_bounds.tolist(), art.group_bits.tolist()
        fwd = {key: getattr(art, f"fwd_{key}") for key in _MAC_KEYS}
        inv = {key: getattr(art, f"inv_{key}") for key in _MAC_KEYS}
        table = art.tables
    else:
        g = args.groups
        if g > args.k:
            raise UsageError(f"Table group count {g} must not exceed component count {args.k}")
        bounds = [i * args.k // g for i in range(g + 1)]
        bits = [args.in_width] * g
        fwd = inv = table = None
        if args.in_width > 8:
            raise UsageError(f"The compressor and decompressor code coefficients of at most 8 "
                             f"bits, not --in-width {args.in_width} (--top blocks builds the "
                             f"blocks alone)")
    if args.table is not None:
        from hdl.huffman_encoder import encoder_tables
        try:
            tables, file_bounds = encoder_tables(args.table, run_length=True)
        except (ValueError, OSError) as e:
            raise UsageError(str(e)) from None
        file_bits = [t.bits for t in tables]
        if (file_bounds or [0, args.k]) != bounds or file_bits != bits:
            raise UsageError(f"--table file has groups {file_bounds or [0, args.k]} of "
                             f"{file_bits} bits, but the tops need {bounds} of {bits} bits")
        table = tables
    common = dict(weight_width=args.weight_width, bias_width=args.bias_width,
                  mult_width=args.mult_width, multipliers=args.multipliers,
                  max_len=args.max_len, word_width=args.word_width, group_bounds=bounds,
                  group_bits=bits, table=table, family=getattr(args, "family", "generic"),
                  run_max=getattr(args, "run_max", None))
    out = []
    try:
        if args.top in ("all", "compressor"):
            c = Compressor(args.channels, args.k, act_width=args.out_width, weights=fwd,
                           **common)
            out.append(BuildModule("compressor", c, _info(c, "compressor")))
        if args.top in ("all", "decompressor"):
            d = Decompressor(args.channels, args.k, out_width=args.out_width,
                             out_group=args.out_group, relu=args.relu, weights=inv,
                             decoder_loop=getattr(args, "decoder_loop", "shift"),
                             decoder_map_bits=getattr(args, "map_bits", None), **common)
            out.append(BuildModule("decompressor", d, _info(d, "decompressor")))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{args.top}: {e}") from None
    return out


def _runtime_info(top, kind):
    """Manifest entry of a run-time-shape top: maxima, descriptor, memory, layer rate."""
    coder = top.encs[0] if kind == "compressor" else top.decs[0]
    mac = top.mac.memory_bits
    gm = top.max_groups
    return {
        "max_channels": top._c, "max_k": top._k, "max_groups": gm,
        "coef_width": top.coef_width,
        "descriptor": (f"the first {2 + 2 * gm} beats of every s_axis_weights load: C, K, G, "
                       f"the {gm - 1} inner group edges bounds[1..G-1] (rising, below K; "
                       f"entries past G - 1 ignored), the {gm} group widths (2 to "
                       f"{top.coef_width}; entries past G ignored); then the MAC array's "
                       f"values (W row-major, bias, mult, shift); docs/runtime.md"),
        "cycles_per_pixel": (f"max(MAC rows * ceil(MAC inputs / {top.mac._sched['lanes']}), "
                             f"K): compressor rows K, inputs C; decompressor rows C, "
                             f"inputs K"),
        "memory_bits": {"mac_array": mac, "mac_array_total": sum(mac.values()),
                        "coder": coder.memory_bits,
                        "total": sum(mac.values()) + coder.memory_bits},
    }


def _info(top, kind):
    g = len(top.group_bits)
    if not top.run_max:
        streams = "m_axis words, m_axis_bits per tile"
        inputs = "s_axis_pixels count + s_axis words (tlast ends a tile)"
    elif g == 1:
        streams = "m_axis words, m_axis_bits per tile (version 2: the tile's values)"
        inputs = "s_axis_pixels count + s_axis_bits + s_axis words (tlast ends a tile)"
    else:
        streams = (f"per group g < {g}: m_axis_g<g> words and m_axis_g<g>_bits per tile "
                   f"(version 2: group g's columns of the tile, row-major)")
        inputs = (f"s_axis_pixels count + per group g < {g}: s_axis_g<g>_bits + s_axis_g<g> "
                  f"words (tlast ends the group's tile)")
    return {
        "latency": top.latency,
        "cycles_per_pixel": top.cycles_per_pixel,
        "throughput": f"1 pixel per max(MAC array cycles, K) = {top.cycles_per_pixel} cycles",
        "mac_schedule": {key: top.mac._sched[key] for key in ("cycles", "products", "in_pad",
                                                              "efficiency")},
        "coding": {"mode": top.mode, "bitstream_version": 2 if top.run_max else 1,
                   "run_max": top.run_max,
                   "group_modes": [top.mode] * g,
                   "coders": len(top.encs if kind == "compressor" else top.decs)},
        "parameters": {"multipliers": top._M, "group_bounds": top.group_bounds,
                       "group_bits": top.group_bits, "coef_width": top.coef_width,
                       "max_len": top._L, "word_width": top._W, "run_max": top.run_max,
                       "baked_weights": "s_axis_weights_tdata" not in top.signature.members,
                       "baked_table": "s_axis_table_tdata" not in top.signature.members},
        "configuration": "s_axis_weights: the MAC array cfg stream (docs/mac_array.md); "
                         "s_axis_table: HuffmanTable.serialize() bytes, tuser = group "
                         "(docs/huffman_encoder.md); see docs/top.md",
        "interface": (f"AXI4-Stream: s_axis pixels (tlast ends a tile) -> {streams}"
                      if kind == "compressor" else
                      f"AXI4-Stream: {inputs} -> m_axis channels (tlast ends a tile)"),
        "runtime_shape": _runtime_info(top, kind) if top.runtime_shape else None,
    }


BLOCK = Block("top", _add_arguments, _modules)
