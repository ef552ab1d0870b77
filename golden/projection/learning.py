"""Learned projections: CAP's distillation-trained projection and Price and Tanner's lift.

Both methods start from PCA (``golden.projection.pca.pca_fit``) and train the forward projection
S1 (K x C) and the inverse S2 (C x K) of one or more points with the network frozen; nothing
else of the network changes. The trained pair replaces the feature map ``a`` at its point by

    a_hat = q_x(S2 q_y(S1 (q_x(a) - mean)) + mean)

where, with a ``QuantFormat`` per point (``quant_format``), ``q_x`` rounds to the stored
activation grid (step ``x_scale``, the stored width, clamped at 0 for unsigned maps) and
``q_y`` rounds every coefficient to its calibrated step and saturates it to its width, as the
hardware does; without one both are the identity. Rounding is straight-through (the forward
pass sees the rounded values, gradients pass as if it were the identity; clamping passes no
gradient outside its range), so what is learned is what the integer datapath runs.

* ``learn_cap`` (Tai et al., ICASSP 2022), as published: no labels. Loss = T^2
  KL(teacher || student) of the output distributions at temperature T (knowledge
  distillation) plus ``hint_weight`` times the hint loss: the mean squared error between the
  compressed network's reconstruction at each point and the uncompressed (teacher) network's
  activation at that point, divided by the teacher map's variance so that layers of any
  scale weigh alike. All points are trained jointly, all inserted. A held-out part of the
  calibration inputs gives a validation curve (distillation KL every ``eval_every`` steps);
  training stops when it has not improved for ``patience`` evaluations, and the best
  projections are returned.
* ``learn_price`` (Price and Tanner): the points are inserted layer by layer in forward order;
  each new pair trains end to end on the task loss (cross-entropy with labels) or, without
  labels, on the distillation loss, with the earlier learned pairs already in place and
  frozen.

CPU cost is bounded by construction: at most ``steps`` optimiser steps on random mini-batches
of the calibration inputs (``batch``), each one teacher pass without gradients and one student
pass with them. ``objective`` evaluates either loss on a set of inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from golden.nets.capture import replaced
from golden.projection.pca import Projection

__all__ = ["Projector", "QuantFormat", "learn_cap", "learn_price", "objective", "pca_steps",
           "quant_format"]

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
    ``golden.calibration`` chooses them for one group of width ``bits``; used for
    quantization-aware training. ``min_step`` is an absolute floor."""
    from golden.datapath.scales import component_scales

    y = init.project(np.asarray(samples, dtype=np.float64).reshape(-1, init.channels))
    steps = component_scales(y, np.array([0, init.k]), np.array([bits]), method)
    return np.maximum(steps, min_step)


@dataclass
class QuantFormat:
    """The integer formats at one point, as ``golden.calibration.folding.calibrate_layer`` folds
    them.

    Attributes
    ----------
    x_scale : float
        Step of the stored activation (input of the forward projection, output of the inverse).
    x_lo, x_hi : int
        Range of the stored activation in steps (``x_lo`` is 0 for a map stored unsigned).
    steps : ndarray (K,)
        Coefficient step per component.
    bits : int
        Coefficient width (signed).
    widths : ndarray (K,) of int, optional
        Width of each component (mixed precision, the widths of its group); overrides
        ``bits`` for the saturation of that component.
    """

    x_scale: float
    x_lo: int
    x_hi: int
    steps: np.ndarray
    bits: int = 8
    widths: np.ndarray | None = None

    def __post_init__(self):
        self.steps = np.asarray(self.steps, dtype=np.float64)
        if self.steps.ndim != 1 or not np.all(self.steps > 0):
            raise ValueError(f"Coefficient steps must be positive numbers (K,), not shape "
                             f"{self.steps.shape}")
        if self.widths is not None:
            self.widths = np.asarray(self.widths, dtype=np.int64)
            if self.widths.shape != self.steps.shape or np.any(self.widths < 2) or \
                    np.any(self.widths > 8):
                raise ValueError(f"Component widths must be {self.steps.size} integers "
                                 f"between 2 and 8")
        if not self.x_scale > 0:
            raise ValueError(f"Activation step must be positive, not {self.x_scale!r}")


