"""golden.learn: CAP's and Price and Tanner's learned projections lower the loss they train."""

import re

import numpy as np
import pytest
import torch
from torch import nn

from golden.capture import capture, replaced
from golden.learn import Projector, learn_cap, learn_price, objective, pca_steps
from golden.projection import Projection, pca_fit

POINTS = ["1", "3"]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models: thread start-up dominates, and the 2 cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        model[6].weight *= 20  # confident outputs: distillation has something to keep
    x = torch.randn(96, 3, 8, 8)
    with torch.no_grad():
        labels = model(x).argmax(1)
    maps = capture(model, x, POINTS)
    inits = {p: pca_fit(maps[p].numpy()).truncate(3) for p in POINTS}
    return model, x, labels, maps, inits


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_projector_at_init_is_the_pca_reconstruction(setting):
    model, x, _, maps, inits = setting
    a = maps["1"].numpy()
    ref = inits["1"].reconstruct(inits["1"].project(a))
    out = Projector(inits["1"])(torch.from_numpy(a).permute(0, 3, 1, 2))
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).detach().numpy(), ref, rtol=1e-4,
                               atol=1e-4, err_msg="Projector differs from Projection")


def test_learn_cap_lowers_distillation_plus_hint_loss(setting):
    model, x, _, _, inits = setting
    before_state = _state(model)
    before = objective(model, x, inits, hint_weight=1.0)
    learned = learn_cap(model, x, inits, steps=60, lr=4e-2, batch=32)
    after = objective(model, x, learned, hint_weight=1.0)
    assert after < 0.95 * before, (before, after)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_state[k]), f"network parameter {k} changed"
    assert all(p.requires_grad for p in model.parameters())
    assert set(learned) == set(POINTS) and learned["1"].forward.shape == (3, 16)
    np.testing.assert_array_equal(learned["1"].eigenvalues, inits["1"].eigenvalues)


def test_learn_cap_single_point_and_zero_steps(setting):
    model, x, _, _, inits = setting
    same = learn_cap(model, x, "1", inits["1"], steps=0)
    assert isinstance(same, Projection)
    np.testing.assert_allclose(same.forward, inits["1"].forward, atol=1e-6)
    learned = learn_cap(model, x, "1", inits["1"], steps=60, lr=4e-2, hint_weight=0.1,
                        batch=32, train_mean=True)
    assert not np.allclose(learned.mean, inits["1"].mean)
    assert objective(model, x, {"1": learned}, hint_weight=0.1) < objective(
        model, x, {"1": inits["1"]}, hint_weight=0.1)


def test_learn_cap_quantization_aware(setting):
    model, x, _, maps, inits = setting
    steps = {p: pca_steps(inits[p], maps[p].numpy(), bits=4) for p in POINTS}
    before = objective(model, x, inits, hint_weight=1.0, steps=steps, quant_bits=4)
    learned = learn_cap(model, x, inits, steps=60, lr=4e-2, batch=32, quant_bits=4,
                        quant_steps=steps)
    after = objective(model, x, learned, hint_weight=1.0, steps=steps, quant_bits=4)
    assert after < before, (before, after)
    # Rounding is really in the loop: quantized and float losses differ.
    assert objective(model, x, learned, hint_weight=1.0) != pytest.approx(after)


def test_learn_price_task_loss_layer_by_layer(setting):
    model, x, labels, _, inits = setting
    before = objective(model, x, inits, loss="task", labels=labels)
    learned = learn_price(model, x, POINTS, inits, loss="task", labels=labels, steps=40,
                          lr=4e-2, batch=32)
    after = objective(model, x, learned, loss="task", labels=labels)
    assert after < 0.8 * before, (before, after)


def test_learn_price_kd_loss(setting):
    model, x, _, _, inits = setting
    before = objective(model, x, inits)
    learned = learn_price(model, x, inits, steps=40, lr=4e-2, batch=32)
    assert list(learned) == POINTS
    assert objective(model, x, learned) < before


def test_learned_projection_replaces_the_point(setting):
    model, x, _, _, inits = setting
    learned = learn_cap(model, x, inits, steps=5, lr=4e-2)
    with torch.no_grad(), replaced(model, {p: Projector(v) for p, v in learned.items()}):
        out = model(x)
    with torch.no_grad():
        assert not torch.allclose(out, model(x))


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss="mse"), r"^Loss must be 'task' or 'kd', not 'mse'$"),
    (dict(loss="task"), r"^The task loss needs labels$"),
    (dict(loss="task", labels=torch.zeros(5, dtype=torch.long)),
     r"^Labels must have shape \(96,\), not \(5,\)$"),
    (dict(steps=-1), r"^Step count must be a non-negative integer, not -1$"),
    (dict(lr=0.0), r"^Learning rate must be a positive number, not 0.0$"),
    (dict(batch=0), r"^Batch size must be a positive integer, not 0$"),
    (dict(quant_bits=8), r"^Quantization-aware training needs coefficient steps for point "),
])
def test_learn_price_errors(setting, kwargs, message):
    model, x, _, _, inits = setting
    with pytest.raises(ValueError, match=message):
        learn_price(model, x, inits, **kwargs)


def test_learn_errors(setting):
    model, x, _, _, inits = setting
    with pytest.raises(ValueError, match=r"^learn_cap needs an initial projection"):
        learn_cap(model, x, "1")
    with pytest.raises(ValueError, match=r"^learn_price needs an initial projection"):
        learn_price(model, x, POINTS, {"1": inits["1"]})
    with pytest.raises(ValueError, match=r"^Hint weight must be a non-negative number"):
        learn_cap(model, x, inits, hint_weight=-1)
    with pytest.raises(TypeError, match=r"^Initial projection must be a golden"):
        learn_cap(model, x, "1", np.eye(3))
    wrong = {"1": inits["3"].truncate(2), "3": inits["3"]}
    wrong["1"] = Projection(np.zeros(8), np.zeros((2, 8)), np.zeros((8, 2)))
    with pytest.raises(ValueError, match=re.escape("Projection has 8 channels, the feature "
                                                   "map 16")):
        learn_cap(model, x, wrong, steps=1)
    assert all(p.requires_grad for p in model.parameters())
