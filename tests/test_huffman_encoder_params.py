"""``hdl.huffman_encoder`` parameters: specific TypeError/ValueError in the API, one-line
UsageError (exit status 2, no files) from ``python -m hdl.build``, the manifest entry, and a fast
Amaranth-simulator smoke test of a baked table against ``golden.codec.plain.encode_tile``."""

import re

import numpy as np
import pytest

from golden.codec.container import TableSet, pack_tables
from golden.codec.plain import encode_tile
from golden.codec.runlength import build_rl_table
from golden.codec.tables import build_table
from hdl.coder_parts import BitPacker
from hdl.huffman_encoder import BLOCK, HuffmanEncoder

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
    ((8, 12, 32, 2), {"group_bounds": [0, 4, 4]}, ValueError,
     r"Group bounds must rise from 0 with one group per table, not \[0, 4, 4\]"),
    ((8, 12, 32, 2), {"group_bounds": "0,4,8"}, TypeError,
     r"Group bounds must be a list of integers, not '0,4,8'"),
    ((8, 12, 32, 2), {"group_bounds": [0, 4, 8], "group_bits": [8]}, ValueError,
     r"Group bit widths must be a list of 2 integers, not \[8\]"),
    ((4, 12, 32, 2), {"group_bounds": [0, 4, 8], "group_bits": [4, 5]}, ValueError,
     r"Group bit width must be between 1 and 4, not 5"),
    ((8, 12, 32), {"count_width": 0}, ValueError, r"Count width must be between 1 and 64, not 0"),
    ((8, 12, 32), {"table": 3}, TypeError, r"Table must be a table-set file path, a TableSet, "),
    ((8, 12, 32), {"run_max": 3}, ValueError,
     r"Run max must be 0 or a power of two up to 256, not 3"),
    ((8, 12, 32), {"run_max": 512}, ValueError,
     r"Run max must be 0 or a power of two up to 256, not 512"),
    ((8, 12, 32), {"run_max": True}, TypeError, r"Run max must be an integer, not True"),
    ((4, 10, 32), {"run_max": 2, "table": "rl8"}, ValueError,
     r"Table run max 8 exceeds the block's run max 2$"),
])
def test_bad_parameters_raise_specific_errors(args, kwargs, exc, message):
    if kwargs.get("table") == "rl8":
        kwargs = dict(kwargs, table=build_rl_table(np.array([0, 0, 0, 1, 2, 0, 0, -1] * 10), 4,
                                                   10, run_max=8))
    with pytest.raises(exc, match="^" + message):
        HuffmanEncoder(*args, **kwargs)


@pytest.mark.parametrize("run_max, table_r, expect", [
    (None, 8, 8), (16, 8, 16), (256, None, 256), (0, None, 0), (None, None, 0)])
def test_run_max_from_tables_or_parameter(run_max, table_r, expect):
    """R is the parameter, or the baked run-length tables' longest run; the code memory holds
    2**b values and R runs per group, the plan one entry per run length."""
    kw = {} if run_max is None else {"run_max": run_max}
    if table_r:
        kw["table"] = build_rl_table(np.array([0, 0, 0, 1, 2, 0, 0, -1] * 10), 4, 10,
                                     run_max=table_r)
    enc = HuffmanEncoder(4, 10, 32, **kw)
    assert enc._run_max == expect
    assert enc._addr_bits() == (4 if not expect else max(5, (16 + expect - 1).bit_length()))


def test_baked_tables_must_fit_the_parameters():
    with pytest.raises(ValueError, match=r"^Table 0 codes 4-bit symbols, but group 0 is 3 "):
        HuffmanEncoder(4, 8, 32, group_bits=[3], table=table(4))
    with pytest.raises(ValueError, match=r"^Table 0 has maximum code length 8, more than 6$"):
        HuffmanEncoder(4, 6, 32, table=table(4, 8))
    with pytest.raises(ValueError, match=r"^Table group count is 2 but 1 tables were given$"):
        HuffmanEncoder(4, 8, 32, 2, group_bounds=[0, 1, 2], table=table(4))
    ts = TableSet([table(4), table(3, seed=1)], [0, 2, 5])
    with pytest.raises(ValueError, match=r"^Group bounds \[0, 1, 5\] differ from the table "):
        HuffmanEncoder(4, 8, 32, 2, group_bounds=[0, 1, 5], table=ts)
    # A table set brings its bounds and group widths.
    enc = HuffmanEncoder(4, 8, 32, 2, table=ts)
    assert enc._bounds == [0, 2, 5] and enc._group_bits == [4, 3]
    assert "cfg" not in enc.signature.members


