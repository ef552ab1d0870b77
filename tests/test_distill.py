"""golden.projection.distill and ``python -m golden distill``: calibration images from BatchNorm
statistics.

Tiny configurations only: a one-BatchNorm net defined here, the digits CNN (trained once per
module, a few seconds) and one 2-image, 32-pixel MobileNetV2 batch.
"""

import copy
import json
import math
import os
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

import golden.nets.digits
import golden.nets.mobilenet
import golden.projection.distill
from golden.__main__ import UsageError, calibration_source, digits_images, main
from golden.nets.images import IMAGENET_MEAN, IMAGENET_STD, load_folder
from golden.projection.distill import (
    DistillSettings,
    bn_loss_terms,
    distill_batch,
    distill_to_folder,
    image_files,
)

PREFIX = r"^python -m golden: error: "
# Digits settings small enough for ~0.1 s a batch: one phase at the native 8 x 8, 10 steps.
FAST = dict(size=8, low_size=None, steps=10)
DIGITS = dict(channels=1, classes=10, model_name="digits")  # what cmd_distill passes


def weighted(terms, first=10.0):
    """The loss distill_batch reports: first BatchNorm layer weighted by first_bn_weight."""
    return first * terms[0] + sum(terms[1:])


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    model, data = golden.nets.digits.train_digits_cnn(seed=0)
    return model, data


@pytest.fixture(scope="module")
def digits_folder(digits, tmp_path_factory):
    """10 digits in batches of 4, 4, 2 (the last one short), uninterrupted."""
    folder = tmp_path_factory.mktemp("distill") / "digits"
    manifest = distill_to_folder(digits[0], folder, 10, batch=4, seed=0,
                                 settings=DistillSettings(**FAST), log=lambda line: None,
                                 **DIGITS)
    return folder, manifest


@pytest.fixture
def cached_digits(digits, monkeypatch):
    """The CLI's train_digits_cnn(seed=0) served from the module's model: the same
    deterministic function (single-threaded training), without its seconds per call."""
    model, data = digits
    real = golden.nets.digits.train_digits_cnn
    calls = []

    def fake(seed=0, **kw):
        calls.append(seed)
        if seed != 0 or kw:
            return real(seed=seed, **kw)
        return copy.deepcopy(model), data

    monkeypatch.setattr(golden.nets.digits, "train_digits_cnn", fake)
    return calls


def one_bn_net():
    """One BatchNorm2d on the pixels themselves: its running statistics are the target pixel
    statistics, reachable exactly (no other layer pulls elsewhere; jitter and flips leave
    per-channel statistics unchanged)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm2d(2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 4))
    net[0].running_mean.copy_(torch.tensor([0.3, 0.7]))
    net[0].running_var.copy_(torch.tensor([0.01, 0.04]))
    return net.eval()


# ---------------------------------------------------------------------------------------------
# The loss


def test_bn_loss_terms_against_numpy():
    """Per layer: ||batch mean - running mean|| + ||biased batch var - running var||, computed
    here in float64 from the layer inputs."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)).eval()
    net[0].running_mean.copy_(torch.tensor([0.3, -0.2]))
    net[0].running_var.copy_(torch.tensor([0.5, 2.0]))
    net[2].running_mean.copy_(torch.tensor([0.1, 0.0, -1.0]))
    net[2].running_var.copy_(torch.tensor([1.5, 0.2, 3.0]))
    x = torch.randn(5, 2, 4, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        inputs = [x, net[1](net[0](x))]
    want = []
    for bn, a in zip((net[0], net[2]), inputs):
        a = a.double().numpy()
        mean, var = a.mean(axis=(0, 2, 3)), a.var(axis=(0, 2, 3))
        want.append(np.linalg.norm(mean - bn.running_mean.double().numpy())
                    + np.linalg.norm(var - bn.running_var.double().numpy()))
    got = bn_loss_terms(net, x)
    # float32 means and variances of 120 values of order 1: relative error ~1e-6.
    assert got == pytest.approx(want, rel=1e-5)


def test_one_bn_net_reaches_its_statistics():
    """With one BatchNorm layer on the pixels, distillation drives the pixels' per-channel
    mean and variance to its running statistics; the model is left as it was."""
    net = one_bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    settings = DistillSettings(size=8, low_size=None, steps=30, lr=0.05, ce_weight=0.0,
                               tv_weight=0.0, l2_weight=0.0)
    pixels, info = distill_batch(net, 16, settings, channels=2, seed=0)
    assert pixels.shape == (16, 2, 8, 8) and pixels.dtype == torch.float32
    mean = pixels.mean(dim=(0, 2, 3))
    var = pixels.var(dim=(0, 2, 3), unbiased=False)
    # Measured: means within 1e-4, variances within 1e-5 of the targets after 30 steps;
    # the starting noise (normal, clamped to [0, 1]) has means ~0.4 and variances ~0.1.
    assert mean.tolist() == pytest.approx([0.3, 0.7], abs=0.01)
    assert var.tolist() == pytest.approx([0.01, 0.04], abs=0.003)
    assert info["bn"] < 0.01 * info["bn_start"]
    assert info["ce"] == 0.0 and info["targets"] == []
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in net.parameters())


