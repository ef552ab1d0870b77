"""Real networks and data: MobileNetV2 checkpoint, bundled photos, digits CNN, capture hooks."""

import re

import numpy as np
import pytest
import torch

from golden.nets.capture import activation_points, capture, replaced
from golden.nets.digits import accuracy, train_digits_cnn
from golden.nets.images import bundled_photos, extra_photos, load_folder, make_batch, split_photos
from golden.nets.mobilenet import MobileNetV2, load_mobilenet_v2, weights_path

# ImageNet indices (no label file on disk): 281-285 domestic cats, 967 espresso, 968 cup,
# 504 coffee mug, 665 moped, 670 motor scooter, 671 mountain bike.
CATS = set(range(281, 286))
COFFEE = {967, 968, 504, 925}
MOTORBIKE = {665, 670, 671}


@pytest.fixture(scope="module")
def mobilenet():
    return load_mobilenet_v2()


@pytest.fixture(scope="module")
def photos():
    return dict(bundled_photos())


@pytest.fixture(scope="module")
def digits():
    return train_digits_cnn(seed=0)


def test_weights_path_points_at_the_checkpoint():
    path = weights_path()
    assert path.name == "mobilenet_v2-b0353104.pth" and path.is_file()


def test_mobilenet_state_dict_keys_match_the_checkpoint(mobilenet):
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert list(MobileNetV2().state_dict()) == list(state)
    assert "features.0.0.weight" in state and "classifier.1.weight" in state
    assert not mobilenet.training


@pytest.mark.parametrize("name, expected", [("chelsea", CATS), ("coffee", COFFEE),
                                            ("motorcycle_left", MOTORBIKE)])
def test_mobilenet_classifies_bundled_photos(mobilenet, photos, name, expected):
    x = make_batch([(name, photos[name])], 4, seed=3)
    with torch.no_grad():
        probs = mobilenet(x).softmax(1).mean(0)
    top5 = set(probs.topk(5).indices.tolist())
    assert int(probs.argmax()) in expected, f"{name}: top-5 {sorted(top5)}"


def test_bundled_photos_are_rgb_uint8_and_split_by_scene(photos):
    for name, image in photos.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    calib, evaluation = split_photos(bundled_photos())
    c, e = {n for n, _ in calib}, {n for n, _ in evaluation}
    assert c and e and not c & e and c | e == set(photos)
    # A stereo pair is one scene.
    assert ("motorcycle_left" in c) == ("motorcycle_right" in c)


def test_extra_photos_are_rgb_and_disjoint_from_the_photos(photos):
    extra = extra_photos()
    assert len(extra) >= 10  # the packages' other pictures: camera, moon, textures, ...
    assert [n for n, _ in extra] == sorted(n for n, _ in extra)
    assert not {n for n, _ in extra} & set(photos)
    for name, image in extra:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    # Never the same picture as an evaluation photo under another name.
    for name, image in extra:
        for other, photo in photos.items():
            assert image.shape != photo.shape or not np.array_equal(image, photo), (name, other)


def test_make_batch_is_deterministic_and_normalised(photos):
    items = list(photos.items())[:3]
    a = make_batch(items, 5, size=64, seed=7)
    b = make_batch(items, 5, size=64, seed=7)
    c = make_batch(items, 5, size=64, seed=8)
    assert a.shape == (5, 3, 64, 64) and a.dtype == torch.float32
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert -2.2 < float(a.min()) and float(a.max()) < 2.7


def test_make_batch_rejects_bad_arguments(photos):
    with pytest.raises(ValueError, match=r"^Cannot make a batch from an empty list of photos$"):
        make_batch([], 2)
    with pytest.raises(ValueError, match=r"^Crop count must be a positive integer, not 0$"):
        make_batch(list(photos.items()), 0)


def test_load_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^Image folder '.*nope' does not exist$"):
        load_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"^Image folder '.*' holds no image files"):
        load_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"^Image file '.*broken.png' cannot be read"):
        load_folder(tmp_path)


def test_load_folder_reads_images(tmp_path, photos):
    import skimage.io
    skimage.io.imsave(tmp_path / "cat.png", photos["chelsea"][:40, :50])
    skimage.io.imsave(tmp_path / "gray.png", photos["chelsea"][:30, :20, 0])
    got = load_folder(tmp_path)
    assert [n for n, _ in got] == ["cat.png", "gray.png"]
    np.testing.assert_array_equal(got[0][1], photos["chelsea"][:40, :50])
    assert got[1][1].shape == (30, 20, 3)


def test_digits_cnn_is_accurate(digits):
    model, data = digits
    assert accuracy(model, data.x_test, data.y_test) > 0.95
    assert data.x_train.shape[1:] == (1, 8, 8) and len(data.y_test) > 400


