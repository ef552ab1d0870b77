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
