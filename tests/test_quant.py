"""The integer datapath contract (golden/datapath/quant.py) against obviously correct Python
integers."""

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.datapath.quant import acc_bits, choose_multiplier, int_range, quantize, requantize


def reference_requant(acc, mult, shift, out_bits, relu):
    """The rule in words: multiply, add half, floor-divide by 2**shift, saturate, clamp at 0
    for ReLU. Python integers throughout (exact at any shift; no float, no ``>>``)."""
    value = acc * mult
    if shift:
        value += 1 << (shift - 1)
    value = value // (1 << shift)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    if relu:
        lo = 0
    return min(hi, max(lo, value))


@settings(max_examples=2000, deadline=None)
@given(acc=st.integers(-(1 << 47), (1 << 47) - 1), mult=st.integers(0, (1 << 32) - 1),
       shift=st.integers(0, 127), out_bits=st.integers(2, 32), relu=st.booleans())
def test_requantize_matches_reference(acc, mult, shift, out_bits, relu):
    got = requantize([acc], [mult], [shift], out_bits=out_bits, relu=relu)[0]
    assert got == reference_requant(acc, mult, shift, out_bits, relu)


def test_requantize_rounds_ties_up_in_both_signs():
    # x.5 goes towards +infinity: 2.5 -> 3, -2.5 -> -2, 0.5 -> 1, -0.5 -> 0.
    got = requantize([5, -5, 1, -1, 3, -3], 1, 1)
    np.testing.assert_array_equal(got, [3, -2, 1, 0, 2, -1])


def test_requantize_saturates_both_ends_and_relu():
    np.testing.assert_array_equal(requantize([1000, -1000, 127, -128], 1, 0), [127, -128, 127,
                                                                                 -128])
    np.testing.assert_array_equal(requantize([1000, -1000, -1], 1, 0, relu=True), [127, 0, 0])
    np.testing.assert_array_equal(requantize([1 << 20], 1, 0, out_bits=4), [7])


def test_requantize_int64_and_python_paths_agree():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 31), 1 << 31, 5000)
    mult = rng.integers(0, 1 << 16, 5000)
    shift = rng.integers(0, 63, 5000)
    fast = requantize(acc, mult, shift)
    slow = [reference_requant(int(a), int(m), int(s), 8, False)
            for a, m, s in zip(acc, mult, shift)]
    np.testing.assert_array_equal(fast, slow, err_msg="int64 fast path differs from Python ints")


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"mult": -1, "shift": 0}, ValueError, r"^Requantization multiplier must be non-negative$"),
    ({"mult": 1, "shift": -1}, ValueError, r"^Requantization shift must be between 0 and 127$"),
    ({"mult": 1, "shift": 128}, ValueError, r"^Requantization shift must be between 0 and 127$"),
    ({"mult": 1, "shift": 0, "out_bits": 1}, ValueError,
     r"^Output width must be between 2 and 32, not 1$"),
    ({"mult": 1, "shift": 0, "out_bits": 8.0}, TypeError, r"^Output width must be an integer"),
])
def test_requantize_rejects_bad_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        requantize([1], **kwargs)


@settings(max_examples=300, deadline=None)
@given(in_bits=st.integers(2, 16), w_bits=st.integers(2, 16), k=st.integers(1, 4096),
       bias_bits=st.integers(1, 40))
def test_acc_bits_is_the_smallest_width_that_holds_every_sum(in_bits, w_bits, k, bias_bits):
    width = acc_bits(in_bits, w_bits, k, bias_bits)
    a_lo, a_hi = int_range(in_bits)
    w_lo, w_hi = int_range(w_bits)
    b_lo, b_hi = int_range(bias_bits)
    top = k * a_lo * w_lo + b_hi            # most positive reachable sum
    bottom = k * a_lo * w_hi + b_lo         # most negative reachable sum
    lo, hi = int_range(width)
    assert lo <= bottom and top <= hi
    lo1, hi1 = int_range(width - 1)
    assert bottom < lo1 or top > hi1, "a narrower accumulator would also do"


def test_acc_bits_brute_force_small():
    # Enumerate every input, weight and bias for tiny widths and K = 2.
    vals3 = range(-4, 4)
    vals2 = range(-2, 2)
    sums = [a0 * w0 + a1 * w1 + b for a0 in vals3 for a1 in vals3 for w0 in vals2
            for w1 in vals2 for b in vals2]
    width = acc_bits(3, 2, 2, 2)
    lo, hi = int_range(width)
    assert lo <= min(sums) and max(sums) <= hi
    lo1, hi1 = int_range(width - 1)
    assert min(sums) < lo1 or max(sums) > hi1


def test_quantize_rounds_half_to_even_and_saturates():
    np.testing.assert_array_equal(quantize([0.5, 1.5, 2.5, -0.5, -1.5], 1.0, 8), [0, 2, 2, 0, -2])
    np.testing.assert_array_equal(quantize([1e9, -1e9], 0.1, 8), [127, -128])
    np.testing.assert_array_equal(quantize([1e9, -1e9], 0.1, 4, signed=False), [15, 0])
    np.testing.assert_array_equal(quantize([[1.0, 1.0]], [0.5, 0.25], 8), [[2, 4]])


@pytest.mark.parametrize("x, scale, msg", [
    ([np.nan], 1.0, r"^Cannot quantize NaN$"),
    ([1.0], 0.0, r"^Scale must be positive and finite$"),
    ([1.0], np.inf, r"^Scale must be positive and finite$"),
])
def test_quantize_rejects_bad_input(x, scale, msg):
    with pytest.raises(ValueError, match=msg):
        quantize(x, scale, 8)


@settings(max_examples=500, deadline=None)
@given(real=st.floats(1e-9, 1e3), mult_bits=st.integers(8, 32))
def test_choose_multiplier_is_accurate(real, mult_bits):
    try:
        mult, shift = choose_multiplier([real], mult_bits)
    except ValueError as exc:
        assert re.match(r"^Requantization scale .* needs more than \d+ multiplier bits$",
                        str(exc))
        assert real > (1 << mult_bits) - 1
        return
    m, s = int(mult[0]), int(shift[0])
    assert 0 < m < (1 << mult_bits)
    # Error at most half an ulp of the chosen multiplier, in exact rational arithmetic.
    assert abs(Fraction(m, 1 << s) - Fraction(real)) <= Fraction(1, 1 << (s + 1))
    if s < 62:
        # real * 2**(s + 1) is exact in float64 (a power-of-two scaling).
        assert round(real * 2 ** (s + 1)) >= (1 << mult_bits), "a larger shift would fit"
