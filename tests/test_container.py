"""Container and table-set files, mutation fuzz, and the ``python -m golden.codec`` CLI."""

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from golden.codec.container import (
    Coded,
    ContainerError,
    TableSet,
    decode_array,
    encode_array,
    pack_container,
    pack_tables,
    unpack_container,
    unpack_tables,
)
from golden.codec.errors import CorruptStreamError, HuffmanError
from golden.codec.plain import encode_groups
from golden.codec.runlength import build_rl_table
from golden.codec.tables import build_table
from scripts.fuzz_container import fix_crc, run

REPO = Path(__file__).resolve().parent.parent


def sample(rng, n=60, k=5):
    a = np.clip(np.round(rng.laplace(0, 3, (n, k))), -16, 15).astype(np.int16)
    a[:, 2:][rng.random((n, k - 2)) < 0.85] = 0
    return a


def tablesets(a):
    bounds = [0, 2, a.shape[1]]
    plain = TableSet([build_table(a[:, :2], 5, 9, histogram=False),
                      build_table(a[:, 2:], 5, 12, histogram=False)], bounds)
    rl = TableSet([build_rl_table(a[:, :2], 5, 9), build_rl_table(a[:, 2:], 5, 12)], bounds)
    return plain, rl


@pytest.mark.parametrize("w", [8, 16, 32, 64])
@pytest.mark.parametrize("mode", ["plain", "rl"])
def test_round_trip_and_header(w, mode):
    rng = np.random.default_rng(w)
    a = sample(rng)
    ts = tablesets(a)[mode == "rl"]
    data = encode_array(a, ts, w)
    assert data[:4] == b"ACHC" and data[4] == (1 if mode == "plain" else 2) and data[5] == w
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    out = decode_array(data)
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    coded = unpack_container(data)
    if mode == "plain":  # the payload is exactly the v1 group stream
        words, nbits = encode_groups(a, ts.tables, ts.bounds, w)
        assert coded.tiles[0][0] == nbits and coded.tiles[0][1].tolist() == words.tolist()
    else:
        assert len(coded.tiles) == 2


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint16", "int64"])
def test_one_dimensional_arrays_and_dtypes(dtype):
    rng = np.random.default_rng(1)
    signed = np.dtype(dtype).kind == "i"
    x = rng.integers(-4 if signed else 0, 4, 100).astype(dtype)
    ts = TableSet([build_table(x, 3, 4, signed=signed, histogram=False)], [0, 1])
    out = decode_array(encode_array(x, ts))
    assert out.dtype == x.dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(decode_array(encode_array(x[:0], ts)), x[:0])


def test_table_set_round_trip():
    plain, rl = tablesets(sample(np.random.default_rng(2)))
    for ts in (plain, rl):
        back = unpack_tables(pack_tables(ts))
        assert back.bounds == ts.bounds and back.tables == ts.tables


def test_specific_errors():
    a = sample(np.random.default_rng(3))
    plain, rl = tablesets(a)
    data = encode_array(a, plain)
    with pytest.raises(ContainerError, match=r"^CRC-32 mismatch"):
        decode_array(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    with pytest.raises(ContainerError, match=r"^File is truncated: 3 bytes$"):
        decode_array(data[:3])
    with pytest.raises(ContainerError, match=r"CRC-32 mismatch"):
        decode_array(data[:-1])
    with pytest.raises(ContainerError, match=r"^Not an actcomp coded stream"):
        decode_array(b"XXXX" + data[4:])
    with pytest.raises(ContainerError, match=r"^Unsupported version 4; this reader knows 1, "
                                             r"2 and 3$"):
        decode_array(fix_crc(data[:4] + b"\x04" + data[5:]))
    with pytest.raises(ContainerError, match=r"^Lane count must be one of 1, 2, 4, 8, not 0$"):
        decode_array(fix_crc(data[:4] + b"\x03" + data[5:]))
    with pytest.raises(ContainerError, match=r"trailing bytes"):
        decode_array(fix_crc(data[:-4] + b"\0\0\0\0\0"))
    with pytest.raises(ContainerError, match=r"Table mode does not match version 2"):
        decode_array(fix_crc(data[:4] + b"\x02" + data[5:]))
    # A valid header around a payload whose bit count lies.
    coded = unpack_container(data)
    nbits = coded.tiles[0][0]
    off = data.rindex(struct.pack("<Q", nbits))
    bad = data[:off] + struct.pack("<Q", nbits - 1) + data[off + 8:]
    with pytest.raises(HuffmanError):
        decode_array(fix_crc(bad))
    # Rows that the payload cannot hold: refused before allocating.
    huge = data[:8] + struct.pack("<Q", 1 << 39) + data[16:]
    with pytest.raises(CorruptStreamError, match=r"cannot hold"):
        decode_array(fix_crc(huge))
    rl_data = encode_array(a, rl)
    huge = rl_data[:8] + struct.pack("<Q", 1 << 39) + rl_data[16:]
    with pytest.raises(CorruptStreamError, match=r"cannot hold"):
        decode_array(fix_crc(huge))
    with pytest.raises(ValueError, match=r"Array has 3 columns, the tables cover 5"):
        encode_array(a[:, :3], plain)
    with pytest.raises(ContainerError, match=r"^Not an actcomp table set"):
        unpack_tables(data)


def test_a_huge_column_count_costs_nothing_before_it_is_refused():
    """A header may claim 2**29 columns (fuzz case 908146 of seed 0 did): nothing is sized by
    it before the payload's bit count refuses it, and an empty array of that width decodes."""
    tables = [build_table(np.arange(-4, 4), 4, 6, histogram=False)] * 2
    ts = TableSet(tables, [0, 3, 1 << 29])
    words, nbits = encode_groups(np.zeros((40, 3), np.int64), tables[:1], [0, 3])
    data = pack_container(Coded(ts, (40, 1 << 29), "int8", 32, [(nbits, words)]))
    with pytest.raises(CorruptStreamError, match=rf"^{nbits} bits cannot hold "
                                                 rf"{40 << 29} symbols$"):
        decode_array(data)
    empty = pack_container(Coded(ts, (0, 1 << 29), "int8", 32, [(0, np.zeros(0))]))
    assert decode_array(empty).shape == (0, 1 << 29)


def test_mutation_fuzz():
    """Thousands of mutated files: CRC catches every raw mutation; with the CRC fixed, only
    HuffmanError or a well-formed array. ``scripts/fuzz_container.py`` runs many more."""
    tally = run(4000, seed=7)
    assert tally["rejected"] > 3000


# ---------------------------------------------------------------------------------------------
# CLI


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "golden.codec", *map(str, args)],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_cli_fit_encode_decode_info(tmp_path):
    rng = np.random.default_rng(4)
    a = sample(rng, n=300, k=6).astype(np.int8)
    np.save(tmp_path / "a.npy", a)
    for extra in ([], ["--run-length"]):
        r = cli(tmp_path, "fit", "a.npy", "--bits", "5,5", "--max-len", "10", "--groups", "2",
                *extra, "--out", "t.tab")
        assert r.returncode == 0, r.stderr
        r = cli(tmp_path, "encode", "a.npy", "--table", "t.tab", "--word-bits", "16", "--out",
                "s.bin")
        assert r.returncode == 0, r.stderr
        r = cli(tmp_path, "decode", "s.bin", "--out", "b.npy")
        assert r.returncode == 0, r.stderr
        b = np.load(tmp_path / "b.npy")
        assert b.dtype == a.dtype
        np.testing.assert_array_equal(b, a)
        r = cli(tmp_path, "info", "s.bin")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith(f"shape (300, 6) int8, version {2 if extra else 1}")
        assert "bits/sym" in lines[1] and "entropy" in lines[1]
        assert lines[2].split()[:4] == ["0", "0-1", "5", "10"]
        assert lines[-1].startswith("total  1800 symbols")