def test_digits_bn_loss_falls(digits):
    """The weighted BatchNorm loss of distilled digits falls well below that of the starting
    noise, measured here independently, to the level of a batch of real digits."""
    model, data = digits
    n, seed = 32, 3
    settings = DistillSettings(size=8, low_size=None, steps=30, ce_weight=0.0)
    # With no class term the generator's first draw is the starting noise: standard normal,
    # clamped to the pixel range [0, 1] (digits: mean 0, std 1).
    noise = torch.randn((n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    noise_bn = weighted(bn_loss_terms(model, noise.clamp(0.0, 1.0)))
    real_bn = weighted(bn_loss_terms(model, data.x_train[:n]))
    pixels, info = distill_batch(model, n, settings, channels=1, seed=seed)
    # bn_start is the first step's loss, on the noise shifted and maybe flipped: the same
    # distribution (iid pixels), so the same loss up to sampling noise (measured 4.45 vs 4.21).
    assert 0.7 * noise_bn < info["bn_start"] < 1.4 * noise_bn
    # Measured: 4.45 -> 1.02; real digits 1.28.
    assert info["bn"] < 0.5 * info["bn_start"]
    assert info["bn"] < 0.5 * noise_bn
    assert info["bn"] < 1.5 * real_bn
    # The reported final losses are those of the returned pixels (here identical to the
    # optimised tensor): BatchNorm from bn_loss_terms, TV and L2 in float64 numpy.
    assert info["bn"] == pytest.approx(weighted(bn_loss_terms(model, pixels)), rel=1e-4)
    a = pixels.double().numpy()
    tv = (np.diff(a, axis=3) ** 2).mean() + (np.diff(a, axis=2) ** 2).mean()
    assert info["tv"] == pytest.approx(tv, rel=1e-5)
    assert info["l2"] == pytest.approx((a ** 2).sum() / n, rel=1e-5)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert pixels.std() > 0.1


def test_class_term_steers_to_targets(digits):
    """With a cross-entropy weight each image gets a random target class and the network
    comes to predict it (measured: 31 of 32 images; chance is 1 in 10)."""
    model, _ = digits
    settings = DistillSettings(size=8, low_size=None, steps=30, ce_weight=1.0)
    pixels, info = distill_batch(model, 32, settings, channels=1, classes=10, seed=3)
    targets = torch.tensor(info["targets"])
    assert len(targets) == 32 and 0 <= targets.min() and targets.max() < 10
    assert len(set(info["targets"])) >= 5  # random classes, not one
    with torch.no_grad():
        pred = model(pixels).argmax(1)
    assert (pred == targets).float().mean() >= 0.75
    assert info["ce"] < 0.5 * math.log(10)  # measured 0.26; uniform logits give ln 10


def test_two_phase_schedule(digits):
    """Low resolution first, then full size: progress reports each phase's steps in turn."""
    model, _ = digits
    s = DistillSettings(size=8, low_size=4, low_steps=3, steps=2)
    assert s.phases == [(4, 3), (8, 2)]
    assert DistillSettings(size=8, low_size=8, low_steps=3, steps=2).phases == [(8, 2)]
    assert DistillSettings(size=8, low_size=4, low_steps=0, steps=2).phases == [(8, 2)]
    assert DistillSettings(size=8, low_size=None, steps=2).phases == [(8, 2)]
    assert DistillSettings().phases == [(112, 200), (224, 40)]
    calls = []
    pixels, info = distill_batch(model, 4, s, channels=1, classes=10, seed=0,
                                 progress=lambda phase, step, losses: calls.append(
                                     (phase, step, sorted(losses))))
    names = sorted(["bn", "tv", "l2", "ce", "total"])
    assert calls == [(0, 0, names), (0, 1, names), (0, 2, names), (1, 0, names),
                     (1, 1, names)]
    assert pixels.shape == (4, 1, 8, 8)


def test_determinism(digits):
    model, _ = digits
    s = DistillSettings(**FAST)
    a, info_a = distill_batch(model, 8, s, channels=1, classes=10, seed=5)
    b, info_b = distill_batch(model, 8, s, channels=1, classes=10, seed=5)
    c, info_c = distill_batch(model, 8, s, channels=1, classes=10, seed=6)
    assert torch.equal(a, b) and info_a == info_b
    # Independent noise: pixels differ by ~0.3 on average.
    assert (a - c).abs().mean() > 0.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), r"Image count must be a positive integer, not 0"),
    (dict(n=2.0), r"Image count must be a positive integer, not 2\.0"),
    (dict(classes=None), r"A cross-entropy weight needs the number of classes"),
    (dict(settings=DistillSettings(size=8, low_size=9)),
     r"Low-resolution size must be an integer from 1 to the size 8, not 9"),
    (dict(settings=DistillSettings(size=8, low_size=None, steps=0)),
     r"Steps must be a positive integer, not 0"),
    (dict(settings=DistillSettings(size=8, low_size=None, lr=0.0)),
     r"lr must be positive, not 0\.0"),
    (dict(settings=DistillSettings(size=8, low_size=None, low_steps=-1)),
     r"Low-resolution steps must be a non-negative integer, not -1"),
    (dict(settings=DistillSettings(size=8, low_size=None, jitter=1.0)),
     r"jitter must be a fraction below 1, not 1\.0"),
    (dict(settings=DistillSettings(size=8, low_size=None, tv_weight=-1e-4)),
     r"tv_weight must be non-negative, not -0\.0001"),
])
def test_bad_batch_arguments(digits, kwargs, message):
    call = dict(n=2, settings=DistillSettings(**FAST), classes=10)
    call.update(kwargs)
    with pytest.raises(ValueError, match=f"^{message}$"):
        distill_batch(digits[0], call.pop("n"), call.pop("settings"), channels=1, **call)


