"""Bitstream version 3 (lanes): golden.codec.lanes, the container and the CLI's ``--lanes``."""

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.codec.container import (
    ContainerError,
    TableSet,
    decode_array,
    encode_array,
    pack_tables,
    unpack_container,
    unpack_tables,
)
from golden.codec.errors import AlphabetError, CorruptStreamError
from golden.codec.lanes import (
    check_lanes,
    decode_lanes,
    encode_lanes,
    lane_columns,
    lane_counts,
)
from golden.codec.plain import decode_tile, encode_groups, encode_tile
from golden.codec.tables import build_table
from scripts.fuzz_container import fix_crc, reference_decode

REPO = Path(__file__).resolve().parent.parent


def sample(rng, n=50, k=6):
    a = np.clip(np.round(rng.laplace(0, 3, (n, k))), -16, 15).astype(np.int16)
    a[:, 3:][rng.random((n, k - 3)) < 0.7] = 0
    return a


def tableset(a, lanes=None):
    return TableSet([build_table(a[:, :2], 5, 9, histogram=False),
                     build_table(a[:, 2:], 5, 12, histogram=False)], [0, 2, a.shape[1]], lanes)


def test_lane_counts_and_columns():
    assert lane_counts(10, 4) == [3, 3, 2, 2]
    assert lane_counts(3, 8) == [1, 1, 1, 0, 0, 0, 0, 0]
    assert lane_counts(0, 2) == [0, 0]
    for count in range(40):
        for n in (1, 2, 4, 8):
            got = lane_counts(count, n)
            assert got == [len(range(lane, count, n)) for lane in range(n)]
            assert sum(got) == count
    assert lane_columns(6, 4, 1) == [1, 5, 3]
    assert lane_columns(8, 4, 3) == [3, 7]
    assert lane_columns(1, 8, 0) == [0]


@pytest.mark.parametrize("value, error, message", [
    (3, ValueError, r"^Lane count must be one of 1, 2, 4, 8, not 3$"),
    (0, ValueError, r"^Lane count must be one of 1, 2, 4, 8, not 0$"),
    (16, ValueError, r"^Lane count must be one of 1, 2, 4, 8, not 16$"),
    (2.0, TypeError, r"^Lane count must be an integer, not 2\.0$"),
    (True, TypeError, r"^Lane count must be an integer, not True$"),
])
def test_lane_count_errors(value, error, message):
    with pytest.raises(error, match=message):
        check_lanes(value)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
