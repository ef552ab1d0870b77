"""golden.codec.runlength: run-length mode tables, greedy runs, round trips and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.codec.container import parse_table
from golden.codec.errors import AlphabetError, CorruptStreamError
from golden.codec.plain import encode_tile
from golden.codec.runlength import (
    build_rl_table,
    decode_rl_tile,
    encode_rl_tile,
    fit_tables,
    rl_indices,
    tile_bits,
)
from golden.codec.tables import build_table


def test_alphabet_layout_and_serialized_flags():
    t = build_rl_table([0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 3], bits=4, max_len=8, run_max=8)
    assert t.run_max == 8 and t.lengths.size == 16 + 1 + 8
    assert t.lengths[0] == 0, "zero is only ever coded as a run"
    assert t.lengths[16] > 0 and t.lengths[17] > 0, "ESC and RUN_1 always coded with escape"
    data = t.serialize()
    assert data[2] == 0b11 and data[3] == 3  # escape + run-length flags, log2(R)
    assert parse_table(data) == t


def test_greedy_runs_use_longest_coded_length():
    t = build_rl_table(np.r_[np.zeros(5, int), 1], bits=2, max_len=6, run_max=4)
    # Runs of 5 -> RUN_4 + RUN_1 in calibration.
    coded = t.lengths > 0
    entries = rl_indices(np.r_[np.zeros(11, int), 1, 0], 2, True, coded, 4)
    assert entries.tolist() == [4 + 4, 4 + 4, 4 + 1, 4 + 1, 4 + 1, 1, 4 + 1]


def test_run_length_beats_plain_on_sparse_data():
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, 100000)
    x[rng.random(x.size) < 0.97] = 0
    plain = build_table(x, 4, 12)
    rl = build_rl_table(x, 4, 12)
    _, nb_plain = encode_tile(x, plain)
    _, nb_rl = encode_rl_tile(x, rl)
    assert nb_plain >= x.size  # at least one bit per symbol
    assert nb_rl < 0.5 * nb_plain


def test_errors():
    t = build_rl_table([0, 0, 1, 0, 2], bits=3, max_len=6, run_max=2)
    words, nbits = encode_rl_tile([0, 0, 1, 0, 2], t, 8)
    with pytest.raises(CorruptStreamError, match=r"codes 5 values, not 6"):
        decode_rl_tile(words, nbits, 6, t, 8)
    with pytest.raises(ValueError, match=r"need their payload bit count"):
        decode_rl_tile(words, None, 5, t, 8)
    with pytest.raises(CorruptStreamError, match=r"cannot hold"):
        decode_rl_tile(words, nbits, 10 ** 9, t, 8)
    t2 = build_rl_table([0, 0, 1, 0, 0], bits=3, max_len=6, run_max=2, escape=False)
    with pytest.raises(AlphabetError, match=r"^Value 2 has no code and the table has no escape$"):
        encode_rl_tile([2], t2)
    with pytest.raises(AlphabetError, match=r"cannot be written"):
        encode_rl_tile([0], t2)
    with pytest.raises(ValueError, match=r"power of two"):
        build_rl_table([0], 3, 6, run_max=3)
    with pytest.raises(ValueError, match=r"use encode_tile"):
        encode_rl_tile([0], build_table([0], 3, 6, histogram=False))


@given(st.data())
@settings(max_examples=80, deadline=None)
def test_round_trip_random(data):
    bits = data.draw(st.integers(1, 8))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    p_zero = data.draw(st.floats(0, 1))
    n = data.draw(st.integers(0, 400))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.integers(lo, hi + 1, n)
    x[rng.random(n) < p_zero] = 0
    run_max = data.draw(st.sampled_from([None, 1, 4, 64, 256]))
    t = build_rl_table(x, bits, 24, run_max=run_max)
    assert t.lengths.max() <= 24
    y = rng.integers(lo, hi + 1, 50)
    y[rng.random(50) < p_zero] = 0
    values = np.r_[y, x]
    w = data.draw(st.sampled_from([8, 16, 32, 64]))
    words, nbits = encode_rl_tile(values, t, w)
    np.testing.assert_array_equal(decode_rl_tile(words, nbits, values.size, t, w), values)


def sparse(n, density, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, n)
    x[rng.random(n) >= density] = 0
    return x


def test_tile_bits_is_the_encoders_nbits_in_both_modes():
    x = sparse(5000, 0.1)
    for t in (build_table(x, 4, 12), build_rl_table(x, 4, 12),
              build_rl_table(x, 4, 12, run_max=1)):
        encode = encode_rl_tile if t.run_max else encode_tile
        assert tile_bits(x, t) == encode(x, t)[1]
    t = build_rl_table([0, 1], bits=3, max_len=6, run_max=2, escape=False)
    with pytest.raises(AlphabetError, match=r"no code"):
        tile_bits([2], t)


def test_fit_tables_modes():
    dense, rare = sparse(4000, 0.9, seed=1), sparse(4000, 0.05, seed=2)
    groups, widths = [dense, rare], [4, 3]
    off = fit_tables(groups, widths, 12, "off")
    on = fit_tables(groups, widths, 12, "on")
    assert [t.run_max for t in off] == [0, 0] and all(t.run_max for t in on)
    assert [t.bits for t in on] == widths
    cost = {m: sum(tile_bits(v, t) for v, t in zip(groups, ts))
            for m, ts in (("off", off), ("on", on))}
    assert cost["on"] < cost["off"], "mostly-zero data: run-length wins over both groups"
    assert fit_tables(groups, widths, 12, "auto") == on
    # No zeros: a run symbol buys nothing, plain is no larger, and a tie goes to plain.
    nonzero = np.random.default_rng(3).integers(1, 8, 4000)
    assert fit_tables([nonzero], [4], 12, "auto")[0].run_max == 0
    assert fit_tables([np.ones(100, int)], [4], 12, "auto")[0].run_max == 0
    with pytest.raises(ValueError, match=r"^Run-length mode must be one of off, on, auto, not 'yes'$"):
        fit_tables(groups, widths, 12, "yes")
