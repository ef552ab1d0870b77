"""Learned projections: CAP's distillation-trained projection and Price and Tanner's lift.

Both methods start from PCA (``golden.projection.pca_fit``) and train the forward projection
S1 (K x C) and the inverse S2 (C x K) of one or more points with the network frozen; nothing
else of the network changes. The trained pair replaces the feature map ``a`` at its point by

    a_hat = S2 q(S1 (a - mean)) + mean

where ``q`` is the identity or, with ``quant_bits``, a straight-through rounding of every
coefficient to a per-component step (quantization-aware training: the forward pass sees the
rounded coefficients, gradients pass through the rounding as if it were the identity).

* ``learn_cap`` (Tai et al., ICASSP 2022): no labels. Loss = KL(teacher || student) of the
  output distributions at a temperature (times T^2) plus ``hint_weight`` times the hint loss,
  the mean squared reconstruction error of the feature map divided by its variance (so layers
  of any scale weigh alike). Given several points, they are trained jointly, all inserted.
* ``learn_price`` (Price and Tanner): the points are inserted layer by layer in forward order;
  each new pair trains end to end on the task loss (cross-entropy with labels) or, without
  labels, on the distillation loss, with the earlier learned pairs already in place and
  frozen.

CPU cost is bounded by construction: ``steps`` optimiser steps on random mini-batches of the
calibration inputs (``batch``), teacher logits computed once. ``objective`` evaluates either
loss on a set of inputs, e.g. to check that training lowered it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from golden.capture import replaced
from golden.projection import Projection

__all__ = ["Projector", "learn_cap", "learn_price", "objective", "pca_steps"]

LOSSES = ("task", "kd")


def _check_positive_int(name, value, zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (
            0 if zero else 1):
        kind = "a non-negative" if zero else "a positive"
        raise ValueError(f"{name} must be {kind} integer, not {value!r}")
    return int(value)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return float(value)


def pca_steps(init: Projection, samples, bits: int = 8, method: str = "mse",
              min_step: float = 0.0) -> np.ndarray:
    """Per-component coefficient steps (K,) of ``init`` on channels-last ``samples``, as
    ``golden.calibrate`` chooses them for one group of width ``bits``; used for
    quantization-aware training. ``min_step`` is an absolute floor."""
    from golden.calibrate import component_scales

    y = init.project(np.asarray(samples, dtype=np.float64).reshape(-1, init.channels))
    steps = component_scales(y, np.array([0, init.k]), np.array([bits]), method)
    return np.maximum(steps, min_step)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return torch.round(y)

    @staticmethod
    def backward(ctx, grad):
        return grad


class Projector(nn.Module):
    """A trainable projection pair at one point: replaces a feature map by its reconstruction.

    Parameters
    ----------
    init : Projection
        Initial S1, S2 and mean (float32 copies are trained).
    train_mean : bool
        Train the mean too (default: fixed at the calibration mean).
    steps : array_like of float (K,), optional
        Coefficient steps for straight-through rounding; ``bits`` sets the saturation range.

    The module maps an (N, C, H, W) or (N, C) tensor to the same shape. ``projection()``
    returns the trained ``Projection`` (eigenvalues carried over from ``init``).
    """

    def __init__(self, init: Projection, train_mean: bool = False, steps=None, bits: int = 8):
        super().__init__()
        if not isinstance(init, Projection):
            raise TypeError(f"Initial projection must be a golden.projection.Projection, not "
                            f"{type(init).__name__}")
        self.s1 = nn.Parameter(torch.tensor(init.forward, dtype=torch.float32))
        self.s2 = nn.Parameter(torch.tensor(init.inverse, dtype=torch.float32))
        self.mean = nn.Parameter(torch.tensor(init.mean, dtype=torch.float32),
                                 requires_grad=train_mean)
        self.eigenvalues = init.eigenvalues
        self.qmax = (1 << (bits - 1)) - 1
        if steps is None:
            self.steps = None
        else:
            steps = np.asarray(steps, dtype=np.float64)
            if steps.shape != (init.k,) or not np.all(steps > 0):
                raise ValueError(f"Coefficient steps must be {init.k} positive numbers, "
                                 f"not shape {steps.shape}")
            self.register_buffer("steps", torch.tensor(steps, dtype=torch.float32))

    @property
    def channels(self) -> int:
        return self.s1.shape[1]

    def reconstruct(self, nhwc: torch.Tensor) -> torch.Tensor:
        """Channels-last (..., C) -> its reconstruction through the K coefficients."""
        y = (nhwc - self.mean) @ self.s1.T
        if self.steps is not None:
            y = torch.clamp(_RoundSTE.apply(y / self.steps), -self.qmax - 1, self.qmax)
            y = y * self.steps
        return y @ self.s2.T + self.mean

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.shape[1] != self.channels:
            raise ValueError(f"Projection has {self.channels} channels, the feature map "
                             f"{a.shape[1]}")
        if a.dim() == 4:
            return self.reconstruct(a.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.reconstruct(a)

    def projection(self) -> Projection:
        d = {n: p.detach().double().numpy() for n, p in (("m", self.mean), ("f", self.s1),
                                                         ("i", self.s2))}
        return Projection(d["m"], d["f"], d["i"], self.eigenvalues)


class _Hinted:
    """Wraps a projector as a replacement function that records its relative hint loss."""

    def __init__(self, projector: Projector):
        self.projector = projector
        self.hint = None

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        out = self.projector(a)
        target = a.detach()
        var = target.var(dim=(0, 2, 3) if a.dim() == 4 else 0, unbiased=False).sum()
        err = ((out - target) ** 2).mean(dim=(0, 2, 3) if a.dim() == 4 else 0).sum()
        self.hint = err / var.clamp_min(1e-12)
        return out


def _kd(student, teacher_logp, temperature):
    logq = torch.log_softmax(student / temperature, dim=1)
    return (teacher_logp.exp() * (teacher_logp - logq)).sum(1).mean() * temperature ** 2


class _Frozen:
    """Context: the model's parameters do not require gradients (restored on exit)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self.saved:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc):
        for p, flag in self.saved:
            p.requires_grad_(flag)