def test_no_batchnorm_refused(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    message = (r"^Model Sequential has no BatchNorm2d layer: its statistics are what "
               r"distillation matches$")
    with pytest.raises(ValueError, match=message):
        distill_batch(net, 2, DistillSettings(**FAST), channels=1, classes=10)
    with pytest.raises(ValueError, match=message):
        bn_loss_terms(net, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=message):
        distill_to_folder(net, tmp_path / "out", 2, batch=2, settings=DistillSettings(**FAST),
                          channels=1, classes=10, log=lambda line: None)
    assert not any((tmp_path / "out").glob("*.png"))
    assert all(p.requires_grad for p in net.parameters())


def test_mobilenet_v2_small(tmp_path):
    """The real network: 2 images at 32 x 32, 4 steps (a few seconds)."""
    model = golden.nets.mobilenet.load_mobilenet_v2()
    settings = DistillSettings(size=32, low_size=None, steps=4)
    manifest = distill_to_folder(model, tmp_path, 2, batch=2, settings=settings, seed=0,
                                 channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                 classes=1000, model_name="mobilenet_v2",
                                 log=lambda line: None)
    (b,) = manifest["batches"]
    # Starting noise: standard normal in the normalised space, clamped to the pixel range.
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    noise = torch.randn((2, 3, 32, 32), generator=torch.Generator().manual_seed(99))
    noise = torch.maximum(torch.minimum(noise, (1 - mean) / std), -mean / std)
    noise_bn = weighted(bn_loss_terms(model, noise))
    # Measured after 4 steps: 477 -> 408 (noise 488). Doing nothing would give a ratio ~1.
    assert b["bn"] < 0.95 * b["bn_start"] and b["bn"] < 0.95 * noise_bn
    assert len(b["targets"]) == 2 and all(0 <= t < 1000 for t in b["targets"])
    photos = load_folder(tmp_path)
    assert [name for name, _ in photos] == ["distilled_00000.png", "distilled_00001.png"]
    for _, a in photos:
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8
        assert a.std() > 5  # not a flat picture (values 0..255)
    assert calibration_source(tmp_path) == "synthetic"


# ---------------------------------------------------------------------------------------------
# The folder


def test_folder_images_valid(digits, digits_folder):
    model, _ = digits
    folder, manifest = digits_folder
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"distilled_{i:05d}.png" for i in range(10)] + ["manifest.json"]
    photos = load_folder(folder)
    assert len(photos) == 10
    stack = np.stack([a for _, a in photos])
    assert stack.shape == (10, 8, 8, 3) and stack.dtype == np.uint8
    assert (stack == stack[..., :1]).all()  # grey: one channel written three times
    for a in stack:
        assert a.max() > a.min()
    assert len({a.tobytes() for a in stack}) == 10
    # Each batch's PNGs are its distill_batch pixels rounded to 8 bits, batch b seeded
    # seed * 100003 + b (seed 0 here).
    for b, n in enumerate((4, 4, 2)):
        pixels, info = distill_batch(model, n, DistillSettings(**FAST), channels=1,
                                     classes=10, seed=b)
        want = np.rint(pixels[:, 0].numpy() * 255.0).astype(np.uint8)
        np.testing.assert_array_equal(stack[4 * b:4 * b + n, :, :, 0], want)
        assert manifest["batches"][b]["targets"] == info["targets"]
        assert manifest["batches"][b]["bn"] == info["bn"]
    assert image_files(folder, 2, 4) == [folder / f"distilled_{i:05d}.png"
                                         for i in (8, 9, 10, 11)]


