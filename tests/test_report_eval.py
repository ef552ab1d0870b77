"""golden.calibration.report's evaluation figures (confident agreement, top-5, photo bootstrap,
8-bit
baseline and its coded size) and golden.calibration.allocation's measured-KL costs."""

import numpy as np
import pytest
import torch
from torch import nn

from golden.calibration.allocation import LayerCost, greedy_allocate, kl_curves, kl_grid
from golden.calibration.folding import calibrate_layer
from golden.calibration.report import activation_tables, compare_logits, evaluate, paired_drop_ci
from golden.codec.tables import symbol_indices
from golden.datapath.pipeline import quantize_input
from golden.nets.capture import capture, replaced
from golden.projection.learning import Projector
from golden.projection.pca import pca_fit


def _logits(top, n_classes=10, margin=10.0):
    """One row per entry of ``top``: that class far ahead of the rest (confident)."""
    out = torch.zeros(len(top), n_classes, dtype=torch.float64)
    out[torch.arange(len(top)), torch.as_tensor(top)] = margin
    return out


def test_confident_agreement_and_top5_count_what_they_say():
    base = _logits([0, 1, 2, 3])
    base[3] = 0.0
    base[3, 3] = 0.5  # a near tie: top-1 probability 0.15, not confident
    comp = torch.zeros(4, 10, dtype=torch.float64)
    comp[0, 0] = 5.0                       # agrees
    comp[1, 7] = 5.0
    comp[1, 1] = 4.0                       # disagrees, base's class second: in the top 5
    comp[2, :] = torch.arange(10.0)        # disagrees, class 2 ranks 8th: not in the top 5
    comp[3, 3] = 5.0                       # agrees, but base was not confident
    net = compare_logits(base, comp)
    assert net["num_confident_crops"] == 3 and net["num_eval_crops"] == 4
    assert net["top1_agreement"] == pytest.approx(0.5)
    assert net["top1_agreement_confident"] == pytest.approx(1 / 3)
    assert net["top5_containment"] == pytest.approx(0.75)
    assert "top1_agreement_confident_ci95" not in net  # no photos given: no bootstrap


def test_bootstrap_over_photos_resamples_whole_photos():
    # Photo 0: 10 crops that all agree; photo 1: 10 crops that all disagree. Drawing 2 photos
    # with replacement gives agreement 1, 0.5 or 0 with probabilities 1/4, 1/2, 1/4, so the
    # 95% percentile interval is [0, 1]; crops treated as independent would give ~[0.3, 0.7].
    base = _logits([0] * 20)
    comp = _logits([0] * 10 + [1] * 10)
    groups = np.repeat([0, 1], 10)
    net = compare_logits(base, comp, groups=groups)
    assert net["num_eval_photos"] == 2
    assert net["top1_agreement_confident_ci95"] == [0.0, 1.0]
    assert net["top1_agreement_ci95_photos"] == [0.0, 1.0]
    # One photo: every replicate is that photo.
    one = compare_logits(base[:10], comp[:10], groups=np.zeros(10, int))
    assert one["top1_agreement_confident_ci95"] == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"^Photo groups must have one entry per input \(20\)"):
        compare_logits(base, comp, groups=np.zeros(3, int))


def test_paired_drop_is_zero_for_identical_networks_and_one_for_total_loss():
    base = _logits(list(range(10)) * 3)
    groups = np.arange(30) % 5
    assert paired_drop_ci(base, base, base, groups) == [0.0, 0.0]
    wrong = _logits([(c + 1) % 10 for c in list(range(10)) * 3])
    assert paired_drop_ci(base, base, wrong, groups) == [1.0, 1.0]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    with torch.no_grad():
        model[5].weight *= 10
    x_calib, x_eval = torch.randn(32, 3, 6, 6), torch.randn(24, 3, 6, 6)
    points = ["1", "2"]
    samples = {p: v.numpy().astype(np.float64) for p, v in capture(model, x_calib,
                                                                   points).items()}
    pcas = {p: pca_fit(samples[p]) for p in points}
    yield model, x_calib, x_eval, points, samples, pcas
    torch.set_num_threads(threads)