def quant_format(init: Projection, samples, *, bits: int = 8, in_bits: int = 8,
                 unsigned="auto", x_method: str = "mse", method: str = "mse",
                 min_step: float = 0.5) -> QuantFormat:
    """The ``QuantFormat`` that ``golden.calibration.folding.calibrate_layer`` would give ``init``
    on
    channels-last calibration ``samples`` with these settings (its defaults): the point's
    stored format (``activation_format``), its activation step (``clip_scale``) and the
    coefficient steps of the quantized activations, floored at ``min_step`` 8-bit
    activation steps."""
    from golden.datapath.quant import int_range, quantize
    from golden.datapath.scales import activation_format, clip_scale

    x = np.asarray(samples, dtype=np.float64).reshape(-1, init.channels)
    width, relu = activation_format(x, in_bits, unsigned)
    x_scale = clip_scale(x, width, x_method)
    lo, hi = int_range(width)
    x_q = quantize(x, x_scale, width) * x_scale
    floor = min_step * x_scale * ((1 << (width - 1)) - 1) / 127
    steps = pca_steps(init, x_q, bits, method, min_step=floor)
    return QuantFormat(float(x_scale), 0 if relu else lo, hi, steps, bits)


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
    quant : QuantFormat, optional
        Round the activation and the coefficients as the hardware does (straight-through).

    The module maps an (N, C, H, W) or (N, C) tensor to the same shape. ``projection()``
    returns the trained ``Projection`` (eigenvalues carried over from ``init``).
    """

    def __init__(self, init: Projection, train_mean: bool = False,
                 quant: QuantFormat | None = None):
        super().__init__()
        if not isinstance(init, Projection):
            raise TypeError(f"Initial projection must be a golden.projection.pca.Projection, not "
                            f"{type(init).__name__}")
        self.s1 = nn.Parameter(torch.tensor(init.forward, dtype=torch.float32))
        self.s2 = nn.Parameter(torch.tensor(init.inverse, dtype=torch.float32))
        self.mean = nn.Parameter(torch.tensor(init.mean, dtype=torch.float32),
                                 requires_grad=train_mean)
        self.eigenvalues = init.eigenvalues
        self.quant = quant
        if quant is not None:
            if quant.steps.shape != (init.k,):
                raise ValueError(f"Coefficient steps must be {init.k} positive numbers, "
                                 f"not shape {quant.steps.shape}")
            self.register_buffer("steps", torch.tensor(quant.steps, dtype=torch.float32))
            widths = (np.full(init.k, quant.bits) if quant.widths is None else quant.widths)
            self.register_buffer("qmax", torch.tensor((1 << (widths - 1)) - 1,
                                                      dtype=torch.float32))

    @property
    def channels(self) -> int:
        return self.s1.shape[1]

    def _store(self, a):
        q = self.quant
        return torch.clamp(_RoundSTE.apply(a / q.x_scale), q.x_lo, q.x_hi) * q.x_scale

    def reconstruct(self, nhwc: torch.Tensor) -> torch.Tensor:
        """Channels-last (..., C) -> its reconstruction through the K coefficients."""
        if self.quant is None:
            return ((nhwc - self.mean) @ self.s1.T) @ self.s2.T + self.mean
        y = (self._store(nhwc) - self.mean) @ self.s1.T
        # Saturation per component, each at its group's width.
        y = torch.clamp(_RoundSTE.apply(y / self.steps), -self.qmax - 1, self.qmax)
        return self._store((y * self.steps) @ self.s2.T + self.mean)

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
    """Wraps a projector as a replacement function that records its hint loss against the
    teacher's activation at the same point (``target``, set before each student pass)."""

    def __init__(self, projector: Projector):
        self.projector = projector
        self.target = None
        self.hint = None

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        out = self.projector(a)
        t = self.target
        if t is None:  # a pass without a teacher (validation): no hint
            self.hint = None
            return out
        dims = (0, 2, 3) if t.dim() == 4 else 0
        var = t.var(dim=dims, unbiased=False).sum()
        err = ((out - t) ** 2).mean(dim=dims).sum()
        self.hint = err / var.clamp_min(1e-12)
        return out


