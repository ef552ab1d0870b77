"""``scripts/bench_huffman.py`` runs: its capture path and the whole report on small data."""

import argparse

import numpy as np

from scripts import bench_huffman


def test_capture_path_yields_every_point():
    acts, source = bench_huffman.load_activations(argparse.Namespace(activations=None,
                                                                     images=1))
    assert len(acts) == 52 and "golden.capture" in source
    a = acts["features.10"]
    assert a.ndim == 4 and a.shape[-1] == 64 and np.isfinite(a).all()


def test_report_on_a_small_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(size=(1, 6, 6, 24)), 0).astype(np.float32)
    relu[..., 12:] = 0                                  # dead channels: zero runs
    path = tmp_path / "acts.npz"
    np.savez(path, a=relu, b=rng.normal(size=(1, 5, 5, 16)).astype(np.float32))
    bench_huffman.main(["--activations", str(path), "--speed-mb", "0.01",
                        "--dahuffman-kb", "1"])
    out = capsys.readouterr().out
    assert "size-weighted totals" in out and "zlib level 6" in out and "dahuffman" in out
