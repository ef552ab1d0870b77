"""``hdl.huffman_decoder`` parameters: specific TypeError/ValueError in the API, one-line
UsageError (exit status 2, no files) from ``python -m hdl.build``, ports and the manifest entry,
and fast Amaranth-simulator runs (a baked table against ``golden.codec.plain.decode_tile``, table
loads through ``cfg`` including malformed ones)."""

import re

import numpy as np
import pytest

from golden.codec.container import TableSet, pack_tables
from golden.codec.plain import encode_tile
from golden.codec.runlength import build_rl_table
from golden.codec.tables import build_table
from hdl.huffman_decoder import BLOCK, DecoderError, HuffmanDecoder

# A constructor that raises leaves a half-built Elaboratable behind; Amaranth warns about it.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def table(bits=4, max_len=8, seed=0):
    rng = np.random.default_rng(seed)
    return build_table(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 200), bits, max_len,
                       histogram=False)


@pytest.mark.parametrize("args, kwargs, exc, message", [
    (("8", 12, 32), {}, TypeError, r"Symbol width must be an integer, not '8'"),
    ((0, 12, 32), {}, ValueError, r"Symbol width must be between 1 and 8, not 0"),
    ((9, 12, 32), {}, ValueError, r"Symbol width must be between 1 and 8, not 9"),
    ((8, 0, 32), {}, ValueError, r"Maximum code length must be between 1 and 24, not 0"),
    ((8, 25, 32), {}, ValueError, r"Maximum code length must be between 1 and 24, not 25"),
    ((8, 12.0, 32), {}, TypeError, r"Maximum code length must be an integer, not 12\.0"),
    ((8, 12, 12), {}, ValueError, r"Word width must be one of 8, 16, 32, 64, not 12"),
    ((8, 12, True), {}, TypeError, r"Word width must be an integer, not True"),
    ((8, 12, 32, 0), {}, ValueError, r"Table group count must be a positive integer, not 0"),
    ((8, 12, 32, "2"), {}, TypeError, r"Table group count must be an integer, not '2'"),
    ((8, 12, 32, 2), {}, ValueError, r"Group bounds are needed with 2 table groups"),
    ((8, 12, 32, 2), {"group_bounds": [0, 4]}, ValueError,
     r"Group bounds must rise from 0 with one group per table, not \[0, 4\]"),
    ((8, 12, 32, 2), {"group_bounds": [1, 4, 8]}, ValueError,
     r"Group bounds must rise from 0 with one group per table, not \[1, 4, 8\]"),
    ((8, 12, 32, 2), {"group_bounds": "0,4,8"}, TypeError,
     r"Group bounds must be a list of integers, not '0,4,8'"),
    ((8, 12, 32, 2), {"group_bounds": [0, 4, 8], "group_bits": [8]}, ValueError,
     r"Group bit widths must be a list of 2 integers, not \[8\]"),
    ((4, 12, 32, 2), {"group_bounds": [0, 4, 8], "group_bits": [4, 5]}, ValueError,
     r"Group bit width must be between 1 and 4, not 5"),
    ((8, 12, 32), {"count_width": 0}, ValueError, r"Count width must be between 1 and 48, not 0"),
    ((8, 12, 32), {"table": 3}, TypeError, r"Table must be a table-set file path, a TableSet, "),
    ((8, 12, 32), {"run_max": 3}, ValueError,
     r"Run max must be 0 or a power of two up to 256, not 3"),
    ((8, 12, 32), {"run_max": 512}, ValueError,
     r"Run max must be 0 or a power of two up to 256, not 512"),
    ((8, 12, 32), {"run_max": True}, TypeError, r"Run max must be an integer, not True"),
    ((8, 12, 32), {"loop": "fast"}, ValueError,
     r"Decode loop must be one of shift, map, not 'fast'"),
    ((8, 12, 32), {"loop": "map", "run_max": 64}, ValueError,
     r"The map decode loop needs one group, plain mode and codes that fit a word "
     r"\(L \+ b <= W\), not G = 1, run max 64, L \+ b = 20, W = 32"),
    ((8, 12, 16), {"loop": "map"}, ValueError, r"The map decode loop needs one group, .*"
     r"L \+ b = 20, W = 16"),
    ((8, 12, 32, 2), {"loop": "map", "group_bounds": [0, 4, 8]}, ValueError,
     r"The map decode loop needs one group, plain mode and codes that fit a word "
     r"\(L \+ b <= W\), not G = 2"),
    ((8, 12, 32), {"map_bits": 8}, ValueError,
     r"map_bits applies to the map decode loop only, not 'shift'"),
    ((8, 12, 32), {"loop": "map", "map_bits": 12}, ValueError,
     r"Map bits must be a power of two from 4 to the word width 32, not 12"),
    ((8, 12, 32), {"loop": "map", "map_bits": 2}, ValueError,
     r"Map bits must be a power of two from 4 to the word width 32, not 2"),
    ((8, 12, 32), {"loop": "map", "map_bits": 64}, ValueError,
     r"Map bits must be a power of two from 4 to the word width 32, not 64"),
    ((8, 12, 32), {"loop": "map", "map_bits": 8.0}, TypeError,
     r"Map bits must be an integer, not 8\.0"),
    ((8, 12, 32), {"loop": "map", "map_bits": True}, TypeError,
     r"Map bits must be an integer, not True"),
])
def test_bad_parameters_raise_specific_errors(args, kwargs, exc, message):
    with pytest.raises(exc, match="^" + message):
        HuffmanDecoder(*args, **kwargs)


