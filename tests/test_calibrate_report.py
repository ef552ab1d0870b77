"""python -m golden calibrate: report.json's network keys (what scripts read), the measured
allocation and CAP's validation curve, on the digits CNN."""

import json

import matplotlib.image
import numpy as np
import pytest

from golden.__main__ import main

KEYS = {"bits_per_value", "top1_agreement", "top1_agreement_confident",
        "baseline_top1_agreement_confident", "baseline_mean_kl", "baseline_bits_per_value",
        "mean_kl", "top1_agreement_confident_ci95", "num_eval_photos", "num_eval_crops",
        "num_confident_crops", "calibration_source", "top5_containment",
        "confident_drop_ci95"}


@pytest.fixture(scope="module")
def cap_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "run"
    assert main(["calibrate", "--model", "digits", "--bits-per-value", "2.5", "--method",
                 "cap", "--learn-steps", "30", "--num-images", "400", "--out", str(out),
                 "--no-progress"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_network_section_has_the_documented_keys(cap_run):
    _, report = cap_run
    net = report["network"]
    assert KEYS <= set(net), KEYS - set(net)
    assert net["calibration_source"] == "digits train split"
    assert net["num_eval_crops"] == net["num_eval_photos"] == 449
    assert 0 < net["num_confident_crops"] <= 449
    lo, hi = net["top1_agreement_confident_ci95"]
    assert lo <= net["top1_agreement_confident"] <= hi and hi - lo > 0
    # The compressed network is coded in fewer bits than the 8-bit activations alone, and
    # both are real code sizes (an 8-bit Huffman code spends at least 1 bit per value).
    assert 1.0 < net["baseline_bits_per_value"] < 8.0
    assert net["bits_per_value"] < net["baseline_bits_per_value"]
    assert net["baseline_mean_kl"] < net["mean_kl"]
    assert report["allocation"] == "kl"


def test_cap_writes_its_validation_curve(cap_run):
    out, report = cap_run
    curve = report["learning"]["validation_curve"]
    assert curve[0]["step"] == 0 and curve[0]["train_loss"] is None
    steps = [c["step"] for c in curve]
    assert steps == sorted(steps) and steps[-1] <= 30
    assert min(c["val_kl"] for c in curve) < curve[0]["val_kl"], "learning did not help"
    assert report["learning"]["validation_inputs"] == 50  # an eighth of 400
    image = matplotlib.image.imread(out / "learning_curve.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert np.ptp(image[..., :3]) > 0.5  # not a blank picture


def test_share_and_kl_allocations_both_meet_the_target(tmp_path):
    ks = {}
    for allocation in ("share", "kl"):
        out = tmp_path / allocation
        assert main(["calibrate", "--model", "digits", "--bits-per-value", "2.5",
                     "--allocation", allocation, "--num-images", "400", "--num-eval", "100",
                     "--out", str(out), "--no-progress"]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["allocation"] == allocation
        ks[allocation] = [lay["k"] for lay in report["layers"]]
        # The allocation's target holds on calibration pixels; held-out maps code a little
        # differently, hence the margin.
        assert report["network"]["bits_per_value"] < 2.5 * 1.1
    assert ks["share"] != ks["kl"], ks  # the measured costs choose differently
