"""Golden twin of ``hdl/mac_array.py``: integer matrix-vector product with requantization.

``y[n, c] = requantize(sum_k weight[c, k] * x[n, k] + bias[c], mult[c], shift[c])`` per the
contract in ``golden/datapath/quant.py``. The same function serves the inverse projection (C outputs
from K coefficients) and the forward projection (K outputs from C activations).
"""

from __future__ import annotations

import numpy as np

from golden.datapath.quant import int_range, requantize

__all__ = ["matvec"]


def _check_range(name: str, a: np.ndarray, bits: int) -> None:
    lo, hi = int_range(bits)
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{name} values must fit {bits}-bit signed range [{lo}, {hi}]")


def matvec(x, weight, bias, mult, shift, *, in_bits=8, w_bits=8, bias_bits=32, out_bits=8,
           relu=False) -> np.ndarray:
    """Integer matrix-vector products of a batch of pixels.

    Parameters
    ----------
    x : array_like of int, shape (N, K)
        Signed ``in_bits`` inputs.
    weight : array_like of int, shape (C, K)
        Signed ``w_bits`` weights.
    bias : array_like of int, shape (C,)
        Signed ``bias_bits`` biases.
    mult, shift : array_like of int, shape (C,)
        Per-output-channel requantization parameters.

    Returns
    -------
    numpy.ndarray of int64, shape (N, C)

    Raises
    ------
    ValueError
        On shape mismatches or values outside their widths (never a silent wrap).
    """
    x = np.asarray(x, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.int64)
    bias = np.asarray(bias, dtype=np.int64)
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"Shapes do not chain: x {x.shape}, weight {weight.shape}")
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"Bias shape {bias.shape} does not match {weight.shape[0]} outputs")
    _check_range("Input", x, in_bits)
    _check_range("Weight", weight, w_bits)
    _check_range("Bias", bias, bias_bits)
    # Exact: |x| < 2**31 and |w| < 2**31 with K terms could overflow int64 for huge widths,
    # so accumulate in Python integers when the bound says it might.
    if in_bits + w_bits + int(np.ceil(np.log2(max(weight.shape[1], 1) + 1))) < 62:
        acc = x @ weight.T + bias
    else:
        acc = (x.astype(object) @ weight.T.astype(object)) + bias.astype(object)
    return requantize(acc, np.asarray(mult)[None, :], np.asarray(shift)[None, :],
                      out_bits=out_bits, relu=relu)
