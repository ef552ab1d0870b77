"""golden.codec: code construction, canonical tables, serialization, tile and group codec."""

import heapq
import itertools
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from golden.codec.container import ContainerError, parse_table
from golden.codec.errors import AlphabetError, CorruptStreamError, HuffmanError
from golden.codec.lengths import lengths_from_histogram
from golden.codec.plain import decode_groups, decode_tile, encode_groups, encode_tile
from golden.codec.tables import HuffmanTable, build_table


def huffman_cost(weights):
    """Unconstrained optimal cost (sum w * len) by the textbook heap algorithm."""
    w = [int(x) for x in weights if x > 0]
    if len(w) <= 1:
        return sum(w)
    heapq.heapify(w)
    cost = 0
    while len(w) > 1:
        a, b = heapq.heappop(w), heapq.heappop(w)
        cost += a + b
        heapq.heappush(w, a + b)
    return cost


def brute_cost(weights, max_len):
    """Minimum cost over every length vector with lengths <= max_len and Kraft sum <= 1."""
    w = [int(x) for x in weights if x > 0]
    if len(w) == 1:
        return w[0]
    best = None
    for ls in itertools.product(range(1, max_len + 1), repeat=len(w)):
        if sum(1 << (max_len - x) for x in ls) <= 1 << max_len:  # Kraft, in integers
            c = sum(a * b for a, b in zip(w, ls))
            best = c if best is None else min(best, c)
    return best


# ---------------------------------------------------------------------------------------------
# Lengths


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=6), st.integers(1, 5))
@settings(max_examples=150, deadline=None)
def test_package_merge_is_optimal_against_brute_force(weights, max_len):
    n = sum(1 for x in weights if x)
    assume(0 < n <= 2 ** max_len)  # the other cases are tested below
    lengths = lengths_from_histogram(weights, max_len)
    assert lengths.max() <= max_len
    assert int(np.dot(lengths, weights)) == brute_cost(weights, max_len)


@given(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=300), st.integers(1, 24))
@settings(max_examples=150, deadline=None)
def test_lengths_bounded_kraft_and_unlimited_optimum(weights, max_len):
    n = sum(1 for x in weights if x)
    if n == 0:
        assert not lengths_from_histogram(weights, max_len).any()
        return
    if n > 2 ** max_len:
        with pytest.raises(HuffmanError, match=rf"^Maximum code length {max_len} cannot code "
                                               rf"{n} symbols$"):
            lengths_from_histogram(weights, max_len)
        return
    lengths = lengths_from_histogram(weights, max_len)
    w = np.asarray(weights)
    assert np.all((lengths > 0) == (w > 0))
    assert lengths.max() <= max_len
    kraft = sum(2 ** (max_len - int(x)) for x in lengths[lengths > 0])
    assert kraft <= 2 ** max_len
    if n > 1:
        assert kraft == 2 ** max_len, "an optimal code is complete"
    if max_len >= n - 1:  # the limit cannot bind
        assert int(np.dot(lengths, w)) == huffman_cost(weights)


def test_length_limit_binds_on_geometric_histogram():
    weights = [2 ** i for i in range(20)]
    free = lengths_from_histogram(weights, 24)
    assert free.max() == 19
    limited = lengths_from_histogram(weights, 8)
    assert limited.max() == 8
    assert int(np.dot(limited, weights)) > int(np.dot(free, weights))
    # Smallest feasible L for 20 symbols is 5: all lengths 4 or 5.
    assert lengths_from_histogram(weights, 5).max() == 5
    with pytest.raises(HuffmanError, match=r"^Maximum code length 4 cannot code 20 symbols$"):
        lengths_from_histogram(weights, 4)


# ---------------------------------------------------------------------------------------------
# Tables


def test_deflate_canonical_example_rfc1951():
    # RFC 1951 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for A..H.
    lengths = [3, 3, 3, 3, 3, 2, 4, 4] + [0] * 8 + [0]
    t = HuffmanTable(4, 4, lengths, escape=False, signed=False)
    codes = [format(int(t.codes[i]), f"0{lengths[i]}b") for i in range(8)]
    assert codes == ["010", "011", "100", "101", "110", "00", "1110", "1111"]
    assert list(t.counts) == [0, 1, 5, 2]
    assert list(t.symbols) == [5, 0, 1, 2, 3, 4, 6, 7]