def test_run_length_tables_set_the_run_max():
    rl = build_rl_table(np.array([0, 0, 0, 1, 2, 0, 0, -1] * 10), 4, 10)
    assert HuffmanDecoder(4, 10, 32, table=rl)._run_max == rl.run_max
    assert HuffmanDecoder(4, 10, 32, table=rl, run_max=256)._run_max == 256
    assert HuffmanDecoder(4, 10, 32)._run_max == 0
    with pytest.raises(ValueError, match=rf"^Table run max {rl.run_max} exceeds the block's "
                                         rf"run max {rl.run_max // 2}$"):
        HuffmanDecoder(4, 10, 32, table=rl, run_max=rl.run_max // 2)
    dec = HuffmanDecoder(4, 10, 32, 2, group_bounds=[0, 2, 5], run_max=16)
    from hdl.manifest import describe_ports
    ports = {p["name"]: p for p in describe_ports(dec)}
    assert [f["name"] for f in ports["i_count__payload"]["fields"]] == ["count", "nbits",
                                                                       "group"]
    assert dec.latency == HuffmanDecoder.LATENCY + 1


def test_baked_tables_must_fit_the_parameters():
    with pytest.raises(ValueError, match=r"^Table 0 codes 4-bit symbols, but group 0 is 3 "):
        HuffmanDecoder(4, 8, 32, group_bits=[3], table=table(4))
    with pytest.raises(ValueError, match=r"^Table 0 has maximum code length 8, more than 6$"):
        HuffmanDecoder(4, 6, 32, table=table(4, 8))
    with pytest.raises(ValueError, match=r"^Table group count is 2 but 1 tables were given$"):
        HuffmanDecoder(4, 8, 32, 2, group_bounds=[0, 1, 2], table=table(4))
    ts = TableSet([table(4), table(3, seed=1)], [0, 2, 5])
    with pytest.raises(ValueError, match=r"^Group bounds \[0, 1, 5\] differ from the table "):
        HuffmanDecoder(4, 8, 32, 2, group_bounds=[0, 1, 5], table=ts)
    dec = HuffmanDecoder(4, 8, 32, 2, table=ts)
    assert dec._bounds == [0, 2, 5] and dec._group_bits == [4, 3]
    assert "cfg" not in dec.signature.members


def test_bad_table_files(tmp_path):
    with pytest.raises(ValueError, match=r"^Cannot read table file '.*nope\.acht'"):
        HuffmanDecoder(4, 8, 32, table=tmp_path / "nope.acht")
    bad = tmp_path / "bad.acht"
    raw = bytearray(pack_tables(TableSet([table(4)], [0, 1])))
    raw[-5] ^= 1
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"^Table file '.*bad\.acht' is invalid: CRC-32 "):
        HuffmanDecoder(4, 8, 32, table=str(bad))


def test_ports():
    dec = HuffmanDecoder(6, 10, 16, 3, group_bounds=[0, 2, 5, 8], group_bits=[4, 6, 5])
    assert set(dec.signature.members) == {"i_count", "i_stream", "o_stream", "cfg", "error",
                                          "error_code"}
    assert dec.buffer_bits == 16 + 2 * (10 + 6)
    from hdl.manifest import describe_ports
    ports = {p["name"]: p for p in describe_ports(dec)}
    assert [f["name"] for f in ports["i_stream__payload"]["fields"]] == ["data", "last"]
    assert [f["name"] for f in ports["o_stream__payload"]["fields"]] == ["symbol", "last",
                                                                       "first"]
    assert [f["name"] for f in ports["cfg__payload"]["fields"]] == ["data", "group", "last"]
    assert ports["i_count__payload"]["width"] == 32
    assert ports["error_code"]["width"] == 3


