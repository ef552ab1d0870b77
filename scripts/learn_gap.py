"""Does CAP learning on MobileNetV2 fit the calibration photos, the held-out ones, or neither?

Prints the float distillation objective (``golden.projection.learning.objective``: T^2 KL to the
uncompressed
network, every point's projection inserted at once, no integer rounding) on the calibration and
the held-out crops, for the PCA start and after ``learn_cap``, at the k per point that a
``scripts.bench_projections --json`` run allocated::

    python -m scripts.learn_gap --ks build/bench/projections_3m.json --target 3.0 \\
        --steps 20 --lr 1e-4

Same inputs as the benchmark's defaults (64 calibration crops of 6 photos, 48 held-out crops of
the 4 others, 5000 pixels per point for PCA). Results: docs/learning.md.
"""

import argparse
import json
import sys
import time

import numpy as np

PROG = "python -m scripts.learn_gap"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--ks", required=True, help="JSON rows of scripts.bench_projections")
    p.add_argument("--target", type=float, required=True, help="the PCA row whose k to use")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--num-calib", type=int, default=64)
    p.add_argument("--num-eval", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--extra-photos", action="store_true",
                   help="calibrate on golden.nets.images.extra_photos too")
    args = p.parse_args(argv)
    try:
        rows = json.loads(open(args.ks).read())
        ks = next(r["k"] for r in rows if r["model"] == "mobilenet_v2"
                  and r["method"] == "pca" and r["target"] == args.target)
    except (OSError, ValueError, StopIteration, KeyError):
        print(f"{PROG}: error: no MobileNetV2 PCA row at target {args.target} in {args.ks}",
              file=sys.stderr)
        return 2
    if args.steps < 1 or not args.lr > 0:
        print(f"{PROG}: error: --steps and --lr must be positive", file=sys.stderr)
        return 2

    import torch

    from golden.nets.capture import activation_points, sample_pixels
    from golden.nets.images import bundled_photos, extra_photos, make_batch, split_photos
    from golden.nets.mobilenet import load_mobilenet_v2
    from golden.projection.learning import learn_cap, objective
    from golden.projection.pca import pca_fit

    torch.set_num_threads(args.threads)
    model = load_mobilenet_v2()
    calib, held_out = split_photos(bundled_photos())
    if args.extra_photos:
        calib = calib + extra_photos()
    x_calib = make_batch(calib, args.num_calib, seed=0)
    x_eval = make_batch(held_out, args.num_eval, seed=1)
    points = activation_points(model, "post")
    samples = sample_pixels(model, x_calib, points, max_pixels=5000, seed=0)
    inits = {q: pca_fit(samples[q].astype(np.float64)).truncate(ks[q]) for q in points}

    def show(label, projections):
        print(f"{label:32} calibration KL {objective(model, x_calib, projections):.3f}   "
              f"held-out KL {objective(model, x_eval, projections):.3f}", flush=True)

    show(f"PCA at the {args.target} allocation", inits)
    t = time.time()
    learned = learn_cap(model, x_calib, inits, steps=args.steps, lr=args.lr, batch=8, seed=0)
    show(f"CAP {args.steps} steps, lr {args.lr:g}", learned)
    print(f"learning: {time.time() - t:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
