"""scripts.bench_projections refuses bad arguments with one line on stderr and exit status 2,
before loading any network."""

import re

import pytest

from scripts.bench_projections import main


@pytest.mark.parametrize("args, message", [
    (["--targets", "1,x"], r"--targets must be a comma-separated list of numbers, not '1,x'"),
    (["--cap-targets", "-1"], r"--cap-targets values must be positive, not -1"),
    (["--methods", "pca,zip"], r"--methods must be a comma-separated subset of pca,cap,price"),
    (["--sources", "web"], r"--sources must be a comma-separated subset of synthetic,real"),
    (["--num-calib", "0"], r"--num-calib must be a positive integer, not 0"),
    (["--cap-steps", "-2"], r"--cap-steps must not be negative"),
    (["--val-fraction", "1"], r"--val-fraction must be in \(0, 1\), not 1.0"),
    (["--out", "x.jpg"], r"--out must name a .png file, not x.jpg"),
    (["--skip-digits", "--skip-mobilenet"], r"nothing to do"),
    (["--levels", "0"], r"--levels must be a positive integer, not 0"),
    (["--keep", "-0.5"], r"--keep must not be negative, not -0.5"),
    (["--rounds", "-1"], r"--rounds must not be negative"),
    (["--reallocate"], r"--reallocate needs --allocation joint"),
    (["--skip-digits", "--distilled", "{tmp}"], r"--distilled .* holds no distilled images"),
])
def test_bad_arguments(args, message, capsys, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("python -m scripts.bench_projections: error: ")
    assert re.search(message, err[0]), err[0]


def test_merge_needs_readable_rows(tmp_path, capsys):
    bad = tmp_path / "rows.json"
    bad.write_text("{not json")
    assert main(["--merge", str(bad), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"python -m scripts.bench_projections: error: cannot read {bad}")
    assert not (tmp_path / "p.png").exists()


def _row(method, bits, allocation=None, rounds=0):
    row = {"model": "mobilenet_v2", "source": "synthetic", "method": method, "target": 2.0,
           "bits_per_value": bits, "top1_agreement": 0.5, "top1_agreement_confident": 0.5,
           "top1_agreement_confident_ci95": [0.4, 0.6], "top5_containment": 0.9,
           "mean_kl": 1.0, "num_confident_crops": 10, "baseline_top1_agreement_confident": 1.0,
           "total_s": 1.0}
    if allocation:
        row.update(allocation=allocation, rounds=rounds)
    return row


def test_merge_labels_joint_allocation_rows(tmp_path, capsys):
    import json

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_row("pca", 1.9), _row("pca", 1.8, "joint"),
                                _row("cap", 1.7, "joint", rounds=1)]))
    out = tmp_path / "p.png"
    assert main(["--merge", str(rows), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    methods = [line.split()[2] for line in lines if line.startswith("mobilenet_v2")]
    assert methods == ["pca", "pca+joint", "cap+joint"]
    assert any(" r1 " in line for line in lines if line.startswith("mobilenet_v2"))
    assert out.stat().st_size > 1000
