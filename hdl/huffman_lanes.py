"""N-lane Huffman coders (bitstream version 3): N symbols per cycle from N single-lane coders.

Golden twin: ``golden.codec.lanes`` (``encode_lanes`` / ``decode_lanes``); ``docs/bitstream.md``
(version 3) is the contract and ``docs/huffman_lanes.md`` describes ports and timing.

A tile's symbol ``i`` belongs to lane ``i mod N``. ``HuffmanLaneEncoder`` takes N symbols per
beat, gives symbol ``l`` of every beat to lane ``l`` (an unmodified ``HuffmanEncoder``) and
puts out each lane's words on a port of its own, plus the N lane bit counts per tile (the tile
header). ``HuffmanLaneDecoder`` takes each lane's words on a port of its own, gives every lane
decoder (an unmodified ``HuffmanDecoder``) its share of the tile's symbol count, and merges the
lanes' symbols back into beats of N. Lane ``l`` of a coder with several table groups sees the
columns ``l, l + N, ..`` of each row, so it gets its own group bounds over those columns and
only the tables of the groups it meets; the lane count must then divide the column count.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hdl.huffman_decoder import HuffmanDecoder
from hdl.coder_params import (build_table_groups, decoder_loop_kwargs, decoder_throughput,
                              share_parser)
from hdl.coder_parts import TableParser
from hdl.huffman_encoder import HuffmanEncoder, encoder_tables
from hdl.registry import Block, UsageError, huffman_arguments
from hdl.registry import Module as BuildModule

__all__ = ["BLOCK", "HuffmanLaneDecoder", "HuffmanLaneEncoder", "LANE_COUNTS", "lane_groups"]

LANE_COUNTS = (1, 2, 4, 8)
FIFO_DEPTH = 4      # per-lane symbol queue of the decoder (absorbs the lanes' skew)
HEADER_DEPTH = 4    # tile counts waiting for the decoder's merger


def _check_lanes(lanes):
    if isinstance(lanes, bool) or not isinstance(lanes, int):
        raise TypeError(f"Lane count must be an integer, not {lanes!r}")
    if lanes not in LANE_COUNTS:
        raise ValueError(f"Lane count must be one of 1, 2, 4, 8, not {lanes}")
    return lanes


def lane_groups(bounds, lanes, lane):
    """The table groups lane ``lane`` meets and its own group bounds.

    Lane ``l`` codes columns ``l, l + N, ..`` of each row (``golden.codec.lanes``); with
    ``K % N == 0`` that is ``K / N`` columns per row, rising, so each group it meets is again a
    contiguous range of the lane's columns. Returns ``(groups, local_bounds)``: the global
    indices of the groups met, in order, and the bounds over the lane's ``K / N`` columns (None
    when the lane meets a single group).

    Raises
    ------
    ValueError
        With several groups, when ``lanes`` does not divide the column count.
    """
    if bounds is None or len(bounds) <= 2:
        return [0], None
    k = int(bounds[-1])
    if k % lanes:
        raise ValueError(f"Lane count {lanes} must divide the column count {k} when there are "
                         f"several table groups")
    present, local = [], [0]
    for g, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        j_lo = max(0, -(-(int(lo) - lane) // lanes))
        j_hi = max(0, -(-(int(hi) - lane) // lanes))
        if j_hi > j_lo:
            present.append(g)
            local.append(j_hi)
    return present, (local if len(present) > 1 else None)


class _Lanes(wiring.Component):
    """Shared parameter handling: N single-lane coders of class ``coder``."""

    coder = None

    def __init__(self, lanes, symbol_width, max_len, word_width, groups=1, group_bounds=None,
                 group_bits=None, table=None, *, count_width=32, members=None, **coder_kw):
        n = _check_lanes(lanes)
        # A coder of every group checks the parameters with the single coder's own messages.
        probe = self.coder(symbol_width, max_len, word_width, groups, group_bounds=group_bounds,
                           group_bits=group_bits, table=table, count_width=count_width,
                           **coder_kw)
        probe._MustUse__silence = True
        tables, file_bounds = (None, None) if table is None else encoder_tables(table)
        bounds = [int(x) for x in group_bounds] if group_bounds is not None else file_bounds
        if group_bits is None:
            group_bits = [t.bits for t in tables] if tables else [symbol_width] * groups
        group_bits = list(group_bits)
        self.lanes, self.groups = n, groups
        self.symbol_width, self.max_len, self.word_width = symbol_width, max_len, word_width
        self.count_width = count_width
        self.group_bounds, self.group_bits, self.baked = bounds, group_bits, tables is not None
        self.lane_map = []   # per lane: the global groups it meets
        self.coders = []
        for lane in range(n):
            present, local = lane_groups(bounds, n, lane)
            self.lane_map.append(present)
            self.coders.append(self.coder(
                symbol_width, max_len, word_width, len(present), group_bounds=local,
                group_bits=[group_bits[g] for g in present],
                table=[tables[g] for g in present] if tables else None,
                count_width=count_width, **coder_kw))
        if tables is None:
            # The lanes' tables come from one parser (``_share_cfg``).
            self._parser = TableParser(symbol_width, max_len, groups, group_bits)
            self._parser._MustUse__silence = True   # elaborated with the lane coder
            for coder, present in zip(self.coders, self.lane_map):
                share_parser(coder, self._parser, present)
            cfg = {"data": unsigned(8)}
            if groups > 1:
                cfg["group"] = unsigned((groups - 1).bit_length())
            cfg["last"] = 1
            members["cfg"] = In(stream.Signature(data.StructLayout(cfg)))
        super().__init__(members)

    def _share_cfg(self, m):
        """One table parser for every lane: group g's loads reach the lanes that meet g (as
        their local group index). A load starts when every lane may start one, and its bytes
        wait while any lane holds them."""
        if self.baked:
            return
        m.submodules.parser = p = self._parser
        wiring.connect(m, wiring.flipped(self.cfg), p.cfg)
        m.d.comb += [p.may_start.eq(Cat(*(c.cfg_may_start for c in self.coders)).all()),
                     p.hold.eq(Cat(*(c.cfg_hold for c in self.coders)).any())]

    def _info(self):
        return {"lanes": self.lanes, "lane_groups": self.lane_map}


class HuffmanLaneEncoder(_Lanes):
    """N-lane canonical Huffman encoder (bitstream version 3): N symbols per cycle.

    Parameters
    ----------
    lanes : int
        Lane count N: 1, 2, 4 or 8.
    symbol_width, max_len, word_width, groups, group_bounds, group_bits, table, count_width
        As ``HuffmanEncoder`` (``docs/huffman_encoder.md``); every lane uses these tables.
        With several groups, N must divide the column count ``group_bounds[-1]``.

    Ports
    -----
    i_stream : In(stream)  payload ``{symbols[N], n, last}``: symbols ``i .. i + N - 1`` of the
        tile, ``symbols[l]`` going to lane l. A beat without ``last`` carries N symbols (``n``
        is ignored); a beat with ``last`` ends the tile and carries ``n`` symbols, 0 to N
        (``n = 0``: a flush-only end, or on its own an empty tile).
    o_stream[l] : Out(stream)  payload ``{data, last}``: lane l's words, exactly
        ``HuffmanEncoder``'s (the lane's final word zero-padded and flagged ``last``; an empty
        lane sends no word).
    o_count : Out(stream)  payload ``{nbits[N]}``: one beat per tile, every lane's payload
        bits (the version-3 tile header), once every lane has finished the tile.
    cfg : In(stream)  payload ``{data, group, last}`` (run-time tables only): as
        ``HuffmanEncoder``; group g's bytes are loaded into every lane that meets g.
    error : Out(1)  any lane's sticky error flag.

    Raises
    ------
    TypeError, ValueError
        On bad parameters, with ``HuffmanEncoder``'s messages, or "Lane count must be one of
        1, 2, 4, 8, not 3".
    """

    coder = HuffmanEncoder

    def __init__(self, lanes, symbol_width, max_len, word_width, groups=1, group_bounds=None,
                 group_bits=None, table=None, *, count_width=32, family="generic"):
        n = _check_lanes(lanes)
        i_layout = data.StructLayout({"symbols": data.ArrayLayout(unsigned(symbol_width), n)
                                      if isinstance(symbol_width, int) else 1,
                                      "n": unsigned(n.bit_length()), "last": 1})
        members = {
            "i_stream": In(stream.Signature(i_layout)),
            "o_stream": Out(stream.Signature(data.StructLayout(
                {"data": unsigned(word_width) if isinstance(word_width, int) else 1,
                 "last": 1}))).array(n),
            "o_count": Out(stream.Signature(data.StructLayout(
                {"nbits": data.ArrayLayout(unsigned(count_width)
                                           if isinstance(count_width, int) else 1, n)}))),
            "error": Out(1),
        }
        super().__init__(lanes, symbol_width, max_len, word_width, groups, group_bounds,
                         group_bits, table, count_width=count_width, members=members,
                         family=family)

    LATENCY = HuffmanEncoder.LATENCY  # a tile's last handshake -> its lane's final word

    def elaborate(self, platform):
        m = Module()
        n = self.lanes
        i = self.i_stream
        done = Signal(n, name="in_done")
        ready, takes = [], []
        for lane, coder in enumerate(self.coders):
            m.submodules[f"lane{lane}"] = coder
            p = coder.i_stream.payload
            m.d.comb += [
                coder.i_stream.valid.eq(i.valid & ~done[lane]),
                p.symbol.eq(i.payload.symbols[lane]),
                p.last.eq(i.payload.last),
                p.empty.eq(i.payload.last & (i.payload.n <= lane)),
            ]
            ready.append(done[lane] | coder.i_stream.ready)
            takes.append(coder.i_stream.valid & coder.i_stream.ready)
            wiring.connect(m, wiring.flipped(self.o_stream[lane]), coder.o_stream)
        m.d.comb += i.ready.eq(Cat(*ready).all())
        with m.If(i.valid & i.ready):
            m.d.sync += done.eq(0)
        with m.Else():
            m.d.sync += done.eq(done | Cat(*takes))
        # The tile header: one beat when every lane's count is there.
        all_valid = Cat(*(c.o_count.valid for c in self.coders)).all()
        m.d.comb += self.o_count.valid.eq(all_valid)
        for lane, coder in enumerate(self.coders):
            m.d.comb += [
                self.o_count.payload.nbits[lane].eq(coder.o_count.payload.nbits),
                coder.o_count.ready.eq(self.o_count.ready & all_valid),
            ]
        m.d.comb += self.error.eq(Cat(*(c.error for c in self.coders)).any())
        self._share_cfg(m)
        return m


class HuffmanLaneDecoder(_Lanes):
    """N-lane canonical Huffman decoder (bitstream version 3): N symbols per cycle.

    Parameters
    ----------
    lanes : int
        Lane count N: 1, 2, 4 or 8.
    symbol_width, max_len, word_width, groups, group_bounds, group_bits, table, count_width
        As ``HuffmanDecoder`` (``docs/huffman_decoder.md``).
    loop, map_bits
        Every lane decoder's decode loop and map rate, as ``HuffmanDecoder``'s (the map loop
        needs one table group).

    Ports
    -----
    i_count : In(stream)  payload ``{count}``: one beat per tile, its symbol count; lane l
        decodes ``ceil((count - l) / N)`` of them.
    i_stream[l] : In(stream)  payload ``{data, last}``: lane l's words (``HuffmanDecoder``'s
        input: the final word flagged ``last``, none for an empty lane).
    o_stream : Out(stream)  payload ``{symbols[N], n, last, first}``: symbols ``i .. i + n - 1``
        of the tile (``symbols[l]`` from lane l), ``n = N`` except in a tile's final beat;
        ``first`` on a tile's first beat, ``last`` on its final one.
    cfg : In(stream)  as ``HuffmanDecoder`` (run-time tables only); group g's bytes go to every
        lane that meets g.
    error : Out(1)  sticky: a lane flagged an error (any ``HuffmanDecoder`` error code). Set by
        the tile that caused it; cleared by reset and by the next ``i_count`` handshake.
    lane_error : Out(N)  which lanes flagged since the flag was cleared.

    A corrupt lane stops the tile's output at the first beat it cannot fill (beats before it
    are the golden symbols; no beat after it, no ``last``); the other lanes' words are still
    taken up to their ``last`` and their symbols dropped, and the next tile starts clean with
    ``first``. Errors found after a lane's final symbol (excess words, padding) leave the
    output complete, ``last`` included, and set ``error``.
    """

    coder = HuffmanDecoder
    # The lane decoder's symbols in flight when it flags an error reach its output within
    # its latency (plus margin); a lane quiet for this long after an error has no more.
    QUIET = HuffmanDecoder.LATENCY + 4

    def __init__(self, lanes, symbol_width, max_len, word_width, groups=1, group_bounds=None,
                 group_bits=None, table=None, *, count_width=32, loop="shift", map_bits=None):
        n = _check_lanes(lanes)
        b = unsigned(symbol_width) if isinstance(symbol_width, int) else 1
        members = {
            "i_count": In(stream.Signature(data.StructLayout(
                {"count": unsigned(count_width) if isinstance(count_width, int) else 1}))),
            "i_stream": In(stream.Signature(data.StructLayout(
                {"data": unsigned(word_width) if isinstance(word_width, int) else 1,
                 "last": 1}))).array(n),
            "o_stream": Out(stream.Signature(data.StructLayout(
                {"symbols": data.ArrayLayout(b, n), "n": unsigned(n.bit_length()), "last": 1,
                 "first": 1}))),
            "error": Out(1),
            "lane_error": Out(n),
        }
        super().__init__(lanes, symbol_width, max_len, word_width, groups, group_bounds,
                         group_bits, table, count_width=count_width, members=members,
                         loop=loop, map_bits=map_bits)
        self.loop, self.map_bits = loop, self.coders[0]._map_bits if loop == "map" else None
        self.QUIET = self.coders[0].latency + 4
        self.LATENCY = self.coders[0].latency + 2

    # Word completing a code -> its beat: the lane decoder, its queue's write and read
    # registers (measured in tb/test_huffman_lanes.py); with the map loop, its latency + 2.
    LATENCY = HuffmanDecoder.LATENCY + 2

    def elaborate(self, platform):
        m = Module()
        n, b = self.lanes, self.symbol_width
        shift = n.bit_length() - 1
        count = self.i_count.payload.count

        m.submodules.headers = headers = SyncFIFOBuffered(width=self.count_width,
                                                          depth=HEADER_DEPTH)
        fifos = []
        h_done = Signal(n, name="hdr_done")
        open_ = Signal(n, name="lane_open")   # lane has a tile whose end is not queued yet
        h_ready, h_takes, lane_counts = [], [], []
        for lane, coder in enumerate(self.coders):
            m.submodules[f"lane{lane}"] = coder
            wiring.connect(m, wiring.flipped(self.i_stream[lane]), coder.i_stream)
            lane_count = Signal(self.count_width, name=f"lane{lane}_count")
            m.d.comb += lane_count.eq((count + (n - 1 - lane)) >> shift)
            lane_counts.append(lane_count)
            m.d.comb += [
                coder.i_count.payload.count.eq(lane_count),
                coder.i_count.valid.eq(self.i_count.valid & headers.w_rdy & ~h_done[lane]
                                       & ~open_[lane]),
            ]
            h_ready.append(h_done[lane] | (coder.i_count.ready & ~open_[lane]))
            h_takes.append(coder.i_count.valid & coder.i_count.ready)
        m.d.comb += self.i_count.ready.eq(headers.w_rdy & Cat(*h_ready).all())
        header = self.i_count.valid & self.i_count.ready
        m.d.comb += [headers.w_en.eq(header), headers.w_data.eq(count)]
        with m.If(header):
            m.d.sync += h_done.eq(0)
        with m.Else():
            m.d.sync += h_done.eq(h_done | Cat(*h_takes))

        # Per lane: a queue of {symbol, last, abort}. After a lane error in an open tile, once
        # the lane has been quiet for QUIET cycles, an abort entry stands for its missing
        # symbols and closes the tile.
        for lane, coder in enumerate(self.coders):
            fifo = SyncFIFOBuffered(width=b + 2, depth=FIFO_DEPTH)
            m.submodules[f"queue{lane}"] = fifo
            fifos.append(fifo)
            out = coder.o_stream
            quiet = Signal(range(self.QUIET + 1), name=f"lane{lane}_quiet")
            failed = coder.error & open_[lane]
            push = out.valid & fifo.w_rdy
            abort = failed & (quiet == self.QUIET) & ~out.valid & fifo.w_rdy
            m.d.comb += [
                out.ready.eq(fifo.w_rdy),
                fifo.w_en.eq(push | abort),
                fifo.w_data.eq(Mux(push, Cat(out.payload.symbol, out.payload.last, 0),
                                   Const(1 << (b + 1), b + 2))),
            ]
            with m.If(failed & ~out.valid):
                with m.If(quiet != self.QUIET):
                    m.d.sync += quiet.eq(quiet + 1)
            with m.Else():
                m.d.sync += quiet.eq(0)
            with m.If(h_takes[lane] & (lane_counts[lane] != 0)):
                m.d.sync += open_[lane].eq(1)
            with m.Elif((push & out.payload.last) | abort):
                m.d.sync += open_[lane].eq(0)

        # Merger: beats of min(rem, N) symbols, lane l taking part while l < rem.
        o = self.o_stream
        active = Signal()
        aborting = Signal()
        first = Signal()
        rem = Signal(self.count_width)
        closed = Signal(n)      # lane has delivered its last symbol (or abort) of this tile
        part = [rem > lane for lane in range(n)]
        head_sym = [f.r_data[:b] for f in fifos]
        head_last = [f.r_data[b] for f in fifos]
        head_abort = [f.r_data[b + 1] for f in fifos]
        fill = Cat(*(~part[l] | (fifos[l].r_rdy & ~head_abort[l]) for l in range(n))).all()
        broken = Cat(*(part[l] & fifos[l].r_rdy & head_abort[l] for l in range(n))).any()
        beat_n = Signal(n.bit_length())
        m.d.comb += beat_n.eq(Mux(rem >= n, n, rem))
        m.d.comb += [
            o.valid.eq(active & ~aborting & fill),
            o.payload.n.eq(beat_n),
            o.payload.last.eq(rem <= n),
            o.payload.first.eq(first),
        ]
        for lane in range(n):   # lanes outside the beat read as 0 (the payload holds)
            m.d.comb += o.payload.symbols[lane].eq(Mux(part[lane], head_sym[lane], 0))
        beat = o.valid & o.ready
        pops = []
        for lane, fifo in enumerate(fifos):
            pop = Mux(aborting, active & ~closed[lane] & fifo.r_rdy, beat & part[lane])
            m.d.comb += fifo.r_en.eq(pop)
            pops.append(pop)
        ends = Cat(*(pops[l] & (head_last[l] | head_abort[l]) for l in range(n)))
        # A continuous assignment, not an ``If`` in the comb domain: Icarus does not run an
        # ``always @*`` block at time 0, and ``active`` keeps its reset value until a tile.
        m.d.comb += headers.r_en.eq(~active)
        with m.If(~active):
            with m.If(headers.r_rdy):
                m.d.sync += [
                    active.eq(headers.r_data != 0),
                    rem.eq(headers.r_data),
                    first.eq(1),
                    aborting.eq(0),
                    closed.eq(Cat(*(headers.r_data <= lane for lane in range(n)))),
                ]
        with m.Elif(aborting):
            m.d.sync += closed.eq(closed | ends)
            with m.If((closed | ends).all()):
                m.d.sync += [active.eq(0), aborting.eq(0)]
        with m.Else():
            with m.If(beat):
                m.d.sync += [rem.eq(rem - beat_n), first.eq(0), closed.eq(closed | ends)]
                with m.If(rem <= n):
                    m.d.sync += active.eq(0)
            with m.Elif(broken):
                m.d.sync += aborting.eq(1)

        # Errors: a lane's flag rising is recorded until the next tile header. A lane that
        # already took the next header (the others have not) is a tile ahead: its errors wait
        # in ``pending`` and belong to that tile once the header is taken by every lane.
        errors = Cat(*(c.error for c in self.coders))
        before = Signal(n, name="lane_error_before")
        flagged = Signal(n, name="lane_error_flagged")
        pending = Signal(n, name="lane_error_pending")
        rise = errors & ~before
        m.d.sync += before.eq(errors)
        with m.If(header):
            m.d.sync += [flagged.eq(pending | (rise & h_done)), pending.eq(0)]
        with m.Else():
            m.d.sync += [flagged.eq(flagged | (rise & ~h_done)),
                         pending.eq(pending | (rise & h_done))]
        m.d.comb += [self.lane_error.eq(flagged), self.error.eq(flagged.any())]
        self._share_cfg(m)
        return m


# ---------------------------------------------------------------------------------------------
# python -m hdl.build --lanes N


def lane_arguments(parser):
    huffman_arguments(parser)
    if getattr(parser, "_lane_arguments", False):
        return
    parser._lane_arguments = True
    parser.add_argument("--lanes", type=int, default=None, metavar="N",
                        help="also emit N-lane Huffman coders huffman_lane_encoder and "
                             "huffman_lane_decoder (1, 2, 4, 8; bitstream version 3)")


def _modules(args):
    lanes = getattr(args, "lanes", None)
    if lanes is None:
        return []
    try:
        _check_lanes(lanes)
        tables, bounds, groups = build_table_groups(args)
        built = []
        for cls, name, kw in ((HuffmanLaneEncoder, "huffman_lane_encoder",
                               {"family": getattr(args, "family", "generic")}),
                              (HuffmanLaneDecoder, "huffman_lane_decoder",
                               decoder_loop_kwargs(args))):
            comp = cls(lanes, args.symbol_width, args.max_len, args.word_width, groups,
                       group_bounds=bounds, table=tables, **kw)
            built.append((name, comp))
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    return [BuildModule(name, comp, manifest_info(comp, args.table)) for name, comp in built]


def manifest_info(comp, table=None):
    """The manifest entry of a lane coder: lanes, throughput, latency, buffer memory."""
    n, w = comp.lanes, comp.word_width
    coders = comp.coders
    lane_buffer = sum(c.buffer_bits for c in coders) if hasattr(coders[0], "buffer_bits") \
        else None
    info = {
        "lanes": n,
        "latency": comp.LATENCY,
        "throughput": decoder_throughput(coders[0], f"{n} symbols", " within a tile"),
        "parameters": {"lanes": n, "symbol_width": comp.symbol_width,
                       "max_len": comp.max_len, "word_width": w, "groups": comp.groups,
                       "group_bounds": comp.group_bounds, "group_bits": comp.group_bits,
                       "baked_table": table, "lane_groups": comp.lane_map},
        "lane_ports": "one word stream per lane (o_stream__l / i_stream__l); the N lane bit "
                      "counts are the tile header (o_count on the encoder)",
        "buffer_memory": {
            "lane_coder_bits": lane_buffer,
            "tile_buffer_bits": 0,
            "note": "no tile buffer: each lane has its own word port; a reader fetches each "
                    "lane at the offset the tile header gives, a writer keeps each lane in a "
                    "slot of its own until o_count gives the sizes (docs/huffman_lanes.md); a "
                    "single serial word stream would need (N-1)/N of the compressed tile",
        },
    }
    if isinstance(comp, HuffmanLaneDecoder):
        info["parameters"]["loop"] = comp.loop
        if comp.map_bits is not None:
            info["parameters"]["map_bits"] = comp.map_bits
        info["buffer_memory"]["queue_bits"] = n * FIFO_DEPTH * (comp.symbol_width + 2)
        info["buffer_memory"]["header_bits"] = HEADER_DEPTH * comp.count_width
    return info


BLOCK = Block("huffman_lanes", lane_arguments, _modules)
