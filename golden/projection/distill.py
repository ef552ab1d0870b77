"""Calibration images distilled from a network's own BatchNorm statistics (no real data).

A trained network remembers the mean and variance of every BatchNorm layer's input over its
training set. ``distill`` starts from noise and optimises a batch of images until the
statistics they produce at every BatchNorm layer match the stored ones (ZeroQ, Cai et al.,
CVPR 2020), with DeepInversion's image priors (Yin et al., CVPR 2020): random jitter and flips
of the image before each step, a total-variation and an L2 penalty, and optionally a
cross-entropy term towards a random target class per image so that the set spans the classes.
Optimisation runs at a low resolution first and then at full size, as DeepInversion does,
which keeps it affordable on a CPU.

``distill_to_folder`` writes the images as PNGs (read back by ``golden.nets.images.load_folder``,
so ``python -m golden calibrate --images DIR`` calibrates on them) and ``manifest.json``:
the settings, seed, per-batch final losses and times. Images are made in batches, each from
its own seed; a stopped run resumes at the first batch whose PNGs are missing and gives the
same images as an uninterrupted run.

Loss per step, for a batch of images x (pixels in [0, 1], normalised as the network expects):

    bn  = sum over BatchNorm layers l of w_l (||mean_l(x) - running_mean_l||_2
                                              + ||var_l(x) - running_var_l||_2)
    loss = bn_weight * bn + tv_weight * TV2(x) + l2_weight * ||x||^2 / N + ce_weight * CE

with w_l = ``first_bn_weight`` for the first BatchNorm layer and 1 elsewhere (DeepInversion
weighs the first layer up: it sees the pixels directly).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from golden.datapath.artifacts import write_json

__all__ = ["DistillSettings", "bn_loss_terms", "distill_batch", "distill_to_folder",
           "image_files"]

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass
class DistillSettings:
    """Optimisation settings of ``distill_batch`` (defaults: MobileNetV2 on 2 CPU cores).

    Attributes
    ----------
    size : int
        Output image side in pixels.
    low_size : int or None
        Side of the first, low-resolution phase (None or ``size``: no such phase).
    low_steps, steps : int
        Adam steps at ``low_size`` and at ``size``.
    lr : float
        Adam learning rate on the normalised image (cosine-decayed within each phase).
    bn_weight, first_bn_weight, tv_weight, l2_weight, ce_weight : float
        Loss weights (module docstring). ``ce_weight = 0`` drops the class term (ZeroQ).
    jitter : float
        Largest random shift before each step, as a fraction of the current side.
    flip : bool
        Random horizontal flips before each step.
    """

    size: int = 224
    low_size: int | None = 112
    low_steps: int = 200
    steps: int = 40
    lr: float = 0.2
    bn_weight: float = 1.0
    first_bn_weight: float = 10.0
    tv_weight: float = 1e-4
    l2_weight: float = 1e-5
    ce_weight: float = 0.1
    jitter: float = 0.125
    flip: bool = True

    def check(self):
        for name in ("size", "steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                 f"integer, not {v!r}")
        if self.low_size is not None:
            if isinstance(self.low_size, bool) or not isinstance(self.low_size, int) or \
                    not 1 <= self.low_size <= self.size:
                raise ValueError(f"Low-resolution size must be an integer from 1 to the size "
                                 f"{self.size}, not {self.low_size!r}")
        if isinstance(self.low_steps, bool) or not isinstance(self.low_steps, int) or \
                self.low_steps < 0:
            raise ValueError(f"Low-resolution steps must be a non-negative integer, "
                             f"not {self.low_steps!r}")
        for name in ("lr", "bn_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        for name in ("first_bn_weight", "tv_weight", "l2_weight", "ce_weight", "jitter"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, not {getattr(self, name)!r}")
        if self.jitter >= 1:
            raise ValueError(f"jitter must be a fraction below 1, not {self.jitter!r}")

    @property
    def phases(self) -> list[tuple[int, int]]:
        """(side, steps) of each phase, low resolution first."""
        out = []
        if self.low_size is not None and self.low_size < self.size and self.low_steps > 0:
            out.append((self.low_size, self.low_steps))
        out.append((self.size, self.steps))
        return out


class _BNStats:
    """Forward hooks on every BatchNorm2d: the distance of the batch's per-channel mean and
    (biased) variance from the layer's running statistics, collected during one pass."""

    def __init__(self, model: nn.Module, first_weight: float):
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.layers:
            raise ValueError(f"Model {type(model).__name__} has no BatchNorm2d layer: its "
                             f"statistics are what distillation matches")
        self.weights = [first_weight if i == 0 else 1.0 for i in range(len(self.layers))]
        self.terms: list[torch.Tensor] = []
        self.handles = []

    def __enter__(self):
        def hook(module, inputs, _output):
            x = inputs[0]
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            self.terms.append(torch.linalg.vector_norm(mean - module.running_mean)
                              + torch.linalg.vector_norm(var - module.running_var))
        self.handles = [m.register_forward_hook(hook) for m in self.layers]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def take(self) -> torch.Tensor:
        """The weighted sum of the terms of the last pass (and forget them)."""
        terms, self.terms = self.terms, []
        return sum(w * t for w, t in zip(self.weights, terms))


