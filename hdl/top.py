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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from golden.datapath.quant import int_range
from hdl.huffman_decoder import HuffmanDecoder
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
    (Icarus leaves those X until an input changes; see ``hdl.huffman_encoder._pick``)."""
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


def _connect_cfg(m, top, prefix, port, has_group):
    """Drive a block's ``cfg`` stream from the AXI slave ``prefix``."""
    m.d.comb += [port.valid.eq(getattr(top, f"{prefix}_tvalid")),
                 getattr(top, f"{prefix}_tready").eq(port.ready),
                 port.payload.data.eq(getattr(top, f"{prefix}_tdata")),
                 port.payload.last.eq(getattr(top, f"{prefix}_tlast"))]
    if has_group:
        m.d.comb += port.payload.group.eq(getattr(top, f"{prefix}_tuser"))


class _Common(wiring.Component):
    """Parameter checks shared by the compressor and the decompressor."""

    def _setup(self, channels, k, multipliers, max_len, word_width, group_bounds, group_bits):
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

    @property
    def group_bounds(self):
        return list(self._bounds)

    @property
    def group_bits(self):
        return list(self._bits)

    @property
    def coef_width(self) -> int:
        return self._cw

    def _huffman_kwargs(self, table):
        # The coders code run-length tiles (one group per tile), but the tops stream pixel by
        # pixel, every group in one tile: version-2 tables are refused here.
        tables = getattr(table, "tables", table)
        if isinstance(tables, (list, tuple)) and any(getattr(t, "run_max", 0) for t in tables):
            raise ValueError("run-length mode is not supported by the compressor and "
                             "decompressor yet")
        if getattr(table, "run_max", 0):
            raise ValueError("run-length mode is not supported by the compressor and "
                             "decompressor yet")
        g = len(self._bits)
        return dict(groups=g, group_bounds=self._bounds if g > 1 else None,
                    group_bits=self._bits, table=table)


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
        Multipliers M of the forward MAC array (K outputs from C inputs): a divisor of C or C
        times a divisor of K. One pixel per ``max(C * K / M, K)`` cycles (the encoder codes
        one coefficient per cycle).
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
    """

    def __init__(self, channels, k, *, act_width=8, weight_width=8, bias_width=32,
                 mult_width=16, multipliers=16, max_len=12, word_width=32, group_bounds=None,
                 group_bits=None, weights=None, table=None, count_width=32,
                 family="generic"):
        self._setup(channels, k, multipliers, max_len, word_width, group_bounds, group_bits)
        rows = schedule(k, channels, multipliers)["rows"]
        self.mac = MacArray(k, channels, in_width=act_width, weight_width=weight_width,
                            bias_width=bias_width, mult_width=mult_width,
                            out_width=self._cw, multipliers=multipliers, out_group=rows,
                            weights=weights, family=family)
        self.enc = HuffmanEncoder(self._cw, max_len, word_width, count_width=count_width,
                                  **self._huffman_kwargs(table))
        self._act_w = act_width
        members = {
            **_AxiPorts.slave("s_axis", channels * act_width),
            **_AxiPorts.master("m_axis", word_width),
            **_AxiPorts.master("m_axis_bits", count_width, last=False),
            "error": Out(1),
        }
        if weights is None:
            members.update(_AxiPorts.slave("s_axis_weights", self.mac.cfg_data_width))
        if table is None:
            g = len(self._bits)
            members.update(_AxiPorts.slave("s_axis_table", 8,
                                           user=(g - 1).bit_length() if g > 1 else 0))
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

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = self.mac
        m.submodules.enc = enc = self.enc
        K, cw = self._k, self._cw
        og = len(mac.o_stream.payload.data)

        # Tile-end flags ride beside the MAC array, one per pixel.
        m.submodules.tile_end = fifo = SyncFIFO(width=1, depth=self.fifo_depth)
        m.d.comb += [
            mac.i_stream.valid.eq(self.s_axis_tvalid & fifo.w_rdy),
            mac.i_stream.payload.eq(self.s_axis_tdata),
            self.s_axis_tready.eq(mac.i_stream.ready & fifo.w_rdy),
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
        m.d.comb += [last_elem.eq(idx == og - 1), take.eq(full & enc.i_stream.ready)]
        o = mac.o_stream
        m.d.comb += o.ready.eq(~full | (take & last_elem))
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
        with m.If(take):
            m.d.sync += col.eq(Mux(col == K - 1, 0, col + 1))

        # The coefficient, clamped to its group's range; its low bits are the symbol.
        v = Signal(unsigned(cw))
        m.d.comb += v.eq((buf >> (idx * cw))[:cw] if og > 1 else buf)
        sv = v.as_signed()
        syms = []
        for bits in self._bits:
            if bits == cw:
                syms.append(v)
                continue
            lo, hi = int_range(bits)
            clamped = Mux(sv < lo, lo, Mux(sv > hi, hi, sv))
            syms.append(clamped.as_unsigned()[:bits])
        sym = _select(_group_of(col, self._bounds), syms, cw)
        m.d.comb += [enc.i_stream.valid.eq(full),
                     enc.i_stream.payload.symbol.eq(sym),
                     enc.i_stream.payload.last.eq(last_elem & pix_last & tile_last),
                     enc.i_stream.payload.empty.eq(0)]

        m.d.comb += [self.m_axis_tdata.eq(enc.o_stream.payload.data),
                     self.m_axis_tlast.eq(enc.o_stream.payload.last),
                     self.m_axis_tvalid.eq(enc.o_stream.valid),
                     enc.o_stream.ready.eq(self.m_axis_tready),
                     self.m_axis_bits_tdata.eq(enc.o_count.payload.nbits),
                     self.m_axis_bits_tvalid.eq(enc.o_count.valid),
                     enc.o_count.ready.eq(self.m_axis_bits_tready),
                     self.error.eq(enc.error)]
        if "cfg" in mac.signature.members:
            _connect_cfg(m, self, "s_axis_weights", mac.cfg, False)
        if "cfg" in enc.signature.members:
            _connect_cfg(m, self, "s_axis_table", enc.cfg, len(self._bits) > 1)
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
        Multipliers M of the inverse MAC array (C outputs from K inputs): a divisor of K or K
        times a divisor of C. One pixel per ``max(C * K / M, K)`` cycles.
    out_group : int or None
        Output channels per ``m_axis`` beat (default: the fewest the schedule allows).
    relu : bool
        Clamp the reconstruction at zero.
    pixels_width : int
        Width of the pixel count on ``s_axis_pixels``.

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
    """

    def __init__(self, channels, k, *, out_width=8, weight_width=8, bias_width=32,
                 mult_width=16, multipliers=16, out_group=None, relu=False, max_len=12,
                 word_width=32, group_bounds=None, group_bits=None, weights=None, table=None,
                 pixels_width=32, family="generic"):
        self._setup(channels, k, multipliers, max_len, word_width, group_bounds, group_bits)
        if isinstance(pixels_width, bool) or not isinstance(pixels_width, int):
            raise TypeError(f"Pixel count width must be an integer, not {pixels_width!r}")
        if not 1 <= pixels_width <= 32:
            raise ValueError(f"Pixel count width must be between 1 and 32, not {pixels_width}")
        rows = schedule(channels, k, multipliers)["rows"]
        self.mac = MacArray(channels, k, in_width=self._cw, weight_width=weight_width,
                            bias_width=bias_width, mult_width=mult_width, out_width=out_width,
                            multipliers=multipliers, out_group=out_group or rows, relu=relu,
                            weights=weights, family=family)
        self._kbits = (k - 1).bit_length()
        self.dec = HuffmanDecoder(self._cw, max_len, word_width,
                                  count_width=pixels_width + self._kbits,
                                  **self._huffman_kwargs(table))
        og = out_group or rows
        members = {
            **_AxiPorts.slave("s_axis_pixels", pixels_width, last=False),
            **_AxiPorts.slave("s_axis", word_width),
            **_AxiPorts.master("m_axis", og * out_width),
            "error": Out(1),
            "error_code": Out(3),
        }
        if weights is None:
            members.update(_AxiPorts.slave("s_axis_weights", self.mac.cfg_data_width))
        if table is None:
            g = len(self._bits)
            members.update(_AxiPorts.slave("s_axis_table", 8,
                                           user=(g - 1).bit_length() if g > 1 else 0))
        super().__init__(members)

    @property
    def cycles_per_pixel(self) -> int:
        return max(self.mac.CYCLES_PER_PIXEL, self._k)

    @property
    def fifo_depth(self) -> int:
        return self.mac.LATENCY + 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = self.mac
        m.submodules.dec = dec = self.dec
        K, cw = self._k, self._cw

        m.d.comb += [dec.i_count.valid.eq(self.s_axis_pixels_tvalid),
                     self.s_axis_pixels_tready.eq(dec.i_count.ready),
                     dec.i_count.payload.count.eq(self.s_axis_pixels_tdata * K),
                     dec.i_stream.valid.eq(self.s_axis_tvalid),
                     self.s_axis_tready.eq(dec.i_stream.ready),
                     dec.i_stream.payload.data.eq(self.s_axis_tdata),
                     dec.i_stream.payload.last.eq(self.s_axis_tlast),
                     self.error.eq(dec.error), self.error_code.eq(dec.error_code)]

        # Packer: K symbols -> one pixel of coefficients, sign-extended per group. ``first``
        # restarts at column 0, dropping what a corrupt tile left half-packed.
        m.submodules.tile_end = fifo = SyncFIFO(width=1, depth=self.fifo_depth)
        s = dec.o_stream
        col = Signal(range(K))
        c = Signal.like(col)
        m.d.comb += c.eq(Mux(s.payload.first, 0, col))
        exts = []
        for bits in self._bits:
            exts.append(s.payload.symbol[:bits].as_signed().as_unsigned() if bits == cw else
                        Cat(s.payload.symbol[:bits],
                            s.payload.symbol[bits - 1].replicate(cw - bits)))
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
        shifted = Cat(vec[cw:], v) if K > 1 else v
        end = c == K - 1
        m.d.comb += s.ready.eq(~end | ~pix_valid | mac_take)
        with m.If(mac_take):
            m.d.sync += pix_valid.eq(0)
        with m.If(s.valid & s.ready):
            m.d.sync += [vec.eq(shifted), col.eq(Mux(end, 0, c + 1))]
            with m.If(end):
                m.d.sync += [pix.eq(shifted), pix_valid.eq(1), pix_last.eq(s.payload.last)]

        o = mac.o_stream
        m.d.comb += [self.m_axis_tdata.eq(o.payload.data.as_value()),
                     self.m_axis_tvalid.eq(o.valid),
                     o.ready.eq(self.m_axis_tready),
                     self.m_axis_tlast.eq(o.payload.last & fifo.r_data),
                     fifo.r_en.eq(o.valid & o.ready & o.payload.last)]
        if "cfg" in mac.signature.members:
            _connect_cfg(m, self, "s_axis_weights", mac.cfg, False)
        if "cfg" in dec.signature.members:
            _connect_cfg(m, self, "s_axis_table", dec.cfg, len(self._bits) > 1)
        return m


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
    return out


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


