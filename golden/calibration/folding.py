"""Coefficient quantization with calibrated scales, folded into integer layer artifacts.

``calibrate_layer`` turns a float ``Projection`` and calibration activations of one point into
a ``LayerArtifact``: the integers of the forward projection (activation -> coefficients), the
per-group Huffman tables of the coefficients, and the inverse projection (coefficients ->
reconstructed activation), run by the integer pipeline of ``golden.datapath.pipeline``:

1. ``x_int = quantize(x, x_scale, in_bits)``, the activation as the previous layer stores it.
2. ``y_int[k] = clamp_g(requantize(fwd_weight[k] @ x_int + fwd_bias[k], fwd_mult[k],
   fwd_shift[k], out_bits=coef_bits))``: the forward MAC saturates to the widest group
   ``coef_bits``, then component ``k`` is clamped to the signed range of its group's width
   (a no-op when all groups share one width).
3. Huffman coding, one table per group (``golden.codec.plain.encode_groups``).
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

from golden.codec.container import TableSet
from golden.codec.runlength import fit_tables
from golden.codec.tables import build_table
from golden.datapath.artifacts import LayerArtifact
from golden.datapath.pipeline import forward_int, inverse_int
from golden.datapath.quant import choose_multiplier, int_range, quantize
from golden.datapath.scales import clip_scale, component_scales, split_groups
from golden.projection.pca import Projection

__all__ = ["calibrate_layer"]


def _row_scales(m, bits):
    """Per-row step so each row's largest magnitude maps to the largest weight."""
    qmax = (1 << (bits - 1)) - 1
    amax = np.abs(m).max(axis=1)
    return np.where(amax > 0, amax / qmax, 1.0)


def calibrate_layer(projection: Projection, x, *, name: str = "layer", group_bits=(8,),
                    group_bounds=None, method: str = "mse", granularity: str = "component",
                    x_method: str = "mse", percentile: float = 99.99, in_bits: int = 8,
                    w_bits: int = 8, bias_bits: int = 32, mult_bits: int = 16,
                    out_bits: int | None = None, relu: bool = False, max_len: int = 12,
                    min_step: float = 0.5, bias_correction: bool = False,
                    steps=None, run_length: str = "off") -> LayerArtifact:
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
    steps
        Coefficient steps (K,) to fold instead of calibrating them (``method``,
        ``granularity``, ``percentile`` and ``min_step`` are then unused): e.g. the steps an
        allocation chose with ``golden.calibration.allocation.precision_levels``.
    run_length
        Coding mode of the layer's tables (``golden.codec.runlength.fit_tables``): "off"
        plain (bitstream version 1), "on" run-length (version 2), "auto" whichever codes the
        calibration coefficients in fewer bits (one mode for all groups). The calibration
        pixels are coded as one tile, pixel after pixel.

    Raises
    ------
    ValueError
        On inconsistent shapes or widths, or a bias that does not fit ``bias_bits``.
    """
    if not isinstance(projection, Projection):
        raise TypeError(f"Projection must be a golden.projection.pca.Projection, not "
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
    if steps is not None:
        s = np.asarray(steps, dtype=np.float64)
        if s.shape != (k,) or not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError(f"Coefficient steps must be {k} positive numbers, not shape "
                             f"{s.shape}")
    else:
        s = component_scales(y_float, group_bounds, group_bits, method, granularity,
                             percentile=percentile)
    if min_step > 0 and steps is None:
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
    art.tables = TableSet(fit_tables([y_int[:, lo:hi] for lo, hi in zip(group_bounds[:-1],
                                                                        group_bounds[1:])],
                                     group_bits, max_len, run_length), group_bounds.tolist())
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