def test_mobilenet_activation_points(mobilenet):
    post = activation_points(mobilenet)
    pre = activation_points(mobilenet, "pre")
    assert len(post) == len(pre) == 52
    assert sum(p.count(".") == 1 for p in post) == 17  # block outputs features.1..17
    assert post[0] == "features.0.2" and pre[0] == "features.0.1"
    assert post[-1] == "features.18.2" and pre[-2] == "features.17.conv.3"
    with pytest.raises(ValueError, match=r"^Activation point placement must be 'post' or 'pre'"):
        activation_points(mobilenet, "middle")


def test_capture_shapes_mobilenet(mobilenet, photos):
    x = make_batch(list(photos.items())[:2], 3, seed=0)
    points = ["features.0.2", "features.3", "features.18.2"]
    acts = capture(mobilenet, x, points, batch=2)
    assert acts["features.0.2"].shape == (3, 112, 112, 32)
    assert acts["features.3"].shape == (3, 56, 56, 24)
    assert acts["features.18.2"].shape == (3, 7, 7, 1280)
    assert float(acts["features.0.2"].min()) >= 0 and float(acts["features.0.2"].max()) <= 6
    # Channels-last: the NCHW output of the same module on the same batches of 2, permuted,
    # bit for bit (same inputs, same shapes, same kernels).
    with torch.no_grad():
        ref = torch.cat([mobilenet.features[0](x[:2]), mobilenet.features[0](x[2:])])
    torch.testing.assert_close(acts["features.0.2"], ref.permute(0, 2, 3, 1), rtol=0, atol=0)


def test_capture_unknown_point(mobilenet):
    with pytest.raises(ValueError, match=r"^Model MobileNetV2 has no module named 'nope'$"):
        capture(mobilenet, torch.zeros(1, 3, 32, 32), ["nope"])


def test_capture_and_replace_digits(digits):
    model, data = digits
    points = activation_points(model)
    assert points == ["features.2", "features.5", "features.9"]
    assert activation_points(model, "pre") == ["features.1", "features.4", "features.8"]
    acts = capture(model, data.x_test[:10], points)
    assert [tuple(a.shape) for a in acts.values()] == [(10, 8, 8, 16), (10, 8, 8, 32),
                                                       (10, 4, 4, 32)]
    with torch.no_grad():
        base = model(data.x_test)
        with replaced(model, {p: (lambda a: a * 1.0) for p in points}):
            same = model(data.x_test)
        with replaced(model, {"features.5": torch.zeros_like}):
            zeroed = model(data.x_test)
        after = model(data.x_test)
    torch.testing.assert_close(same, base, rtol=0, atol=0)
    torch.testing.assert_close(after, base, rtol=0, atol=0)  # hooks removed on exit
    assert (zeroed - base).abs().max() > 0.1
    # All-zero feature map: every input gives the same logits. The later layers see identical
    # inputs; only the batch position differs, which at most reorders float32 sums of
    # |logits| < 10 by a few ulp (~1e-6).
    assert (zeroed - zeroed[0]).abs().max() < 1e-5


def test_replaced_identity_and_zeros_on_mobilenet(mobilenet, photos):
    x = make_batch(list(photos.items())[:2], 2, size=96, seed=0)
    with torch.no_grad():
        base = mobilenet(x)
        with replaced(mobilenet, {p: (lambda a: a.clone()) for p in
                                  activation_points(mobilenet)}):
            same = mobilenet(x)
        with replaced(mobilenet, {"features.4": torch.zeros_like}):
            zeroed = mobilenet(x)
    torch.testing.assert_close(same, base, rtol=0, atol=0)
    assert (zeroed - base).abs().max() > 0.1


def test_replaced_is_differentiable(digits):
    model, data = digits
    scale = torch.ones(32, 1, 1, requires_grad=True)
    with replaced(model, {"features.5": lambda a: a * scale}):
        loss = model(data.x_test[:16]).logsumexp(1).sum()
    loss.backward()
    assert scale.grad is not None and scale.grad.abs().sum() > 0


def test_replaced_rejects_shape_change(digits):
    model, data = digits
    with replaced(model, {"features.2": lambda a: a[:, :8]}):
        with pytest.raises(ValueError, match=re.escape(
                "Replacement at 'features.2' changed the shape from (2, 16, 8, 8) to "
                "(2, 8, 8, 8)")):
            model(data.x_test[:2])


def test_generic_points_of_a_plain_module():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1), torch.nn.ReLU6())
    assert activation_points(model) == ["2", "4"]
    assert activation_points(model, "pre") == ["1", "3"]
    with pytest.raises(ValueError, match=r"^Model Linear has no activation modules"):
        activation_points(torch.nn.Linear(2, 2))
