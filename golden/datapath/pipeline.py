"""The integer pipeline of one layer artifact, stage by stage, as the RTL computes it.

1. ``quantize_input``: ``x_int = quantize(x, x_scale, in_bits)``, the activation as the previous
   layer stores it.
2. ``forward_int``: ``y_int[k] = clamp_g(requantize(fwd_weight[k] @ x_int + fwd_bias[k],
   fwd_mult[k], fwd_shift[k], out_bits=coef_bits))``: the forward MAC saturates to the widest
   group ``coef_bits``, then component ``k`` is clamped to the signed range of its group's width.
3. Huffman coding, one table per group (``golden.codec.plain.encode_groups``; ``coded_bits``
   counts its payload).
4. ``inverse_int``: ``x_rec_int[c] = requantize(inv_weight[c] @ y_int + inv_bias[c],
   inv_mult[c], inv_shift[c], out_bits, relu)``; the reconstruction is ``x_rec_int * out_scale``.

``roundtrip`` runs all of it on floats; ``layer_vectors`` returns every stage for testbenches.
Torch-free: the RTL generator and the testbenches use it.
"""

from __future__ import annotations

import numpy as np

from golden.codec.plain import encode_groups
from golden.datapath.artifacts import LayerArtifact
from golden.datapath.mac import matvec
from golden.datapath.quant import int_range, quantize, requantize

__all__ = ["coded_bits", "forward_int", "inverse_int", "layer_vectors", "quantize_input",
           "roundtrip"]


def _exact_matvec(x, weight, bias, mult, shift, in_bits, w_bits, out_bits, relu):
    """``golden.datapath.mac.matvec`` through a float64 product, exact while every partial sum stays
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
    ``golden.datapath.mac.matvec`` itself (slower, same result)."""
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


def coded_bits(art: LayerArtifact, y_int, tile_rows: int | None = None) -> int:
    """Stage 3's payload size in bits (the ``nbits`` of ``encode_groups``), from histograms.

    A run-length group (bitstream version 2) is coded tile by tile, its columns of every row
    of the tile in row-major order (runs never cross a tile): ``tile_rows`` rows per tile
    (the last one may be shorter); None makes all of ``y_int`` one tile. Plain groups do not
    depend on the tiling."""
    from golden.codec.runlength import tile_bits

    y_int = np.asarray(y_int, dtype=np.int64)
    n = y_int.shape[0]
    step = n if not tile_rows else int(tile_rows)
    total = 0
    for t, lo, hi in zip(art.tables.tables, art.group_bounds[:-1], art.group_bounds[1:]):
        if t.run_max:
            total += sum(tile_bits(y_int[s:s + step, lo:hi], t) for s in range(0, n, max(step, 1)))
            continue
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

    Computed with the reference ``golden.datapath.mac.matvec``. Keys: ``x`` (N, C) float64 input,
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
