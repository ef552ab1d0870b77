"""golden.projection.learning: CAP's and Price and Tanner's learned projections, judged on held-out
inputs.

Learned projections are scored with ``golden.calibration.report.compare_logits`` (its own float64
KL and
agreement, not the training loss) on inputs that training never saw, against PCA at the same
k.
"""

import re

import numpy as np
import pytest
import torch
from torch import nn

from golden.calibration.report import compare_logits
from golden.nets.capture import capture, replaced
from golden.projection.learning import (
    Projector,
    QuantFormat,
    learn_cap,
    learn_price,
    objective,
    pca_steps,
    quant_format,
)
from golden.projection.pca import Projection, pca_fit

POINTS = ["1", "3"]
K = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        model[6].weight *= 20  # confident outputs: distillation has something to keep
    x = torch.randn(96, 3, 8, 8)
    held = torch.randn(128, 3, 8, 8)
    with torch.no_grad():
        labels = model(x).argmax(1)
        held_labels = model(held).argmax(1)
    maps = capture(model, x, POINTS)
    inits = {p: pca_fit(maps[p].numpy()).truncate(K) for p in POINTS}
    return model, x, labels, maps, inits, held, held_labels


def held_out(model, held, projections, quant=None):
    """compare_logits of the network with ``projections`` in place, on held-out inputs."""
    fns = {p: Projector(pr, quant=None if quant is None else quant[p])
           for p, pr in projections.items()}
    with torch.no_grad():
        base = model(held)
        with replaced(model, fns):
            comp = model(held)
    return compare_logits(base, comp)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_projector_at_init_is_the_pca_reconstruction(setting):
    model, x, _, maps, inits, _, _ = setting
    a = maps["1"].numpy()
    ref = inits["1"].reconstruct(inits["1"].project(a))
    out = Projector(inits["1"])(torch.from_numpy(a).permute(0, 3, 1, 2))
    # float32 matmuls of O(1) values over 16 channels: errors far below 1e-4.
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).detach().numpy(), ref, rtol=1e-4,
                               atol=1e-4, err_msg="Projector differs from Projection")


def test_quantized_projector_is_on_the_stored_grid_and_passes_gradients(setting):
    _, _, _, maps, inits, _, _ = setting
    a = maps["1"].numpy()
    fmt = quant_format(inits["1"], a)
    # A ReLU output is stored unsigned: 9-bit signed at the MACs, clamped at 0.
    assert (fmt.x_lo, fmt.x_hi) == (0, 255)
    assert fmt.steps.shape == (K,) and np.all(fmt.steps > 0)
    t = torch.from_numpy(a).permute(0, 3, 1, 2).requires_grad_(True)
    out = Projector(inits["1"], quant=fmt)(t)
    codes = out.detach().double().numpy() / fmt.x_scale
    # Codes are integers up to float32 rounding of (code * step) / step: |code| <= 255.
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-3)
    assert codes.min() >= -1e-3 and codes.max() <= 255 + 1e-3
    out.sum().backward()
    assert float(t.grad.abs().sum()) > 0, "no gradient through the straight-through rounding"
    # The rounding is real: it differs from the float reconstruction by a fraction of a step.
    fl = Projector(inits["1"])(t).detach().numpy()
    diff = np.abs(out.detach().numpy() - fl)
    assert diff.max() > 0.01 * fmt.x_scale


def test_quant_format_steps_are_pca_steps_with_the_floor(setting):
    _, _, _, maps, inits, _, _ = setting
    a = maps["3"].numpy().astype(np.float64)
    fmt = quant_format(inits["3"], a, min_step=0.0)
    x_q = np.clip(np.rint(a / fmt.x_scale), fmt.x_lo, fmt.x_hi) * fmt.x_scale
    np.testing.assert_allclose(fmt.steps, pca_steps(inits["3"], x_q), rtol=1e-12)
    floored = quant_format(inits["3"], a, min_step=1e6)
    # min_step counts 8-bit activation steps; the 9-bit unsigned grid has 255 / 127 of them.
    np.testing.assert_allclose(floored.steps, 1e6 * fmt.x_scale * 255 / 127, rtol=1e-12)


