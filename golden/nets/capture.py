"""Activation capture and replacement at named points of a ``torch.nn.Module``.

A point is the dotted name of a submodule (``model.named_modules()``); its output is the
feature map. ``activation_points`` lists the default points: the model's own
``activation_points(where)`` when it has one (MobileNetV2 and the digits CNN do), else every
activation module's output (``"post"``, as Price and Tanner argue) or the module that feeds
each activation (``"pre"``).

``capture`` returns feature maps channels-last, (N, H, W, C) float32, because the projections
act on the channel dimension of each pixel. ``replaced`` swaps the feature map at each point
for ``fn(feature_map)`` during forward passes, e.g. the integer round trip of a projection;
gradients flow through ``fn`` so projections can be trained in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "activation_points", "capture", "replaced", "sample_pixels"]

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.SiLU, nn.GELU, nn.Sigmoid,
               nn.Tanh, nn.ELU, nn.Mish, nn.Hardtanh)


def activation_points(model: nn.Module, where: str = "post") -> list[str]:
    """Names of the points whose outputs are compressed, in module order.

    Parameters
    ----------
    model : torch.nn.Module
    where : {"post", "pre", "act"}
        ``"post"``: activation outputs (and, for models that define them, block outputs).
        ``"pre"``: the outputs in front of those activations (conv or batch-norm).
        ``"act"``: the activation modules' outputs of ``"post"`` only (for MobileNetV2 the 35
        ReLU6 outputs, without the 17 block outputs).

    Raises
    ------
    ValueError
        On an unknown ``where`` or a model without any activation module.
    """
    if where not in ("post", "pre", "act"):
        raise ValueError(f"Activation point placement must be 'post' or 'pre' or 'act', "
                         f"not {where!r}")
    if where == "act":
        modules = dict(model.named_modules())
        return [p for p in activation_points(model, "post")
                if isinstance(modules.get(p), ACTIVATIONS)]
    own = getattr(model, "activation_points", None)
    if callable(own):
        return list(own(where))
    names = [name for name, mod in model.named_modules() if isinstance(mod, ACTIVATIONS)]
    if not names:
        raise ValueError(f"Model {type(model).__name__} has no activation modules "
                         f"({', '.join(a.__name__ for a in ACTIVATIONS)})")
    if where == "post":
        return names
    modules = dict(model.named_modules())
    points = []
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        children = list(parent.named_children())
        index = [c for c, _ in children].index(child)
        if not isinstance(parent, nn.Sequential) or index == 0:
            raise ValueError(f"Activation {name!r} has no preceding module in a Sequential; "
                             f"give the pre-activation points explicitly")
        before = children[index - 1][0]
        points.append(f"{parent_name}.{before}" if parent_name else before)
    return points


def _modules(model: nn.Module, points) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    missing = [p for p in points if p not in modules]
    if missing:
        raise ValueError(f"Model {type(model).__name__} has no module named "
                         f"{', '.join(repr(p) for p in missing)}")
    return {p: modules[p] for p in points}


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4:
        return t.permute(0, 2, 3, 1)
    if t.dim() == 2:
        return t
    raise ValueError(f"Captured output must be (N, C, H, W) or (N, C), not shape {tuple(t.shape)}")


def capture(model: nn.Module, x: torch.Tensor, points, batch: int = 32,
            progress: bool = False) -> dict[str, torch.Tensor]:
    """Feature maps at ``points`` for inputs ``x``, channels-last float32.

    Parameters
    ----------
    model : torch.nn.Module
        Run as is (call ``eval()`` first for inference behaviour).
    x : torch.Tensor
        Inputs (N, ...), fed ``batch`` at a time under ``torch.no_grad``.
    points : iterable of str
        Module names (see ``activation_points``).
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    dict of str to torch.Tensor
        (N, H, W, C) for convolutional maps, (N, C) for flat ones, contiguous float32.
    """
    points = list(points)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"Batch size must be a positive integer, not {batch!r}")
    modules = _modules(model, points)
    parts: dict[str, list[torch.Tensor]] = {p: [] for p in points}

    def hook_for(point):
        def hook(_module, _inputs, output):
            parts[point].append(_channels_last(output.detach()).float().contiguous())
        return hook

    handles = [m.register_forward_hook(hook_for(p)) for p, m in modules.items()]
    starts = range(0, x.shape[0], batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="capture", unit="batch", leave=False)
    try:
        with torch.no_grad():
            for s in starts:
                model(x[s:s + batch])
    finally:
        for h in handles:
            h.remove()
    return {p: torch.cat(parts[p]) if parts[p] else torch.empty(0) for p in points}


def sample_pixels(model: nn.Module, x: torch.Tensor, points, max_pixels: int = 20_000,
                  batch: int = 16, seed: int = 0, progress: bool = False
                  ) -> dict[str, np.ndarray]:
    """A seeded random sample of feature-map pixels (channel vectors) at each point.

    Like ``capture`` but keeps, from every batch, only its share of ``max_pixels`` pixels
    per point (all of them when the map is smaller), so calibrating many points of a large
    network on many images stays within memory.

    Returns
    -------
    dict of str to numpy.ndarray
        (M, C) float32 per point, ``M <= max_pixels`` (about equal when enough pixels exist).
    """
    points = list(points)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"Pixel count must be a positive integer, not {max_pixels!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"Batch size must be a positive integer, not {batch!r}")
    modules = _modules(model, points)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    parts: dict[str, list[np.ndarray]] = {p: [] for p in points}
    share = {"count": 0}

    def hook_for(point):
        def hook(_module, _inputs, output):
            a = _channels_last(output.detach()).float()
            a = a.reshape(-1, a.shape[-1])
            want = min(a.shape[0], -(-max_pixels * share["count"] // n))
            idx = np.sort(rng.choice(a.shape[0], want, replace=False))
            parts[point].append(a[torch.from_numpy(idx)].numpy())
        return hook

    handles = [m.register_forward_hook(hook_for(p)) for p, m in modules.items()]
    starts = range(0, n, batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="calibration pixels", unit="batch", leave=False)
    try:
        with torch.no_grad():
            for s in starts:
                share["count"] = min(batch, n - s)
                model(x[s:s + batch])
    finally:
        for h in handles:
            h.remove()
    return {p: np.concatenate(parts[p])[:max_pixels] for p in points}


@contextmanager
def replaced(model: nn.Module, fns: dict[str, Callable[[torch.Tensor], torch.Tensor]]
             ) -> Iterator[nn.Module]:
    """Within the block, each point's output ``a`` is replaced by ``fns[point](a)``.

    ``fn`` receives the module's output as produced (NCHW layout, any memory format) and must
    return a tensor of the same shape; it is differentiable if ``fn`` is. The hooks are
    removed on exit, also on an exception.

    Raises
    ------
    ValueError
        If a point names no module of the model, or ``fn`` changes the shape.
    """
    modules = _modules(model, list(fns))

    def hook_for(point, fn):
        def hook(_module, _inputs, output):
            new = fn(output)
            if new.shape != output.shape:
                raise ValueError(f"Replacement at {point!r} changed the shape from "
                                 f"{tuple(output.shape)} to {tuple(new.shape)}")
            return new
        return hook

    handles = [modules[p].register_forward_hook(hook_for(p, fn)) for p, fn in fns.items()]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