# ----------------------------------------------------------------------------- CLI

def run_main(argv, capsys):
    from hdl.build import main

    status = main(argv)
    return status, capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--symbol-width", "0"], r"Symbol width must be a positive integer, not 0"),
    (["--max-len", "25"], r"Maximum code length must be between 1 and 24, not 25"),
    (["--word-width", "24"], r"argument --word-width: invalid choice: 24"),
    (["--groups", "17"], r"Table group count 17 must not exceed component count 16"),
    (["--table", "missing.acht"], r"Cannot read table file 'missing\.acht'"),
    (["--table", "{rl}", "--lanes", "2", "--k", "1"],
     r"run-length mode is not supported by the lane coders"),
    (["--table", "{set}", "--max-len", "6"], r"Table 0 has maximum code length 8, more than 6"),
    (["--table", "{set}", "--groups", "3"], r"--groups 3 does not match the table file's 2 "),
    (["--table", "{set}", "--k", "16"], r"Table file covers 8 components, not --k 16"),
    (["--table", "{set}", "--symbol-width", "3"], r"Symbol width 3 is narrower than the "),
    (["--decoder-loop", "fast"], r"argument --decoder-loop: invalid choice: 'fast'"),
    (["--decoder-loop", "map", "--groups", "2"], r"The map decode loop needs one group"),
    (["--decoder-loop", "map", "--max-channels", "64", "--max-k", "16"],
     r"The map decode loop needs one table group known at build time"),
    (["--map-bits", "8"], r"map_bits applies to the map decode loop only, not 'shift'"),
    (["--decoder-loop", "map", "--map-bits", "12"],
     r"Map bits must be a power of two from 4 to the word width 32, not 12"),
    (["--decoder-loop", "map", "--map-bits", "8", "--max-channels", "64", "--max-k", "16"],
     r"The map decode loop needs one table group known at build time"),
])
def test_cli_errors_one_line_exit_2_no_files(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rl.acht").write_bytes(pack_tables(TableSet(
        [build_rl_table(np.array([0, 0, 0, 1, 2, 0, 0, -1] * 10), 4, 10)], [0, 1])))
    (tmp_path / "set.acht").write_bytes(pack_tables(TableSet([table(4), table(3, seed=1)],
                                                             [0, 2, 8])))
    extra = [x.format(rl="rl.acht", set="set.acht") for x in extra]
    k = [] if "--k" in extra or "set.acht" not in extra else ["--k", "8"]
    status, out = run_main(["--out", "out", *k, *extra], capsys)
    assert status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hdl.build: error: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_modules_and_manifest(tmp_path):
    from hdl.build import parse_args

    path = tmp_path / "set.acht"
    path.write_bytes(pack_tables(TableSet([table(4), table(3, seed=1)], [0, 2, 8])))
    args = parse_args(["--k", "8", "--table", str(path), "--symbol-width", "4",
                       "--max-len", "8", "--word-width", "16"])
    (mod,) = BLOCK.modules(args)
    assert mod.name == "huffman_decoder"
    assert mod.info["latency"] == HuffmanDecoder.LATENCY
    assert mod.info["throughput"] == "1 symbol per cycle"
    assert mod.info["parameters"]["group_bounds"] == [0, 2, 8]
    assert "cfg" not in mod.component.signature.members
    assert mod.info["parameters"]["run_max"] == 0  # plain mode only
    (mod,) = BLOCK.modules(parse_args(["--groups", "4"]))
    assert mod.info["parameters"]["group_bounds"] == [0, 4, 8, 12, 16]
    assert "cfg" in mod.component.signature.members
    assert "map_bits" not in mod.info["parameters"]