def test_bad_table_files(tmp_path):
    with pytest.raises(ValueError, match=r"^Cannot read table file '.*nope\.acht'"):
        HuffmanEncoder(4, 8, 32, table=tmp_path / "nope.acht")
    bad = tmp_path / "bad.acht"
    raw = bytearray(pack_tables(TableSet([table(4)], [0, 1])))
    raw[-5] ^= 1
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"^Table file '.*bad\.acht' is invalid: CRC-32 "):
        HuffmanEncoder(4, 8, 32, table=str(bad))


def test_ports():
    enc = HuffmanEncoder(6, 10, 16, 3, group_bounds=[0, 2, 5, 8], group_bits=[4, 6, 5])
    members = enc.signature.members
    assert set(members) == {"i_stream", "o_stream", "o_count", "cfg", "error"}
    assert enc.buffer_bits == 32 + (5 + BitPacker.QUEUE_DEPTH) * 16
    from hdl.manifest import describe_ports
    ports = {p["name"]: p for p in describe_ports(enc)}
    assert [f["name"] for f in ports["i_stream__payload"]["fields"]] == ["symbol", "last",
                                                                        "empty"]
    assert [f["name"] for f in ports["cfg__payload"]["fields"]] == ["data", "group", "last"]
    assert ports["cfg__payload"]["fields"][1]["width"] == 2
    assert ports["o_stream__payload"]["width"] == 17
    assert ports["o_count__payload"]["width"] == 32


# ----------------------------------------------------------------------------- CLI

def run_main(argv, capsys):
    from hdl.build import main

    status = main(argv)
    return status, capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--symbol-width", "9"], r"Symbol width must be between 1 and 8, not 9"),
    (["--max-len", "0"], r"Maximum code length must be a positive integer, not 0"),
    (["--word-width", "12"], r"argument --word-width: invalid choice: 12"),
    (["--groups", "17"], r"Table group count 17 must not exceed component count 16"),
    (["--table", "missing.acht"], r"Cannot read table file 'missing\.acht'"),
    (["--run-max", "3"], r"Run max must be 0 or a power of two up to 256, not 3"),
    (["--table", "{set}", "--max-len", "6"], r"Table 0 has maximum code length 8, more than 6"),
    (["--table", "{set}", "--groups", "3"], r"--groups 3 does not match the table file's 2 "),
    (["--table", "{set}", "--k", "16"], r"Table file covers 8 components, not --k 16"),
    (["--table", "{set}", "--symbol-width", "3"], r"Symbol width 3 is narrower than the "),
])
def test_cli_errors_one_line_exit_2_no_files(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rl.acht").write_bytes(pack_tables(TableSet(
        [build_rl_table(np.array([0, 0, 0, 1, 2, 0, 0, -1] * 10), 4, 10)], [0, 1])))
    (tmp_path / "set.acht").write_bytes(pack_tables(TableSet([table(4), table(3, seed=1)],
                                                             [0, 2, 8])))
    extra = [x.format(rl="rl.acht", set="set.acht") for x in extra]
    status, out = run_main(["--out", "out", *_k(extra), *extra], capsys)
    assert status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hdl.build: error: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def _k(extra):
    # Table-set cases run with --k 8 (the set's column count) unless the case sets --k.
    return [] if "--k" in extra or "set.acht" not in extra else ["--k", "8"]


def test_cli_modules_and_manifest(tmp_path):
    from hdl.build import parse_args

    path = tmp_path / "set.acht"
    path.write_bytes(pack_tables(TableSet([table(4), table(3, seed=1)], [0, 2, 8])))
    args = parse_args(["--k", "8", "--table", str(path), "--symbol-width", "4",
                       "--max-len", "8", "--word-width", "16"])
    (mod,) = BLOCK.modules(args)
    assert mod.name == "huffman_encoder"
    assert mod.info["latency"] == HuffmanEncoder.LATENCY
    assert mod.info["throughput"] == "1 symbol per cycle"
    assert mod.info["parameters"]["group_bounds"] == [0, 2, 8]
    assert "cfg" not in mod.component.signature.members
    assert mod.info["parameters"]["run_max"] == 0  # plain mode only
    args = parse_args(["--groups", "4"])
    (mod,) = BLOCK.modules(args)
    assert mod.info["parameters"]["group_bounds"] == [0, 4, 8, 12, 16]
    assert "cfg" in mod.component.signature.members


