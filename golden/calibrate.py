"""Coefficient quantization with calibrated scales, folded into integer layer artifacts.

``calibrate_layer`` turns a float ``Projection`` and calibration activations of one point into
a ``LayerArtifact``: the integers of the forward projection (activation -> coefficients), the
per-group Huffman tables of the coefficients, and the inverse projection (coefficients ->
reconstructed activation). The integer pipeline, shared with the RTL through
``golden.quant`` and ``golden.mac``:

1. ``x_int = quantize(x, x_scale, in_bits)``, the activation as the previous layer stores it.
2. ``y_int[k] = clamp_g(requantize(fwd_weight[k] @ x_int + fwd_bias[k], fwd_mult[k],
   fwd_shift[k], out_bits=coef_bits))``: the forward MAC saturates to the widest group
   ``coef_bits``, then component ``k`` is clamped to the signed range of its group's width
   (a no-op when all groups share one width).
3. Huffman coding, one table per group (``golden.huffman.encode_groups``).
4. ``x_rec_int[c] = requantize(inv_weight[c] @ y_int + inv_bias[c], inv_mult[c],
   inv_shift[c], out_bits, relu)``; the reconstruction is ``x_rec_int * out_scale``.

Scales: the activation scale and the coefficient scales come from ``clip_scale`` (max-abs,
percentile, an MSE-optimal clip, or TensorRT's KL-divergence calibration), per component or
one per group ("per layer"); the activation step defaults to the MSE clip. A non-negative
point (a ReLU or ReLU6 output) is best stored unsigned: ``activation_format`` gives the widths
(``in_bits + 1`` signed at the MACs, ``relu`` on the reconstruction) that
``calibrate_network`` and the CLI use for it. The per-component coefficient scales ``s`` are
folded into the integers, never carried by the hardware: the forward multiplier of component
``k`` is ``x_scale * w_k / s_k`` (``w_k`` its weight row's scale) and the inverse weights quantize
``S2 * s`` per output channel. Mixed precision: components split into index groups
(``group_bounds``), each with its own width (``group_bits``) and table.
"""

from __future__ import annotations

import numpy as np

from golden.artifacts import LayerArtifact
from golden.huffman import build_table, encode_groups
from golden.huffman_container import TableSet
from golden.mac import matvec
from golden.projection import Projection
from golden.quant import choose_multiplier, int_range, quantize, requantize

__all__ = [
    "METHODS",
    "activation_format",
    "calibrate_layer",
    "calibrate_network",
    "clip_scale",
    "coded_bits",
    "component_scales",
    "forward_int",
    "inverse_int",
    "layer_vectors",
    "quantize_input",
    "roundtrip",
    "split_groups",
]

METHODS = ("max", "percentile", "mse", "kl")


# ---------------------------------------------------------------------------------------------
# Scale calibration


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


# ---------------------------------------------------------------------------------------------
# The integer pipeline


def _exact_matvec(x, weight, bias, mult, shift, in_bits, w_bits, out_bits, relu):
    """``golden.mac.matvec`` through a float64 product, exact while every partial sum stays
    below 2**53 (checked); used on whole feature maps, where the integer path is slow."""
    k = weight.shape[1]
    if in_bits + w_bits + int(np.ceil(np.log2(k + 1))) >= 52:
        return matvec(x, weight, bias, mult, shift, in_bits=in_bits, w_bits=w_bits,
                      bias_bits=64, out_bits=out_bits, relu=relu)
    acc = (x.astype(np.float64) @ weight.T.astype(np.float64)).astype(np.int64) + bias
    return requantize(acc, mult[None, :], shift[None, :], out_bits=out_bits, relu=relu)


def _group_clamp(art: LayerArtifact, y: np.ndarray) -> np.ndarray:
    lo = np.empty(art.k, dtype=np.int64)
    hi = np.empty(art.k, dtype=np.int64)
    for a, b, bits in zip(art.group_bounds[:-1], art.group_bounds[1:], art.group_bits):
        lo[a:b], hi[a:b] = int_range(int(bits))
    return np.clip(y, lo, hi)