def test_learn_cap_beats_pca_on_held_out_inputs(setting):
    model, x, _, _, inits, held, _ = setting
    before_state = _state(model)
    curve = []
    learned = learn_cap(model, x, inits, steps=80, lr=4e-2, batch=32, val_fraction=0.25,
                        eval_every=10, patience=4, history=curve)
    pca = held_out(model, held, inits)
    cap = held_out(model, held, learned)
    assert cap["mean_kl"] < 0.7 * pca["mean_kl"], (pca["mean_kl"], cap["mean_kl"])
    assert cap["top1_agreement"] >= pca["top1_agreement"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_state[k]), f"network parameter {k} changed"
    assert all(p.requires_grad for p in model.parameters())
    assert set(learned) == set(POINTS) and learned["1"].forward.shape == (K, 16)
    np.testing.assert_array_equal(learned["1"].eigenvalues, inits["1"].eigenvalues)
    assert curve[0]["step"] == 0 and all(c["step"] % 10 == 0 for c in curve[:-1])
    assert curve[-1]["val_kl"] < curve[0]["val_kl"]


def test_learn_cap_quantization_aware_beats_pca_with_the_same_rounding(setting):
    model, x, _, maps, inits, held, _ = setting
    quant = {p: quant_format(inits[p], maps[p].numpy(), bits=4) for p in POINTS}
    learned = learn_cap(model, x, inits, steps=80, lr=4e-2, batch=32, quant=quant)
    pca = held_out(model, held, inits, quant)
    cap = held_out(model, held, learned, quant)
    assert cap["mean_kl"] < 0.8 * pca["mean_kl"], (pca["mean_kl"], cap["mean_kl"])
    # Rounding is really in the loop: the quantized network differs from the float one.
    assert held_out(model, held, learned)["mean_kl"] != pytest.approx(cap["mean_kl"],
                                                                      rel=1e-3)


def test_hint_is_measured_against_the_teachers_activation(setting):
    """objective's hint term equals the mean over points of ||student reconstruction -
    teacher activation||^2 / ||teacher - its channel means||^2, computed here from captures:
    at the second point the student's input already carries the first point's error, so a
    hint against the student's own input would differ."""
    model, x, _, _, inits, _, _ = setting
    with_hint = objective(model, x, inits, hint_weight=1.0, batch=len(x))
    without = objective(model, x, inits, hint_weight=0.0, batch=len(x))
    teacher = capture(model, x, POINTS)
    fns = {p: Projector(inits[p]) for p in POINTS}
    with torch.no_grad(), replaced(model, fns):
        student_in = capture(model, x, ["0", "2"])  # inputs of the ReLUs feeding each point
    # The student's map at each point: its own ReLU output, reconstructed.
    rel = []
    for p, pre in zip(POINTS, ("0", "2")):
        a = torch.relu(student_in[pre]).double()
        rec = Projector(inits[p])(a.float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).double()
        t = teacher[p].double()
        err = ((rec - t) ** 2).sum()
        var = ((t - t.reshape(-1, t.shape[-1]).mean(0)) ** 2).sum()
        rel.append(float((err / var).detach()))
    # float32 network and reconstruction: relative errors near 1e-6.
    assert with_hint - without == pytest.approx(np.mean(rel), rel=1e-3)
    self_hint = []
    for p, pre in zip(POINTS, ("0", "2")):
        a = torch.relu(student_in[pre]).double()
        rec = Projector(inits[p])(a.float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).double()
        var = ((a - a.reshape(-1, a.shape[-1]).mean(0)) ** 2).sum()
        self_hint.append(float((((rec - a) ** 2).sum() / var).detach()))
    assert np.mean(self_hint) != pytest.approx(np.mean(rel), rel=1e-2)


def test_early_stopping_returns_the_best_validation_state(setting):
    model, x, _, _, inits, _, _ = setting
    curve = []
    # An absolute step this large only makes things worse: the start stays the best state.
    learned = learn_cap(model, x, inits, steps=200, lr=5.0, lr_scale="absolute", batch=32,
                        val_fraction=0.25, eval_every=5, patience=2, history=curve)
    assert curve[0]["step"] == 0
    assert min(curve, key=lambda c: c["val_kl"])["step"] == 0
    assert len(curve) == 3 and curve[-1]["step"] == 10, curve  # stopped after 2 stale checks
    for p in POINTS:
        np.testing.assert_allclose(learned[p].forward, inits[p].forward, atol=1e-6)
        np.testing.assert_allclose(learned[p].inverse, inits[p].inverse, atol=1e-6)


