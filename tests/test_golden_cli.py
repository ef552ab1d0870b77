"""``python -m golden``: calibrate (digits, and one quick MobileNetV2 run), vectors, bad input."""

import json
import math
import re
import subprocess
import sys
from statistics import NormalDist

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from golden.__main__ import main
from golden.codec.plain import decode_groups
from golden.datapath.artifacts import load_artifact


def wilson(agree, n):
    """The Wilson 95% interval solved independently of golden.calibration.report: the p with
    (agree/n - p)**2 <= z**2 p (1 - p) / n, the roots of a quadratic in p."""
    z = NormalDist().inv_cdf(0.975)
    p, t = agree / n, z * z / n
    a, b, c = 1 + t, 2 * p + t, p * p
    root = math.sqrt(b * b - 4 * a * c)
    return (b - root) / (2 * a), (b + root) / (2 * a)


def check_interval(stats, agree, n):
    """agreement_ci95 is the Wilson interval of agree/n: never of zero width, the point
    estimate inside it, strictly unless it is 0 or 1."""
    lo, hi = stats["agreement_ci95"]
    want_lo, want_hi = wilson(agree, n)
    # Two float64 evaluations of well-conditioned roots in [0, 1]: they agree to ~1e-15.
    assert lo == pytest.approx(want_lo, abs=1e-12) and hi == pytest.approx(want_hi, abs=1e-12)
    assert hi - lo > 1.0 / n  # at least 2 z sqrt(p(1-p)/n) or z^2/n wide
    p = stats["top1_agreement"]
    assert p == agree / n
    if 0 < agree < n:
        assert lo < p < hi
    else:
        assert (hi, lo)[agree == 0] == p  # the interval's closed end at 0 or 1


def check_png(path, width_in, height_in, dpi=110):
    """A real plot: the figure's size in pixels, and drawn on (not a blank canvas)."""
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (round(height_in * dpi), round(width_in * dpi))
    rgb = img[..., :3]
    assert np.isclose(rgb, 1.0).all(axis=-1).mean() > 0.5  # mostly white background ...
    assert (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.3).mean() > 1e-3  # ... and colour on it
    assert (rgb.max(axis=-1) < 0.2).mean() > 1e-3  # black axes and text
    return img


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits"
    code = main(["calibrate", "--model", "digits", "--threshold", "0.99", "--group-bits", "8,6",
                 "--out", str(out), "--no-progress", "--num-images", "400"])
    assert code == 0
    return out


def test_calibrate_digits_outputs(digits_run):
    files = sorted(p.name for p in digits_run.iterdir())
    assert files == ["00_features.2.npz", "01_features.5.npz", "02_features.9.npz",
                     "bits_per_layer.png", "rate_fidelity.png", "report.json"]
    report = json.loads((digits_run / "report.json").read_text())
    net = report["network"]
    assert net["num_eval_inputs"] == 449
    assert net["top1_agreement"] > 0.95 and net["accuracy"] > 0.95
    assert net["accuracy_drop"] == net["accuracy"] - net["compressed_accuracy"]
    agree = round(net["top1_agreement"] * 449)
    check_interval(net, agree, 449)
    assert 0 < net["bits_per_value"] < 8
    for lay in report["layers"]:
        art = load_artifact(digits_run / lay["file"])
        assert (art.name, art.channels, art.k) == (lay["name"], lay["channels"], lay["k"])
        assert art.group_bits.tolist() == [8, 6][: len(art.group_bits)]
        assert lay["bits_per_value"] > 0
    # Size-weighted network figure from the per-layer ones.
    total = sum(lay["bits_per_value"] * lay["values"] for lay in report["layers"])
    values = sum(lay["values"] for lay in report["layers"])
    # Layer bits over layer values, re-summed here: float64 rounding only (~1e-16 relative).
    assert net["bits_per_value"] == pytest.approx(total / values, rel=1e-12)
    # 3 layers: the bar chart's minimum 6 x 4 inches; blue bars on it.
    img = check_png(digits_run / "bits_per_layer.png", 6.0, 4.0)
    blue = np.abs(img[..., :3] - matplotlib.colors.to_rgb("tab:blue")).max(axis=-1) < 0.05
    assert blue.mean() > 0.01
    check_png(digits_run / "rate_fidelity.png", 10.0, 4.0)