def test_escape_is_index_2b_with_count_one():
    t = build_table([0, 0, 1, -1, 0], bits=4, max_len=8)
    assert t.escape and t.lengths.size == 17
    assert t.lengths[16] > 0, "ESC is index 2**b"
    assert np.count_nonzero(t.lengths) == 4  # 0, 1, 15 (-1) and ESC
    # Equal to building from the histogram with ESC's count 1 appended.
    hist = np.zeros(17, dtype=int)
    hist[[0, 1, 15, 16]] = [3, 1, 1, 1]
    np.testing.assert_array_equal(t.lengths, lengths_from_histogram(hist, 8))
    # Within one length, ESC comes after every real symbol.
    longest = t.lengths.max()
    same = np.flatnonzero(t.lengths == longest)
    assert same[-1] == 16 and t.codes[16] == max(t.codes[same])


def test_every_value_is_encodable_with_escape_and_not_without():
    t = build_table([3, 3, 3, 2], bits=3, max_len=5)
    values = np.arange(-4, 4)
    words, nbits = encode_tile(values, t)
    np.testing.assert_array_equal(decode_tile(words, nbits, 8, t), values)
    # An unseen symbol costs ESC + b raw bits.
    assert t.enc_len[0] == t.lengths[8] + 3
    t2 = build_table([3, 3, 3, 2], bits=3, max_len=5, escape=False)
    with pytest.raises(AlphabetError, match=r"^Value 0 has no code and the table has no escape$"):
        encode_tile([3, 0], t2)


def test_single_coded_entry_gets_code_0_and_code_1_is_invalid():
    t = build_table([5, 5, 5], bits=4, max_len=3, escape=False)
    assert t.lengths[5] == 1 and t.codes[5] == 0 and t.lengths.sum() == 1
    words, nbits = encode_tile([5, 5, 5], t, word_bits=8)
    assert nbits == 3 and words.tolist() == [0]
    with pytest.raises(CorruptStreamError, match=r"Invalid code at bit 1"):
        decode_tile(np.array([0b01000000]), 3, 3, t, word_bits=8)
    # With escape only ESC is coded when the data is empty.
    t = build_table(np.zeros(0, dtype=int), bits=2, max_len=1, histogram=False)
    assert t.lengths.tolist() == [0, 0, 0, 0, 1]


def test_unassigned_code_with_escape_table_is_invalid_not_an_escape():
    # Lengths 1 (value 0), 2 (value 1), 3 (ESC) leave code 111 unassigned. An invalid code must
    # raise, not be taken for ESC and decode its raw bits as a value.
    t = HuffmanTable(2, 3, [1, 2, 0, 0, 3])
    assert t.escape and t.esc_index == 4
    with pytest.raises(CorruptStreamError, match=r"^Invalid code at bit 0 \(symbol 0\)$"):
        decode_tile(np.array([0b111 << 29], np.uint64), None, 1, t, 32)
    # The real ESC (110) followed by raw bits still decodes.
    assert decode_tile(np.array([0b11010 << 27], np.uint64), 5, 1, t, 32).tolist() == [-2]


def test_unsigned_and_signed_patterns():
    ts = build_table([-1, -1, 1], bits=4, max_len=6, escape=False)
    assert ts.lengths[15] > 0 and ts.lengths[1] > 0
    tu = build_table([15, 15, 1], bits=4, max_len=6, signed=False, escape=False)
    np.testing.assert_array_equal(ts.lengths, tu.lengths)
    with pytest.raises(AlphabetError, match=r"^Value -1 is outside the 4-bit unsigned range "
                                            r"0\.\.15$"):
        encode_tile([-1], tu)
    with pytest.raises(AlphabetError, match=r"^Value 8 is outside the 4-bit signed range "
                                            r"-8\.\.7$"):
        encode_tile([8], ts)


def test_build_table_arguments():
    with pytest.raises(ValueError, match=r"^Symbol width must be between 1 and 8, not 9$"):
        build_table([1], 9, 8)
    with pytest.raises(ValueError, match=r"^Maximum code length must be between 1 and 24, "
                                         r"not 25$"):
        build_table([1], 4, 25)
    with pytest.raises(TypeError, match=r"^Maximum code length must be an integer"):
        build_table([1], 4, 2.5)
    with pytest.raises(HuffmanError, match=r"^Maximum code length 4 cannot code 17 symbols$"):
        build_table(np.ones(16, dtype=int), 4, 4)
    with pytest.raises(HuffmanError, match=r"^No symbols to code"):
        build_table(np.zeros(16, dtype=int), 4, 4, escape=False)
    with pytest.raises(TypeError, match=r"must be integers"):
        build_table(np.array([0.5, 1.0]), 4, 4)


def test_serialized_layout_bytes():
    # b = 2, symbols 0 (x3), 1 (x1), ESC: lengths 1, 2, -, -, 2.
    t = build_table([3, 1, 0, 0], bits=2, max_len=3, histogram=True)
    assert t.lengths.tolist() == [1, 2, 0, 0, 2]
    data = t.serialize()
    assert data == bytes([2, 3, 1, 0,  1, 0, 2, 0, 0, 0,  0, 0, 1, 0, 4, 0])
    assert parse_table(data) == t
    assert parse_table(data, signed=False).signed is False