class _Recorder:
    """Context: forward hooks that keep each point's output of the last pass, detached."""

    def __init__(self, model, points):
        modules = dict(model.named_modules())
        self.modules = {p: modules[p] for p in points}
        self.out = {}

    def __enter__(self):
        def hook_for(p):
            def hook(_m, _i, output):
                self.out[p] = output.detach()
            return hook
        self.handles = [m.register_forward_hook(hook_for(p)) for p, m in self.modules.items()]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _teacher_pass(model, xb, fns):
    """Teacher logits of ``xb`` and, for each hinted replacement, its target activation."""
    hinted = {p: f for p, f in fns.items() if isinstance(f, _Hinted)}
    with torch.no_grad(), _Recorder(model, list(hinted)) as rec:
        logits = model(xb).float()
    for p, f in hinted.items():
        f.target = rec.out[p]
    return logits


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


def _projectors(inits, train_mean, quant):
    if quant is not None:
        missing = [p for p in inits if p not in quant]
        if missing:
            raise ValueError(f"Quantization-aware training needs a QuantFormat for point "
                             f"{missing[0]!r} (quant, e.g. from quant_format)")
    return {p: Projector(init, train_mean, None if quant is None else quant[p])
            for p, init in inits.items()}


def _groups(projectors, lr, lr_scale="relative"):
    """Adam parameter groups. ``relative``: steps relative to each tensor's scale, ``lr /
    sqrt(C)`` for S1 and S2 (the RMS entry of an orthonormal basis), ``lr * RMS(mean)`` for
    the mean; an absolute step that suits C = 16 would scramble a 960-channel basis in a few
    dozen steps. ``absolute``: ``lr`` for every tensor, as CAP's paper gives it."""
    groups = []
    for m in projectors:
        scale = 1.0 / float(np.sqrt(m.channels)) if lr_scale == "relative" else 1.0
        groups.append({"params": [m.s1, m.s2], "lr": lr * scale})
        if m.mean.requires_grad:
            rms = float(m.mean.detach().pow(2).mean().sqrt())
            groups.append({"params": [m.mean], "lr": lr * (max(rms, 1e-3)
                                                           if lr_scale == "relative" else 1.0)})
    return groups


class _Validation:
    """Distillation KL on held-out calibration inputs every ``every`` steps; remembers the
    best projector state and says when ``patience`` evaluations brought no relative gain of
    ``min_delta``."""

    def __init__(self, model, x_val, fns, projectors, temperature, batch, every, patience,
                 min_delta, history):
        self.model, self.x_val, self.fns = model, x_val, fns
        self.projectors, self.temperature, self.batch = projectors, temperature, batch
        self.every, self.patience, self.min_delta = every, patience, min_delta
        self.history = history
        self.teacher = _teacher(model, x_val, 1.0, batch)
        self.best, self.best_state, self.stale = np.inf, None, 0

    def kl(self):
        total = 0.0
        for f in self.fns.values():
            f.target = None
        with torch.no_grad(), replaced(self.model, self.fns):
            for s in range(0, self.x_val.shape[0], self.batch):
                out = self.model(self.x_val[s:s + self.batch]).float()
                total += float(_kd(out, self.teacher[s:s + self.batch], 1.0)) * out.shape[0]
        return total / self.x_val.shape[0]

    def check(self, step, train_loss, force=False) -> bool:
        """Evaluate at ``step`` (if due); True when training should stop."""
        if step % self.every and not force:
            return False
        kl = self.kl()
        if self.history is not None:
            self.history.append({"step": step, "val_kl": kl, "train_loss": train_loss})
        if kl < self.best * (1 - self.min_delta) or self.best_state is None:
            self.stale = 0
        else:
            self.stale += 1
        if kl < self.best:
            self.best = kl
            self.best_state = {p: {k: v.detach().clone() for k, v in m.state_dict().items()}
                               for p, m in self.projectors.items()}
        return self.stale >= self.patience

    def restore(self):
        if self.best_state is not None:
            for p, m in self.projectors.items():
                m.load_state_dict(self.best_state[p])