def _modules(args):
    if args.top == "blocks":
        return []
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
            tables, file_bounds = encoder_tables(args.table)
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
                  group_bits=bits, table=table, family=getattr(args, "family", "generic"))
    out = []
    try:
        if args.top in ("all", "compressor"):
            c = Compressor(args.channels, args.k, act_width=args.out_width, weights=fwd,
                           **common)
            out.append(BuildModule("compressor", c, _info(c, "compressor")))
        if args.top in ("all", "decompressor"):
            d = Decompressor(args.channels, args.k, out_width=args.out_width,
                             out_group=args.out_group, relu=args.relu, weights=inv, **common)
            out.append(BuildModule("decompressor", d, _info(d, "decompressor")))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{args.top}: {e}") from None
    return out


def _info(top, kind):
    mac = top.mac
    coder = top.enc if kind == "compressor" else top.dec
    return {
        "latency": {"mac_array": mac.LATENCY, "huffman": coder.LATENCY},
        "cycles_per_pixel": top.cycles_per_pixel,
        "throughput": f"1 pixel per max(C*K/M, K) = {top.cycles_per_pixel} cycles",
        "parameters": {"multipliers": top._M, "group_bounds": top.group_bounds,
                       "group_bits": top.group_bits, "coef_width": top.coef_width,
                       "max_len": top._L, "word_width": top._W,
                       "baked_weights": "s_axis_weights_tdata" not in top.signature.members,
                       "baked_table": "s_axis_table_tdata" not in top.signature.members},
        "configuration": "s_axis_weights: the MAC array cfg stream (docs/mac_array.md); "
                         "s_axis_table: HuffmanTable.serialize() bytes, tuser = group "
                         "(docs/huffman_encoder.md); see docs/top.md",
        "interface": ("AXI4-Stream: s_axis pixels (tlast ends a tile) -> m_axis words, "
                      "m_axis_bits per tile" if kind == "compressor" else
                      "AXI4-Stream: s_axis_pixels count + s_axis words (tlast ends a tile) -> "
                      "m_axis channels (tlast ends a tile)"),
    }


BLOCK = Block("top", _add_arguments, _modules)
