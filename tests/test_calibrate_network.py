"""Network-level calibration choices: which points, how each point's activations are stored,
and the activation-format-only reference (issue 4's first limit)."""

import copy
import re

import numpy as np
import pytest
import torch

from golden.calibration.network import calibrate_network
from golden.calibration.report import activation_only, compare_logits, evaluate
from golden.datapath.pipeline import quantize_input
from golden.datapath.quant import quantize
from golden.nets.capture import ACTIVATIONS, activation_points, capture


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()
    x = torch.randn(48, 3, 10, 10)
    return model, x[:24], x[24:]


def test_points_activation_modules_only():
    from golden.nets.mobilenet import MobileNetV2

    model = MobileNetV2()  # structure only, no weights needed
    post = activation_points(model)
    act = activation_points(model, "act")
    modules = dict(model.named_modules())
    assert len(post) == 52 and len(act) == 35
    assert all(isinstance(modules[p], torch.nn.ReLU6) for p in act)
    assert [p for p in post if p in act] == act
    assert "features.17" in post and "features.17" not in act
    with pytest.raises(ValueError, match=re.escape(
            "Activation point placement must be 'post' or 'pre' or 'act', not 'mid'")):
        activation_points(model, "mid")


def test_calibrate_network_stores_relu_maps_unsigned(net):
    model, x_calib, x_eval = net
    arts = calibrate_network(model, x_calib, threshold=1.0, max_pixels=2000,
                             points=["0", "1", "3"])
    # The conv output is signed; the ReLU6 outputs are stored unsigned (9-bit at the MACs).
    assert [(a.in_bits, a.relu) for a in arts.values()] == [(8, False), (9, True), (9, True)]
    signed = calibrate_network(model, x_calib, threshold=1.0, max_pixels=2000,
                               points=["0", "1", "3"], unsigned=False)
    assert [(a.in_bits, a.relu) for a in signed.values()] == [(8, False)] * 3
    assert arts["1"].x_scale < 0.6 * signed["1"].x_scale
    # The stored activation's own rounding error falls about fourfold.
    a = capture(model, x_eval, ["1"])["1"].numpy().astype(np.float64)

    def act_err(art):
        return np.mean((quantize_input(art, a) * art.x_scale - a.reshape(-1, 8)) ** 2)

    assert act_err(arts["1"]) < 0.35 * act_err(signed["1"])
    relu = calibrate_network(model, x_calib, threshold=1.0, max_pixels=2000, points=["0"],
                             relu=True)
    assert (relu["0"].in_bits, relu["0"].relu) == (8, True)


def test_activation_only_is_the_quantized_network(net):
    model, x_calib, x_eval = net
    points = [p for p, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
    arts = calibrate_network(model, x_calib, threshold=1.0, max_pixels=2000)
    # Confident logits (the random head gives |logits| < 0.2, where 8-bit activations move the
    # KL by ~1e-8, the size of float32 rounding noise in the KL itself): here ~1e-6.
    model = copy.deepcopy(model)
    with torch.no_grad():
        model[-1].weight *= 100
    # In float64 the reference below is the same arithmetic as activation_only's: one batch,
    # the same convolutions, and x / x_scale, round half to even, clamp, * x_scale correctly
    # rounded in both torch and numpy. Equal logits, so equal figures, exactly, on any CPU
    # (in float32 a near-tie x / x_scale may round differently from quantize's float64).
    model64, x64 = model.double(), x_eval.double()
    got = activation_only(model64, x64, arts, batch=len(x64))

    def fn_for(art):
        def hook(_module, _inputs, a):
            return torch.from_numpy(quantize(a.numpy(), art.x_scale, art.in_bits) * art.x_scale)
        return hook

    with torch.no_grad():
        base = model64(x64)
        mods = dict(model64.named_modules())
        handles = [mods[p].register_forward_hook(fn_for(arts[p])) for p in points]
        try:
            comp = model64(x64)
        finally:
            for h in handles:
                h.remove()
    want = compare_logits(base.float(), comp.float())
    assert got == want
    # Far above float32 noise in the KL (~1e-9 for these logits), so the checks below mean
    # something.
    assert got["mean_kl"] > 1e-7
    # The float32 network as used: logits off by ~1e-6 relative, and a near-tie x / x_scale
    # rounded in float32 may land one step away (expected < 1 of the 38,400 values, each step
    # under 1e-3 of the quantization error's energy): the KL agrees to well under 1%.
    model32 = model.float()
    assert activation_only(model32, x_eval, arts)["mean_kl"] == pytest.approx(
        got["mean_kl"], rel=0.01)
    # The compressed network at full k cannot be closer to the float one than its format.
    full = evaluate(model32, x_eval, arts)["network"]
    assert full["mean_kl"] >= 0.5 * got["mean_kl"]
    assert np.isfinite(full["bits_per_value"])
