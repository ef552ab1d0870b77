"""The integer datapath contract, defined once.

Every rounding, saturation and width rule of the datapath lives here; the RTL matches these
functions bit for bit. ``docs/datapath.md`` states the same rules in prose.

Rules
-----
* ``quantize``: ``q = clamp(round_half_even(x / scale), lo, hi)`` with the b-bit range
  ``[-2**(b-1), 2**(b-1) - 1]`` (signed) or ``[0, 2**b - 1]`` (unsigned). Floating point
  exists only here, before integer artifacts are made.
* ``requantize``: ``y = (acc * mult + round) >> shift`` with ``round = 2**(shift-1)`` when
  ``shift > 0`` (else 0) and an arithmetic (floor) shift, so ties round towards +infinity
  (+2.5 -> 3, -2.5 -> -2). Then ``y`` saturates to the signed ``out_bits`` range, and with
  ``relu`` its lower bound is 0. ``mult`` is unsigned, ``0 <= mult < 2**mult_bits``.
* ``acc_bits``: the smallest signed width that holds every possible sum of ``k`` products of a
  signed ``in_bits`` input and a signed ``w_bits`` weight plus a signed ``bias_bits`` bias, so
  an accumulator of that width can never overflow.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "acc_bits",
    "choose_multiplier",
    "int_range",
    "quantize",
    "requantize",
    "requant_product_bits",
]


def _check_bits(name: str, bits, lo: int = 1, hi: int = 64) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {bits!r}")
    if not lo <= bits <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {bits}")
    return int(bits)


def int_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """Return the inclusive ``(lo, hi)`` range of a ``bits``-wide integer."""
    bits = _check_bits("Bit width", bits)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def quantize(x, scale, bits: int, signed: bool = True) -> np.ndarray:
    """Quantize floats to ``bits``-bit integers.

    Parameters
    ----------
    x : array_like of float
    scale : float or array_like of float
        Positive step size, broadcast against ``x`` (a per-channel scale indexes the last axis).
    bits : int
        Output width, 1 to 32.
    signed : bool
        Two's-complement range when true, else ``[0, 2**bits - 1]``.

    Returns
    -------
    numpy.ndarray of int64
        ``clip(rint(x / scale), lo, hi)``; ``rint`` rounds half to even. NaN is an error.
    """
    bits = _check_bits("Bit width", bits, 1, 32)
    x = np.asarray(x, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(scale > 0) or not np.all(np.isfinite(scale)):
        raise ValueError("Scale must be positive and finite")
    if np.isnan(x).any():
        raise ValueError("Cannot quantize NaN")
    lo, hi = int_range(bits, signed)
    q = np.rint(x / scale)
    return np.clip(q, lo, hi).astype(np.int64)


def requant_product_bits(acc_width: int, mult_bits: int) -> int:
    """Width of the signed product ``acc * mult`` (mult unsigned)."""
    return acc_width + mult_bits


def requantize(acc, mult, shift, out_bits: int = 8, relu: bool = False) -> np.ndarray:
    """Requantize integer accumulators by multiplier and shift.

    Parameters
    ----------
    acc : array_like of int
        Signed accumulators (any width up to 48 bits).
    mult : int or array_like of int
        Unsigned multipliers (below ``2**16`` keeps the product within int64 for 48-bit
        accumulators), broadcast against ``acc``.
    shift : int or array_like of int
        Right shifts, ``0 <= shift <= 127`` (shifts past the product width give 0 or -1
        before rounding, exactly as the RTL's wide arithmetic shift does).
    out_bits : int
        Signed output width, 2 to 32.
    relu : bool
        Clamp the lower bound to 0 after saturation.

    Returns
    -------
    numpy.ndarray of int64
        ``clip((acc * mult + (1 << (shift - 1) if shift else 0)) >> shift, lo, hi)``.
    """
    out_bits = _check_bits("Output width", out_bits, 2, 32)
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if (mult < 0).any():
        raise ValueError("Requantization multiplier must be non-negative")
    if (shift < 0).any() or (shift > 127).any():
        raise ValueError("Requantization shift must be between 0 and 127")
    # int64 when the product provably fits, Python integers otherwise: exact either way.
    amax = int(np.abs(acc).max(initial=0))
    mmax = int(mult.max(initial=0))
    if (amax * mmax).bit_length() < 62 and int(shift.max(initial=0)) <= 62:
        half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
        y = (acc * mult + half) >> shift
    else:
        sh = shift.astype(object)
        half = np.vectorize(lambda s: (1 << s) >> 1, otypes=[object])(sh)
        y = (acc.astype(object) * mult.astype(object) + half) >> sh
    lo, hi = int_range(out_bits, True)
    if relu:
        lo = 0
    return np.clip(y, lo, hi).astype(np.int64)


def acc_bits(in_bits: int, w_bits: int, k: int, bias_bits: int = 32) -> int:
    """Smallest signed accumulator width that cannot overflow.

    The extreme sums are ``k * (-2**(in-1)) * (-2**(w-1)) + (2**(bias-1) - 1)`` at the top and
    ``k * (-2**(in-1)) * (2**(w-1) - 1) - 2**(bias-1)`` at the bottom; the width is the
    smallest whose two's-complement range holds both.
    """
    in_bits = _check_bits("Input width", in_bits, 2, 32)
    w_bits = _check_bits("Weight width", w_bits, 2, 32)
    bias_bits = _check_bits("Bias width", bias_bits, 1, 48)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"Term count must be a positive integer, not {k!r}")
    a_lo, a_hi = int_range(in_bits)
    w_lo, w_hi = int_range(w_bits)
    b_lo, b_hi = int_range(bias_bits)
    products = [a_lo * w_lo, a_lo * w_hi, a_hi * w_lo, a_hi * w_hi]
    top = k * max(products) + b_hi
    bottom = k * min(products) + b_lo
    width = max(top.bit_length() + 1, (-bottom - 1).bit_length() + 1)
    return width


def choose_multiplier(real, mult_bits: int = 16, max_shift: int = 62) -> tuple:
    """Approximate positive reals by ``mult / 2**shift`` with an unsigned ``mult_bits`` mult.

    Picks, per element, the largest shift (up to ``max_shift``) for which the rounded
    multiplier still fits ``mult_bits`` bits, which maximises precision. A real of 0 gives
    ``(0, 0)``.

    Returns
    -------
    (mult, shift) : tuple of numpy.ndarray of int64
    """
    mult_bits = _check_bits("Multiplier width", mult_bits, 1, 32)
    real = np.asarray(real, dtype=np.float64)
    if (real < 0).any() or not np.all(np.isfinite(real)):
        raise ValueError("Requantization scale must be non-negative and finite")
    mult = np.zeros(real.shape, dtype=np.int64)
    shift = np.zeros(real.shape, dtype=np.int64)
    limit = (1 << mult_bits) - 1
    for idx, r in np.ndenumerate(real):
        if r == 0:
            continue
        # 2**s * r <= limit gives s = floor(log2(limit / r)); rounding down to the limit may
        # allow one more, so start one higher and step down until the multiplier fits.
        s = min(max_shift, math.floor(math.log2(limit / r)) + 1)
        m = round(r * 2.0 ** s) if s >= 0 else limit + 1
        while m > limit and s >= 0:
            s -= 1
            m = round(r * 2.0 ** s)
        if s < 0 or m > limit:
            raise ValueError(
                f"Requantization scale {r} needs more than {mult_bits} multiplier bits"
            )
        mult[idx], shift[idx] = m, s
    return mult, shift