def bn_loss_terms(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Per-BatchNorm-layer distance (mean and variance terms summed) of the statistics that
    inputs ``x`` produce from the running statistics, in module order; no gradients."""
    stats = _BNStats(model, 1.0)
    with torch.no_grad(), stats:
        model(x)
    return [float(t) for t in stats.terms]


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def distill_batch(model: nn.Module, n: int, settings: DistillSettings | None = None, *,
                  channels: int = 3, mean=(0.0,), std=(1.0,), classes: int | None = None,
                  seed: int = 0, progress=None) -> tuple[torch.Tensor, dict]:
    """Synthesise ``n`` images from ``model``'s BatchNorm statistics.

    Parameters
    ----------
    model : torch.nn.Module
        A trained network with BatchNorm2d layers, in eval mode; it is not changed.
    n : int
        Images in the batch (BatchNorm statistics are matched over the batch).
    settings : DistillSettings
    channels, mean, std
        Input channels and the normalisation the network expects of pixels in [0, 1]
        (one value or one per channel).
    classes : int, optional
        Output classes; with ``settings.ce_weight > 0`` each image gets a random target class.
    seed : int
        Seeds the starting noise, the targets, jitter and flips.
    progress : callable, optional
        Called as ``progress(phase_index, step, losses_dict)`` after every step.

    Returns
    -------
    (images, info) : (torch.Tensor, dict)
        ``images``: (n, channels, size, size) float32 pixels in [0, 1]. ``info``: the final
        losses (``bn``, ``tv``, ``l2``, ``ce``, ``total``), the first step's ``bn``
        (``bn_start``) and the target classes.
    """
    settings = settings or DistillSettings()
    settings.check()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"Image count must be a positive integer, not {n!r}")
    if settings.ce_weight > 0 and not classes:
        raise ValueError("A cross-entropy weight needs the number of classes")
    gen = torch.Generator().manual_seed(seed)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    lo, hi = (0.0 - mean_t) / std_t, (1.0 - mean_t) / std_t
    targets = (torch.randint(0, classes, (n,), generator=gen) if settings.ce_weight > 0
               else None)
    stats = _BNStats(model, settings.first_bn_weight)
    params = [p for p in model.parameters()]
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    phases = settings.phases
    x = None
    info = {}
    try:
        with stats:
            for phase, (side, steps) in enumerate(phases):
                if x is None:
                    x = torch.randn((n, channels, side, side), generator=gen)
                else:  # upsample the low-resolution result, as DeepInversion does
                    x = nn.functional.interpolate(x.detach(), size=(side, side),
                                                  mode="bilinear", align_corners=False)
                x = torch.maximum(torch.minimum(x, hi), lo).contiguous(
                    memory_format=torch.channels_last).requires_grad_(True)
                opt = torch.optim.Adam([x], lr=settings.lr, betas=(0.5, 0.9))
                shift = int(settings.jitter * side)
                for step in range(steps):
                    for g in opt.param_groups:  # cosine decay within the phase
                        g["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
                    dx, dy = (torch.randint(-shift, shift + 1, (2,), generator=gen).tolist()
                              if shift else (0, 0))
                    flip = settings.flip and bool(torch.rand(1, generator=gen) < 0.5)
                    xj = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
                    if flip:
                        xj = xj.flip(3)
                    logits = model(xj)
                    bn = stats.take()
                    tv = _total_variation(x)
                    l2 = x.pow(2).sum() / n
                    ce = (nn.functional.cross_entropy(logits.float(), targets)
                          if targets is not None else torch.zeros(()))
                    total = (settings.bn_weight * bn + settings.tv_weight * tv
                             + settings.l2_weight * l2 + settings.ce_weight * ce)
                    opt.zero_grad()
                    total.backward()
                    opt.step()
                    with torch.no_grad():
                        x.copy_(torch.maximum(torch.minimum(x, hi), lo))
                    losses = {name: float(v.detach()) for name, v in (
                        ("bn", bn), ("tv", tv), ("l2", l2), ("ce", ce), ("total", total))}
                    if "bn_start" not in info:
                        info["bn_start"] = losses["bn"]
                    if progress is not None:
                        progress(phase, step, losses)
        # Final losses on the un-jittered images at full size.
        x = x.detach()
        with torch.no_grad(), stats:
            logits = model(x)
            bn = stats.take()
        info.update(bn=float(bn), tv=float(_total_variation(x)),
                    l2=float(x.pow(2).sum() / n),
                    ce=(float(nn.functional.cross_entropy(logits.float(), targets))
                        if targets is not None else 0.0))
        info["total"] = (settings.bn_weight * info["bn"] + settings.tv_weight * info["tv"]
                         + settings.l2_weight * info["l2"] + settings.ce_weight * info["ce"])
        info["targets"] = [] if targets is None else targets.tolist()
    finally:
        for p, flag in zip(params, saved):
            p.requires_grad_(flag)
    pixels = (x.detach() * std_t + mean_t).clamp(0.0, 1.0)
    return pixels.contiguous(), info


def image_files(folder, index: int, n: int) -> list[Path]:
    """File names of batch ``index`` of ``n`` images in ``folder``."""
    return [Path(folder) / f"distilled_{index * n + i:05d}.png" for i in range(n)]


def _write_png(path: Path, pixels: torch.Tensor) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image

    a = np.rint(pixels.permute(1, 2, 0).numpy() * 255.0).clip(0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        matplotlib.image.imsave(tmp, a)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _Progress:
    """About ten log lines per batch: step, phase, losses, seconds."""

    def __init__(self, log, index, nbatch, steps_total, t0):
        self.log, self.index, self.nbatch = log, index, nbatch
        self.total, self.t0, self.count = steps_total, t0, 0
        self.every = max(1, steps_total // 10)

    def __call__(self, phase, step, losses):
        self.count += 1
        if self.count % self.every == 0 or self.count == self.total:
            self.log(f"distill: batch {self.index + 1}/{self.nbatch} step {self.count}/"
                     f"{self.total} (phase {phase + 1}) bn {losses['bn']:.3f} ce "
                     f"{losses['ce']:.3f} total {losses['total']:.3f}, "
                     f"{time.time() - self.t0:.0f} s")


def distill_to_folder(model: nn.Module, folder, num_images: int, *, batch: int = 32,
                      settings: DistillSettings | None = None, seed: int = 0,
                      channels: int = 3, mean=(0.0,), std=(1.0,), classes: int | None = None,
                      model_name: str = "", log=print) -> dict:
    """Distil ``num_images`` images into ``folder`` (created) as PNGs plus ``manifest.json``.

    Images are made ``batch`` at a time; batch ``b`` is seeded with ``seed * 100003 + b``, so
    a run stopped part way resumes at its first incomplete batch and ends with the same images
    as an uninterrupted run. A folder holding a manifest with other settings is refused.
    ``log`` receives one progress line every few steps. Returns the manifest.

    Raises
    ------
    ValueError
        On bad counts or settings, or a folder distilled with other settings.
    """
    settings = settings or DistillSettings()
    settings.check()
    for name, v in (("Image count", num_images), ("Batch size", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"Output {str(folder)!r} exists and is not a folder")
    key = {"format": FORMAT, "model": model_name, "num_images": num_images, "batch": batch,
           "seed": seed, "settings": asdict(settings)}
    path = folder / MANIFEST
    manifest = None
    if path.is_file():
        manifest = json.loads(path.read_text())
        old = {k: manifest.get(k) for k in key}
        if old != key:
            raise ValueError(f"{str(folder)!r} holds images distilled with other settings "
                             f"({path.name}); use another folder")
    folder.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        manifest = dict(key, batches=[], seconds=0.0, complete=False)
    done = {b["index"] for b in manifest["batches"]}
    nbatch = -(-num_images // batch)
    steps_total = sum(s for _, s in settings.phases)
    for b in range(nbatch):
        n = min(batch, num_images - b * batch)
        files = image_files(folder, b, batch)[:n]
        if b in done and all(f.is_file() for f in files):
            continue
        t0 = time.time()
        pixels, info = distill_batch(model, n, settings, channels=channels, mean=mean,
                                     std=std, classes=classes, seed=seed * 100003 + b,
                                     progress=_Progress(log, b, nbatch, steps_total, t0))
        for f, img in zip(files, pixels):
            _write_png(f, img)
        seconds = time.time() - t0
        manifest["batches"] = [x for x in manifest["batches"] if x["index"] != b]
        manifest["batches"].append({"index": b, "images": n, "seconds": round(seconds, 1),
                                    **{k: info[k] for k in ("bn_start", "bn", "tv", "l2", "ce",
                                                            "total", "targets")}})
        manifest["batches"].sort(key=lambda x: x["index"])
        manifest["seconds"] = round(sum(x["seconds"] for x in manifest["batches"]), 1)
        write_json(path, manifest)
    manifest["complete"] = True
    manifest["final_bn"] = float(np.mean([x["bn"] for x in manifest["batches"]]))
    manifest["start_bn"] = float(np.mean([x["bn_start"] for x in manifest["batches"]]))
    write_json(path, manifest)
    return manifest