@pytest.mark.parametrize("data, message", [
    (b"\x02\x03", r"header needs 4 bytes"),
    (b"\x09\x03\x01\x00", r"symbol width must be between 1 and 8, not 9"),
    (b"\x02\x19\x01\x00", r"maximum length must be between 1 and 24, not 25"),
    (b"\x02\x03\x05\x00", r"reserved bits"),
    (b"\x02\x03\x01\x01", r"reserved byte must be 0"),
    (bytes([2, 3, 1, 0, 1, 0, 2, 0]), r"truncated in its length counts"),
    (bytes([2, 3, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 1, 0]), r"truncated in its symbol list"),
    (bytes([2, 3, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 4, 0, 1, 0]), r"canonical order"),
    (bytes([2, 3, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0]), r"repeated"),
    (bytes([2, 3, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 1, 0, 9, 0]), r"out of range"),
    (bytes([2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 0]), r"Kraft"),
    (bytes([2, 3, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 0]), r"ESC"),
    (bytes([2, 3, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 1, 0, 4, 0, 0]), r"1 trailing bytes"),
])
def test_parse_table_rejects_bad_tables(data, message):
    with pytest.raises(ContainerError, match=message):
        parse_table(data)


# ---------------------------------------------------------------------------------------------
# Tiles


def test_known_bits_msb_first_straddling_words():
    # Lengths: 0 -> '0', 1 -> '10', ESC -> '11' (b = 2).
    t = build_table([3, 1, 0, 0], bits=2, max_len=3, histogram=True)
    values = [1, 0, -1, 1, 0, 0, 1]  # 10 0 11+11 10 0 0 10
    words, nbits = encode_tile(values, t, word_bits=8)
    assert nbits == 13
    assert [format(int(w), "08b") for w in words] == ["10011111", "00010000"]
    words16, _ = encode_tile(values, t, word_bits=16)
    assert words16.tolist() == [0b1001111100010000]
    words64, _ = encode_tile(values, t, word_bits=64)
    assert words64.tolist() == [0b1001111100010 << 51]
    np.testing.assert_array_equal(decode_tile(words, nbits, 7, t, 8), values)


def test_empty_tile_is_zero_words():
    t = build_table([1, 2], bits=3, max_len=4)
    words, nbits = encode_tile([], t)
    assert nbits == 0 and words.size == 0 and words.dtype == np.uint64
    assert decode_tile(words, 0, 0, t).size == 0
    assert decode_tile(words, None, 0, t).size == 0


def test_decode_errors():
    t = build_table([3, 1, 0, 0], bits=2, max_len=3, histogram=True)
    words, nbits = encode_tile([1, 0, 0, 1], t, word_bits=8)  # 10 0 0 10 -> 6 bits
    with pytest.raises(CorruptStreamError, match=r"ends"):
        decode_tile(words, nbits, 5, t, 8)
    with pytest.raises(CorruptStreamError, match=r"ends"):
        decode_tile(words, 5, 4, t, 8)
    with pytest.raises(CorruptStreamError, match=r"2 bits after symbol 3"):
        decode_tile(words, nbits, 3, t, 8)
    with pytest.raises(CorruptStreamError, match=r"Padding bits"):
        decode_tile(words | 1, nbits, 4, t, 8)
    with pytest.raises(CorruptStreamError, match=r"need 1 words"):
        decode_tile(np.r_[words, 0], nbits, 4, t, 8)
    with pytest.raises(CorruptStreamError, match=r"does not fit in 8 bits"):
        decode_tile(np.array([256]), None, 1, t, 8)
    with pytest.raises(CorruptStreamError, match=r"cannot hold"):
        decode_tile(words, nbits, 10 ** 9, t, 8)
    # Invalid code: a table whose Kraft sum is below 1 (escape off, one symbol + nothing).
    t2 = HuffmanTable(2, 3, [1, 2, 0, 0, 0], escape=False)  # '0', '10'; '11' is invalid
    with pytest.raises(CorruptStreamError, match=r"^Invalid code at bit 2 \(symbol 1\)$"):
        decode_tile(np.array([0b10110000]), 4, 2, t2, 8)
    with pytest.raises(ValueError, match=r"Word width must be one of 8, 16, 32, 64, not 12"):
        encode_tile([0], t, word_bits=12)


def test_decode_with_unknown_bit_count_stops_after_count():
    t = build_table([0, 0, 1, 2, 3], bits=3, max_len=6)
    words, nbits = encode_tile([0, 1, 2, 3], t, word_bits=64)
    np.testing.assert_array_equal(decode_tile(np.r_[words, 123], None, 4, t, 64), [0, 1, 2, 3])