def test_cli_run_length_encoder(tmp_path):
    """``--run-max R`` builds a run-time-table encoder with run-length mode; ``--table`` with a
    run-length table file bakes it (R from the file); a file R above ``--run-max`` is refused."""
    from amaranth.back import verilog
    from hdl.build import parse_args
    from hdl.registry import UsageError

    (mod,) = BLOCK.modules(parse_args(["--run-max", "16", "--symbol-width", "4"]))
    assert mod.info["parameters"]["run_max"] == 16
    assert "cfg" in mod.component.signature.members
    assert "module" in verilog.convert(mod.component, name="huffman_encoder")
    rl = build_rl_table(np.array([0, 0, 0, 1, 2, 0, 0, -1] * 10), 4, 10, run_max=4)
    path = tmp_path / "rl.acht"
    path.write_bytes(pack_tables(TableSet([rl], [0, 16])))
    (mod,) = BLOCK.modules(parse_args(["--table", str(path), "--symbol-width", "4"]))
    assert mod.info["parameters"]["run_max"] == 4
    assert "cfg" not in mod.component.signature.members
    assert "module" in verilog.convert(mod.component, name="huffman_encoder")
    with pytest.raises(UsageError, match=r"^Table run max 4 exceeds the block's run max 2$"):
        BLOCK.modules(parse_args(["--table", str(path), "--symbol-width", "4",
                                  "--run-max", "2"]))


# ----------------------------------------------------------------------------- simulation

def test_amaranth_sim_matches_golden():
    """A quick Amaranth-simulator run of a baked table (the cocotb bench is the full check)."""
    from amaranth.sim import Simulator

    t = table(4, 8)
    enc = HuffmanEncoder(4, 8, 8, table=t)
    rng = np.random.default_rng(3)
    tiles = [rng.integers(-8, 8, int(n)) for n in (5, 0, 1, 37)]
    expect = [encode_tile(v, t, 8) for v in tiles]
    words, counts = [], []

    async def bench(ctx):
        ctx.set(enc.o_stream.ready, 1)
        ctx.set(enc.o_count.ready, 1)
        beats = []
        for v in tiles:
            pats = [int(x) & 15 for x in v]
            beats += [(p, int(i == len(pats) - 1), 0) for i, p in enumerate(pats)]
            if not pats:
                beats.append((0, 1, 1))
        for sym, last, empty in beats:
            ctx.set(enc.i_stream.payload, {"symbol": sym, "last": last, "empty": empty})
            ctx.set(enc.i_stream.valid, 1)
            await ctx.tick().until(enc.i_stream.ready)
        ctx.set(enc.i_stream.valid, 0)
        await ctx.tick().repeat(40)

    async def watch(ctx):
        async for _, _, ov, od, cv, cd in ctx.tick().sample(
                enc.o_stream.valid, enc.o_stream.payload, enc.o_count.valid,
                enc.o_count.payload):
            if ov:
                words.append((int(od.data), int(od.last)))
            if cv:
                counts.append(int(cd.nbits))

    sim = Simulator(enc)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    want = [(int(w), int(i == len(ws) - 1)) for ws, _ in expect for i, w in enumerate(ws)]
    assert words == want
    assert counts == [n for _, n in expect]


def test_back_to_back_tiles_lose_one_cycle_each():
    """50 tiles of 16 symbols offered back to back, outputs always ready: the packer gives a
    tile's ``last`` beat a second cycle (the tile end), and nothing else waits, so 800
    symbols take 849 cycles between the first and the last input handshake."""
    from amaranth.sim import Simulator

    rng = np.random.default_rng(0)
    vals = rng.integers(-6, 7, size=800)
    enc = HuffmanEncoder(4, 8, 32, table=build_table(vals, 4, 8, histogram=False))
    took = []

    async def bench(ctx):
        ctx.set(enc.o_stream.ready, 1)
        ctx.set(enc.o_count.ready, 1)
        ctx.set(enc.i_stream.valid, 1)
        i = 0
        for cycle in range(2000):
            if i == len(vals):
                break
            ctx.set(enc.i_stream.payload, {"symbol": int(vals[i]) & 15,
                                           "last": int(i % 16 == 15), "empty": 0})
            if ctx.get(enc.i_stream.ready):
                took.append(cycle)
                i += 1
            await ctx.tick()
        ctx.set(enc.i_stream.valid, 0)

    sim = Simulator(enc)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(took) == 800
    assert took[-1] - took[0] + 1 == 800 + 49


def test_family_ecp5_code_table():
    """``--family ecp5``: the code table is built from DP16KD tiles with their output register
    (two tiles for the 27-bit entries of b = 8, L = 12), and the manifest says so; an unknown
    family is refused with one message."""
    from amaranth.back import verilog
    from hdl.build import parse_args

    (mod,) = BLOCK.modules(parse_args(["--family", "ecp5"]))
    assert mod.info["parameters"]["family"] == "ecp5"
    text = verilog.convert(mod.component, name="huffman_encoder")
    assert text.count("DP16KD #(") == 2 and text.count('.REGMODE_B("OUTREG")') == 2
    (mod,) = BLOCK.modules(parse_args([]))
    assert mod.info["parameters"]["family"] == "generic"
    assert "DP16KD" not in verilog.convert(mod.component, name="huffman_encoder")
    with pytest.raises(ValueError, match=r"^FPGA family must be one of generic, ecp5, ice40, "
                                         r"not 'xc7'$"):
        HuffmanEncoder(8, 12, 32, family="xc7")
