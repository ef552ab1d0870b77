"""Photographs for calibration and evaluation, and ImageNet-style input batches.

``bundled_photos`` reads the colour photographs that scikit-image and matplotlib ship inside
their packages (nothing is downloaded); ``load_folder`` reads a user's own folder.
``split_photos`` separates calibration from evaluation photos by photograph, so a projection
is never judged on crops of the photos it was fitted on (docs/design.md: a basis fitted on a few
photos does not carry over to others). ``make_batch`` draws random resized crops and flips
from a seed and normalises them as ImageNet models expect.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "bundled_photos",
    "extra_photos",
    "load_folder",
    "make_batch",
    "split_photos",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Colour photographs shipped in scikit-image's package data (file name -> photo name).
_SKIMAGE_PHOTOS = {
    "astronaut.png": "astronaut",
    "chelsea.png": "chelsea",
    "coffee.png": "coffee",
    "hubble_deep_field.jpg": "hubble_deep_field",
    "ihc.png": "immunohistochemistry",
    "motorcycle_left.png": "motorcycle_left",
    "motorcycle_right.png": "motorcycle_right",
    "retina.jpg": "retina",
    "rocket.jpg": "rocket",
}
_MATPLOTLIB_PHOTOS = {"grace_hopper.jpg": "grace_hopper"}
# Further pictures in the same packages: grey photographs and textures, a colour chart and a
# small colour picture. Unlike ImageNet, but they widen a calibration set that has only six
# colour photos (docs/learning.md); never used for evaluation.
_SKIMAGE_EXTRA = {name: name.split(".")[0] for name in (
    "brick.png", "camera.png", "cell.png", "clock_motion.png", "coins.png", "color.png",
    "grass.png", "gravel.png", "microaneurysms.png", "moon.png", "page.png", "text.png")}
_MATPLOTLIB_EXTRA = {"Minduka_Present_Blue_Pack.png": "present"}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped) to HxWx3 uint8."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"Image must be HxW, HxWx3 or HxWx4, not shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    a = a[:, :, :3]
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.max(initial=0) <= 1.0:
            a = a * 255.0
        elif a.dtype == np.uint16:
            a = a / 257.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def bundled_photos() -> list[tuple[str, np.ndarray]]:
    """The colour photographs on disk inside scikit-image and matplotlib, as (name, RGB).

    Returns
    -------
    list of (str, numpy.ndarray)
        Name and HxWx3 uint8 RGB image, sorted by name. Files a package version lacks are
        skipped; nothing is fetched.

    Raises
    ------
    ValueError
        If no bundled photograph is found at all.
    """
    photos = _read_bundled(_SKIMAGE_PHOTOS, _MATPLOTLIB_PHOTOS)
    if not photos:
        raise ValueError("No bundled photographs were found in scikit-image or matplotlib")
    return photos


def extra_photos() -> list[tuple[str, np.ndarray]]:
    """The other pictures bundled in scikit-image and matplotlib (grey photographs such as
    ``camera`` and ``moon``, textures, a colour chart), as (name, RGB), sorted by name: extra
    calibration material, disjoint from ``bundled_photos``. Missing files are skipped."""
    return _read_bundled(_SKIMAGE_EXTRA, _MATPLOTLIB_EXTRA)


def _read_bundled(skimage_names, matplotlib_names):
    import matplotlib
    import skimage.data
    import skimage.io

    photos = []
    sources = [(Path(skimage.data.__file__).parent, skimage_names),
               (Path(matplotlib.get_data_path()) / "sample_data", matplotlib_names)]
    for folder, names in sources:
        for filename, name in names.items():
            path = folder / filename
            if path.is_file():
                photos.append((name, _to_rgb(skimage.io.imread(path))))
    return sorted(photos, key=lambda p: p[0])


def _group(name: str) -> str:
    # A stereo pair is one scene: keep both views on the same side of the split.
    for suffix in ("_left", "_right"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def split_photos(photos, eval_every: int = 2) -> tuple[list, list]:
    """Split photos into disjoint calibration and evaluation sets, by photograph.

    Photos are grouped by scene (a stereo pair such as ``motorcycle_left``/``_right`` is one
    scene), scenes are sorted by name, and every ``eval_every``-th scene (the 2nd, 4th, ...)
    goes to evaluation. Deterministic; no photo appears on both sides.

    Returns
    -------
    (calibration, evaluation) : tuple of lists of (name, image)

    Raises
    ------
    ValueError
        If fewer than two scenes are given (one side would be empty).
    """
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 2:
        raise ValueError(f"Evaluation interval must be an integer of at least 2, "
                         f"not {eval_every!r}")
    photos = list(photos)
    scenes = sorted({_group(name) for name, _ in photos})
    if len(scenes) < 2:
        raise ValueError(f"Splitting needs photos of at least 2 scenes, not {len(scenes)}")
    held_out = {s for i, s in enumerate(scenes) if i % eval_every == eval_every - 1}
    calib = [p for p in photos if _group(p[0]) not in held_out]
    evaluation = [p for p in photos if _group(p[0]) in held_out]
    return calib, evaluation


def load_folder(path) -> list[tuple[str, np.ndarray]]:
    """Every image file directly inside a folder, as (file name, HxWx3 uint8 RGB), sorted.

    Raises
    ------
    ValueError
        If the folder does not exist, is not a readable directory, holds no image files, or an
        image file cannot be decoded.
    """
    import skimage.io

    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"Image folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"Image folder {str(folder)!r} is not a directory")
    try:
        entries = sorted(os.listdir(folder))
    except OSError as e:
        raise ValueError(f"Image folder {str(folder)!r} cannot be read: {e.strerror}") from None
    files = [folder / e for e in entries
             if e.lower().endswith(_IMAGE_SUFFIXES) and (folder / e).is_file()]
    if not files:
        raise ValueError(f"Image folder {str(folder)!r} holds no image files "
                         f"({', '.join(_IMAGE_SUFFIXES)})")
    photos = []
    for f in files:
        try:
            image = skimage.io.imread(f)
            if image.ndim == 4:  # animated: first frame
                image = image[0]
            photos.append((f.name, _to_rgb(image)))
        except Exception as e:  # decoders raise many types; name the file
            raise ValueError(f"Image file {str(f)!r} cannot be read: {e}") from None
    return photos


def _crop_box(rng, h, w, scale, ratio):
    """A random resized crop box (torchvision's RandomResizedCrop rule, 10 tries)."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw = int(round(np.sqrt(target * aspect)))
        ch = int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(h, w)  # fall back to a centre square
    return (h - side) // 2, (w - side) // 2, side, side


def make_batch(photos, n: int, size: int = 224, seed: int = 0, *,
               scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """``n`` random resized crops of the photos, ImageNet-normalised.

    Photos are used in turn (crop ``i`` comes from photo ``i % len(photos)``); the crop box,
    aspect and horizontal flip are drawn from ``numpy.random.default_rng(seed)``, so a seed
    gives the same batch every time.

    Returns
    -------
    torch.Tensor
        (n, 3, size, size) float32 in channels_last memory format.

    Raises
    ------
    ValueError
        If ``photos`` is empty, or ``n`` or ``size`` is not a positive integer.
    """
    for name, value in (("Crop count", n), ("Crop size", size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    photos = list(photos)
    if not photos:
        raise ValueError("Cannot make a batch from an empty list of photos")
    rng = np.random.default_rng(seed)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    out = torch.empty((n, 3, size, size), dtype=torch.float32)
    for i in range(n):
        image = photos[i % len(photos)][1]
        top, left, ch, cw = _crop_box(rng, image.shape[0], image.shape[1], scale, ratio)
        crop = torch.from_numpy(np.ascontiguousarray(image[top:top + ch, left:left + cw]))
        crop = crop.permute(2, 0, 1)[None].float() / 255.0
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear",
                                               align_corners=False, antialias=True)[0]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        out[i] = (crop.clamp(0.0, 1.0) - mean) / std
    return out.contiguous(memory_format=torch.channels_last)