def test_folder_manifest(digits_folder):
    folder, manifest = digits_folder
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["format"] == 1 and manifest["model"] == "digits"
    assert (manifest["num_images"], manifest["batch"], manifest["seed"]) == (10, 4, 0)
    assert manifest["settings"] == asdict(DistillSettings(**FAST))
    assert manifest["complete"] is True
    batches = manifest["batches"]
    assert [(b["index"], b["images"], len(b["targets"])) for b in batches] == \
        [(0, 4, 4), (1, 4, 4), (2, 2, 2)]
    for b in batches:
        assert b["bn"] < b["bn_start"]
        assert b["seconds"] >= 0
    assert manifest["final_bn"] == pytest.approx(np.mean([b["bn"] for b in batches]), rel=1e-12)
    assert manifest["start_bn"] == pytest.approx(np.mean([b["bn_start"] for b in batches]),
                                                 rel=1e-12)
    assert manifest["seconds"] == pytest.approx(sum(b["seconds"] for b in batches), abs=0.051)


def test_same_seed_same_folder_other_seed_other_pixels(digits, digits_folder, tmp_path):
    model, _ = digits
    ref = np.stack([a for _, a in load_folder(digits_folder[0])])
    for seed, same in ((0, True), (1, False)):
        out = tmp_path / f"seed{seed}"
        distill_to_folder(model, out, 10, batch=4, seed=seed, settings=DistillSettings(**FAST),
                          log=lambda line: None, **DIGITS)
        got = np.stack([a for _, a in load_folder(out)])
        if same:
            np.testing.assert_array_equal(got, ref)
        else:  # independent noise: mean absolute difference ~70 of 255
            assert np.abs(got.astype(int) - ref.astype(int)).mean() > 10


class Killed(Exception):
    pass