def _pixels(art: LayerArtifact, a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 1 or a.shape[-1] != art.channels:
        raise ValueError(f"{name} must be channels-last with {art.channels} channels, not shape "
                         f"{a.shape}")
    return a.reshape(-1, art.channels)


def quantize_input(art: LayerArtifact, x) -> np.ndarray:
    """Stage 1: float activations (..., C) -> ``x_int`` (N, C) at ``x_scale``, ``in_bits``."""
    return quantize(_pixels(art, x, "Activations"), art.x_scale, art.in_bits)


def forward_int(art: LayerArtifact, x_int, reference: bool = False) -> np.ndarray:
    """Stage 2: ``x_int`` (N, C) -> coefficients ``y_int`` (N, K). ``reference=True`` runs
    ``golden.mac.matvec`` itself (slower, same result)."""
    x_int = _pixels(art, x_int, "Quantized activations")
    if reference:
        y = matvec(x_int, art.fwd_weight, art.fwd_bias, art.fwd_mult, art.fwd_shift,
                   in_bits=art.in_bits, w_bits=art.w_bits, bias_bits=art.bias_bits,
                   out_bits=art.coef_bits)
    else:
        y = _exact_matvec(x_int, art.fwd_weight, art.fwd_bias, art.fwd_mult, art.fwd_shift,
                          art.in_bits, art.w_bits, art.coef_bits, False)
    return _group_clamp(art, y)


def inverse_int(art: LayerArtifact, y_int, reference: bool = False) -> np.ndarray:
    """Stage 4: coefficients ``y_int`` (N, K) -> reconstruction ``x_rec_int`` (N, C)."""
    y_int = np.asarray(y_int)
    if y_int.ndim != 2 or y_int.shape[1] != art.k:
        raise ValueError(f"Coefficients must have shape (N, {art.k}), not {y_int.shape}")
    if reference:
        return matvec(y_int, art.inv_weight, art.inv_bias, art.inv_mult, art.inv_shift,
                      in_bits=art.coef_bits, w_bits=art.w_bits, bias_bits=art.bias_bits,
                      out_bits=art.out_bits, relu=art.relu)
    return _exact_matvec(y_int, art.inv_weight, art.inv_bias, art.inv_mult, art.inv_shift,
                         art.coef_bits, art.w_bits, art.out_bits, art.relu)


def coded_bits(art: LayerArtifact, y_int) -> int:
    """Stage 3's payload size in bits (the ``nbits`` of ``encode_groups``), from histograms."""
    y_int = np.asarray(y_int, dtype=np.int64)
    total = 0
    for t, lo, hi in zip(art.tables.tables, art.group_bounds[:-1], art.group_bounds[1:]):
        idx = y_int[:, lo:hi].ravel() & ((1 << t.bits) - 1)
        hist = np.bincount(idx, minlength=1 << t.bits)
        total += int((hist * t.enc_len[: 1 << t.bits]).sum())
    return total


def roundtrip(art: LayerArtifact, x) -> tuple[np.ndarray, np.ndarray]:
    """Float activations (..., C) through the whole integer pipeline.

    Returns ``(x_rec, y_int)``: the reconstruction as floats in the shape of ``x``
    (``x_rec_int * out_scale``) and the coefficients (N, K).
    """
    x = np.asarray(x)
    y_int = forward_int(art, quantize_input(art, x))
    x_rec = inverse_int(art, y_int).astype(np.float64) * art.out_scale
    return x_rec.reshape(x.shape), y_int


def layer_vectors(art: LayerArtifact, activations, word_bits: int = 32) -> dict:
    """Every integer stage for channels-last ``activations`` (..., C): the testbench vectors.

    Computed with the reference ``golden.mac.matvec``. Keys: ``x`` (N, C) float64 input,
    ``x_int`` (N, C), ``y_int`` (N, K), ``words`` (uint64 holding ``word_bits``-bit words,
    MSB-first, ``encode_groups``), ``nbits``, ``x_rec_int`` (N, C), ``x_rec`` (N, C) floats.
    """
    x = _pixels(art, activations, "Activations").astype(np.float64)
    x_int = quantize_input(art, x)
    y_int = forward_int(art, x_int, reference=True)
    words, nbits = encode_groups(y_int, art.tables.tables, art.group_bounds.tolist(),
                                 word_bits=word_bits)
    x_rec_int = inverse_int(art, y_int, reference=True)
    return {"x": x, "x_int": x_int, "y_int": y_int, "words": np.asarray(words, np.uint64),
            "nbits": int(nbits), "x_rec_int": x_rec_int,
            "x_rec": x_rec_int.astype(np.float64) * art.out_scale}


# ---------------------------------------------------------------------------------------------
# Folding


def _row_scales(m, bits):
    """Per-row step so each row's largest magnitude maps to the largest weight."""
    qmax = (1 << (bits - 1)) - 1
    amax = np.abs(m).max(axis=1)
    return np.where(amax > 0, amax / qmax, 1.0)


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


def calibrate_layer(projection: Projection, x, *, name: str = "layer", group_bits=(8,),
                    group_bounds=None, method: str = "mse", granularity: str = "component",
                    x_method: str = "mse", percentile: float = 99.99, in_bits: int = 8,
                    w_bits: int = 8, bias_bits: int = 32, mult_bits: int = 16,
                    out_bits: int | None = None, relu: bool = False, max_len: int = 12,
                    min_step: float = 0.5, bias_correction: bool = False) -> LayerArtifact:
    """Fold a float projection and calibration activations into an integer ``LayerArtifact``.

    Parameters
    ----------
    projection : Projection
        ``forward`` S1 (K, C), ``inverse`` S2 (C, K), ``mean`` (C,).
    x : array_like of float, shape (..., C)
        Calibration activations, channels-last (a pixel sample is enough).
    group_bits, group_bounds
        Coefficient widths per group and the group edges ``[0, ..., K]``; without bounds the
        components are split evenly (``split_groups``).
    method, granularity, percentile
        Coefficient scale calibration (``clip_scale``; per component or one per group).
    x_method
        Calibration of the activation step ``x_scale`` (``clip_scale``). Default ``mse``: on
        MobileNetV2 the max-abs step's rounding, not the MSE clip's saturation, is what costs
        agreement on held-out photos (docs/projections.md).
    in_bits, w_bits, bias_bits, mult_bits, out_bits, relu
        Widths of the datapath (``out_bits`` defaults to ``in_bits``; the reconstruction then
        has the activation's own format, ``out_scale = x_scale``).
    max_len
        Maximum Huffman code length; every table has an escape code.
    min_step
        Floor of every coefficient step, in units of the activation's 8-bit step
        (``x_scale`` when ``in_bits`` is 8; the clip over 127 in general). A component that barely
        varies on the calibration pixels (common in deep layers, where a few photos give fewer
        pixels than channels) would otherwise get a tiny step and saturate on other photos;
        the input's own rounding noise (``x_scale / sqrt(12)`` per unit-norm row) makes finer
        steps pointless anyway. 0 disables the floor.
    bias_correction
        Fold the mean reconstruction error per channel on the calibration pixels into
        ``inv_bias`` (three passes, since the ``relu`` clamp moves the mean again): truncation,
        rounding and the clamp of a non-negative map at 0 bias every channel the same way
        pixel after pixel, and the next layers sum that bias coherently.

    Raises
    ------
    ValueError
        On inconsistent shapes or widths, or a bias that does not fit ``bias_bits``.
    """
    if not isinstance(projection, Projection):
        raise TypeError(f"Projection must be a golden.projection.Projection, not "
                        f"{type(projection).__name__}")
    c, k = projection.channels, projection.k
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != c:
        raise ValueError(f"Calibration activations must be channels-last with {c} channels, "
                         f"not shape {x.shape}")
    x = x.reshape(-1, c)
    if group_bounds is None:
        group_bounds, group_bits = split_groups(k, group_bits)
    group_bounds = np.asarray(group_bounds, dtype=np.int64)
    group_bits = np.asarray(group_bits, dtype=np.int64)
    out_bits = in_bits if out_bits is None else out_bits
    x_scale = clip_scale(x, in_bits, x_method, percentile=percentile)
    out_scale = x_scale * 2.0 ** (in_bits - out_bits)
    x_int = quantize(x, x_scale, in_bits)

    # Forward: acc_k = Wf[k] @ x_int + bf[k] ~ S1[k] @ (x - mean) / (w_k * x_scale).
    s1 = projection.forward
    w_f = _row_scales(s1, w_bits)
    fwd_weight = quantize(s1 / w_f[:, None], 1.0, w_bits)
    fwd_bias = np.rint(-(fwd_weight @ projection.mean) / x_scale).astype(np.int64)
    _check_bias("Forward", fwd_bias, bias_bits)
    acc = (x_int.astype(np.float64) @ fwd_weight.T.astype(np.float64)) + fwd_bias
    y_float = acc * (w_f * x_scale)
    s = component_scales(y_float, group_bounds, group_bits, method, granularity,
                         percentile=percentile)
    if min_step > 0:
        # In units of the activation's 8-bit step, whatever in_bits is.
        s = np.maximum(s, min_step * x_scale * ((1 << (in_bits - 1)) - 1) / 127)
    fwd_mult, fwd_shift = choose_multiplier(x_scale * w_f / s, mult_bits)

    # Inverse: x ~ (S2 * s) @ y_int + mean, weights per output channel.
    a = projection.inverse * s[None, :]
    v = _row_scales(a, w_bits)
    # A bias that would overflow bias_bits widens the step of that channel instead.
    v = np.maximum(v, np.abs(projection.mean) / ((1 << (bias_bits - 1)) - 1))
    inv_weight = quantize(a / v[:, None], 1.0, w_bits)
    inv_bias = np.rint(projection.mean / v).astype(np.int64)
    _check_bias("Inverse", inv_bias, bias_bits)
    inv_mult, inv_shift = choose_multiplier(v / out_scale, mult_bits)

    placeholder = TableSet([build_table(np.zeros(1, np.int64), int(b), max_len)
                            for b in group_bits], group_bounds.tolist())
    art = LayerArtifact(name, fwd_weight, fwd_bias, fwd_mult, fwd_shift, inv_weight, inv_bias,
                        inv_mult, inv_shift, in_bits, w_bits, bias_bits, out_bits, mult_bits,
                        relu, x_scale, out_scale, group_bounds, group_bits, placeholder)
    y_int = forward_int(art, x_int)
    art.tables = TableSet([build_table(y_int[:, lo:hi].ravel(), int(b), max_len,
                                       histogram=False)
                           for lo, hi, b in zip(group_bounds[:-1], group_bounds[1:],
                                                group_bits)], group_bounds.tolist())
    if bias_correction:
        # Bounded: a channel stuck at a saturation limit must not drive its bias away.
        reach = out_scale * (1 << (out_bits - 1))
        lo, hi = int_range(bias_bits)
        for _ in range(3):
            err = np.clip((inverse_int(art, y_int) * out_scale - x).mean(axis=0), -reach, reach)
            art.inv_bias = np.clip(art.inv_bias - np.rint(err / v), lo, hi).astype(np.int64)
    art.validate()
    return art


def _check_bias(which, bias, bits):
    lo, hi = int_range(bits)
    if bias.min() < lo or bias.max() > hi:
        raise ValueError(f"{which} projection bias needs more than {bits} bits "
                         f"(range {int(bias.min())}..{int(bias.max())}); raise the bias width")


def calibrate_network(model, x_calib, *, points=None, threshold: float | None = None,
                      ks: dict | None = None, max_pixels: int = 20_000, seed: int = 0,
                      unsigned="auto", progress: bool = False,
                      **layer_kwargs) -> dict[str, LayerArtifact]:
    """PCA and integer artifacts for every point of any ``torch.nn.Module``.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; its points default to ``golden.capture.activation_points(model)``.
    x_calib : torch.Tensor
        Calibration inputs (N, ...).
    threshold : float, optional
        Eigen-energy threshold choosing k per point (``k_for_energy``).
    ks : dict of str to int, optional
        k per point instead (capped at the channel count). Exactly one of the two.
    max_pixels, seed
        Calibration pixels sampled per point (``golden.capture.sample_pixels``).
    unsigned : {"auto", True, False}
        Storage of each point's activations (``activation_format`` with ``layer_kwargs``'
        ``in_bits``, default 8): by default a point with no negative calibration value is
        stored unsigned (``in_bits + 1`` at the MACs, ``relu`` on the reconstruction).
    layer_kwargs
        Passed to ``calibrate_layer`` (group widths, scale method, widths, ...); ``relu=True``
        clamps every point's reconstruction.

    Returns
    -------
    dict of str to LayerArtifact
        In point order; evaluate them with ``golden.report.evaluate``.
    """
    from golden.capture import activation_points, sample_pixels
    from golden.projection import k_for_energy, pca_fit

    if (threshold is None) == (ks is None):
        raise ValueError("Give exactly one of threshold and ks")
    points = activation_points(model) if points is None else list(points)
    samples = sample_pixels(model, x_calib, points, max_pixels=max_pixels, seed=seed,
                            progress=progress)
    arts = {}
    for p in points:
        x = samples[p].astype(np.float64)
        proj = pca_fit(x)
        if ks is None:
            k = k_for_energy(proj.eigenvalues, threshold)
        elif p not in ks:
            raise ValueError(f"No component count given for point {p!r}")
        else:
            k = min(int(ks[p]), proj.channels)
        kw = dict(layer_kwargs)
        in_bits, relu = activation_format(x, kw.pop("in_bits", 8), unsigned)
        kw["relu"] = relu or kw.get("relu", False)
        arts[p] = calibrate_layer(proj.truncate(k), x, name=p, in_bits=in_bits, **kw)
    return arts