def test_vectors_from_artifact(digits_run, tmp_path, capsys):
    art_path = digits_run / "01_features.5.npz"
    code, out, err = run(["vectors", "--artifact", art_path, "--random", "--pixels", "300",
                          "--out", tmp_path], capsys)
    assert code == 0 and err == ""
    art = load_artifact(art_path)
    with np.load(tmp_path / "features.5_vectors.npz") as v:
        assert v["x_int"].shape == (300, 32) and v["y_int"].shape == (300, art.k)
        back = decode_groups(v["words"], int(v["nbits"]), 300, art.tables.tables,
                             art.group_bounds.tolist())
        np.testing.assert_array_equal(back, v["y_int"])
        assert v["x_rec_int"].shape == (300, 32)
    acts = np.random.default_rng(0).random((5, 4, 32)) * 3
    np.save(tmp_path / "acts.npy", acts)
    code, _, _ = run(["vectors", "--artifact", art_path, "--activations", tmp_path / "acts.npy",
                      "--out", tmp_path / "real"], capsys)
    assert code == 0
    with np.load(tmp_path / "real" / "features.5_vectors.npz") as v:
        assert v["x_int"].shape == (20, 32)
    code, _, _ = run(["vectors", "--artifact", art_path, "--model", "digits", "--pixels", "64",
                      "--out", tmp_path / "cap"], capsys)
    assert code == 0
    with np.load(tmp_path / "cap" / "features.5_vectors.npz") as v:
        assert v["x_int"].shape == (64, 32) and v["x_int"].min() >= 0  # ReLU map