def test_resume_after_interruption(digits, digits_folder, tmp_path):
    """Killed during its second batch, a run resumes there, leaves the first batch's files
    alone, and ends with exactly the images of an uninterrupted run."""
    model, _ = digits
    folder = tmp_path / "resumed"
    kw = dict(batch=4, seed=0, settings=DistillSettings(**FAST), **DIGITS)

    def kill_in_batch_2(line):
        if line.startswith("distill: batch 2/3 "):
            raise Killed(line)

    with pytest.raises(Killed):
        distill_to_folder(model, folder, 10, log=kill_in_batch_2, **kw)
    assert all(p.requires_grad for p in model.parameters())
    first = image_files(folder, 0, 4)
    assert sorted(p.name for p in folder.iterdir()) == \
        sorted([p.name for p in first] + ["manifest.json"])  # no stray temporary file
    partial = json.loads((folder / "manifest.json").read_text())
    assert partial["complete"] is False
    assert [b["index"] for b in partial["batches"]] == [0]
    stamps = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in first}

    lines = []
    manifest = distill_to_folder(model, folder, 10, log=lines.append, **kw)
    assert lines and not any(line.startswith("distill: batch 1/3 ") for line in lines)
    assert any(line.startswith("distill: batch 2/3 ") for line in lines)
    assert any(line.startswith("distill: batch 3/3 ") for line in lines)
    # Files are replaced atomically (new inode) when written: these were not written again.
    assert {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in first} == stamps
    assert manifest["batches"][0] == partial["batches"][0]
    assert manifest["complete"] is True
    ref_folder, ref_manifest = digits_folder
    np.testing.assert_array_equal(np.stack([a for _, a in load_folder(folder)]),
                                  np.stack([a for _, a in load_folder(ref_folder)]))
    for got, want in zip(manifest["batches"], ref_manifest["batches"]):
        assert {k: v for k, v in got.items() if k != "seconds"} == \
            {k: v for k, v in want.items() if k != "seconds"}

    # A deleted picture is made again, by its batch alone, identical.
    victim = folder / "distilled_00005.png"
    before = load_folder(folder)
    victim.unlink()
    lines.clear()
    distill_to_folder(model, folder, 10, log=lines.append, **kw)
    assert lines and {line.split(" step ")[0] for line in lines} == {"distill: batch 2/3"}
    after = load_folder(folder)
    assert [n for n, _ in after] == [n for n, _ in before]
    for (_, a), (_, b) in zip(after, before):
        np.testing.assert_array_equal(a, b)

    # A complete folder: nothing to do.
    lines.clear()
    distill_to_folder(model, folder, 10, log=lines.append, **kw)
    assert lines == []


@pytest.mark.parametrize("change", [dict(seed=1), dict(batch=5), dict(num_images=12),
                                    dict(model_name="mobilenet_v2"),
                                    dict(settings=DistillSettings(size=8, low_size=None,
                                                                  steps=11))])
