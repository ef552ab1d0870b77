"""Quantization steps: how wide a step a value stream gets, and in which format a point's
activations are stored.

``clip_scale`` picks a step from data (max-abs, percentile, an MSE-optimal clip, or TensorRT's
KL-divergence calibration); ``component_scales`` does it per coefficient or per group;
``split_groups`` spreads K components over groups of given widths; ``activation_format`` stores
a non-negative map unsigned. Numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "activation_format", "clip_scale", "component_scales", "split_groups"]

METHODS = ("max", "percentile", "mse", "kl")


def _sample(values, max_samples, seed):
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > max_samples:
        v = v[np.random.default_rng(seed).choice(v.size, max_samples, replace=False)]
    return v


def _mse_clip(v, amax, qmax):
    # Geometric grid from amax down to amax / 256: heavy-tailed coefficients want small clips.
    clips = amax * 2.0 ** -np.linspace(0.0, 8.0, 129)
    best, best_err = amax, np.inf
    for chunk in np.array_split(clips, 8):
        s = (chunk / qmax)[:, None]
        err = np.mean((v[None, :] - np.clip(np.rint(v[None, :] / s), -qmax - 1, qmax) * s) ** 2,
                      axis=1)
        i = int(np.argmin(err))
        if err[i] < best_err:
            best, best_err = float(chunk[i]), float(err[i])
    return best


def _kl_clip(v, amax, qmax, bins=2048):
    """TensorRT's entropy calibration: the threshold whose ``qmax + 1``-level quantized
    histogram of ``|v|`` is closest in KL divergence to the clipped reference histogram."""
    hist, _ = np.histogram(np.abs(v), bins=bins, range=(0.0, amax))
    hist = hist.astype(np.float64)
    levels = qmax + 1
    best, best_kl = bins, np.inf
    for i in np.unique(np.linspace(levels, bins, 160).astype(int)):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        idx = (np.arange(i) * levels) // i
        nz = hist[:i] > 0
        sums = np.bincount(idx, weights=hist[:i], minlength=levels)
        cnt = np.bincount(idx, weights=nz, minlength=levels)
        q = np.where(nz, sums[idx] / np.maximum(cnt[idx], 1), 0.0)
        if p.sum() == 0 or q.sum() == 0:
            continue
        p, q = p / p.sum(), q / q.sum()
        m = p > 0
        kl = float(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-12))))
        if kl < best_kl:
            best, best_kl = i, kl
    return (best + 0.5) * amax / bins


def clip_scale(values, bits: int, method: str = "mse", *, percentile: float = 99.99,
               max_samples: int = 8192, seed: int = 0) -> float:
    """Symmetric quantization step for ``values`` at ``bits`` bits (signed).

    Parameters
    ----------
    values : array_like of float
    bits : int
        Signed width, 2 to 16; the step maps the clip to ``2**(bits-1) - 1``.
    method : {"max", "percentile", "mse", "kl"}
        ``max``: the largest magnitude. ``percentile``: that percentile of the magnitudes.
        ``mse``: the clip (on a geometric grid below the maximum) that minimises the mean
        squared quantization error, clipping included. ``kl``: TensorRT's KL-divergence
        calibration on a 2048-bin histogram of the magnitudes.
    max_samples : int
        Larger inputs are subsampled (seeded) for ``mse`` and ``kl``.

    Returns
    -------
    float
        A positive step; 1.0 when every value is 0.
    """
    if method not in METHODS:
        raise ValueError(f"Calibration method must be one of {', '.join(METHODS)}, "
                         f"not {method!r}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"Bit width must be an integer between 2 and 16, not {bits!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"Percentile must be in (0, 100], not {percentile}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("Calibration values must be finite")
    qmax = (1 << (bits - 1)) - 1
    amax = float(np.abs(v).max(initial=0.0))
    if amax == 0.0:
        return 1.0
    if method == "max":
        clip = amax
    elif method == "percentile":
        clip = float(np.percentile(np.abs(v), percentile)) or amax
    elif method == "mse":
        clip = _mse_clip(_sample(v, max_samples, seed), amax, qmax)
    else:
        clip = _kl_clip(_sample(v, max_samples, seed), amax, qmax)
    return clip / qmax


def split_groups(k: int, group_bits) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size index groups for ``k`` components with the given widths, first group first.

    With fewer components than widths, only the first ``k`` widths are used (one component
    each). Returns ``(group_bounds, group_bits)``.
    """
    bits = [int(b) for b in group_bits]
    if not bits or any(not 2 <= b <= 8 for b in bits):
        raise ValueError(f"Group widths must be a non-empty list of integers between 2 and 8, "
                         f"not {list(group_bits)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"Component count must be a positive integer, not {k!r}")
    g = min(len(bits), int(k))
    bounds = np.rint(np.linspace(0, k, g + 1)).astype(np.int64)
    return bounds, np.asarray(bits[:g], dtype=np.int64)


def component_scales(y, group_bounds, group_bits, method: str = "mse",
                     granularity: str = "component", **kwargs) -> np.ndarray:
    """Coefficient steps (K,) for samples ``y`` (N, K): per component, or one per group
    (``granularity="layer"``), each at its group's width."""
    if granularity not in ("component", "layer"):
        raise ValueError(f"Scale granularity must be 'component' or 'layer', "
                         f"not {granularity!r}")
    y = np.asarray(y, dtype=np.float64)
    scales = np.empty(y.shape[1])
    for lo, hi, bits in zip(group_bounds[:-1], group_bounds[1:], group_bits):
        if granularity == "layer":
            scales[lo:hi] = clip_scale(y[:, lo:hi], int(bits), method, **kwargs)
        else:
            for j in range(lo, hi):
                scales[j] = clip_scale(y[:, j], int(bits), method, seed=j, **kwargs)
    return scales


def activation_format(x, in_bits: int = 8, unsigned="auto") -> tuple[int, bool]:
    """The ``(in_bits, relu)`` of ``calibrate_layer`` that store a point's activations in
    ``in_bits`` bits.

    A signed map keeps ``(in_bits, False)``. A non-negative map (a ReLU or ReLU6 output) is
    stored unsigned, as 8-bit inference stores it: ``x_int`` in ``0 .. 2**in_bits - 1``, a step
    half as large as a signed code of the same width gives. At the MACs that is an
    ``in_bits + 1``-bit signed integer (the stored bits plus a zero sign bit), and the
    reconstruction clamps at 0 (``relu``) into the same range, so the next layer reads the
    format it would have read without compression: ``(in_bits + 1, True)``.

    Parameters
    ----------
    x : array_like of float
        Calibration activations of the point.
    in_bits : int
        Stored width, 2 to 15.
    unsigned : {"auto", True, False}
        ``"auto"``: unsigned when no calibration value is negative.

    Raises
    ------
    ValueError
        On a bad width or ``unsigned`` value, or ``unsigned=True`` with negative activations.
    """
    if isinstance(in_bits, bool) or not isinstance(in_bits, (int, np.integer)) or \
            not 2 <= in_bits <= 15:
        raise ValueError(f"Activation width must be an integer between 2 and 15, "
                         f"not {in_bits!r}")
    if isinstance(unsigned, (bool, np.bool_)):
        unsigned = bool(unsigned)
    elif not (isinstance(unsigned, str) and unsigned == "auto"):
        raise ValueError(f"Unsigned must be 'auto', True or False, not {unsigned!r}")
    if unsigned is False:
        return int(in_bits), False
    negative = float(np.min(np.asarray(x, dtype=np.float64), initial=0.0)) < 0.0
    if unsigned is True and negative:
        raise ValueError("Activations stored unsigned must not be negative")
    return (int(in_bits), False) if negative else (int(in_bits) + 1, True)