def _teacher(model, x, temperature, batch):
    with torch.no_grad():
        logits = torch.cat([model(x[s:s + batch]).float() for s in range(0, x.shape[0], batch)])
    return torch.log_softmax(logits / temperature, dim=1)


def _check_common(x, steps, lr, batch, temperature, hint_weight):
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < 1:
        raise ValueError("Calibration inputs must be a non-empty tensor (N, ...)")
    _check_positive_int("Step count", steps, zero=True)
    _check_positive("Learning rate", lr)
    _check_positive_int("Batch size", batch)
    _check_positive("Temperature", temperature)
    if isinstance(hint_weight, bool) or not isinstance(hint_weight, (int, float)) or \
            hint_weight < 0:
        raise ValueError(f"Hint weight must be a non-negative number, not {hint_weight!r}")


def _projectors(inits, train_mean, quant_bits, quant_steps):
    out = {}
    for p, init in inits.items():
        steps = None
        if quant_bits is not None:
            if quant_steps is None or p not in quant_steps:
                raise ValueError(f"Quantization-aware training needs coefficient steps for "
                                 f"point {p!r} (quant_steps, e.g. from pca_steps)")
            steps = quant_steps[p]
        out[p] = Projector(init, train_mean, steps, quant_bits or 8)
    return out