@pytest.mark.parametrize("w", [8, 16, 32, 64])
def test_each_lane_is_a_plain_tile_of_its_symbols(lanes, w):
    """Lane l is exactly the version-1 encoding of symbols l, l + N, .. with their columns'
    tables; with one table, exactly ``encode_tile`` of the strided values."""
    rng = np.random.default_rng(lanes * 100 + w)
    a = sample(rng, n=23)
    ts = tableset(a)
    parts = encode_lanes(a, ts.tables, ts.bounds, w, lanes)
    assert len(parts) == lanes
    flat = a.ravel()
    cols = np.arange(flat.size) % a.shape[1]
    for lane, (words, nbits) in enumerate(parts):
        idx = np.arange(lane, flat.size, lanes)
        want = sum(int(ts.tables[0 if c < 2 else 1].enc_len[int(v) & 31])
                   for v, c in zip(flat[idx], cols[idx]))
        assert nbits == want
        assert words.size == -(-nbits // w)
    np.testing.assert_array_equal(decode_lanes(parts, a.shape[0], ts.tables, ts.bounds, w), a)
    one = ts.tables[1]
    x = a[:, 2:].ravel()
    for lane, (words, nbits) in enumerate(encode_lanes(x.reshape(-1, 1), [one], [0, 1], w,
                                                       lanes)):
        want_words, want_nbits = encode_tile(x[lane::lanes], one, w)
        assert nbits == want_nbits and words.tolist() == want_words.tolist()
        np.testing.assert_array_equal(decode_tile(words, nbits, x[lane::lanes].size, one, w),
                                      x[lane::lanes])


def test_one_lane_is_version_1():
    """In one lane, the payload is the version-1 tile bit for bit, and the container differs
    from version 1 only in the version byte (3) and the lane-count byte (22)."""
    a = sample(np.random.default_rng(1))
    ts = tableset(a)
    (words, nbits), = encode_lanes(a, ts.tables, ts.bounds, 32, 1)
    want_words, want_nbits = encode_groups(a, ts.tables, ts.bounds, 32)
    assert nbits == want_nbits and words.tolist() == want_words.tolist()
    v1 = encode_array(a, ts)
    v3 = encode_array(a, ts, lanes=1)
    assert v1[4] == 1 and v3[4] == 3 and v1[22] == 0 and v3[22] == 1 and len(v1) == len(v3)
    assert v1[:4] == v3[:4] and v1[5:22] == v3[5:22] and v1[23:-4] == v3[23:-4]
    np.testing.assert_array_equal(decode_array(v3), a)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
def test_container_round_trip_and_layout(lanes):
    rng = np.random.default_rng(lanes)
    a = sample(rng, n=37)
    ts = tableset(a)
    data = encode_array(a, ts, 16, lanes=lanes)
    assert data[4] == 3 and data[22] == lanes and data[23] == 0
    np.testing.assert_array_equal(decode_array(data), a)
    coded = unpack_container(data)
    assert coded.tableset.lanes == lanes and len(coded.tiles) == lanes
    # Layout: the bit counts of every lane, then the lanes' words one after another.
    parts = encode_lanes(a, ts.tables, ts.bounds, 16, lanes)
    payload = b"".join(struct.pack("<Q", nbits) for _, nbits in parts)
    payload += b"".join(words.astype(">u2").tobytes() for words, _ in parts)
    assert data[-4 - len(payload):-4] == payload
    # A table set with lanes codes in that many lanes by default.
    ts_l = tableset(a, lanes)
    back = unpack_tables(pack_tables(ts_l))
    assert back.lanes == lanes and back.tables == ts.tables and back.version == 3
    assert encode_array(a, back, 16) == data
    assert unpack_tables(pack_tables(ts)).lanes is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 40), st.integers(1, 9),
       st.sampled_from([1, 2, 4, 8]), st.sampled_from([8, 16, 32, 64]), st.booleans())