def test_baseline_bits_are_the_huffman_code_of_the_stored_activations(net):
    model, _, x_eval, points, samples, pcas = net
    arts = {p: calibrate_layer(pcas[p].truncate(4), samples[p], name=p,
                               in_bits=9 if p == "1" else 8, relu=p == "1") for p in points}
    tables = activation_tables(arts, samples)
    result = evaluate(model, x_eval, arts, groups=np.arange(24) % 4, baseline=True,
                      baseline_tables=tables, return_logits=True)
    # Point 2 sees point 1 already stored in its 8-bit format.
    scale = arts["1"].x_scale
    stored_1 = {"1": lambda a: torch.clamp(torch.round(a / scale), -256, 255) * scale}
    maps = {"1": capture(model, x_eval, ["1"])["1"]}
    with replaced(model, stored_1):
        maps["2"] = capture(model, x_eval, ["2"])["2"]
    bits = values = 0
    for p in points:
        x_int = quantize_input(arts[p], maps[p].numpy().astype(np.float64))
        width, signed = (8, False) if p == "1" else (8, True)
        bits += int(tables[p].enc_len[symbol_indices(x_int.ravel(), width, signed)].sum())
        values += x_int.size
    netw = result["network"]
    assert netw["baseline_bits_per_value"] == pytest.approx(bits / values, rel=1e-12)
    assert netw["num_eval_photos"] == 4
    for key in ("baseline_mean_kl", "baseline_top1_agreement_confident", "confident_drop_ci95"):
        assert key in netw
    # The compressed pass really is compressed: it differs from the 8-bit-only pass.
    logits = result["logits"]
    assert not torch.equal(logits["comp"], logits["base8"])
    # Reusing the uncompressed logits gives the same figures without that pass.
    again = evaluate(model, x_eval, arts, groups=np.arange(24) % 4,
                     base_logits=logits["base"])["network"]
    assert again["mean_kl"] == pytest.approx(netw["mean_kl"], rel=1e-12)


def test_kl_curves_measure_each_point_alone(net):
    model, x_calib, _, points, _, pcas = net
    curves = kl_curves(model, x_calib, pcas, grid=3, batch=32)
    with torch.no_grad():
        base = model(x_calib).double().log_softmax(1)
    for p in points:
        c = pcas[p].channels
        ks = kl_grid(c, 3)
        assert list(ks) == [1, 3, 8]
        for k in ks:
            with torch.no_grad(), replaced(model, {p: Projector(pcas[p].truncate(int(k)))}):
                q = model(x_calib).double().log_softmax(1)
            want = float((base.exp() * (base - q)).sum(1).mean())
            assert curves[p][k - 1] == pytest.approx(want, rel=1e-9, abs=1e-12)
        # Between grid points: linear interpolation.
        assert curves[p][1] == pytest.approx((curves[p][0] + curves[p][2]) / 2, rel=1e-12)
        # All components: the float reconstruction is exact up to float32 rounding.
        assert curves[p][-1] < 1e-6 < curves[p][0]


def test_greedy_follows_the_measured_distortion():
    eig = np.array([4.0, 2.0, 1.0, 0.5])
    bits = np.array([10.0, 20.0, 30.0, 40.0])
    # Same spectra and bits: by eigenvalue share the two layers are alike; the measured
    # distortion says layer a is ten times as sensitive, so b gives up components first.
    a = LayerCost("a", eig, 4, bits, distortion=[10.0, 5.0, 1.0, 0.0])
    b = LayerCost("b", eig, 4, bits, distortion=[1.0, 0.5, 0.1, 0.0])
    ks = greedy_allocate([a, b], 60 / 8)  # drop 2 components of 8
    assert ks == {"a": 4, "b": 2}
    # A non-monotone measurement is made non-increasing (a running minimum).
    c = LayerCost("c", eig, 4, bits, distortion=[1.0, 2.0, 0.5, 0.7])
    np.testing.assert_array_equal(c.distortion, [1.0, 1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"^Layer 'd': distortion must have 4 finite entries"):
        LayerCost("d", eig, 4, bits, distortion=[1.0, np.nan, 0.0, 0.0])


def test_recode_counts_the_same_coefficients_in_the_other_mode(net):
    """evaluate(recode=...) codes the very coefficients of the pass with the other tables;
    run-length bits are counted one tile per input (an image's H * W pixels)."""
    from golden.codec.runlength import encode_rl_tile
    from golden.datapath.pipeline import forward_int

    model, _, x_eval, points, samples, pcas = net
    arts = {m: {p: calibrate_layer(pcas[p].truncate(6), samples[p], name=p, run_length=m)
                for p in points} for m in ("off", "on")}
    # One batch everywhere: the float32 convolutions then see the same batches as capture's.
    both = evaluate(model, x_eval, arts["off"], recode=arts["on"], batch=24)
    rl = evaluate(model, x_eval, arts["on"], batch=24)
    assert both["network"]["recoded_bits_per_value"] == rl["network"]["bits_per_value"]
    assert both["network"]["mean_kl"] == rl["network"]["mean_kl"], "same coefficients"
    for p in points:
        assert both["layers"][p]["recoded_bits_per_value"] == rl["layers"][p]["bits_per_value"]
    # Point 1 sees the uncompressed input: its coefficients are known here.
    art = arts["on"]["1"]
    x = capture(model, x_eval, ["1"], batch=24)["1"].numpy().astype(np.float64)  # channels-last
    y = forward_int(art, quantize_input(art, x.reshape(-1, 8)))
    table = art.tables.tables[0]
    bits = sum(encode_rl_tile(y[i * 36:(i + 1) * 36].ravel(), table)[1] for i in range(24))
    assert rl["layers"]["1"]["bits_per_value"] == bits / x.size
    assert "recoded_bits_per_value" not in rl["network"]