def _groups(projectors, lr):
    """Adam parameter groups with steps relative to each tensor's scale: ``lr / sqrt(C)`` for
    S1 and S2 (the RMS entry of an orthonormal basis), ``lr * RMS(mean)`` for the mean. An
    absolute step that suits C = 16 would scramble a 960-channel basis in a few dozen steps."""
    groups = []
    for m in projectors:
        scale = 1.0 / float(np.sqrt(m.channels))
        groups.append({"params": [m.s1, m.s2], "lr": lr * scale})
        if m.mean.requires_grad:
            rms = float(m.mean.detach().pow(2).mean().sqrt())
            groups.append({"params": [m.mean], "lr": lr * max(rms, 1e-3)})
    return groups


def _train(model, x, fns, params, loss_fn, steps, lr, batch, seed, progress, desc):
    opt = torch.optim.Adam(params)
    gen = torch.Generator().manual_seed(seed)
    it = range(steps)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=desc, unit="step", leave=False)
    with _Frozen(model), replaced(model, fns):
        for _ in it:
            idx = torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)
            loss = loss_fn(model(x[idx]).float(), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()


def learn_cap(model: nn.Module, x_calib: torch.Tensor, point, init: Projection | None = None,
              steps: int = 50, lr: float = 1e-2, hint_weight: float = 1.0, *,
              temperature: float = 1.0, batch: int = 8, train_mean: bool = False,
              quant_bits: int | None = None, quant_steps=None, seed: int = 0,
              progress: bool = False):
    """CAP's learnable projection, initialised from PCA, trained by distillation plus hint.

    Parameters
    ----------
    model : torch.nn.Module
        The uncompressed network, in eval mode; frozen during training, unchanged after.
    x_calib : torch.Tensor
        Calibration inputs (N, ...); no labels are used.
    point : str or mapping of str to Projection
        One point (with ``init``), or ``{point: init}`` to train several points jointly, all
        inserted at once (one KD term, the mean of their hint terms).
    init : Projection
        PCA initialisation (truncated to the chosen k) when ``point`` is a name.
    steps, lr, batch, seed
        Adam steps on seeded random mini-batches of ``x_calib``. ``lr`` is relative: S1 and
        S2 move by about ``lr / sqrt(C)`` per step, the mean by ``lr * RMS(mean)``.
    hint_weight, temperature
        Loss = T^2 KL(softmax(t/T) || softmax(s/T)) + hint_weight * mean relative hint MSE.
    train_mean : bool
        Also train the mean (the bias of the folded projections).
    quant_bits, quant_steps
        Quantization-aware training: round coefficients straight-through to ``quant_steps``
        ({point: (K,) steps}, e.g. ``pca_steps``) and saturate to ``quant_bits`` signed bits.

    Returns
    -------
    Projection or dict of str to Projection
        Like ``point``: one projection, or one per point.
    """
    single = not isinstance(point, Mapping)
    if single:
        if init is None:
            raise ValueError("learn_cap needs an initial projection for a single point")
        inits = {point: init}
    else:
        inits = dict(point)
    if not inits:
        raise ValueError("learn_cap needs at least one point")
    _check_common(x_calib, steps, lr, batch, temperature, hint_weight)
    projectors = _projectors(inits, train_mean, quant_bits, quant_steps)
    fns = {p: _Hinted(m) for p, m in projectors.items()}
    teacher = _teacher(model, x_calib, temperature, batch)

    def loss_fn(out, idx):
        hint = torch.stack([f.hint for f in fns.values()]).mean()
        return _kd(out, teacher[idx], temperature) + hint_weight * hint

    params = _groups(projectors.values(), lr)
    _train(model, x_calib, fns, params, loss_fn, steps, lr, batch, seed, progress, "cap")
    result = {p: m.projection() for p, m in projectors.items()}
    return result[next(iter(result))] if single else result


def learn_price(model: nn.Module, x_calib: torch.Tensor, points, inits=None, loss: str = "kd",
                labels: torch.Tensor | None = None, steps: int = 20, lr: float = 1e-2, *,
                temperature: float = 1.0, batch: int = 8, train_mean: bool = False,
                quant_bits: int | None = None, quant_steps=None, seed: int = 0,
                progress: bool = False) -> dict[str, Projection]:
    """Price and Tanner's projection S1 and lift S2, learned end to end layer by layer.

    Parameters
    ----------
    points : list of str or mapping of str to Projection
        The points in forward order; a mapping carries the initial projections itself.
    inits : mapping of str to Projection, optional
        PCA initialisations, when ``points`` is a list.
    loss : {"kd", "task"}
        ``task``: cross-entropy with ``labels`` (N,); ``kd``: the distillation loss as a
        stand-in when there are no labels (T^2 KL at ``temperature``).
    steps
        Adam steps per point: the cost is ``len(points) * steps`` forward-backward passes.

    The other parameters are those of ``learn_cap``. Returns ``{point: Projection}``.
    """
    if isinstance(points, Mapping):
        inits, points = dict(points), list(points)
    else:
        points = list(points)
        if inits is None or any(p not in inits for p in points):
            raise ValueError("learn_price needs an initial projection for every point")
    if not points:
        raise ValueError("learn_price needs at least one point")
    if loss not in LOSSES:
        raise ValueError(f"Loss must be 'task' or 'kd', not {loss!r}")
    _check_common(x_calib, steps, lr, batch, temperature, 0.0)
    if loss == "task":
        if labels is None:
            raise ValueError("The task loss needs labels")
        labels = torch.as_tensor(labels)
        if labels.shape != (x_calib.shape[0],):
            raise ValueError(f"Labels must have shape ({x_calib.shape[0]},), not "
                             f"{tuple(labels.shape)}")

        def loss_fn(out, idx):
            return nn.functional.cross_entropy(out, labels[idx])
    else:
        teacher = _teacher(model, x_calib, temperature, batch)

        def loss_fn(out, idx):
            return _kd(out, teacher[idx], temperature)
    projectors = _projectors({p: inits[p] for p in points}, train_mean, quant_bits,
                             quant_steps)
    fns = {}
    for i, p in enumerate(points):
        fns[p] = projectors[p]
        params = _groups([projectors[p]], lr)
        _train(model, x_calib, fns, params, loss_fn, steps, lr, batch, seed + i, progress,
               f"price {p}")
        projectors[p].requires_grad_(False)
    return {p: projectors[p].projection() for p in points}


def objective(model: nn.Module, x: torch.Tensor, projections: dict[str, Projection], *,
              loss: str = "kd", labels: torch.Tensor | None = None, hint_weight: float = 0.0,
              temperature: float = 1.0, steps=None, quant_bits: int = 8,
              batch: int = 32) -> float:
    """The training loss of ``projections`` (all inserted) over all of ``x``, no gradients.

    ``loss="kd"``: T^2 KL to the uncompressed network plus ``hint_weight`` times the mean
    relative hint MSE (CAP's loss); ``loss="task"``: cross-entropy with ``labels``.
    ``steps`` ({point: (K,)}) evaluates with rounded coefficients, as trained with
    ``quant_steps``.
    """
    if loss not in LOSSES:
        raise ValueError(f"Loss must be 'task' or 'kd', not {loss!r}")
    if loss == "task" and labels is None:
        raise ValueError("The task loss needs labels")
    fns = {p: _Hinted(Projector(pr, steps=None if steps is None else steps[p],
                                bits=quant_bits))
           for p, pr in projections.items()}
    teacher = _teacher(model, x, temperature, batch) if loss == "kd" else None
    total, n = 0.0, x.shape[0]
    with torch.no_grad(), replaced(model, fns):
        for s in range(0, n, batch):
            out = model(x[s:s + batch]).float()
            m = out.shape[0]
            if loss == "task":
                part = nn.functional.cross_entropy(out, torch.as_tensor(labels)[s:s + batch])
            else:
                part = _kd(out, teacher[s:s + batch], temperature)
                part = part + hint_weight * torch.stack([f.hint for f in fns.values()]).mean()
            total += float(part) * m
    return total / n