@pytest.mark.parametrize("map_bits, latency", [(None, 11), (32, 11), (16, 13), (8, 15), (4, 19)])
def test_cli_map_bits_in_the_manifest(map_bits, latency):
    """The map loop's rate: below W the latency grows by W / D (the window register and the
    D-position chunks), and the throughput says its condition."""
    from hdl.build import parse_args

    extra = [] if map_bits is None else ["--map-bits", str(map_bits)]
    (mod,) = BLOCK.modules(parse_args(["--decoder-loop", "map", *extra]))
    chunks = 32 // (map_bits or 32)
    assert mod.info["latency"] == latency == HuffmanDecoder.MAP_LATENCY + (
        chunks if chunks > 1 else 0)
    assert mod.info["parameters"]["loop"] == "map"
    assert mod.info["parameters"]["map_bits"] == (map_bits or 32)
    if map_bits in (None, 32):
        assert mod.info["throughput"] == "1 symbol per cycle"
    else:
        assert mod.info["throughput"] == (
            f"1 symbol per cycle while the codes average at most {map_bits} bits (the map "
            f"stage decodes {map_bits} bit positions per cycle)")


# ----------------------------------------------------------------------------- simulation

def simulate(dec, steps, cycles=60):
    """Drive ``steps`` (("cfg", bytes) or ("tile", count, words)) through the Amaranth
    simulator; return the (symbol, last, first) beats and the error code after every step."""
    from amaranth.sim import Simulator

    out, codes = [], []

    async def send(ctx, port, payload):
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def bench(ctx):
        ctx.set(dec.o_stream.ready, 1)
        for step in steps:
            if step[0] == "cfg":
                for i, x in enumerate(step[1]):
                    await send(ctx, dec.cfg, {"data": x, "last": int(i == len(step[1]) - 1)})
            else:
                await send(ctx, dec.i_count, {"count": step[1]})
                for i, w in enumerate(step[2]):
                    await send(ctx, dec.i_stream, {"data": w, "last": int(i == len(step[2]) - 1)})
            await ctx.tick().repeat(cycles)
            codes.append(ctx.get(dec.error_code))

    async def watch(ctx):
        async for _, _, ov, od in ctx.tick().sample(dec.o_stream.valid, dec.o_stream.payload):
            if ov:
                out.append((int(od.symbol), int(od.last), int(od.first)))

    sim = Simulator(dec)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    return out, codes


def test_amaranth_sim_baked_matches_golden():
    t = table(4, 8)
    rng = np.random.default_rng(3)
    tiles = [rng.integers(-8, 8, int(n)) for n in (5, 0, 1, 37)]
    steps = []
    want = []
    for v in tiles:
        words, _ = encode_tile(v, t, 8)
        steps.append(("tile", len(v), [int(w) for w in words]))
        want += [(int(x) & 15, int(i == len(v) - 1), int(i == 0)) for i, x in enumerate(v)]
    out, codes = simulate(HuffmanDecoder(4, 8, 8, table=t), steps)
    assert out == want
    assert codes == [0] * len(tiles)


def test_amaranth_sim_table_loads_and_errors():
    """A malformed load sets BAD_TABLE and leaves the table unusable (NO_TABLE); a good load
    clears it; a corrupt tile reports its error and the next tile decodes."""
    t = table(4, 8)
    raw = t.serialize()
    v = np.arange(-8, 8)
    words, nbits = encode_tile(v, t, 16)
    words = [int(w) for w in words]
    want = [(int(x) & 15, int(i == 15), int(i == 0)) for i, x in enumerate(v)]
    dec = HuffmanDecoder(4, 8, 16)
    bad_len = raw[:1] + bytes([9]) + raw[2:]                   # L above max_len
    steps = [("cfg", raw[:-2]), ("tile", 16, words), ("cfg", bad_len), ("cfg", raw),
             ("tile", 16, words), ("tile", 16, words[:-1] + [words[-1] | 1]),
             ("tile", 16, words + [0]), ("tile", 16, words[:1]), ("tile", 16, words)]
    out, codes = simulate(dec, steps)
    assert codes[:2] == [DecoderError.BAD_TABLE, DecoderError.NO_TABLE]
    assert codes[2:5] == [DecoderError.BAD_TABLE, DecoderError.NONE, DecoderError.NONE]
    assert codes[5:] == [DecoderError.PADDING, DecoderError.EXCESS_WORDS,
                         DecoderError.ENDED_EARLY, DecoderError.NONE]
    assert nbits % 16, "the padding case needs padding bits"
    assert out[:16] == want and out[16:32] == want and out[32:48] == want
    assert out[-16:] == want
    # The ENDED_EARLY tile's prefix starts with ``first`` and has no ``last``.
    prefix = out[48:-16]
    assert prefix and prefix[0][2] == 1 and not any(b[1] or b[2] for b in prefix[1:])
    assert prefix[0][1] == 0