@given(st.data())
@settings(max_examples=120, deadline=None)
def test_round_trip_random(data):
    bits = data.draw(st.integers(1, 8))
    signed = data.draw(st.booleans())
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    calib = data.draw(st.lists(st.integers(lo, hi), max_size=200))
    escape = data.draw(st.booleans()) or not calib
    n_used = len(set(calib)) + escape
    max_len = data.draw(st.integers(max(1, (n_used - 1).bit_length()), 24))
    t = build_table(np.array(calib, dtype=np.int64), bits, max_len, signed=signed,
                    escape=escape, histogram=False)
    pool = st.integers(lo, hi) if escape else st.sampled_from(calib)
    values = np.array(data.draw(st.lists(pool, max_size=300)), dtype=np.int64)
    w = data.draw(st.sampled_from([8, 16, 32, 64]))
    words, nbits = encode_tile(values, t, w)
    assert words.size == -(-nbits // w) and (words.size == 0 or int(words.max()) < 2 ** w)
    np.testing.assert_array_equal(decode_tile(words, nbits, values.size, t, w), values)
    assert nbits == int(t.enc_len[values & ((1 << bits) - 1)].sum())
    assert t.lengths.max() <= max_len
    assert parse_table(t.serialize(), signed=signed) == t


def test_average_length_is_the_optimum_for_l():
    rng = np.random.default_rng(5)
    for max_len in (8, 9, 12, 24):
        x = np.clip(np.round(rng.laplace(0, 6, 50000)), -128, 127).astype(np.int64)
        t = build_table(x, 8, max_len)
        hist = np.bincount(x & 255, minlength=257)
        hist[256] = 1
        opt = lengths_from_histogram(hist, max_len)
        assert int((hist * t.lengths).sum()) == int((hist * opt).sum())
        if max_len == 24:
            assert int((hist * t.lengths).sum()) == huffman_cost(hist)


# ---------------------------------------------------------------------------------------------
# Groups


def test_groups_round_trip_mixed_widths_and_interleave_order():
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.integers(-128, 128, (50, 3)), rng.integers(-2, 2, (50, 5)),
                        rng.integers(0, 2, (50, 1))], axis=1)
    tables = [build_table(a[:, :3], 8, 12), build_table(a[:, 3:8], 2, 3),
              build_table(a[:, 8:], 1, 2, signed=False)]
    bounds = [0, 3, 8, 9]
    words, nbits = encode_groups(a, tables, bounds, 16)
    np.testing.assert_array_equal(decode_groups(words, nbits, 50, tables, bounds, 16), a)
    # Row-major interleaving: the same bits as concatenating per-symbol codes in that order.
    cols = [tables[0]] * 3 + [tables[1]] * 5 + [tables[2]]
    bitstr = "".join(format(int(cols[j].enc_code[v & ((1 << cols[j].bits) - 1)]),
                            f"0{int(cols[j].enc_len[v & ((1 << cols[j].bits) - 1)])}b")
                     for row in a for j, v in enumerate(row))
    assert nbits == len(bitstr)
    bitstr += "0" * (-len(bitstr) % 16)
    assert [int(bitstr[i:i + 16], 2) for i in range(0, len(bitstr), 16)] == words.tolist()
    with pytest.raises(ValueError, match=re.escape("Group bounds must rise from 0 to 9")):
        encode_groups(a, tables, [0, 3, 3, 9], 16)
    with pytest.raises(AlphabetError, match=r"outside the 2-bit signed range"):
        encode_groups(a + 2, tables, bounds, 16)


def test_encode_and_decode_without_numba_name_the_missing_package():
    """The light install (no golden extra) builds tables; coding says what it needs."""
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from golden.codec.plain import encode_tile\n"
            "from golden.codec.tables import build_table\n"
            "t = build_table(np.arange(4), 2, 3, signed=False, histogram=False)\n"
            "encode_tile(np.arange(4), t)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: Golden Huffman encode and decode need numba: "
        "pip install 'actcomp[golden]'")


def test_light_install_imports_neither_torch_nor_numba():
    """hdl/ and the torch-free core (golden.codec, golden.datapath) import without PyTorch or
    numba: the Verilog-only install has neither."""
    code = ("import importlib, pkgutil, sys\n"
            "import golden.codec, golden.datapath, hdl\n"
            "for pkg in (golden.codec, golden.datapath, hdl):\n"
            "    for m in pkgutil.iter_modules(pkg.__path__):\n"
            "        if m.name not in ('kernels', '__main__'):\n"
            "            importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
            "print(sorted(m for m in ('torch', 'numba') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout == "[]\n"