def test_round_trip_property(seed, rows, k, lanes, w, one_d):
    """Any shape (tiles shorter than the lane count, empty tiles, K not a multiple of N), any
    lane count and word width: the container round-trips and agrees with the bit-at-a-time
    reference decoder of scripts/fuzz_container.py."""
    rng = np.random.default_rng(seed)
    k = 1 if one_d else k
    a = np.clip(np.round(rng.laplace(0, 2, (rows, k))), -8, 7).astype(np.int8)
    split = max(1, k // 2)
    bounds = [0, split, k] if k > 1 else [0, 1]
    tables = [build_table(rng.integers(-8, 8, 30), 4, 7, histogram=False)
              for _ in range(len(bounds) - 1)]
    arr = a.ravel() if one_d else a
    data = encode_array(arr, TableSet(tables, bounds), w, lanes=lanes)
    coded = unpack_container(data)
    assert [n for n, _ in coded.tiles][rows * k:] == [0] * max(0, lanes - rows * k)
    out = decode_array(data)
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    np.testing.assert_array_equal(reference_decode(coded), arr)


def test_empty_and_short_tiles():
    t = build_table(np.arange(-4, 4), 4, 6, histogram=False)
    ts = TableSet([t], [0, 1])
    for lanes in (1, 2, 4, 8):
        empty = encode_array(np.zeros(0, np.int8), ts, 32, lanes=lanes)
        coded = unpack_container(empty)
        assert len(coded.tiles) == lanes
        assert all(n == 0 and w.size == 0 for n, w in coded.tiles)
        assert len(empty) == 24 + 12 + len(t.serialize()) + 8 * lanes + 4
        assert decode_array(empty).shape == (0,)
        x = np.array([3, -4, 1], np.int8)
        short = encode_array(x, ts, 32, lanes=lanes)
        sizes = [n for n, _ in unpack_container(short).tiles]
        per_symbol = [int(t.enc_len[int(v) & 15]) for v in x]
        want = [sum(per_symbol[lane::lanes]) for lane in range(lanes)]
        assert sizes == want and (lanes < 4 or sizes[3:] == [0] * (lanes - 3))
        np.testing.assert_array_equal(decode_array(short), x)


def test_alphabet_and_argument_errors():
    a = np.clip(sample(np.random.default_rng(2)), -15, 14)
    ts = TableSet([build_table(a, 5, 12, escape=False, histogram=False)], [0, 6])
    bad = a.copy()
    bad[3, 4] = 15
    with pytest.raises(AlphabetError, match=r"has no code and the table has no escape"):
        encode_array(bad, ts, lanes=4)
    with pytest.raises(ValueError, match=r"^Lane count must be one of 1, 2, 4, 8, not 5$"):
        encode_array(a, ts, lanes=5)
    from golden.codec.runlength import build_rl_table
    rl = TableSet([build_rl_table(a, 5, 12)], [0, 6])
    with pytest.raises(ValueError, match=r"^Lanes need plain tables"):
        encode_array(a, rl, lanes=2)
    with pytest.raises(ValueError, match=r"^Lanes need plain tables"):
        pack_tables(TableSet(rl.tables, rl.bounds, 2))


def _corrupt_cases(data, lanes, w):
    """(name, bytes, error class, message regex) for one 4-lane container."""
    coded = unpack_container(data)
    sizes = [n for n, _ in coded.tiles]
    nwords = [-(-n // w) for n in sizes]
    payload = 8 * lanes + sum(nwords) * (w // 8)
    head_end = len(data) - 4 - payload
    size_at = [head_end + 8 * i for i in range(lanes)]

    def set_size(lane, value):
        off = size_at[lane]
        return fix_crc(data[:off] + struct.pack("<Q", value) + data[off + 8:])

    cases = []
    # A lane size that still fits its words but ends the lane early, or leaves bits over.
    cases.append(("lane 1 one bit short", set_size(1, sizes[1] - 1), CorruptStreamError,
                  r"^Lane 1: "))
    # Growing lane 2 by a word moves every later lane: the file is then one word short.
    cases.append(("lane 2 a word longer", set_size(2, sizes[2] + w), ContainerError,
                  r"^File is truncated in lane 3 of \d+ bits$|^File is truncated in lane 2"))
    cases.append(("lane 0 a word shorter", set_size(0, sizes[0] - w), ContainerError,
                  r"^File has \d+ trailing bytes$"))
    cases.append(("lane 3 huge", set_size(3, 1 << 60), ContainerError,
                  r"^File is truncated in lane 3 of 1152921504606846976 bits$"))
    # Lane 0 takes a word from lane 1: sizes still cover the file, both lanes wrong.
    moved = set_size(0, nwords[0] * w + w)
    off = size_at[1]
    moved = fix_crc(moved[:off] + struct.pack("<Q", (nwords[1] - 1) * w) + moved[off + 8:])
    cases.append(("a word moved from lane 1 to lane 0", moved, CorruptStreamError,
                  r"^Lane 0: Stream has \d+ bits after symbol \d+$|^Lane 0: Padding"))
    # A flipped payload bit inside lane 2 (CRC fixed): an invalid code, early end or leftovers.
    lane2 = head_end + 8 * lanes + (nwords[0] + nwords[1]) * (w // 8)
    flipped = bytearray(data)
    flipped[lane2] ^= 0x80
    cases.append(("bit flipped in lane 2", fix_crc(bytes(flipped)), CorruptStreamError,
                  r"^Lane 2: "))
    # Truncations: inside the lane sizes, inside a lane, and without the CRC fixed.
    cases.append(("cut in the sizes", fix_crc(data[:size_at[2] + 3] + b"\0\0\0\0"),
                  ContainerError, r"^File is truncated in the bit counts of 4 lanes$"))
    cases.append(("cut in lane 3", fix_crc(data[:-6]), ContainerError,
                  r"^File is truncated in lane 3 of \d+ bits$"))
    cases.append(("cut, CRC not fixed", data[:-6], ContainerError, r"^CRC-32 mismatch"))
    cases.append(("all sizes zero", fix_crc(data[:head_end] + bytes(8 * lanes) +
                                            data[head_end + 8 * lanes:]),
                  ContainerError, r"^File has \d+ trailing bytes$"))
    return cases


def test_corrupt_and_truncated_lanes_raise_clear_errors():
    a = sample(np.random.default_rng(3), n=40)
    data = encode_array(a, tableset(a), 32, lanes=4)
    for name, bad, error, message in _corrupt_cases(data, 4, 32):
        with pytest.raises(error, match=message):
            decode_array(bad)
        try:
            reference_decode(unpack_container(bad))
        except (ContainerError, CorruptStreamError) as e:
            assert re.search(message, str(e)), name
        except Exception as e:  # noqa: BLE001 - the reference's own ``Corrupt``
            assert type(e).__name__ == "Corrupt", (name, e)
        else:
            raise AssertionError(f"{name}: the reference decoder accepted it")


def test_padding_and_size_checks_per_lane():
    a = sample(np.random.default_rng(4), n=20)
    ts = tableset(a)
    parts = encode_lanes(a, ts.tables, ts.bounds, 32, 2)
    (w0, n0), (w1, n1) = parts
    assert n1 % 32, "lane 1 must end inside a word for this test"
    w1 = w1.copy()
    w1[-1] |= 1
    with pytest.raises(CorruptStreamError, match=r"^Lane 1: Padding bits after the payload "
                                                 r"are not zero$"):
        decode_lanes([(w0, n0), (w1, n1)], 20, ts.tables, ts.bounds, 32)
    with pytest.raises(CorruptStreamError, match=r"^Lane 0: \d+ payload bits need \d+ words"):
        decode_lanes([(w0[:-1], n0), parts[1]], 20, ts.tables, ts.bounds, 32)
    # A lane that should be empty but carries bits.
    t = build_table(np.arange(-4, 4), 4, 6, histogram=False)
    parts = encode_lanes(np.array([[1], [2]]), [t], [0, 1], 32, 4)
    assert [n for _, n in parts][2:] == [0, 0]
    parts[3] = parts[0]
    with pytest.raises(CorruptStreamError, match=r"^Lane 3: Stream has \d+ bits after "
                                                 r"symbol 0$"):
        decode_lanes(parts, 2, [t], [0, 1], 32)
    # Rows the lanes cannot hold are refused before anything is allocated.
    data = encode_array(a, ts, 32, lanes=2)
    huge = data[:8] + struct.pack("<Q", 1 << 39) + data[16:]
    with pytest.raises(CorruptStreamError, match=r"^2 lanes of \d+ bits cannot hold "):
        decode_array(fix_crc(huge))


# ---------------------------------------------------------------------------------------------
# CLI


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "golden.codec", *map(str, args)],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_cli_lanes(tmp_path):
    a = sample(np.random.default_rng(5), n=200).astype(np.int8)
    np.save(tmp_path / "a.npy", a)
    r = cli(tmp_path, "fit", "a.npy", "--bits", "5", "--max-len", "10", "--groups", "3",
            "--lanes", "4", "--out", "t.tab")
    assert r.returncode == 0, r.stderr
    assert unpack_tables((tmp_path / "t.tab").read_bytes()).lanes == 4
    r = cli(tmp_path, "encode", "a.npy", "--table", "t.tab", "--out", "s4.bin")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "encode", "a.npy", "--table", "t.tab", "--lanes", "2", "--out", "s2.bin")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s4.bin").read_bytes()[22] == 4
    assert (tmp_path / "s2.bin").read_bytes()[22] == 2
    for name, lanes in (("s4.bin", 4), ("s2.bin", 2)):
        r = cli(tmp_path, "decode", name, "--lanes", lanes, "--out", f"{name}.npy")
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), a)
    r = cli(tmp_path, "info", "s4.bin", "--lanes", "8")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("shape (200, 6) int8, version 3 (plain, 4 lanes), 32-bit")
    coded = unpack_container((tmp_path / "s4.bin").read_bytes())
    sizes = ", ".join(str(n) for n, _ in coded.tiles)
    assert lines[1].startswith(f"lanes: 4 lanes, bits {sizes}; words ")
    eight = ", ".join(str(n) for _, n in encode_lanes(a, coded.tableset.tables,
                                                       coded.tableset.bounds, 32, 8))
    assert lines[2].startswith(f"in 8 lanes: 8 lanes, bits {eight}; ")
    assert lines[-1].startswith("total  1200 symbols")


@pytest.mark.parametrize("args, message", [
    (["decode", "s4.bin", "--lanes", "2", "--out", "o"], r"Stream is coded in 4 lanes, not 2$"),
    (["decode", "v1.bin", "--lanes", "1", "--out", "o"],
     r"Stream is version 1 without lanes, not coded in 1 lanes$"),
    (["encode", "a.npy", "--table", "t.tab", "--lanes", "3", "--out", "o"],
     r"Lane count must be one of 1, 2, 4, 8, not 3$"),
    (["encode", "a.npy", "--table", "t.tab", "--lanes", "x", "--out", "o"],
     r"Lane count must be one of 1, 2, 4, 8, not 'x'$"),
    (["fit", "a.npy", "--bits", "5", "--max-len", "10", "--run-length", "--lanes", "2",
      "--out", "o"], r"Lanes need plain tables"),
    (["decode", "cut.bin", "--out", "o"], r"File is truncated in lane 3 of \d+ bits$"),
    (["decode", "lane.bin", "--out", "o"], r"Lane 1: "),
    (["info", "rl.bin", "--lanes", "2"], r"Lanes need plain tables"),
])
def test_cli_lane_errors_one_line_exit_2_no_output(tmp_path, args, message):
    from golden.codec.runlength import build_rl_table
    a = sample(np.random.default_rng(6), n=40).astype(np.int8)
    np.save(tmp_path / "a.npy", a)
    ts = tableset(a)
    (tmp_path / "t.tab").write_bytes(pack_tables(ts))
    data = encode_array(a, ts, lanes=4)
    (tmp_path / "s4.bin").write_bytes(data)
    (tmp_path / "v1.bin").write_bytes(encode_array(a, ts))
    (tmp_path / "cut.bin").write_bytes(fix_crc(data[:-6]))
    sizes = [n for n, _ in unpack_container(data).tiles]
    nwords = sum(-(-n // 32) for n in sizes)
    at = len(data) - 4 - 4 * nwords - 32 + 8
    (tmp_path / "lane.bin").write_bytes(
        fix_crc(data[:at] + struct.pack("<Q", sizes[1] - 1) + data[at + 8:]))
    rl = TableSet([build_rl_table(a, 5, 12)], [0, 6])
    (tmp_path / "rl.bin").write_bytes(encode_array(a, rl))
    before = set(tmp_path.iterdir())
    r = cli(tmp_path, *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("python -m golden.codec: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert set(tmp_path.iterdir()) == before, "no output or temporary file left behind"
