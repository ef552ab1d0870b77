"""Calibration of a whole network: PCA and integer artifacts for every activation point."""

from __future__ import annotations

import numpy as np

from golden.calibration.folding import calibrate_layer
from golden.datapath.artifacts import LayerArtifact
from golden.datapath.scales import activation_format

__all__ = ["calibrate_network"]


def calibrate_network(model, x_calib, *, points=None, threshold: float | None = None,
                      ks: dict | None = None, max_pixels: int = 20_000, seed: int = 0,
                      unsigned="auto", progress: bool = False,
                      **layer_kwargs) -> dict[str, LayerArtifact]:
    """PCA and integer artifacts for every point of any ``torch.nn.Module``.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; its points default to ``golden.nets.capture.activation_points(model)``.
    x_calib : torch.Tensor
        Calibration inputs (N, ...).
    threshold : float, optional
        Eigen-energy threshold choosing k per point (``k_for_energy``).
    ks : dict of str to int, optional
        k per point instead (capped at the channel count). Exactly one of the two.
    max_pixels, seed
        Calibration pixels sampled per point (``golden.nets.capture.sample_pixels``).
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
        In point order; evaluate them with ``golden.calibration.report.evaluate``.
    """
    from golden.nets.capture import activation_points, sample_pixels
    from golden.projection.pca import k_for_energy, pca_fit

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
