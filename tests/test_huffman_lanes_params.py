"""``hdl.huffman_lanes`` parameters, lane group mapping, ``python -m hdl.build --lanes`` and
its manifest entry, and fast Amaranth-simulator runs of both lane coders against
``golden.codec.lanes`` (the cocotb bench, ``tb/test_huffman_lanes.py``, is the full check)."""

import re

import numpy as np
import pytest

from golden.codec.container import TableSet, pack_tables
from golden.codec.lanes import encode_lanes, lane_columns
from golden.codec.tables import build_table
from hdl.huffman_lanes import (
    BLOCK,
    HuffmanLaneDecoder,
    HuffmanLaneEncoder,
    lane_groups,
)

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def table(bits=4, max_len=8, seed=0):
    rng = np.random.default_rng(seed)
    return build_table(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 200), bits, max_len,
                       histogram=False)


@pytest.mark.parametrize("cls", [HuffmanLaneEncoder, HuffmanLaneDecoder])
@pytest.mark.parametrize("args, kwargs, exc, message", [
    ((3, 8, 12, 32), {}, ValueError, r"Lane count must be one of 1, 2, 4, 8, not 3$"),
    ((0, 8, 12, 32), {}, ValueError, r"Lane count must be one of 1, 2, 4, 8, not 0$"),
    (("4", 8, 12, 32), {}, TypeError, r"Lane count must be an integer, not '4'$"),
    ((4, 9, 12, 32), {}, ValueError, r"Symbol width must be between 1 and 8, not 9$"),
    ((4, 8, 12, 12), {}, ValueError, r"Word width must be one of 8, 16, 32, 64, not 12$"),
    ((4, 8, 12, 32, 2), {"group_bounds": [0, 3, 6]}, ValueError,
     r"Lane count 4 must divide the column count 6 when there are several table groups$"),
    ((4, 8, 12, 32, 2), {}, ValueError, r"Group bounds are needed with 2 table groups"),
])
def test_bad_parameters_raise_specific_errors(cls, args, kwargs, exc, message):
    with pytest.raises(exc, match="^" + message):
        cls(*args, **kwargs)


def test_lane_groups_follow_the_golden_columns():
    bounds = [0, 2, 5, 8]
    for lanes in (1, 2, 4, 8):
        for lane in range(lanes):
            present, local = lane_groups(bounds, lanes, lane)
            cols = lane_columns(8, lanes, lane)
            group_of = [next(g for g in range(3) if bounds[g] <= c < bounds[g + 1])
                        for c in cols]
            assert present == sorted(set(group_of))
            edges = local if local is not None else [0, len(cols)]
            assert edges[0] == 0 and edges[-1] == len(cols)
            for j, c in enumerate(cols):      # local column j lies in the group of column c
                g = next(i for i in range(len(edges) - 1) if edges[i] <= j < edges[i + 1])
                assert present[g] == group_of[j]
    assert lane_groups([0, 2, 5, 8], 4, 0) == ([0, 1], [0, 1, 2])
    assert lane_groups([0, 2, 5, 8], 4, 2) == ([1, 2], [0, 1, 2])
    assert lane_groups(None, 8, 3) == ([0], None)
    assert lane_groups([0, 8, 16], 8, 5) == ([0, 1], [0, 1, 2])


def test_ports():
    enc = HuffmanLaneEncoder(4, 6, 10, 16)
    members = enc.signature.members
    assert set(members) == {"i_stream", "o_stream", "o_count", "error", "cfg"}
    assert members["o_stream"].dimensions == (4,)
    dec = HuffmanLaneDecoder(2, 6, 10, 16, table=table(6, 10))
    assert set(dec.signature.members) == {"i_count", "i_stream", "o_stream", "error",
                                          "lane_error"}
    from hdl.manifest import describe_ports
    names = [p["name"] for p in describe_ports(dec)]
    assert "i_stream__1__payload" in names and "i_stream__0__ready" in names
    widths = {p["name"]: p["width"] for p in describe_ports(enc)}
    assert widths["i_stream__payload"] == 4 * 6 + 3 + 1
    assert widths["o_count__payload"] == 4 * 32 and widths["o_stream__3__payload"] == 17


# ----------------------------------------------------------------------------- CLI