def _train(model, x, fns, params, loss_fn, steps, batch, seed, progress, desc,
           validation=None):
    opt = torch.optim.Adam(params)
    gen = torch.Generator().manual_seed(seed)
    it = range(steps)
    bar = None
    if progress:
        from tqdm import tqdm
        it = bar = tqdm(it, desc=desc, unit="step", leave=False)
    running, done = None, 0
    with _Frozen(model):
        if validation is not None:
            validation.check(0, None)
        for step in it:
            done = step + 1
            idx = torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)
            xb = x[idx]
            teacher = _teacher_pass(model, xb, fns)
            with replaced(model, fns):
                loss = loss_fn(model(xb).float(), teacher)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running = float(loss.detach()) if running is None else (
                0.9 * running + 0.1 * float(loss.detach()))
            if validation is not None:
                if bar is not None and validation.history:
                    bar.set_postfix(val_kl=f"{validation.history[-1]['val_kl']:.4f}")
                if validation.check(done, running):
                    break
        if validation is not None:
            if done % validation.every:  # the last steps count too
                validation.check(done, running, force=True)
            validation.restore()


def learn_cap(model: nn.Module, x_calib: torch.Tensor, point, init: Projection | None = None,
              steps: int = 50, lr: float = 1e-2, hint_weight: float = 1.0, *,
              temperature: float = 1.0, batch: int = 8, train_mean: bool = False,
              quant: Mapping[str, QuantFormat] | None = None, val_fraction: float = 0.0,
              eval_every: int = 10, patience: int = 3, min_delta: float = 0.01,
              lr_scale: str = "relative", history: list | None = None, seed: int = 0,
              progress: bool = False):
    """CAP's learnable projection, initialised from PCA, trained by distillation plus hint.

    Parameters
    ----------
    model : torch.nn.Module
        The uncompressed network, in eval mode; frozen during training, unchanged after. It
        is also the teacher.
    x_calib : torch.Tensor
        Calibration inputs (N, ...); no labels are used.
    point : str or mapping of str to Projection
        One point (with ``init``), or ``{point: init}`` to train several points jointly, all
        inserted at once (one KD term, the mean of their hint terms).
    init : Projection
        PCA initialisation (truncated to the chosen k) when ``point`` is a name.
    steps, lr, batch, seed
        At most ``steps`` Adam steps on seeded random mini-batches of the training part of
        ``x_calib``. ``lr_scale="relative"``: S1 and S2 move by about ``lr / sqrt(C)`` per
        step, the mean by ``lr * RMS(mean)``; ``"absolute"``: ``lr`` itself.
    hint_weight, temperature
        Loss = T^2 KL(softmax(t/T) || softmax(s/T)) + hint_weight * mean over points of the
        teacher-relative hint MSE.
    train_mean : bool
        Also train the mean (the bias of the folded projections).
    quant : mapping of str to QuantFormat, optional
        Quantization-aware training with the hardware's formats (``quant_format``).
    val_fraction, eval_every, patience, min_delta, history
        The last ``val_fraction`` of ``x_calib`` (at least one input) is held out; its
        distillation KL (T = 1) is measured before training and every ``eval_every`` steps,
        training stops after ``patience`` evaluations without a relative gain of
        ``min_delta``, and the projections of the best evaluation are returned. ``history``
        receives ``{"step", "val_kl", "train_loss"}`` per evaluation. 0 trains all steps on
        all inputs.

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
    _check_validation(val_fraction, eval_every, patience, min_delta, lr_scale)
    projectors = _projectors(inits, train_mean, quant)
    fns = {p: _Hinted(m) for p, m in projectors.items()}
    x_train, x_val = _split(x_calib, val_fraction)
    validation = None
    if x_val is not None:
        validation = _Validation(model, x_val, fns, projectors, temperature, batch,
                                 eval_every, patience, min_delta, history)

    def loss_fn(out, teacher_logits):
        hint = torch.stack([f.hint for f in fns.values()]).mean()
        teacher = torch.log_softmax(teacher_logits / temperature, dim=1)
        return _kd(out, teacher, temperature) + hint_weight * hint

    params = _groups(projectors.values(), lr, lr_scale)
    _train(model, x_train, fns, params, loss_fn, steps, batch, seed, progress, "cap",
           validation)
    result = {p: m.projection() for p, m in projectors.items()}
    return result[next(iter(result))] if single else result


def _check_validation(val_fraction, eval_every, patience, min_delta, lr_scale):
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or \
            not 0 <= val_fraction < 1:
        raise ValueError(f"Validation fraction must be in [0, 1), not {val_fraction!r}")
    _check_positive_int("Evaluation interval", eval_every)
    _check_positive_int("Patience", patience)
    if not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise ValueError(f"Minimum gain must be a non-negative number, not {min_delta!r}")
    if lr_scale not in ("relative", "absolute"):
        raise ValueError(f"Learning-rate scale must be 'relative' or 'absolute', "
                         f"not {lr_scale!r}")


def _split(x, val_fraction):
    if val_fraction == 0:
        return x, None
    n_val = max(1, int(round(x.shape[0] * val_fraction)))
    if n_val >= x.shape[0]:
        raise ValueError(f"Validation needs at least 2 calibration inputs, not {x.shape[0]}")
    return x[:-n_val], x[-n_val:]


def learn_price(model: nn.Module, x_calib: torch.Tensor, points, inits=None, loss: str = "kd",
                labels: torch.Tensor | None = None, steps: int = 20, lr: float = 1e-2, *,
                temperature: float = 1.0, batch: int = 8, train_mean: bool = False,
                quant: Mapping[str, QuantFormat] | None = None, lr_scale: str = "relative",
                seed: int = 0, progress: bool = False) -> dict[str, Projection]:
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
    _check_validation(0.0, 1, 1, 0.0, lr_scale)
    if loss == "task":
        if labels is None:
            raise ValueError("The task loss needs labels")
        labels = torch.as_tensor(labels)
        if labels.shape != (x_calib.shape[0],):
            raise ValueError(f"Labels must have shape ({x_calib.shape[0]},), not "
                             f"{tuple(labels.shape)}")
    projectors = _projectors({p: inits[p] for p in points}, train_mean, quant)
    fns = {}
    for i, p in enumerate(points):
        fns[p] = projectors[p]
        params = _groups([projectors[p]], lr, lr_scale)
        if loss == "task":
            _train_task(model, x_calib, labels, fns, params, steps, batch, seed + i,
                        progress, f"price {p}")
        else:
            def loss_fn(out, teacher_logits):
                teacher = torch.log_softmax(teacher_logits / temperature, dim=1)
                return _kd(out, teacher, temperature)
            _train(model, x_calib, fns, params, loss_fn, steps, batch, seed + i, progress,
                   f"price {p}")
        projectors[p].requires_grad_(False)
    return {p: projectors[p].projection() for p in points}


def _train_task(model, x, labels, fns, params, steps, batch, seed, progress, desc):
    opt = torch.optim.Adam(params)
    gen = torch.Generator().manual_seed(seed)
    it = range(steps)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=desc, unit="step", leave=False)
    with _Frozen(model), replaced(model, fns):
        for _ in it:
            idx = torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)
            loss = nn.functional.cross_entropy(model(x[idx]).float(), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def objective(model: nn.Module, x: torch.Tensor, projections: dict[str, Projection], *,
              loss: str = "kd", labels: torch.Tensor | None = None, hint_weight: float = 0.0,
              temperature: float = 1.0, quant: Mapping[str, QuantFormat] | None = None,
              batch: int = 32) -> float:
    """The training loss of ``projections`` (all inserted) over all of ``x``, no gradients.

    ``loss="kd"``: T^2 KL to the uncompressed network plus ``hint_weight`` times the mean
    teacher-relative hint MSE (CAP's loss); ``loss="task"``: cross-entropy with ``labels``.
    ``quant`` evaluates with the hardware's rounding, as trained with it.
    """
    if loss not in LOSSES:
        raise ValueError(f"Loss must be 'task' or 'kd', not {loss!r}")
    if loss == "task" and labels is None:
        raise ValueError("The task loss needs labels")
    fns = {p: _Hinted(Projector(pr, quant=None if quant is None else quant[p]))
           for p, pr in projections.items()}
    total, n = 0.0, x.shape[0]
    with torch.no_grad():
        for s in range(0, n, batch):
            xb = x[s:s + batch]
            teacher_logits = _teacher_pass(model, xb, fns)
            with replaced(model, fns):
                out = model(xb).float()
            m = out.shape[0]
            if loss == "task":
                part = nn.functional.cross_entropy(out, torch.as_tensor(labels)[s:s + batch])
            else:
                teacher = torch.log_softmax(teacher_logits / temperature, dim=1)
                part = _kd(out, teacher, temperature)
                part = part + hint_weight * torch.stack([f.hint for f in fns.values()]).mean()
            total += float(part) * m
    return total / n