def test_learn_cap_single_point_zero_steps_and_train_mean(setting):
    model, x, _, _, inits, held, _ = setting
    same = learn_cap(model, x, "1", inits["1"], steps=0)
    assert isinstance(same, Projection)
    np.testing.assert_allclose(same.forward, inits["1"].forward, atol=1e-6)
    learned = learn_cap(model, x, "1", inits["1"], steps=60, lr=4e-2, hint_weight=0.1,
                        batch=32, train_mean=True)
    assert not np.allclose(learned.mean, inits["1"].mean)
    assert held_out(model, held, {"1": learned})["mean_kl"] < held_out(
        model, held, {"1": inits["1"]})["mean_kl"]


def test_learn_price_task_loss_beats_pca_on_held_out_accuracy(setting):
    model, x, labels, _, inits, held, held_labels = setting
    learned = learn_price(model, x, POINTS, inits, loss="task", labels=labels, steps=40,
                          lr=4e-2, batch=32)
    pca = held_out(model, held, inits)
    price = held_out(model, held, learned)
    # The labels are the network's own top-1: the task loss raises agreement (it also
    # sharpens the output distribution, so KL is not what it improves).
    assert price["top1_agreement"] > pca["top1_agreement"], (pca, price)


def test_learn_price_kd_loss(setting):
    model, x, _, _, inits, held, _ = setting
    learned = learn_price(model, x, inits, steps=40, lr=4e-2, batch=32)
    assert list(learned) == POINTS
    assert held_out(model, held, learned)["mean_kl"] < 0.8 * held_out(
        model, held, inits)["mean_kl"]


def test_learned_projection_replaces_the_point(setting):
    model, x, _, _, inits, _, _ = setting
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
    (dict(quant={}), r"^Quantization-aware training needs a QuantFormat for point '1'"),
    (dict(lr_scale="log"),
     r"^Learning-rate scale must be 'relative' or 'absolute', not 'log'$"),
])
def test_learn_price_errors(setting, kwargs, message):
    model, x, _, _, inits, _, _ = setting
    with pytest.raises(ValueError, match=message):
        learn_price(model, x, inits, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(val_fraction=1.0), r"^Validation fraction must be in \[0, 1\), not 1.0$"),
    (dict(eval_every=0), r"^Evaluation interval must be a positive integer, not 0$"),
    (dict(patience=0), r"^Patience must be a positive integer, not 0$"),
    (dict(min_delta=-1), r"^Minimum gain must be a non-negative number, not -1$"),
])
def test_learn_cap_validation_errors(setting, kwargs, message):
    model, x, _, _, inits, _, _ = setting
    with pytest.raises(ValueError, match=message):
        learn_cap(model, x, inits, **kwargs)


def test_learn_errors(setting):
    model, x, _, _, inits, _, _ = setting
    with pytest.raises(ValueError, match=r"^learn_cap needs an initial projection"):
        learn_cap(model, x, "1")
    with pytest.raises(ValueError, match=r"^learn_price needs an initial projection"):
        learn_price(model, x, POINTS, {"1": inits["1"]})
    with pytest.raises(ValueError, match=r"^Hint weight must be a non-negative number"):
        learn_cap(model, x, inits, hint_weight=-1)
    with pytest.raises(TypeError, match=r"^Initial projection must be a golden"):
        learn_cap(model, x, "1", np.eye(3))
    with pytest.raises(ValueError, match=r"^Validation needs at least 2 calibration inputs"):
        learn_cap(model, x[:1], inits, val_fraction=0.5)
    with pytest.raises(ValueError, match=r"^Coefficient steps must be 3 positive numbers"):
        Projector(inits["1"], quant=QuantFormat(0.1, 0, 255, np.ones(2)))
    wrong = {"1": inits["3"].truncate(2), "3": inits["3"]}
    wrong["1"] = Projection(np.zeros(8), np.zeros((2, 8)), np.zeros((8, 2)))
    with pytest.raises(ValueError, match=re.escape("Projection has 8 channels, the feature "
                                                   "map 16")):
        learn_cap(model, x, wrong, steps=1)
    assert all(p.requires_grad for p in model.parameters())