@pytest.mark.parametrize("args, message", [
    (["fit", "a.npy", "--bits", "5", "--max-len", "3", "--out", "o"],
     r"Maximum code length 3 cannot code \d+ symbols"),
    (["fit", "a.npy", "--bits", "3", "--max-len", "8", "--out", "o"],
     r"Value -?\d+ is outside the 3-bit signed range -4\.\.3"),
    (["fit", "a.npy", "--bits", "5", "--max-len", "25", "--out", "o"],
     r"Maximum code length must be between 1 and 24, not 25"),
    (["fit", "a.npy", "--bits", "4,4,4", "--max-len", "8", "--groups", "2", "--out", "o"],
     r"--bits needs 1 or 2 values, not 3"),
    (["fit", "a.npy", "--bits", "4", "--max-len", "8", "--groups", "9", "--out", "o"],
     r"Group starts must rise"),
    (["fit", "missing.npy", "--bits", "4", "--max-len", "8", "--out", "o"], r"Cannot read"),
    (["fit", "f.npy", "--bits", "4", "--max-len", "8", "--out", "o"], r"must hold integers"),
    (["encode", "a.npy", "--table", "a.npy", "--out", "o"], r"Not an actcomp table set"),
    (["encode", "a.npy", "--table", "t.tab", "--word-bits", "12", "--out", "o"],
     r"Word width must be one of 8, 16, 32, 64, not 12"),
    (["encode", "big.npy", "--table", "t.tab", "--out", "o"], r"Value 100 has no code"),
    (["decode", "corrupt.bin", "--out", "o"], r"CRC-32 mismatch"),
    (["decode", "trunc.bin", "--out", "o"], r"CRC-32 mismatch|truncated"),
    (["decode", "v9.bin", "--out", "o"], r"Unsupported version 9"),
    (["info", "t.tab"], r"Not an actcomp coded stream"),
    (["frobnicate"], r"invalid choice"),
])
def test_cli_errors_one_line_exit_2_no_output(tmp_path, args, message):
    rng = np.random.default_rng(5)
    a = sample(rng, n=40, k=4).astype(np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "f.npy", a.astype(float))
    np.save(tmp_path / "big.npy", np.full((2, 4), 100, dtype=np.int8))
    ts = TableSet([build_table(a, 8, 12, escape=False, histogram=False)], [0, 4])
    (tmp_path / "t.tab").write_bytes(pack_tables(ts))
    data = encode_array(a, ts)
    (tmp_path / "corrupt.bin").write_bytes(data[:30] + bytes([data[30] ^ 4]) + data[31:])
    (tmp_path / "trunc.bin").write_bytes(data[:-7])
    (tmp_path / "v9.bin").write_bytes(fix_crc(data[:4] + b"\x09" + data[5:]))
    before = set(tmp_path.iterdir())
    r = cli(tmp_path, *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("python -m golden.codec: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert set(tmp_path.iterdir()) == before, "no output or temporary file left behind"
