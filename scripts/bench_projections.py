"""Rate against accuracy of PCA, CAP and Price projections, synthetic against real calibration.

    python -m scripts.bench_projections [--sources synthetic,real] [--distilled DIR]
        [--targets 1.34,2.0,3.0,4.0] [--cap-targets 1.34,2.0] [--price-targets 1.34,2.0]
        [--num-calib 128] [--crops-per-photo 8] [--cap-steps 160] [--price-steps 4]
        [--allocation kl|share|joint [--levels 16] [--keep 0] [--rounds 0] [--reallocate]]
        [--skip-digits] [--skip-mobilenet] [--json FILE]
        [--out build/bench/projections.png]

MobileNetV2, every one of its 52 post-activation points compressed at once. For each
calibration source, ``synthetic`` (the images of ``python -m golden distill`` in
``--distilled``, no real photo) and ``real`` (crops of half the bundled photos), the benchmark
fits PCA per point, measures each point's coded bits against k
(``golden.calibration.allocation.layer_costs``)
and its output KL against k on held-out calibration inputs (``kl_curves``, with the hardware's
rounding), and for every target bits per value lets CAP's greedy allocation choose k per point
(with ``--allocation joint``: k, coefficient steps and group widths per point,
``golden.calibration.allocation.allocate_joint``).
Each method then gives the projections at those k: PCA itself, CAP (``learn_cap``: KD plus
hint against the teacher, through the integer rounding, early-stopped on a validation split) or
Price and Tanner (``learn_price``, layer by layer). Every configuration is folded into integer
artifacts and evaluated on the same real photos for both sources (the held-out half of the
bundled photos and the 13 extra pictures, ``--crops-per-photo`` crops each): coded bits per
value as the hardware stores them; top-1 agreement with the float network over all crops and
over the confident ones (float top-1 probability >= 0.5), with 95% intervals bootstrapped over
photos; top-5 containment; mean KL. Beside them, on the same crops, the 8-bit activations
alone (no projection): their agreement, KL and Huffman-coded size (the lossless point). The
digits CNN gives the same comparison with labelled accuracy. Prints a table, writes a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.__main__ import KL_INPUTS

PROG = "python -m scripts.bench_projections"
METHODS = ("pca", "cap", "price")
SOURCES = ("synthetic", "real")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _log(t0, msg):
    print(f"[{time.time() - t0:7.1f} s] {msg}", flush=True)


def _floats(text, name):
    if not text:
        return []
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of numbers, not {text!r}") \
            from None
    if any(not v > 0 for v in vals):
        raise UsageError(f"{name} values must be positive, not {text}")
    return vals


def _names(text, allowed, name):
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in allowed]
    if bad or not names:
        raise UsageError(f"{name} must be a comma-separated subset of {','.join(allowed)}, "
                         f"not {text!r}")
    return names


# ---------------------------------------------------------------------------------------------


class Setting:
    """One network and calibration source: its inputs, PCA, costs and reference logits."""


def _prepare(name, source, model, x_calib, x_eval, groups, labels_eval, args, t0):
    import torch

    from golden.calibration.allocation import kl_curves, layer_costs
    from golden.calibration.folding import calibrate_layer
    from golden.calibration.report import activation_tables, evaluate
    from golden.nets.capture import activation_points, capture, sample_pixels
    from golden.projection.learning import quant_format
    from golden.projection.pca import pca_fit

    s = Setting()
    s.name, s.source, s.model = name, source, model
    s.x_calib, s.x_eval, s.groups, s.labels = x_calib, x_eval, groups, labels_eval
    s.points = activation_points(model)
    samples = sample_pixels(model, x_calib, s.points, max_pixels=args.max_pixels, seed=0)
    s.samples = {p: v.astype(np.float64) for p, v in samples.items()}
    sizes = {p: int(np.prod(v.shape[1:])) for p, v in capture(model, x_calib[:1],
                                                               s.points).items()}
    s.pcas = {p: pca_fit(s.samples[p]) for p in s.points}
    s.full = {p: calibrate_layer(s.pcas[p], s.samples[p], name=p,
                                 **_layer_kw(s.samples[p])) for p in s.points}
    # bits(k) for the k-only allocations (the joint one measures its own levels' bits).
    mode = "off" if args.allocation == "joint" else args.run_length
    s.costs = {p: layer_costs(s.pcas[p], s.samples[p], sizes[p], name=p, artifact=s.full[p],
                              run_length=mode)
               for p in s.points}
    s.quant = {p: quant_format(s.pcas[p], s.samples[p]) for p in s.points}
    _log(t0, f"{name}/{source}: {len(s.points)} points, {sum(sizes.values())} values per "
             f"input, {len(x_calib)} calibration / {len(x_eval)} evaluation inputs; PCA, "
             f"bits(k) measured")
    n_val = max(1, round(len(x_calib) * args.val_fraction))
    limit = args.kl_inputs if name == "mobilenet_v2" else KL_INPUTS[name]
    x_val = x_calib[-min(n_val, limit):]
    s.x_val, s.sizes = x_val, sizes
    if args.allocation == "joint":
        from golden.calibration.allocation import joint_costs

        s.joint = joint_costs(model, x_val, s.pcas, s.samples, s.quant, sizes,
                              levels=args.levels, keep=args.keep, run_length=args.run_length,
                              progress=args.progress)
        _log(t0, f"{name}/{source}: bits and output KL of {args.levels} precision levels "
                 f"measured per point on {len(x_val)} held-out calibration inputs")
    if args.allocation == "kl":
        curves = kl_curves(model, x_val, s.pcas, quant=s.quant, grid=args.kl_grid)
        for p in s.points:
            s.costs[p].distortion = curves[p]
            s.costs[p].__post_init__()
        _log(t0, f"{name}/{source}: output KL against k measured per point on {len(x_val)} "
                 f"held-out calibration inputs")
    with torch.no_grad():
        s.base = torch.cat([model(x_eval[i:i + 16]).float() for i in range(0, len(x_eval), 16)])
    ref = evaluate(model, x_eval, s.full, labels=labels_eval, groups=groups, baseline=True,
                   baseline_tables=activation_tables(s.full, s.samples),
                   base_logits=s.base, return_logits=True)
    s.reference, s.base8 = ref["network"], ref["logits"]["base8"]
    _log(t0, f"{name}/{source}: reference pass (8-bit activations alone, full-k PCA) done")
    return s


def _layer_kw(samples):
    from golden.datapath.scales import activation_format

    in_bits, relu = activation_format(samples, 8, "auto")
    return dict(in_bits=in_bits, relu=relu)


def _projections(s: Setting, method, ks, args, curve, levels=None):
    import dataclasses

    from golden.projection.learning import learn_cap, learn_price

    inits = {p: s.pcas[p].truncate(ks[p]) for p in s.points}
    if method == "pca":
        return inits
    small = s.name == "digits"
    if levels is None:
        quant = {p: _truncated(s.quant[p], ks[p]) for p in s.points}
    else:
        quant = {p: dataclasses.replace(s.quant[p], steps=levels[p].steps,
                                        widths=levels[p].widths) for p in s.points}
    common = dict(lr=args.digits_lr if small else args.lr, batch=64 if small else args.batch,
                  quant=quant, lr_scale=args.lr_scale, seed=args.seed, progress=args.progress)
    if method == "cap":
        return learn_cap(s.model, s.x_calib, inits,
                         steps=args.digits_steps if small else args.cap_steps,
                         val_fraction=args.val_fraction, eval_every=10 if small else 16,
                         history=curve, **common)
    return learn_price(s.model, s.x_calib, s.points, inits,
                       steps=args.digits_price_steps if small else args.price_steps, **common)


def _truncated(fmt, k):
    import dataclasses

    return dataclasses.replace(fmt, steps=fmt.steps[:k])


def _run(s: Setting, method, target, args, t0):
    from golden.calibration.allocation import greedy_allocate, network_bits_per_value
    from golden.calibration.folding import calibrate_layer
    from golden.calibration.report import evaluate, paired_drop_ci

    t = time.time()
    levels = None
    if args.allocation == "joint":
        from golden.calibration.allocation import allocate_joint

        rounds = []
        levels = allocate_joint(s.joint, target, rounds=args.rounds, history=rounds)
        ks = {p: lev.k for p, lev in levels.items()}
        calib_bpv = (sum(float(s.joint.bits[p][rounds[-1][p]]) for p in s.points)
                     / sum(s.joint.values.values()))
    else:
        ks = greedy_allocate(s.costs, target)
        calib_bpv = network_bits_per_value(s.costs, ks)
    curve = []
    projections = _projections(s, method, ks, args, curve, levels)
    first_ks = None
    if args.reallocate and method != "pca":
        # The joint allocation again, through the learned bases (components ordered by their
        # coefficients' variance): the rate the learned coefficients actually cost.
        from golden.calibration.allocation import joint_costs, variance_ordered
        from golden.projection.learning import quant_format

        ordered = {p: variance_ordered(projections[p], s.samples[p]) for p in s.points}
        quant = {p: quant_format(ordered[p], s.samples[p]) for p in s.points}
        costs = joint_costs(s.model, s.x_val, ordered, s.samples, quant, s.sizes,
                            levels=args.levels, keep=args.keep, run_length=args.run_length,
                            progress=args.progress)
        rounds = []
        levels = allocate_joint(costs, target, history=rounds)
        first_ks, ks = ks, {p: lev.k for p, lev in levels.items()}
        projections = {p: ordered[p].truncate(ks[p]) for p in s.points}
        calib_bpv = (sum(float(costs.bits[p][rounds[-1][p]]) for p in s.points)
                     / sum(costs.values.values()))
        s_kl = costs.kl
    else:
        s_kl = s.joint.kl if levels is not None else None
    t_learn = time.time() - t
    arts, recode = {}, {}
    # The same coefficients in the other coding mode (plain <-> run-length where smaller):
    # the rate of both modes at exactly this fidelity.
    other = "auto" if args.run_length == "off" else "off"
    for p in s.points:
        kw = _layer_kw(s.samples[p])
        if levels is not None:
            kw.update(group_bounds=levels[p].group_bounds, group_bits=levels[p].group_bits,
                      steps=levels[p].steps)
        arts[p] = calibrate_layer(projections[p], s.samples[p], name=p,
                                  run_length=args.run_length, **kw)
        recode[p] = calibrate_layer(projections[p], s.samples[p], name=p, run_length=other,
                                    **kw)
    result = evaluate(s.model, s.x_eval, arts, labels=s.labels, groups=s.groups,
                      base_logits=s.base, return_logits=True, recode=recode)
    net = result["network"]
    row = _row(s, method, target, net)
    row.update(run_length=args.run_length, recode_mode=other,
               recoded_bits_per_value=net["recoded_bits_per_value"],
               run_length_layers=sum(any(t.run_max for t in a.tables.tables)
                                     for a in (recode if other != "off" else arts).values()))
    # The drop below the 8-bit activations on the same crops, bootstrapped over photos with
    # the same draws for both (paired).
    row["confident_drop_ci95"] = paired_drop_ci(s.base, s.base8, result["logits"]["comp"],
                                                s.groups)
    row.update(calib_bits_per_value=calib_bpv, k=ks, learn_s=t_learn,
               total_s=time.time() - t, curve=curve, allocation=args.allocation)
    if levels is not None:
        # The additive prediction: each point's KL measured alone (or, after --rounds, in
        # context), summed; the evaluated mean KL against it shows how errors compound.
        row["levels"] = rounds[-1]
        row["sum_point_kl"] = float(sum(s_kl[p][rounds[-1][p]] for p in s.points))
        row["rounds"] = args.rounds
        if first_ks is not None:
            row["reallocated"], row["k_before_learning"] = True, first_ks
        row["keep"] = args.keep
        row["group_bits"] = {p: levels[p].group_bits.tolist() for p in s.points}
        row["group_bounds"] = {p: levels[p].group_bounds.tolist() for p in s.points}
    _log(t0, _line(row))
    return row


def _row(s, method, target, net):
    ref = s.reference
    row = {"model": s.name, "source": s.source, "method": method, "target": target,
           "bits_per_value": net["bits_per_value"], "top1_agreement": net["top1_agreement"],
           "top1_agreement_ci95": net.get("top1_agreement_ci95_photos"),
           "top1_agreement_confident": net["top1_agreement_confident"],
           "top1_agreement_confident_ci95": net.get("top1_agreement_confident_ci95"),
           "top5_containment": net["top5_containment"], "mean_kl": net["mean_kl"],
           "num_eval_crops": net["num_eval_crops"],
           "num_eval_photos": net.get("num_eval_photos"),
           "num_confident_crops": net["num_confident_crops"],
           "baseline_top1_agreement_confident": ref["baseline_top1_agreement_confident"],
           "baseline_mean_kl": ref["baseline_mean_kl"]}
    if "accuracy" in net:
        row.update(accuracy=net["accuracy"], compressed_accuracy=net["compressed_accuracy"],
                   accuracy_drop=net["accuracy_drop"])
    return row


def _line(r):
    ci = r.get("top1_agreement_confident_ci95") or [float("nan")] * 2
    conf = r["top1_agreement_confident"]
    conf_text = "-" if conf is None else f"{100 * conf:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    acc = (f", accuracy {100 * r['compressed_accuracy']:.2f}% (drop "
           f"{100 * r['accuracy_drop']:.2f})" if "accuracy" in r else "")
    return (f"{r['model']}/{r['source']} {r['method']} target {r['target']}: "
            f"{r['bits_per_value']:.3f} bits/value, confident {conf_text} "
            f"(8-bit only {100 * r['baseline_top1_agreement_confident']:.1f}%), all "
            f"{100 * r['top1_agreement']:.1f}%, top-5 {100 * r['top5_containment']:.1f}%, "
            f"KL {r['mean_kl']:.4f}{acc}"
            + (f"; same coefficients {r['recode_mode']}: {r['recoded_bits_per_value']:.3f} "
               f"bits/value" if "recoded_bits_per_value" in r else ""))


def _lossless_row(s: Setting):
    ref = s.reference
    row = {"model": s.name, "source": s.source, "method": "8-bit", "target": None,
           "bits_per_value": ref["baseline_bits_per_value"],
           "top1_agreement": ref["baseline_top1_agreement"],
           "top1_agreement_ci95": None,
           "top1_agreement_confident": ref["baseline_top1_agreement_confident"],
           "top1_agreement_confident_ci95": ref.get("baseline_top1_agreement_confident_ci95"),
           "top5_containment": ref["baseline_top5_containment"],
           "mean_kl": ref["baseline_mean_kl"], "num_eval_crops": ref["num_eval_crops"],
           "num_eval_photos": ref.get("num_eval_photos"),
           "num_confident_crops": ref["num_confident_crops"],
           "baseline_top1_agreement_confident": ref["baseline_top1_agreement_confident"],
           "baseline_mean_kl": ref["baseline_mean_kl"], "k": {}, "learn_s": 0.0,
           "total_s": 0.0, "curve": []}
    if "accuracy" in ref:
        drop = ref["baseline_accuracy_drop"]
        row.update(accuracy=ref["accuracy"], compressed_accuracy=ref["accuracy"] - drop,
                   accuracy_drop=drop)
    return row


# ---------------------------------------------------------------------------------------------


def _mobilenet(source, args, t0):
    from golden.nets.images import (
        bundled_photos,
        extra_photos,
        load_folder,
        make_batch,
        split_photos,
    )
    from golden.nets.mobilenet import load_mobilenet_v2

    model = load_mobilenet_v2()
    calib, evaluation = split_photos(bundled_photos())
    evaluation = evaluation + extra_photos()
    if source == "synthetic":
        images = load_folder(args.distilled)
        n = min(args.num_calib, len(images))
        x_calib = make_batch(images, n, seed=args.seed, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    else:
        x_calib = make_batch(calib, args.num_calib, seed=args.seed)
    n_eval = args.crops_per_photo * len(evaluation)
    x_eval = make_batch(evaluation, n_eval, seed=args.seed + 1)
    groups = np.arange(n_eval) % len(evaluation)
    _log(t0, f"MobileNetV2, {source} calibration; evaluation photos: "
             f"{', '.join(n for n, _ in evaluation)}")
    return _prepare("mobilenet_v2", source, model, x_calib, x_eval, groups, None, args, t0)


def _digits(source, args, t0):
    import torch

    from golden.__main__ import digits_images
    from golden.nets.digits import train_digits_cnn

    model, data = train_digits_cnn(seed=0)
    if source == "synthetic":
        x_calib = digits_images(args.distilled_digits)
    else:
        x_calib = data.x_train
    groups = np.arange(len(data.x_test))
    torch.manual_seed(0)
    return _prepare("digits", source, model, x_calib, data.x_test, groups, data.y_test, args,
                    t0)


def _digits_distilled(args, t0):
    """Distil the digits images once (cheap) into ``--distilled-digits`` if missing."""
    from golden.nets.digits import train_digits_cnn
    from golden.projection.distill import DistillSettings, distill_to_folder

    model, _ = train_digits_cnn(seed=0)
    settings = DistillSettings(size=8, low_size=None, steps=200)
    m = distill_to_folder(model, args.distilled_digits, 512, batch=128, settings=settings,
                          channels=1, classes=10, model_name="digits", log=lambda line: None)
    _log(t0, f"digits: {m['num_images']} distilled images in {args.distilled_digits} "
             f"(BatchNorm loss {m['start_bn']:.2f} -> {m['final_bn']:.2f})")


# ---------------------------------------------------------------------------------------------


def _table(rows):
    head = (f"{'model':12} {'source':9} {'method':14} {'target':>6} {'bits/val':>8} "
            f"{'confident agreement [95%]':>27} {'8-bit':>6} {'all':>6} {'top-5':>6} "
            f"{'KL':>7} {'acc drop':>8} {'time s':>6} {'other mode':>14}")
    lines = [head, "-" * len(head)]
    for r in rows:
        conf = r["top1_agreement_confident"]
        ci = r.get("top1_agreement_confident_ci95")
        conf_text = "-" if conf is None else (
            f"{100 * conf:5.1f}% ({r['num_confident_crops']})"
            + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""))
        drop = f"{100 * r['accuracy_drop']:.2f}%" if "accuracy_drop" in r else "-"
        target = "-" if r["target"] is None else f"{r['target']:.2f}"
        method = _method_label(r)
        lines.append(f"{r['model']:12} {r['source']:9} {method:14} {target:>6} "
                     f"{r['bits_per_value']:8.3f} {conf_text:>27} "
                     f"{100 * r['baseline_top1_agreement_confident']:5.1f}% "
                     f"{100 * r['top1_agreement']:5.1f}% {100 * r['top5_containment']:5.1f}% "
                     f"{r['mean_kl']:7.4f} {drop:>8} {r['total_s']:6.0f} "
                     + (f"{r['recode_mode']:>4} {r['recoded_bits_per_value']:.3f}"
                        if "recoded_bits_per_value" in r else f"{'-':>14}"))
    lines.append("")
    lines.append("other mode: the same coefficients coded in the other mode (off = plain, auto "
                 "= run-length per layer where smaller): bits/value at exactly the row's "
                 "fidelity.")
    lines.append("CAP (Tai et al. 2022) reports MobileNetV2 at 1.34 bits/value with a 0.6% top-1 "
                 "drop after 3 ImageNet epochs.")
    return "\n".join(lines)


def _method_label(r):
    """The method, with ``+joint`` (and ``rN`` for re-measured rounds) for rows of the joint
    allocation and ``+rl`` for rows whose allocation counted run-length bits."""
    rl = "+rl" if r.get("run_length", "off") != "off" else ""
    if r.get("allocation") != "joint":
        return r["method"] + rl
    return (r["method"] + "+joint" + (f" r{r['rounds']}" if r.get("rounds") else "")
            + (" re" if r.get("reallocated") else "") + rl)


def _series(rows, source):
    """(method, joint, keep, run-length) of every line to draw, in a stable order."""
    seen = {(r["method"], r.get("allocation") == "joint", r.get("keep"),
             r.get("run_length", "off") != "off")
            for r in rows if r["source"] == source and r["method"] in METHODS}
    return sorted(seen, key=lambda t: (METHODS.index(t[0]), t[1], -1 if t[2] is None else t[2],
                                       t[3]))


def _plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in ("mobilenet_v2", "digits") if any(r["model"] == m for r in rows)]
    fig, axes = plt.subplots(2, len(models), figsize=(6.0 * len(models), 8.0), squeeze=False)
    colors = {"pca": "tab:blue", "cap": "tab:red", "price": "tab:green"}
    for col, model in enumerate(models):
        top, bottom = axes[0][col], axes[1][col]
        mrows = [r for r in rows if r["model"] == model]
        key = "top1_agreement_confident" if model == "mobilenet_v2" else "compressed_accuracy"
        for source, style in (("synthetic", "-"), ("real", "--")):
            for method, joint, keep, rl in _series(mrows, source):
                pts = sorted(((r["bits_per_value"], i), r) for i, r in enumerate(mrows)
                             if r["source"] == source and r["method"] == method
                             and (r.get("allocation") == "joint") == joint
                             and r.get("keep") == keep
                             and (r.get("run_length", "off") != "off") == rl
                             and not r.get("rounds") and r.get(key) is not None)
                if not pts:
                    continue
                xs = [p[0][0] for p in pts]
                ys = [100 * p[1][key] for p in pts]
                label = (f"{method.upper() if method != 'price' else 'Price'}"
                         f"{' + joint allocation' if joint else ''}"
                         f"{f' (keep {keep:g})' if keep is not None else ''}"
                         f"{', run-length' if rl else ''}"
                         f"{', re-allocated' if any(r.get('reallocated') for _, r in pts) else ''}"
                         f", {source}")
                marker = ("D" if rl else "s") if joint else "o"
                # Colour by method; keep 0 (every component) lighter, run-length rows
                # diamonds.
                color = colors[method]
                if keep == 0:
                    color = {"pca": "tab:cyan", "cap": "tab:orange",
                             "price": "tab:olive"}[method]
                top.plot(xs, ys, marker + style, color=color, label=label,
                         mfc="none" if joint else None)
                for x, y, (_, r) in zip(xs, ys, pts):
                    # The same coefficients in the other mode: an arrow from the plain rate
                    # to the run-length rate at exactly this fidelity.
                    other = r.get("recoded_bits_per_value")
                    if other is None or abs(other - x) < 1e-9:
                        continue
                    plain, runs = (x, other) if r.get("recode_mode") == "auto" else (other, x)
                    if runs < plain:
                        top.annotate("", (runs, y), (plain, y),
                                     arrowprops=dict(arrowstyle="->", color=color, lw=0.8))
                        if r.get("recode_mode") != "auto":
                            top.plot([plain], [y], "|", color=color, ms=8)
                ci_key = "top1_agreement_confident_ci95" if model == "mobilenet_v2" else None
                for x, (_, r) in zip(xs, pts):
                    ci = r.get(ci_key) if ci_key else None
                    if ci:
                        top.errorbar(x, 100 * r[key], yerr=[[100 * (r[key] - ci[0])],
                                                            [100 * (ci[1] - r[key])]],
                                     fmt="none", color=colors[method], capsize=2, alpha=0.6)
                bottom.plot(xs, [p[1]["mean_kl"] for p in pts], marker + style,
                            color=color, label=label, mfc="none" if joint else None)
            lossless = [r for r in mrows if r["source"] == source and r["method"] == "8-bit"]
            for r in lossless[:1]:  # merged runs of one source repeat it
                marker = "k*" if source == "synthetic" else "kx"
                top.plot(r["bits_per_value"], 100 * r[key], marker, ms=10,
                         label=f"8-bit activations, Huffman ({source})")
                bottom.plot(r["bits_per_value"], max(r["mean_kl"], 1e-5), marker, ms=10)
        top.axvline(1.34, color="gray", ls=":", lw=1)
        bottom.axvline(1.34, color="gray", ls=":", lw=1)
        top.set_ylabel("top-1 agreement on confident crops (%)" if model == "mobilenet_v2"
                       else "test accuracy (%)")
        top.set_title("MobileNetV2, real held-out photos" if model == "mobilenet_v2"
                      else "digits CNN, labelled test split")
        bottom.set_yscale("log")
        bottom.set_ylabel("mean KL (float || compressed)")
        bottom.set_xlabel("coded bits per activation value")
        top.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_parser():
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", default="synthetic,real")
    p.add_argument("--distilled", default="runs/distill128",
                   help="folder of `python -m golden distill --model mobilenet_v2` images")
    p.add_argument("--distilled-digits", default="build/bench/distill_digits",
                   help="folder for the digits' distilled images (made if missing)")
    p.add_argument("--methods", default="pca,cap,price")
    p.add_argument("--targets", default="1.34,2.0,3.0,4.0", help="targets for PCA")
    p.add_argument("--cap-targets", default="1.34,2.0")
    p.add_argument("--price-targets", default="1.34,2.0")
    p.add_argument("--digits-targets", default="1.0,1.34,2.0,3.0")
    p.add_argument("--num-calib", type=int, default=128, help="MobileNetV2 calibration inputs")
    p.add_argument("--crops-per-photo", type=int, default=8,
                   help="MobileNetV2 evaluation crops per photo (17 photos)")
    p.add_argument("--max-pixels", type=int, default=20000, help="calibration pixels per point")
    p.add_argument("--allocation", default="kl", choices=("kl", "share", "joint"),
                   help="kl/share: k per point at 8-bit coefficients (greedy on measured KL "
                   "or the eigenvalue share); joint: k and coefficient precision per point "
                   "(golden.calibration.allocation.allocate_joint)")
    p.add_argument("--levels", type=int, default=16,
                   help="joint: precision levels per point (steps sqrt(2) apart)")
    p.add_argument("--keep", type=float, default=0.0,
                   help="joint: keep components whose deviation is at least this many steps")
    p.add_argument("--reallocate", action="store_true",
                   help="joint, CAP and Price rows: after learning, allocate again on the "
                        "learned projections")
    p.add_argument("--rounds", type=int, default=0,
                   help="joint: re-measure every point's KL with the others at their "
                   "allocated levels and re-allocate, this many times per target")
    p.add_argument("--run-length", default="off", choices=("off", "on", "auto"),
                   help="coding mode the allocation counts and the artifacts use (golden "
                        "calibrate --run-length); every row also reports the same "
                        "coefficients' bits in the other mode (plain <-> auto)")
    p.add_argument("--kl-inputs", type=int, default=8,
                   help="held-out calibration inputs of the KL allocation on MobileNetV2 "
                   "(digits: golden calibrate's)")
    p.add_argument("--kl-grid", type=int, default=5, help="k values measured per point")
    p.add_argument("--val-fraction", type=float, default=0.125)
    p.add_argument("--cap-steps", type=int, default=160,
                   help="most CAP Adam steps on MobileNetV2 (early-stopped)")
    p.add_argument("--price-steps", type=int, default=4,
                   help="Price Adam steps per point on MobileNetV2")
    p.add_argument("--digits-steps", type=int, default=300)
    p.add_argument("--digits-price-steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4,
                   help="relative Adam step on MobileNetV2 (golden.projection.learning)")
    p.add_argument("--digits-lr", type=float, default=1e-2)
    p.add_argument("--lr-scale", default="relative", choices=("relative", "absolute"),
                   help="relative: S1, S2 move by about lr / sqrt(C) per step; absolute: lr "
                   "(CAP's paper: 1e-3)")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--skip-mobilenet", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="tqdm bars for long steps")
    p.add_argument("--out", default="build/bench/projections.png")
    p.add_argument("--json", help="also write the rows as JSON")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="run nothing: print the table and draw the plot of rows that earlier "
                   "runs wrote with --json")
    return p


def _check(args):
    for name in ("num_calib", "crops_per_photo", "max_pixels", "batch", "threads", "kl_inputs",
                 "kl_grid", "levels"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, "
                             f"not {getattr(args, name)}")
    if not args.keep >= 0:
        raise UsageError(f"--keep must not be negative, not {args.keep}")
    if args.reallocate and args.allocation != "joint":
        raise UsageError("--reallocate needs --allocation joint")
    for name in ("cap_steps", "price_steps", "digits_steps", "digits_price_steps", "rounds"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative")
    if not args.lr > 0 or not args.digits_lr > 0:
        raise UsageError("--lr and --digits-lr must be positive")
    if not 0 < args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in (0, 1), not {args.val_fraction}")
    if Path(args.out).suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, not {args.out}")
    if args.skip_digits and args.skip_mobilenet:
        raise UsageError("nothing to do: both --skip-digits and --skip-mobilenet")


def main(argv=None):
    import torch

    try:
        args = make_parser().parse_args(argv)
        _check(args)
        targets = {"pca": _floats(args.targets, "--targets"),
                   "cap": _floats(args.cap_targets, "--cap-targets"),
                   "price": _floats(args.price_targets, "--price-targets")}
        digits_targets = _floats(args.digits_targets, "--digits-targets")
        methods = _names(args.methods, METHODS, "--methods")
        sources = _names(args.sources, SOURCES, "--sources")
        if not args.merge and "synthetic" in sources and not args.skip_mobilenet and not (
                Path(args.distilled) / "manifest.json").is_file():
            raise UsageError(f"--distilled {args.distilled} holds no distilled images; make "
                             f"them with python -m golden distill --model mobilenet_v2 "
                             f"--num-images 128 --out {args.distilled}")
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if args.merge:
        rows = []
        try:
            for name in args.merge:
                rows += json.loads(Path(name).read_text())
        except (OSError, ValueError) as e:
            print(f"{PROG}: error: cannot read {name}: {e}", file=sys.stderr)
            return 2
        print(_table(rows))
        _plot(rows, Path(args.out))
        print(f"\nplot: {args.out}")
        return 0
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = []
    jobs = []
    if not args.skip_digits:
        jobs += [(_digits, source, {m: digits_targets for m in METHODS}) for source in sources]
    if not args.skip_mobilenet:
        jobs += [(_mobilenet, source, targets) for source in sources]
    try:
        if not args.skip_digits and "synthetic" in sources:
            _digits_distilled(args, t0)
        for make, source, per_method in jobs:
            # The digits CNN is tiny: one thread avoids thread start-up costs and contention.
            torch.set_num_threads(1 if make is _digits else args.threads)
            s = make(source, args, t0)
            rows.append(_lossless_row(s))
            _log(t0, _line(rows[-1]))
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
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nplot: {out}; {time.time() - t0:.0f} s in all, {args.threads} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