def test_other_settings_refused(digits, digits_folder, change):
    folder, _ = digits_folder
    kw = dict(num_images=10, batch=4, seed=0, settings=DistillSettings(**FAST), **DIGITS)
    kw.update(change)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    message = (f"^{re.escape(repr(str(folder)))} holds images distilled with other settings "
               r"\(manifest\.json\); use another folder$")
    with pytest.raises(ValueError, match=message):
        distill_to_folder(digits[0], folder, kw.pop("num_images"), log=lambda line: None, **kw)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_foreign_manifest_refused(digits, tmp_path):
    """A folder with some other tool's manifest.json (e.g. hdl.build's) is not written into."""
    (tmp_path / "manifest.json").write_text(json.dumps({"modules": {}}))
    with pytest.raises(ValueError, match=r"holds images distilled with other settings"):
        distill_to_folder(digits[0], tmp_path, 2, batch=2, settings=DistillSettings(**FAST),
                          log=lambda line: None, **DIGITS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_folder_bad_arguments(digits, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    kw = dict(settings=DistillSettings(**FAST), log=lambda line: None, **DIGITS)
    with pytest.raises(ValueError, match=r"^Image count must be a positive integer, not 0$"):
        distill_to_folder(digits[0], tmp_path / "a", 0, **kw)
    with pytest.raises(ValueError, match=r"^Batch size must be a positive integer, not 0$"):
        distill_to_folder(digits[0], tmp_path / "a", 4, batch=0, **kw)
    with pytest.raises(ValueError, match=f"^Output {re.escape(repr(str(taken)))} exists and "
                                         f"is not a folder$"):
        distill_to_folder(digits[0], taken, 4, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


# ---------------------------------------------------------------------------------------------
# calibrate's side: calibration_source, digits_images


def test_calibration_source(digits_folder, tmp_path):
    folder, _ = digits_folder
    assert calibration_source(folder) == "synthetic"
    assert calibration_source(str(folder)) == "synthetic"
    photos = tmp_path / "photos"
    photos.mkdir()
    assert calibration_source(photos) == str(photos)
    (photos / "manifest.json").write_text(json.dumps({"modules": {}}))  # not distill's
    assert calibration_source(photos) == str(photos)
    (photos / "manifest.json").write_text("{not json")
    assert calibration_source(photos) == str(photos)


def test_digits_images(digits, digits_folder, tmp_path):
    folder, _ = digits_folder
    x = digits_images(folder)
    assert x.shape == (10, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.std() > 0.1
    # The PNGs hold the distilled pixels to 8 bits: within half a step (plus float32 slack).
    for b, n in enumerate((4, 4, 2)):
        pixels, _ = distill_batch(digits[0], n, DistillSettings(**FAST), channels=1,
                                  classes=10, seed=b)
        assert (x[4 * b:4 * b + n] - pixels).abs().max() <= 0.5 / 255 + 1e-6

    import matplotlib.image
    bad = tmp_path / "bad"
    bad.mkdir()
    matplotlib.image.imsave(bad / "a.png", np.zeros((8, 8, 3), np.uint8))
    matplotlib.image.imsave(bad / "big.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UsageError, match=r"^--images for --model digits must hold 8 x 8 "
                                         r"pictures; big\.png is not$"):
        digits_images(bad)


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_distill_then_calibrate_digits(tmp_path, capsys, cached_digits):
    images = tmp_path / "synthetic"
    code, out, err = run(["distill", "--model", "digits", "--num-images", "64", "--steps", "10",
                          "--out", images, "--no-progress"], capsys)
    assert (code, err) == (0, "")
    assert re.fullmatch(rf"64 images -> {re.escape(str(images))}: BatchNorm loss "
                        r"[0-9.]+ -> [0-9.]+, \d+ s of optimisation \(\d+ threads\)\n", out)
    manifest = json.loads((images / "manifest.json").read_text())
    assert manifest["complete"] and manifest["model"] == "digits"
    assert manifest["final_bn"] < 0.5 * manifest["start_bn"]  # measured 4.2 -> 1.5
    assert len(load_folder(images)) == 64

    cal = tmp_path / "cal"
    code, out, err = run(["calibrate", "--model", "digits", "--images", images, "--k", "8",
                          "--out", cal, "--no-progress"], capsys)
    assert code == 0, err
    report = json.loads((cal / "report.json").read_text())
    assert report["inputs"]["calibration_source"] == "synthetic"
    assert report["inputs"]["calibration"].startswith(f"64 pictures of {images}")
    assert cached_digits == [0, 0]  # both commands used the seed-0 digits CNN

    bad = tmp_path / "bad"
    bad.mkdir()
    import matplotlib.image
    matplotlib.image.imsave(bad / "big.png", np.zeros((16, 16, 3), np.uint8))
    code, out, err = run(["calibrate", "--model", "digits", "--images", bad, "--k", "8",
                          "--out", tmp_path / "cal2", "--no-progress"], capsys)
    assert code == 2 and out == ""
    assert re.fullmatch(PREFIX + r"--images for --model digits must hold 8 x 8 pictures; "
                        r"big\.png is not\n", err)
    assert not (tmp_path / "cal2").exists()


@pytest.fixture
def no_work(monkeypatch):
    """Any attempt to load a network or distil fails the test (and fast)."""
    def fail(*a, **kw):
        raise AssertionError("a bad argument must be refused before any work")

    monkeypatch.setattr(golden.nets.digits, "train_digits_cnn", fail)
    monkeypatch.setattr(golden.nets.mobilenet, "load_mobilenet_v2", fail)
    monkeypatch.setattr(golden.projection.distill, "distill_to_folder", fail)


@pytest.mark.parametrize("options, message", [
    ({"--num-images": "0"}, r"--num-images must be a positive integer, not 0"),
    ({"--num-images": "-3"}, r"--num-images must be a positive integer, not -3"),
    ({"--num-images": "ten"}, r"argument --num-images: invalid int value: 'ten'"),
    ({"--batch": "0"}, r"--batch must be a positive integer, not 0"),
    ({"--steps": "0"}, r"Steps must be a positive integer, not 0"),
    ({"--lr": "-1"}, r"lr must be positive, not -1\.0"),
    ({"--lr": "0"}, r"lr must be positive, not 0\.0"),
    ({"--size": "0"}, r"Size must be a positive integer, not 0"),
    ({"--low-size": "9"}, r"Low-resolution size must be an integer from 1 to the size 8, not 9"),
    ({"--model": "mobilenet_v2", "--size": "64", "--low-size": "128"},
     r"Low-resolution size must be an integer from 1 to the size 64, not 128"),
    ({"--model": "mobilenet_v2", "--low-steps": "-1"},
     r"Low-resolution steps must be a non-negative integer, not -1"),
    ({"--low-steps": "-1"},  # digits: no low phase, still a bad value
     r"Low-resolution steps must be a non-negative integer, not -1"),
    ({"--ce-weight": "-0.5"}, r"ce_weight must be non-negative, not -0\.5"),
    ({"--model": "resnet"}, r"argument --model: invalid choice: .*resnet.*"),
])
def test_cli_bad_arguments(tmp_path, capsys, no_work, options, message):
    out = tmp_path / "new" / "images"
    args = {"--model": "digits", "--num-images": "4", "--out": out, **options}
    code, stdout, err = run(["distill", *[s for kv in args.items() for s in kv],
                             "--no-progress"], capsys)
    assert code == 2 and stdout == ""
    assert re.fullmatch(PREFIX + message + "\n", err), err
    assert list(tmp_path.iterdir()) == []


def test_cli_out_is_a_file(tmp_path, capsys, no_work):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"not a folder")
    code, stdout, err = run(["distill", "--model", "digits", "--num-images", "4", "--out",
                             taken, "--no-progress"], capsys)
    assert code == 2 and stdout == ""
    assert re.fullmatch(PREFIX + rf"--out {re.escape(str(taken))} exists and is not a "
                        r"directory\n", err)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.png"]
    assert taken.read_bytes() == b"not a folder"


@pytest.mark.parametrize("options, want", [
    ({"--model": "mobilenet_v2"}, DistillSettings()),
    ({"--model": "mobilenet_v2", "--size": "64"}, DistillSettings(size=64, low_size=None)),
    ({"--model": "mobilenet_v2", "--low-size": "0", "--steps": "7"},
     DistillSettings(low_size=None, steps=7)),
    ({"--model": "mobilenet_v2", "--size": "96", "--low-size": "48", "--low-steps": "5",
      "--lr": "0.1", "--ce-weight": "0", "--tv-weight": "0.5", "--l2-weight": "0.25"},
     DistillSettings(size=96, low_size=48, low_steps=5, lr=0.1, ce_weight=0.0, tv_weight=0.5,
                     l2_weight=0.25)),
    ({"--model": "digits"}, DistillSettings(size=8, low_size=None)),
    ({"--model": "digits", "--size": "8", "--low-size": "8"},  # equal: no low phase
     DistillSettings(size=8, low_size=8)),
])
def test_cli_settings(tmp_path, capsys, monkeypatch, options, want):
    """What cmd_distill hands distill_to_folder, for each model and option."""
    seen = {}
    model = object()

    def fake_distill(m, out, num_images, **kw):
        seen.update(kw, model=m, out=out, num_images=num_images)
        return {"start_bn": 2.0, "final_bn": 1.0, "seconds": 3.0}

    monkeypatch.setattr(golden.projection.distill, "distill_to_folder", fake_distill)
    monkeypatch.setattr(golden.nets.digits, "train_digits_cnn", lambda seed=0: (model, None))
    monkeypatch.setattr(golden.nets.mobilenet, "load_mobilenet_v2", lambda: model)
    args = {"--num-images": "6", "--out": tmp_path / "o", "--batch": "3", "--seed": "4",
            **options}
    code, stdout, err = run(["distill", *[s for kv in args.items() for s in kv],
                             "--no-progress"], capsys)
    assert (code, err) == (0, "")
    assert seen["settings"] == want
    assert seen["model"] is model and seen["num_images"] == 6
    assert (seen["batch"], seen["seed"]) == (3, 4)
    digits = options["--model"] == "digits"
    assert seen["model_name"] == options["--model"]
    assert (seen["channels"], seen["classes"]) == ((1, 10) if digits else (3, 1000))
    assert (tuple(seen["mean"]), tuple(seen["std"])) == (
        ((0.0,), (1.0,)) if digits else (IMAGENET_MEAN, IMAGENET_STD))
    assert stdout.startswith(f"6 images -> {tmp_path / 'o'}: BatchNorm loss 2.000 -> 1.000, ")
