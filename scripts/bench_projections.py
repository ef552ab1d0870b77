"""Rate against fidelity of PCA, CAP-learned and Price-learned projections, in one run.

    python -m scripts.bench_projections [--targets 1.34,2.0,3.0] [--cap-targets 2.0]
        [--price-targets T,..] [--methods pca,cap,price] [--num-calib 64] [--num-eval 48]
        [--cap-steps 20] [--price-steps 3] [--qat] [--run-length] [--no-baseline]
        [--where post|act] [--x-method mse] [--unsigned auto|off] [--min-step 0.5]
        [--out build/bench/projections.png] [--json FILE] [--skip-digits] [--skip-mobilenet]

For each target average bits per value, CAP's greedy allocation (``golden.allocate``, bits(k)
measured with ``golden.calibrate``'s quantization and plain Huffman tables on the calibration
pixels) picks k per layer from the PCA spectra; each method then gives the projections at
those k: PCA itself, CAP's distillation + hint training (``golden.learn.learn_cap``, all points
jointly), or Price and Tanner's layer-by-layer end-to-end training (``learn_price``: task loss
on digits, distillation on MobileNetV2). Every configuration is folded into integer artifacts
(``golden.calibrate.calibrate_layer``) and evaluated with all points compressed at once
(``golden.report.evaluate``): coded bits per value as the hardware stores them, top-1
agreement and mean KL against the uncompressed network on held-out inputs (MobileNetV2: crops
of photos disjoint from the calibration photos), accuracy drop on digits. Prints a table beside
the papers' figures and writes a PNG. ``--run-length`` also reports the allocation's bits with
the run-length mode (bitstream version 2, ``golden.huffman_rl``) on the calibration pixels.

Before the baseline, an ``act`` row measures the activation format alone (every point only
quantized to its stored width, no projection: ``golden.report.activation_only``), the ceiling
that no projection can beat. Points store non-negative maps unsigned by default
(``golden.calibrate.activation_format``); ``--where act`` compresses only the activation
modules' outputs (MobileNetV2: the 35 ReLU6 outputs, not the 17 block outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.__main__ import LEARN_RATE

PROG = "python -m scripts.bench_projections"
METHODS = ("pca", "cap", "price")
PAPERS = [
    ("CAP (Tai et al. 2022)", "MobileNetV2", "1.34", "top-1 drop 0.6% (ImageNet, 50k)"),
    ("CAP (Tai et al. 2022)", "ResNet18", "2.75", "top-1 drop 0.4-0.7%"),
    ("target of issue 4", "MobileNetV2", "<= 1.34", "top-1 agreement >= 98% held out"),
]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _log(t0, msg):
    print(f"[{time.time() - t0:7.1f} s] {msg}", flush=True)


def _floats(text, name):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of numbers, not {text!r}") \
            from None
    if not vals or any(not v > 0 for v in vals):
        raise UsageError(f"{name} values must be positive, not {text}")
    return vals


def _methods(text):
    names = [m.strip() for m in text.split(",")]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise UsageError(f"--methods must be a comma-separated subset of {','.join(METHODS)}, "
                         f"not {text!r}")
    return names


# ---------------------------------------------------------------------------------------------


class Setting:
    """One network with its calibration and evaluation inputs, PCA and bits(k) per point."""

    def __init__(self, name, model, x_calib, x_eval, labels_calib, labels_eval, points,
                 samples, pcas, costs):
        self.name, self.model, self.x_calib, self.x_eval = name, model, x_calib, x_eval
        self.labels_calib, self.labels_eval = labels_calib, labels_eval
        self.points, self.samples, self.pcas, self.costs = points, samples, pcas, costs


def _prepare(name, model, x_calib, x_eval, labels_calib, labels_eval, args, t0):
    from golden.allocate import layer_costs
    from golden.calibrate import activation_format, calibrate_layer
    from golden.capture import activation_points, capture, sample_pixels
    from golden.projection import pca_fit

    points = activation_points(model, args.where)
    samples = sample_pixels(model, x_calib, points, max_pixels=args.max_pixels, seed=args.seed)
    samples = {p: s.astype(np.float64) for p, s in samples.items()}
    layer_kw = {}
    for p in points:
        in_bits, relu = activation_format(samples[p], 8, "auto" if args.unsigned == "auto"
                                          else False)
        layer_kw[p] = dict(method=args.scale_method, x_method=args.x_method, in_bits=in_bits,
                           relu=relu)
        if args.min_step is not None:
            layer_kw[p]["min_step"] = args.min_step
    sizes = {p: int(np.prod(v.shape[1:])) for p, v in capture(model, x_calib[:1], points).items()}
    _log(t0, f"{name}: {len(points)} points, {sum(sizes.values())} values per input, "
             f"{len(x_calib)} calibration / {len(x_eval)} evaluation inputs")
    pcas = {p: pca_fit(samples[p]) for p in points}
    _log(t0, f"{name}: PCA fitted")
    full = {p: calibrate_layer(pcas[p], samples[p], name=p, **layer_kw[p]) for p in points}
    unsigned = sum(layer_kw[p]["relu"] for p in points)
    _log(t0, f"{name}: {unsigned} of {len(points)} points stored unsigned; activation step "
             f"{args.x_method}, coefficient steps {args.scale_method}")
    costs = {p: layer_costs(pcas[p], samples[p], sizes[p], name=p, artifact=full[p])
             for p in points}
    _log(t0, f"{name}: full-k artifacts calibrated, bits(k) measured per layer (plain Huffman)")
    if args.sensitivity:
        from golden.allocate import layer_sensitivity

        sens = layer_sensitivity(model, x_calib[:16], pcas)
        for p in points:
            costs[p].sensitivity = sens[p]
        _log(t0, f"{name}: measured sensitivities, max/min "
                 f"{max(sens.values()) / min(sens.values()):.3g}")
    s = Setting(name, model, x_calib, x_eval, labels_calib, labels_eval, points, samples,
                pcas, costs)
    s.full, s.layer_kw = full, layer_kw
    return s


def _projections(s: Setting, method, ks, args):
    from golden.learn import learn_cap, learn_price, pca_steps

    inits = {p: s.pcas[p].truncate(ks[p]) for p in s.points}
    if method == "pca":
        return inits
    qat = {}
    if args.qat:
        qat = dict(quant_bits=8, quant_steps={p: pca_steps(inits[p], s.samples[p])
                                              for p in s.points})
    small = s.name == "digits"
    lr = args.lr if small else args.mnv2_lr
    if method == "cap":
        return learn_cap(s.model, s.x_calib, inits, steps=args.digits_steps if small else
                         args.cap_steps, lr=lr, hint_weight=args.hint_weight,
                         batch=64 if small else args.batch, seed=args.seed,
                         progress=args.progress, **qat)
    loss = "task" if s.labels_calib is not None else "kd"
    return learn_price(s.model, s.x_calib, s.points, inits, loss=loss, labels=s.labels_calib,
                       steps=args.digits_steps if small else args.price_steps, lr=lr,
                       batch=64 if small else args.batch, seed=args.seed,
                       progress=args.progress, **qat)


def _run(s: Setting, method, target, args, t0):
    """One configuration; ``target`` None is the full-k baseline (8-bit coefficients of every
    component: the quantization pipeline alone)."""
    from golden.allocate import greedy_allocate, network_bits_per_value
    from golden.calibrate import calibrate_layer
    from golden.report import evaluate

    t = time.time()
    if target is None:
        ks = {p: s.costs[p].channels for p in s.points}
    else:
        ks = greedy_allocate(s.costs, target)
    predicted = network_bits_per_value(s.costs, ks)
    t_learn = 0.0
    if target is None:
        arts = s.full
    else:
        projections = _projections(s, method, ks, args)
        t_learn = time.time() - t
        arts = {p: calibrate_layer(projections[p], s.samples[p], name=p, **s.layer_kw[p])
                for p in s.points}
    result = evaluate(s.model, s.x_eval, arts, labels=s.labels_eval, progress=args.progress)
    net = result["network"]
    values = {p: s.costs[p].values for p in s.points}
    coef_share = sum(ks[p] * values[p] / s.costs[p].channels for p in s.points) / sum(
        values.values())
    row = {"model": s.name, "method": method + ("+s" if args.sensitivity else ""),
           "target": "full" if target is None else target, "points": args.where,
           "bits_per_value": net["bits_per_value"], "calib_bits_per_value": predicted,
           "coefficients_per_value": coef_share, "top1_agreement": net["top1_agreement"],
           "agreement_stderr": net["agreement_stderr"],
           "agreement_ci95": net["agreement_ci95"], "mean_kl": net["mean_kl"],
           "num_eval": net["num_eval_inputs"], "k": ks, "learn_s": t_learn,
           "total_s": time.time() - t}
    if "accuracy_drop" in net:
        row.update(accuracy=net["accuracy"], accuracy_drop=net["accuracy_drop"])
    if net.get("confident_top1_agreement") is not None:
        row.update(confident_inputs=net["confident_inputs"],
                   confident_top1_agreement=net["confident_top1_agreement"])
    if args.run_length:
        row["calib_rl_bits_per_value"] = network_bits_per_value(s.rl_costs, ks)
    _log(t0, f"{s.name} {method} target {row['target']}: "
             f"{net['bits_per_value']:.3f} bits/value, agreement {net['top1_agreement']:.3f}, "
             f"KL {net['mean_kl']:.4f}"
             + (f", accuracy drop {100 * net['accuracy_drop']:.2f}%"
                if "accuracy_drop" in net else "") + f" ({row['total_s']:.0f} s)")
    return row


def _act_row(s: Setting, args, t0):
    """The activation format alone (every point quantized at its full-k artifact's x_scale and
    width, no projection): what the compressed network can at best agree to."""
    from golden.report import activation_only

    t = time.time()
    net = activation_only(s.model, s.x_eval, s.full, labels=s.labels_eval)
    values = sum(s.costs[p].values for p in s.points)
    stored = sum(s.costs[p].values * (s.full[p].in_bits - s.full[p].relu)
                 for p in s.points) / values
    row = {"model": s.name, "method": "act", "target": "none", "points": args.where,
           "bits_per_value": stored,
           "calib_bits_per_value": stored, "coefficients_per_value": 0.0,
           "top1_agreement": net["top1_agreement"], "agreement_stderr": net["agreement_stderr"],
           "agreement_ci95": net["agreement_ci95"], "mean_kl": net["mean_kl"],
           "num_eval": net["num_eval_inputs"], "k": {}, "learn_s": 0.0,
           "total_s": time.time() - t}
    if "accuracy_drop" in net:
        row.update(accuracy=net["accuracy"], accuracy_drop=net["accuracy_drop"])
    if net.get("confident_top1_agreement") is not None:
        row.update(confident_inputs=net["confident_inputs"],
                   confident_top1_agreement=net["confident_top1_agreement"])
    _log(t0, f"{s.name} activation format alone: {stored:.2f} stored bits/value, agreement "
             f"{net['top1_agreement']:.3f}, KL {net['mean_kl']:.4f} ({row['total_s']:.0f} s)")
    return row


def _digits(args, t0):
    from golden.digits import accuracy, train_digits_cnn

    model, data = train_digits_cnn(seed=args.seed)
    _log(t0, f"digits CNN trained: test accuracy {accuracy(model, data.x_test, data.y_test):.4f}")
    return _prepare("digits", model, data.x_train, data.x_test, data.y_train, data.y_test,
                    args, t0)


def _mobilenet(args, t0):
    from golden.images import bundled_photos, extra_photos, make_batch, split_photos
    from golden.mobilenet import load_mobilenet_v2

    model = load_mobilenet_v2()
    calib, evaluation = split_photos(bundled_photos())
    if args.extra_photos:
        calib = calib + extra_photos()
    _log(t0, f"MobileNetV2 loaded; calibration photos {', '.join(n for n, _ in calib)}; "
             f"evaluation photos {', '.join(n for n, _ in evaluation)}")
    x_calib = make_batch(calib, args.num_calib, seed=args.seed)
    x_eval = make_batch(evaluation, args.num_eval, seed=args.seed + 1)
    return _prepare("mobilenet_v2", model, x_calib, x_eval, None, None, args, t0)


def _rl(s: Setting, args, t0):
    from golden.allocate import layer_costs

    s.rl_costs = {p: layer_costs(s.pcas[p], s.samples[p], s.costs[p].values, name=p,
                                 method=args.scale_method, run_length=True, grid=8)
                  for p in s.points}
    _log(t0, f"{s.name}: bits(k) measured per layer (run-length mode)")


# ---------------------------------------------------------------------------------------------


def _table(rows):
    head = (f"{'model':13} {'method':6} {'target':>6} {'bits/val':>8} {'coef/val':>8} "
            f"{'calib':>6} {'RL':>6} {'top-1 agr (n)':>17} {'confident (n)':>13} "
            f"{'mean KL':>8} {'acc drop':>8} "
            f"{'time s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        agr = (f"{100 * r['top1_agreement']:.1f}+-{100 * r['agreement_stderr']:.1f}% "
               f"({r['num_eval']})")
        drop = f"{100 * r['accuracy_drop']:.2f}%" if "accuracy_drop" in r else "-"
        rl = f"{r['calib_rl_bits_per_value']:.2f}" if "calib_rl_bits_per_value" in r else "-"
        conf = (f"{100 * r['confident_top1_agreement']:.1f}% ({r['confident_inputs']})"
                if "confident_inputs" in r else "-")
        target = r["target"] if isinstance(r["target"], str) else f"{r['target']:.2f}"
        lines.append(f"{r['model']:13} {r['method']:6} {target:>6} "
                     f"{r['bits_per_value']:8.3f} {r['coefficients_per_value']:8.3f} "
                     f"{r['calib_bits_per_value']:6.2f} {rl:>6} {agr:>17} {conf:>13} "
                     f"{r['mean_kl']:8.4f} {drop:>8} {r['total_s']:6.0f}")
    lines.append("")
    lines.append("papers:")
    for who, net, bits, fid in PAPERS:
        lines.append(f"  {who:24} {net:12} {bits:>8} bits/value  {fid}")
    return "\n".join(lines)


def _plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(model, key, label, title) for model, key, label, title in (
        ("mobilenet_v2", "top1_agreement", "top-1 agreement with uncompressed (%)",
         "MobileNetV2, held-out photos (CAP: 1.34 bits/value)"),
        ("digits", "accuracy_drop", "accuracy drop (%)", "digits CNN, test set"))
        if any(r["model"] == model for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 0.5, 4.2),
                             squeeze=False)
    names = {"act": "activations only (8-bit stored, no compression)", "pca": "PCA",
             "cap": "CAP", "price": "Price"}
    for ax, (model, key, label, title) in zip(axes[0], panels):
        for method in (*METHODS, "act"):
            pts = sorted((r["bits_per_value"], 100 * r[key], r) for r in rows
                         if r["model"] == model and r["method"].split("+")[0] == method
                         and key in r)
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            line, = ax.plot(xs, ys, "o-", label=names[method])
            if key == "top1_agreement":
                for x, y, r in pts:
                    lo, hi = r["agreement_ci95"]
                    ax.errorbar(x, y, yerr=[[y - 100 * lo], [100 * hi - y]], fmt="none",
                                color=line.get_color(), capsize=3)
        ax.axvline(1.34, color="gray", ls=":", lw=1)
        if key == "top1_agreement":
            ax.axhline(98.0, color="gray", ls="--", lw=1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.set_xlabel("coded bits per activation value")
        ax.set_ylabel(label)
        if any(r.get("points") == "act" for r in rows if r["model"] == model):
            title += "\nactivation modules' outputs only"
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_parser():
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default="1.34,2.0,3.0",
                   help="MobileNetV2 bits/value targets for PCA ('' for none: the act and "
                   "full-k rows only)")
    p.add_argument("--digits-targets", default="1.0,1.34,2.0")
    p.add_argument("--methods", default="pca,cap,price")
    p.add_argument("--cap-targets", default="2.0", help="MobileNetV2 targets for CAP")
    p.add_argument("--price-targets", default="",
                   help="MobileNetV2 targets for Price (none by default: 52 points x steps "
                   "forward-backward passes)")
    p.add_argument("--num-calib", type=int, default=64, help="MobileNetV2 calibration crops")
    p.add_argument("--num-eval", type=int, default=48, help="MobileNetV2 evaluation crops")
    p.add_argument("--extra-photos", action="store_true",
                   help="calibrate MobileNetV2 on golden.images.extra_photos too")
    p.add_argument("--max-pixels", type=int, default=5000, help="calibration pixels per layer")
    p.add_argument("--scale-method", default="mse", choices=("max", "percentile", "mse", "kl"),
                   help="coefficient steps (golden.calibrate.clip_scale)")
    p.add_argument("--x-method", default="mse", choices=("max", "percentile", "mse", "kl"),
                   help="activation step of every point (golden.calibrate.clip_scale)")
    p.add_argument("--unsigned", default="auto", choices=("auto", "off"),
                   help="auto: non-negative points stored unsigned (activation_format); off: "
                   "every point signed 8-bit")
    p.add_argument("--min-step", type=float,
                   help="coefficient step floor (calibrate_layer's min_step; its default)")
    p.add_argument("--where", default="post", choices=("post", "act"),
                   help="points: post (activation and block outputs) or act (activation "
                   "modules only: MobileNetV2's 35 ReLU6 outputs)")
    p.add_argument("--cap-steps", type=int, default=20, help="CAP Adam steps (MobileNetV2)")
    p.add_argument("--price-steps", type=int, default=3,
                   help="Price Adam steps per layer (MobileNetV2)")
    p.add_argument("--digits-steps", type=int, default=150, help="Adam steps on digits")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-2,
                   help="relative Adam step on digits (golden.learn: lr / sqrt(C) on S1, S2)")
    p.add_argument("--mnv2-lr", type=float, default=LEARN_RATE["mobilenet_v2"],
                   help="relative Adam step on MobileNetV2 (golden calibrate's default; 1e-2 "
                   "raised its calibration KL)")
    p.add_argument("--hint-weight", type=float, default=1.0)
    p.add_argument("--qat", action="store_true", help="straight-through 8-bit rounding in training")
    p.add_argument("--run-length", action="store_true",
                   help="also measure the allocation's bits in run-length mode (slow)")
    p.add_argument("--sensitivity", action="store_true",
                   help="weight the greedy allocation by measured per-layer sensitivities "
                   "(golden.allocate.layer_sensitivity) instead of treating layers alike")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the full-k row (8-bit coefficients of every component)")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--skip-mobilenet", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="tqdm bars for long steps")
    p.add_argument("--out", default="build/bench/projections.png")
    p.add_argument("--json", help="also write the rows as JSON")
    return p


def _check(args):
    for name in ("num_calib", "num_eval", "max_pixels", "batch", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, "
                             f"not {getattr(args, name)}")
    for name in ("cap_steps", "price_steps", "digits_steps"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative")
    if args.min_step is not None and args.min_step < 0:
        raise UsageError(f"--min-step must not be negative, not {args.min_step}")
    if not args.lr > 0 or not args.mnv2_lr > 0 or args.hint_weight < 0:
        raise UsageError("--lr and --mnv2-lr must be positive and --hint-weight not negative")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, not {args.out}")
    if args.skip_digits and args.skip_mobilenet:
        raise UsageError("nothing to do: both --skip-digits and --skip-mobilenet")


def main(argv=None):
    import torch

    try:
        args = make_parser().parse_args(argv)
        _check(args)
        targets = _floats(args.targets, "--targets") if args.targets else []
        digits_targets = _floats(args.digits_targets, "--digits-targets")
        cap_targets = _floats(args.cap_targets, "--cap-targets") if args.cap_targets else []
        price_targets = (_floats(args.price_targets, "--price-targets")
                         if args.price_targets else [])
        methods = _methods(args.methods)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = []
    jobs = []
    if not args.skip_digits:
        jobs.append((_digits, {m: digits_targets for m in METHODS}))
    if not args.skip_mobilenet:
        jobs.append((_mobilenet, {"pca": targets, "cap": cap_targets, "price": price_targets}))
    try:
        for make, per_method in jobs:
            # The digits CNN is tiny: one thread avoids thread start-up costs and contention.
            torch.set_num_threads(1 if make is _digits else args.threads)
            s = make(args, t0)
            if args.run_length:
                _rl(s, args, t0)
            if not args.no_baseline:
                rows.append(_act_row(s, args, t0))
                rows.append(_run(s, "pca", None, args, t0))
            for method in methods:
                for target in per_method[method]:
                    rows.append(_run(s, method, target, args, t0))
    except (ValueError, FileNotFoundError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print()
    print(_table(rows))
    out = Path(args.out)
    _plot(rows, out)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nplot: {out}; {time.time() - t0:.0f} s in all, {args.threads} threads")
    for r in rows:
        if r["model"] == "mobilenet_v2" and r["method"].startswith("pca"):
            print(f"k per layer ({r['method']}, target {r['target']}): "
                  + " ".join(f"{p}={k}" for p, k in r["k"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
