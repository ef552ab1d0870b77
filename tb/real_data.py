"""Real MobileNetV2 data for the testbenches, captured once and cached under ``build/sim``.

``mobilenet_activations(point)`` is the one capture path: the channels-last feature map of one
activation point on seeded crops of the bundled photos (``golden.nets``). The testbenches derive
their data from it (coefficients, folded artifacts, quantized activations) and keep what they
derive beside it with ``save_atomic``, so parallel workers never read half-written files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tb.common import BUILD_ROOT

CROPS = 4
SIZE = 160


def save_atomic(path: Path, write) -> Path:
    """Create ``path`` through ``write(tmp_path)`` and a rename: complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    write(tmp)
    os.replace(tmp, path)
    return path


def mobilenet_activations(point: str) -> np.ndarray:
    """The float32 map (crops, H, W, C) of ``point`` on ``CROPS`` crops at ``SIZE`` x ``SIZE``
    (``make_batch(bundled_photos(), ...)``, seed 0)."""
    path = BUILD_ROOT / f"mobilenet_v2_{point}_{CROPS}x{SIZE}.npy"
    if not path.exists():
        from golden.nets.capture import activation_points, capture
        from golden.nets.images import bundled_photos, make_batch
        from golden.nets.mobilenet import load_mobilenet_v2

        model = load_mobilenet_v2().eval()
        assert point in activation_points(model), point
        x = make_batch(bundled_photos(), CROPS, size=SIZE, seed=0)
        act = capture(model, x, [point])[point].numpy()
        save_atomic(path, lambda tmp: np.save(tmp, act))
    return np.load(path)


def fit_and_held(point: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n, C) of the first half of the crops (to fit on) and of the second half (to
    use: out of sample)."""
    act = mobilenet_activations(point)
    half = act.shape[0] // 2
    return (act[:half].reshape(-1, act.shape[-1]), act[half:].reshape(-1, act.shape[-1]))