def run_main(argv, capsys):
    from hdl.build import main

    return main(argv), capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--lanes", "3"], r"Lane count must be one of 1, 2, 4, 8, not 3"),
    (["--lanes", "4", "--groups", "3", "--k", "6"],
     r"Lane count 4 must divide the column count 6 when there are several table groups"),
    (["--lanes", "x"], r"argument --lanes: invalid int value: 'x'"),
    (["--lanes", "4", "--decoder-loop", "map", "--groups", "2", "--k", "8"],
     r"The map decode loop needs one group"),
])
def test_cli_errors_one_line_exit_2_no_files(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    status, out = run_main(["--out", "out", *extra], capsys)
    assert status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hdl.build: error: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_modules_and_manifest(tmp_path):
    from hdl.build import parse_args

    assert BLOCK.modules(parse_args([])) == []
    path = tmp_path / "set.acht"
    path.write_bytes(pack_tables(TableSet([table(4), table(3, seed=1)], [0, 2, 8])))
    args = parse_args(["--k", "8", "--table", str(path), "--symbol-width", "4", "--max-len",
                       "8", "--word-width", "16", "--lanes", "4"])
    enc, dec = BLOCK.modules(args)
    assert (enc.name, dec.name) == ("huffman_lane_encoder", "huffman_lane_decoder")
    for mod in (enc, dec):
        assert mod.info["lanes"] == 4
        assert mod.info["throughput"] == "4 symbols per cycle within a tile"
        assert mod.info["parameters"]["lane_groups"] == [[0, 1], [0, 1], [1], [1]]
        assert mod.info["buffer_memory"]["tile_buffer_bits"] == 0
        assert "cfg" not in mod.component.signature.members
    assert enc.info["latency"] == HuffmanLaneEncoder.LATENCY
    assert dec.info["latency"] == HuffmanLaneDecoder.LATENCY
    assert dec.info["buffer_memory"]["queue_bits"] == 4 * 4 * (4 + 2)
    assert dec.info["parameters"]["loop"] == "shift"


def test_cli_map_loop_lanes_manifest():
    """Lane decoders with the map loop at 8 positions a cycle: every lane is one, and the
    latency and throughput say so."""
    from hdl.build import parse_args
    from hdl.huffman_decoder import HuffmanDecoder

    _, dec = BLOCK.modules(parse_args(["--lanes", "4", "--decoder-loop", "map",
                                       "--map-bits", "8"]))
    comp = dec.component
    assert all(c._loop == "map" and c._map_bits == 8 for c in comp.coders)
    assert dec.info["latency"] == HuffmanDecoder.MAP_LATENCY + 4 + 2 == comp.LATENCY
    assert comp.QUIET == HuffmanDecoder.MAP_LATENCY + 4 + 4
    assert dec.info["parameters"]["loop"] == "map"
    assert dec.info["parameters"]["map_bits"] == 8
    assert dec.info["throughput"] == (
        "4 symbols per cycle within a tile while the codes average at most 8 bits (the map "
        "stage decodes 8 bit positions per cycle)")


# ----------------------------------------------------------------------------- simulation

def test_amaranth_sim_encoder_matches_golden():
    t = table(4, 8)
    n = 4
    enc = HuffmanLaneEncoder(n, 4, 8, 8, table=t)
    rng = np.random.default_rng(3)
    tiles = [rng.integers(-8, 8, int(c)) for c in (5, 0, 2, 37, 8)]
    words = [[] for _ in range(n)]
    counts = []

    async def bench(ctx):
        for lane in range(n):
            ctx.set(enc.o_stream[lane].ready, 1)
        ctx.set(enc.o_count.ready, 1)
        for v in tiles:
            pats = [int(x) & 15 for x in v]
            beats = [pats[i:i + n] for i in range(0, len(pats), n)] or [[]]
            for j, chunk in enumerate(beats):
                ctx.set(enc.i_stream.payload, {"symbols": chunk + [0] * (n - len(chunk)),
                                               "n": len(chunk),
                                               "last": int(j == len(beats) - 1)})
                ctx.set(enc.i_stream.valid, 1)
                await ctx.tick().until(enc.i_stream.ready)
        ctx.set(enc.i_stream.valid, 0)
        await ctx.tick().repeat(40)

    async def watch(ctx):
        ports = [(s.valid, s.payload) for s in enc.o_stream]
        flat = [x for pair in ports for x in pair]
        async for _, _, cv, cd, *lanes in ctx.tick().sample(enc.o_count.valid,
                                                            enc.o_count.payload, *flat):
            for lane in range(n):
                if lanes[2 * lane]:
                    words[lane].append(int(lanes[2 * lane + 1].data))
            if cv:
                counts.append([int(cd.nbits[lane]) for lane in range(n)])

    from amaranth.sim import Simulator
    sim = Simulator(enc)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    parts = [encode_lanes(v.reshape(-1, 1), [t], [0, 1], 8, n) for v in tiles]
    for lane in range(n):
        assert words[lane] == [int(w) for p in parts for w in p[lane][0]]
    assert counts == [[nbits for _, nbits in p] for p in parts]


def test_amaranth_sim_decoder_matches_golden_and_recovers():
    t = table(4, 8)
    n = 2
    dec = HuffmanLaneDecoder(n, 4, 8, 8, table=t)
    rng = np.random.default_rng(4)
    tiles = [rng.integers(-8, 8, int(c)) for c in (5, 1, 0, 30, 30, 9)]
    lane_words = [[[int(w) for w in words] for words, _ in
                   encode_lanes(v.reshape(-1, 1), [t], [0, 1], 8, n)] for v in tiles]
    lane_words[3][1] = lane_words[3][1][:1]      # tile 3: lane 1 loses all but its first word
    beats, errors = [], []

    async def headers(ctx):
        for v in tiles:
            ctx.set(dec.i_count.payload.count, len(v))
            ctx.set(dec.i_count.valid, 1)
            while True:     # the flag as the header is taken (it clears at that edge)
                ready, error = ctx.get(dec.i_count.ready), ctx.get(dec.error)
                await ctx.tick()
                if ready:
                    errors.append(error)
                    break
        ctx.set(dec.i_count.valid, 0)
        await ctx.tick().repeat(80)
        errors.append(ctx.get(dec.error))

    def lane_bench(lane):
        async def bench(ctx):
            for tile in lane_words:
                for i, w in enumerate(tile[lane]):
                    ctx.set(dec.i_stream[lane].payload, {"data": w,
                                                         "last": int(i == len(tile[lane]) - 1)})
                    ctx.set(dec.i_stream[lane].valid, 1)
                    await ctx.tick().until(dec.i_stream[lane].ready)
            ctx.set(dec.i_stream[lane].valid, 0)
        return bench

    async def watch(ctx):
        ctx.set(dec.o_stream.ready, 1)
        async for _, _, v, p in ctx.tick().sample(dec.o_stream.valid, dec.o_stream.payload):
            if v:
                beats.append(([int(p.symbols[k]) for k in range(int(p.n))], int(p.last),
                              int(p.first)))

    from amaranth.sim import Simulator
    sim = Simulator(dec)
    sim.add_clock(1e-8)
    sim.add_testbench(headers)
    for lane in range(n):
        sim.add_testbench(lane_bench(lane))
    sim.add_process(watch)
    sim.run()
    want = []
    for k, v in enumerate(tiles):
        pats = [int(x) & 15 for x in v]
        chunks = [pats[i:i + n] for i in range(0, len(pats), n)]
        if k == 3:
            continue        # checked below
        want.append([(c, int(j == len(chunks) - 1), int(j == 0)) for j, c in enumerate(chunks)])
    got = list(beats)
    flat = [b for tile in want[:3] for b in tile]
    assert got[:len(flat)] == flat
    rest = got[len(flat):]
    # Tile 3 stops early without last; tile 4 starts again with first and decodes whole.
    firsts = [i for i, b in enumerate(rest) if b[2]]
    assert len(firsts) == 3 and not any(b[1] for b in rest[:firsts[1]])
    pats3 = [int(x) & 15 for x in tiles[3]]
    for j, b in enumerate(rest[:firsts[1]]):
        assert b[0] == pats3[2 * j:2 * j + 2]
    assert rest[firsts[1]:] == want[3] + want[4]
    # The error flag belongs to tile 3: seen when the header of tile 4 is taken, only then.
    assert errors == [0, 0, 0, 0, 1, 0, 0]