@pytest.mark.parametrize("args, message", [
    (["calibrate", "--model", "resnet", "--threshold", "0.9"], r"argument --model: invalid choice"),
    (["calibrate", "--model", "digits", "--threshold", "1.5"],
     r"--threshold must be in \(0, 1\], not 1.5"),
    (["calibrate", "--model", "digits", "--threshold", "0.9", "--k", "3"],
     r"give exactly one of --threshold, --k, --bits-per-value, --ceiling"),
    (["calibrate", "--model", "digits"],
     r"give exactly one of --threshold, --k, --bits-per-value, --ceiling"),
    (["calibrate", "--model", "digits", "--bits-per-value", "-1"],
     r"--bits-per-value must be positive, not -1.0"),
    (["calibrate", "--model", "digits", "--k", "0"], r"--k must be a positive integer, not 0"),
    (["calibrate", "--model", "digits", "--k", "3", "--method", "cap", "--learn-rate", "0"],
     r"--learn-rate must be positive, not 0.0"),
    (["calibrate", "--model", "digits", "--k", "3", "--group-bits", "8,9"],
     r"--group-bits values must be between 2 and 8, not 8,9"),
    (["calibrate", "--model", "digits", "--k", "3", "--in-bits", "16"],
     (r"--in-bits must be at most 15 with --unsigned auto \(unsigned points need one more "
      r"bit at the MACs\), not 16")),
    (["calibrate", "--model", "digits", "--k", "3", "--where", "mid"],
     r"argument --where: invalid choice"),
    (["calibrate", "--model", "digits", "--k", "3", "--eval-images", "."],
     (r"--eval-images applies to --model mobilenet_v2 only \(digits are evaluated on their "
      r"labelled test split\)")),
    (["calibrate", "--model", "digits", "--k", "3", "--images", "{tmp}/empty"],
     r"Image folder '.*empty' holds no image files"),
    (["calibrate", "--model", "digits", "--k", "3", "--run-length", "maybe"],
     r"argument --run-length: invalid choice: 'maybe' \(choose from '?off'?, '?on'?, '?auto'?\)"),
    (["calibrate", "--model", "digits", "--k", "3", "--extra-photos"],
     r"--extra-photos applies to --model mobilenet_v2 only"),
    (["calibrate", "--model", "mobilenet_v2", "--k", "3", "--images", "{tmp}/missing"],
     r"Image folder '.*missing' does not exist"),
    (["calibrate", "--model", "mobilenet_v2", "--k", "3", "--images", "{tmp}/empty"],
     r"Image folder '.*empty' holds no image files"),
    (["calibrate", "--model", "mobilenet_v2", "--k", "3", "--eval-images", "{tmp}/broken"],
     r"Image file '.*bad.jpg' cannot be read"),
    (["calibrate", "--model", "mobilenet_v2", "--k", "3", "--images", "{tmp}/empty",
      "--eval-images", "{tmp}/empty"], r"--images and --eval-images must be different folders"),
    (["vectors", "--artifact", "{tmp}/none.npz", "--random"],
     r"Artifact file '.*none.npz' does not exist"),
    (["vectors", "--artifact", "{tmp}/none.npz"],
     r"give exactly one of --activations, --model, --random"),
])
def test_bad_input_one_line_exit_2_no_output(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--out", str(out)]
    code, stdout, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m golden: error: "), err
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty"]  # no temp dirs


@pytest.mark.parametrize("method", ["cap", "price"])
def test_learned_methods(tmp_path, capsys, method):
    """--method cap|price run golden.projection.learning's learner end to end."""
    out = tmp_path / "o"
    code, stdout, err = run(["calibrate", "--model", "digits", "--k", "6", "--method", method,
                             "--learn-steps", "2", "--num-images", "64", "--num-eval", "64",
                             "--no-progress", "--out", out], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == method and report["network"]["num_eval_inputs"] == 64
    assert [lay["k"] for lay in report["layers"]] == [6, 6, 6]


def test_allocators(tmp_path, capsys):
    out = tmp_path / "runs" / "digits"  # missing parents are made, as README's examples need
    code, _, err = run(["calibrate", "--model", "digits", "--bits-per-value", "3",
                        "--num-images", "64", "--num-eval", "64", "--no-progress", "--out", out],
                       capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == {"bits_per_value": 3.0}
    assert 1 <= min(lay["k"] for lay in report["layers"])
    # A ceiling no k can meet: one line, exit 2, nothing written.
    code, _, err = run(["calibrate", "--model", "digits", "--ceiling", "100", "--num-images",
                        "64", "--num-eval", "64", "--no-progress", "--out",
                        tmp_path / "new" / "c"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"Ceiling of 100 bits cannot be met: layer 'features.2'", err), err
    assert not (tmp_path / "new").exists()


def test_out_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    code, _, err = run(["calibrate", "--model", "digits", "--k", "3", "--no-progress",
                        "--out", tmp_path / "f" / "sub" / "o"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"--out .*f/sub/o: .*f is not a folder", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_module_entry_point_quick_mobilenet(tmp_path):
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-m", "golden", "calibrate", "--model",
                           "mobilenet_v2", "--quick", "--num-images", "4", "--num-eval", "4",
                           "--size", "96", "--max-pixels", "500", "--k", "4",
                           "--scale-method", "max", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["layers"]) == 52 and report["network"]["num_eval_inputs"] == 4
    assert all(lay["k"] == 4 for lay in report["layers"])
    # ReLU6 outputs stored unsigned (9 bits at the MACs), block outputs signed; MSE steps.
    fmt = {lay["name"]: (lay["in_bits"], lay["relu"]) for lay in report["layers"]}
    assert fmt["features.0.2"] == fmt["features.18.2"] == (9, True)
    assert fmt["features.17"] == (8, False)
    assert sum(f == (9, True) for f in fmt.values()) == 35
    assert report["settings"]["x_method"] == "mse"
    assert "photos" in report["inputs"]["evaluation"]
    calib = report["inputs"]["calibration"].split(": ")[1].split(", ")
    held = report["inputs"]["evaluation"].split(": ")[1].split(", ")
    assert calib and held and not set(calib) & set(held)


def test_agreement_stats():
    from golden.calibration.report import agreement_stats
    s = agreement_stats(90, 100)
    # sqrt(0.9 * 0.1 / 100) in float64: a few ulp from 0.03.
    assert s["top1_agreement"] == 0.9 and s["agreement_stderr"] == pytest.approx(0.03, rel=1e-12)
    lo, hi = s["agreement_ci95"]
    # Published to 4 decimals (Wilson 95%, 90 of 100): half a unit of the last digit.
    assert lo == pytest.approx(0.8256, abs=5e-5) and hi == pytest.approx(0.9448, abs=5e-5)
    check_interval(s, 90, 100)
    s = agreement_stats(64, 64)
    lo, hi = s["agreement_ci95"]
    assert hi == 1.0 and lo == pytest.approx(0.9434, abs=5e-5)  # Wilson, not a zero width
    check_interval(s, 64, 64)


@pytest.mark.parametrize("agree, n", [(0, 3), (10, 10), (0, 200), (5, 8)])
def test_rate_plot_at_the_edges_of_agreement(tmp_path, agree, n):
    from golden.calibration.report import agreement_stats, plot_rate_fidelity
    point = dict(agreement_stats(agree, n), bits_per_value=2.0, label="x")
    check_interval(point, agree, n)
    plot_rate_fidelity([{"bits_per_value": 1.0, "relative_error": 0.1}], [point],
                       tmp_path / "r.png")
    check_png(tmp_path / "r.png", 10.0, 4.0)
