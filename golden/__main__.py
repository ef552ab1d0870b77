"""``python -m golden``: calibration images, projections as integer artifacts, test vectors.

    python -m golden distill --model mobilenet_v2|digits --num-images N --out DIR [--size S]
        [--seed S] ...
    python -m golden calibrate --model mobilenet_v2|digits [--images DIR] [--eval-images DIR]
        (--threshold T | --k K | --bits-per-value B | --ceiling X) [--method pca|cap|price]
        --out DIR [--quick] [--num-images N] [--num-eval N] [--group-bits 8[,6,..]]
        [--allocation kl|share|joint [--levels L] [--keep R] [--rounds N] [--reallocate]] ...
    python -m golden vectors --artifact FILE --out DIR [--activations X.npy | --model M]
        [--pixels N] [--random]

``distill`` synthesises calibration images from the network's BatchNorm statistics
(``golden.projection.distill``); ``calibrate --images DIR`` then calibrates without any real photo.
``calibrate`` captures activations at every point (``golden.nets.capture``), fits PCA per point,
chooses k per layer (energy threshold, a fixed k, or the allocators of
``golden.calibration.allocation``),
optionally learns the projections (``golden.projection.learning``), folds them into integer
artifacts
(``golden.calibration``), and evaluates all points compressed at once on held-out inputs
(``golden.calibration.report``). It writes ``NN_<point>.npz`` per layer, ``report.json``,
``bits_per_layer.png``, ``rate_fidelity.png`` and, for CAP, ``learning_curve.png``.
Evaluation uses real photos that calibration never saw. Bad arguments or inputs print one
line on stderr, exit with status 2 and write nothing; outputs appear only once complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROG = "python -m golden"
MODELS = ("mobilenet_v2", "digits")
METHODS = ("pca", "cap", "price")
# Relative Adam step (golden.projection.learning) per model. On MobileNetV2, 1e-2 raised the
# calibration
# KL of a 3-bit/value PCA start from 0.40 to 2.2 in 20 steps; 1e-4 lowered it to 0.085.
LEARN_RATE = {"digits": 1e-2, "mobilenet_v2": 1e-4}
# Mini-batch per model (on MobileNetV2 each step is a teacher pass and a student
# forward-backward pass at batch 8).
LEARN_BATCH = {"digits": 64, "mobilenet_v2": 8}
# CAP: the most Adam steps; training stops earlier once the validation KL (on the last
# VAL_FRACTION of the calibration inputs, measured every EVAL_EVERY steps) flattens.
LEARN_STEPS = {"digits": 300, "mobilenet_v2": 400}
VAL_FRACTION = 0.125
EVAL_EVERY = {"digits": 10, "mobilenet_v2": 16}
# Inputs of the measured-KL allocation (--allocation kl): 52 x 6 passes over them.
KL_INPUTS = {"digits": 256, "mobilenet_v2": 16}
# Joint allocation (--allocation joint): levels per point and the keep ratio of
# golden.calibration.allocation.precision_levels.
JOINT_LEVELS = 14
JOINT_KEEP = 0.0
# Price: steps per point (52 points on MobileNetV2, trained one after the other).
PRICE_STEPS = {"digits": 150, "mobilenet_v2": 8}


class UsageError(Exception):
    """A bad command line or input: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _bits_list(text):
    try:
        bits = [int(b) for b in text.split(",")]
    except ValueError:
        raise UsageError(f"--group-bits must be a comma-separated list of integers, "
                         f"not {text!r}") from None
    if any(not 2 <= b <= 8 for b in bits):
        raise UsageError(f"--group-bits values must be between 2 and 8, not {text}")
    return bits


def _float_list(text, name):
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of numbers, "
                         f"not {text!r}") from None


# ---------------------------------------------------------------------------------------------
# Inputs


class _Setup:
    """Model, calibration inputs, evaluation inputs (and labels), described for the report."""

    def __init__(self, model, x_calib, x_eval, labels, description, calib_labels=None):
        self.model, self.x_calib, self.x_eval = model, x_calib, x_eval
        self.labels, self.description = labels, description
        self.calib_labels = calib_labels


def _check_args(args):
    choice = [a for a in ("threshold", "k", "bits_per_value", "ceiling")
              if getattr(args, a) is not None]
    if len(choice) != 1:
        raise UsageError("give exactly one of --threshold, --k, --bits-per-value, --ceiling")
    if args.threshold is not None and not 0.0 < args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in (0, 1], not {args.threshold}")
    if args.k is not None and args.k < 1:
        raise UsageError(f"--k must be a positive integer, not {args.k}")
    if args.bits_per_value is not None and not 0.0 < args.bits_per_value:
        raise UsageError(f"--bits-per-value must be positive, not {args.bits_per_value}")
    if args.ceiling is not None and not 0.0 < args.ceiling:
        raise UsageError(f"--ceiling must be positive, not {args.ceiling}")
    for name in ("num_images", "num_eval", "max_pixels", "size", "crops_per_photo"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, "
                             f"not {value}")
    for name, lo, hi in (("in_bits", 2, 16), ("w_bits", 2, 16), ("max_len", 1, 24)):
        if not lo <= getattr(args, name) <= hi:
            raise UsageError(f"--{name.replace('_', '-')} must be between {lo} and {hi}, "
                             f"not {getattr(args, name)}")
    if args.unsigned == "auto" and args.in_bits > 15:
        raise UsageError(f"--in-bits must be at most 15 with --unsigned auto (unsigned points "
                         f"need one more bit at the MACs), not {args.in_bits}")
    if args.levels < 1:
        raise UsageError(f"--levels must be a positive integer, not {args.levels}")
    if not args.keep >= 0:
        raise UsageError(f"--keep must not be negative, not {args.keep}")
    if args.rounds < 0:
        raise UsageError(f"--rounds must not be negative, not {args.rounds}")
    if args.reallocate and (args.allocation != "joint" or args.bits_per_value is None
                            or args.method == "pca"):
        raise UsageError("--reallocate needs --bits-per-value with --allocation joint and "
                         "--method cap or price")
    if args.learn_rate is not None and not args.learn_rate > 0:
        raise UsageError(f"--learn-rate must be positive, not {args.learn_rate}")
    if args.learn_steps is not None and args.learn_steps < 1:
        raise UsageError(f"--learn-steps must be a positive integer, not {args.learn_steps}")
    if args.sweep:
        for t in _float_list(args.sweep, "--sweep"):
            if not 0.0 < t <= 1.0:
                raise UsageError(f"--sweep thresholds must be in (0, 1], not {t}")
    if args.model == "digits" and args.eval_images:
        raise UsageError("--eval-images applies to --model mobilenet_v2 only (digits are "
                         "evaluated on their labelled test split)")
    if args.model == "digits" and args.extra_photos:
        raise UsageError("--extra-photos applies to --model mobilenet_v2 only")
    if args.images and args.eval_images and (
            Path(args.images).resolve() == Path(args.eval_images).resolve()):
        raise UsageError("--images and --eval-images must be different folders "
                         "(evaluation photos must not be calibration photos)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    missing = _missing_parents(out)
    above = missing[-1].parent if missing else out.resolve().parent
    if not above.is_dir():
        raise UsageError(f"--out {args.out}: {above} is not a folder")
    if args.method != "pca":
        _learner(args.method)
    if args.bits_per_value is not None or args.ceiling is not None:
        _allocator(args)


def calibration_source(folder) -> str:
    """``"synthetic"`` for a folder written by ``python -m golden distill`` (it holds that
    command's manifest), else the folder itself."""
    from golden.projection.distill import MANIFEST

    path = Path(folder) / MANIFEST
    if path.is_file():
        import json
        try:
            if "settings" in json.loads(path.read_text()):
                return "synthetic"
        except (OSError, ValueError):
            pass
    return str(folder)


def digits_images(folder):
    """A folder of 8 x 8 pictures (e.g. distilled for the digits CNN) as (N, 1, 8, 8) in
    [0, 1]."""
    import torch

    from golden.nets.images import load_folder

    photos = load_folder(folder)
    bad = [name for name, a in photos if a.shape[:2] != (8, 8)]
    if bad:
        raise UsageError(f"--images for --model digits must hold 8 x 8 pictures; {bad[0]} is "
                         f"not")
    x = np.stack([a.astype(np.float32).mean(axis=2) / 255.0 for _, a in photos])
    return torch.from_numpy(x)[:, None]


def _setup(args):
    import torch

    from golden.nets.images import (
        bundled_photos,
        extra_photos,
        load_folder,
        make_batch,
        split_photos,
    )

    if args.model == "digits":
        from golden.nets.digits import train_digits_cnn

        model, data = train_digits_cnn(seed=args.seed)
        if args.images:
            x_calib = digits_images(args.images)
            x_calib = x_calib[: args.num_images] if args.num_images else x_calib
            source, calib_labels = calibration_source(args.images), None
            what = f"{len(x_calib)} pictures of {args.images} ({source})"
        else:
            x_calib = data.x_train[: args.num_images] if args.num_images else data.x_train
            source, calib_labels = "digits train split", data.y_train[: len(x_calib)]
            what = f"{len(x_calib)} digits (train split)"
        x_eval = data.x_test[: args.num_eval] if args.num_eval else data.x_test
        labels = data.y_test[: len(x_eval)]
        desc = {"calibration": what, "calibration_source": source,
                "evaluation": f"{len(x_eval)} digits (test split, labelled)",
                "num_eval_photos": len(x_eval), "num_eval_crops": len(x_eval)}
        setup = _Setup(model, x_calib, x_eval, labels, desc, calib_labels=calib_labels)
        setup.groups = np.arange(len(x_eval))  # every test digit is its own picture
        return setup
    from golden.nets.mobilenet import load_mobilenet_v2

    # Evaluation is on real photos only, never those calibrated on: with a folder of one's
    # own (or distilled) calibration images that is every bundled photo, the extra pictures
    # included; with the bundled photos it is the held-out half plus the extra pictures
    # (which move to calibration with --extra-photos).
    if args.images:
        calib = load_folder(args.images)
        source = calibration_source(args.images)
        evaluation = bundled_photos() + extra_photos()
    else:
        calib, evaluation = split_photos(bundled_photos())
        source = "bundled photos"
        if args.extra_photos:
            calib = calib + extra_photos()
        else:
            evaluation = evaluation + extra_photos()
    if args.images and args.extra_photos:
        calib = calib + extra_photos()
        extra = {n for n, _ in extra_photos()}
        evaluation = [p for p in evaluation if p[0] not in extra]
    if args.eval_images:
        evaluation = load_folder(args.eval_images)
    model = load_mobilenet_v2()
    n_calib = args.num_images or (8 if args.quick else 128)
    per_photo = args.crops_per_photo or (2 if args.quick else 16)
    n_eval = args.num_eval or per_photo * len(evaluation)
    size = args.size or 224
    torch.manual_seed(args.seed)
    if source == "synthetic":
        # Distilled images are already what the network expects: whole, at their own size.
        x_calib = make_batch(calib, n_calib, size=size, seed=args.seed, scale=(1.0, 1.0),
                             ratio=(1.0, 1.0))
    else:
        x_calib = make_batch(calib, n_calib, size=size, seed=args.seed)
    x_eval = make_batch(evaluation, n_eval, size=size, seed=args.seed + 1)
    n_photos = min(len(evaluation), n_eval)
    desc = {"calibration": f"{n_calib} crops of {len(calib)} images"
                           + ("" if source == "synthetic"
                              else f": {', '.join(n for n, _ in calib)}"),
            "calibration_source": source,
            "evaluation": f"{n_eval} crops of {n_photos} real photos not calibrated on: "
                          f"{', '.join(n for n, _ in evaluation[:n_photos])}",
            "num_eval_photos": n_photos, "num_eval_crops": n_eval, "crop_size": size}
    setup = _Setup(model, x_calib, x_eval, None, desc)
    setup.groups = np.arange(n_eval) % len(evaluation)  # make_batch takes photos in turn
    return setup


# ---------------------------------------------------------------------------------------------
# The learner's modules (golden.calibration.allocation, golden.projection.learning), used when
# present


def _allocator(args):
    try:
        import golden.calibration.allocation as allocate
    except ImportError:
        allocate = None
    name = "greedy" if args.bits_per_value is not None else "ceiling"
    fn = getattr(allocate, "allocate_greedy" if name == "greedy" else "allocate_ceiling", None)
    if fn is None:
        option = "--bits-per-value" if name == "greedy" else "--ceiling"
        raise UsageError(f"allocation {name} ({option}) is not available yet")
    return fn


def _learner(method):
    try:
        import golden.projection.learning as learn
    except ImportError:
        learn = None
    fn = getattr(learn, f"learn_{method}", None)
    if fn is None:
        raise UsageError(f"method {method} is not available yet")
    return fn


def _learn(args, setup, inits, samples, history):
    """Train the PCA-initialised projections of every point with golden.projection.learning,
    through the
    integer formats the artifacts will have (quantization-aware)."""
    from golden.projection.learning import quant_format

    fn = _learner(args.method)
    kw = {"seed": args.seed, "progress": not args.no_progress}
    kw["steps"] = args.learn_steps if args.learn_steps is not None else LEARN_STEPS[args.model]
    kw["lr"] = args.learn_rate if args.learn_rate is not None else LEARN_RATE[args.model]
    kw["batch"] = LEARN_BATCH[args.model]
    kw["quant"] = {p: quant_format(init, samples[p], bits=_bits_list(args.group_bits)[0],
                                   in_bits=args.in_bits, unsigned=_unsigned(args),
                                   x_method=args.x_method, method=args.scale_method)
                   for p, init in inits.items()}
    levels = getattr(args, "levels_chosen", None)
    if levels is not None:
        import dataclasses
        kw["quant"] = {p: dataclasses.replace(f, steps=levels[p].steps, widths=levels[p].widths)
                       for p, f in kw["quant"].items()}
    if args.method == "cap":
        kw.update(val_fraction=VAL_FRACTION, eval_every=EVAL_EVERY[args.model],
                  history=history)
    if args.method == "price":
        kw["steps"] = (args.learn_steps if args.learn_steps is not None
                       else PRICE_STEPS[args.model])
        if setup.calib_labels is not None:
            kw.update(loss="task", labels=setup.calib_labels)
    return fn(setup.model, setup.x_calib, inits, **kw)


# ---------------------------------------------------------------------------------------------
# calibrate


def _progress(args, iterable, **kw):
    if args.no_progress:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, leave=False, **kw)


def _choose_k(args, points, projections, samples, setup):
    if args.threshold is not None:
        from golden.projection.pca import k_for_energy
        return {p: k_for_energy(projections[p].eigenvalues, args.threshold) for p in points}
    if args.k is not None:
        return {p: min(args.k, projections[p].channels) for p in points}
    from golden.nets.capture import capture

    fn = _allocator(args)
    target = args.bits_per_value if args.bits_per_value is not None else args.ceiling
    one = capture(setup.model, setup.x_calib[:1], points)
    sizes = {p: int(a.numel()) for p, a in one.items()}
    args.sizes = sizes
    if args.bits_per_value is not None and args.allocation == "joint":
        return _joint(args, setup, projections, samples, sizes, target)
    extra = {}
    if args.bits_per_value is not None and args.allocation == "kl":
        extra["distortion"] = _kl_curves(args, setup, projections, samples)
    try:
        ks = fn(projections, samples, target, sizes=sizes, bits=_bits_list(args.group_bits)[0],
                max_len=args.max_len, method=args.scale_method, x_method=args.x_method,
                in_bits=args.in_bits, unsigned=_unsigned(args), relu=args.relu,
                run_length=args.run_length, **extra)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return {p: int(ks[p]) for p in points}


def _quant_formats(args, projections, samples):
    from golden.projection.learning import quant_format

    return {p: quant_format(pr, samples[p], bits=_bits_list(args.group_bits)[0],
                            in_bits=args.in_bits, unsigned=_unsigned(args),
                            x_method=args.x_method, method=args.scale_method)
            for p, pr in projections.items()}


def _joint(args, setup, projections, samples, sizes, target):
    """--allocation joint: k and coefficient precision per point (``allocate_joint``);
    the chosen levels are kept in ``args.levels`` for learning and folding."""
    from golden.calibration.allocation import allocate_joint, joint_costs

    n_val = max(1, round(len(setup.x_calib) * VAL_FRACTION))
    x_val = setup.x_calib[-min(n_val, KL_INPUTS[args.model]):]
    costs = joint_costs(setup.model, x_val, projections, samples,
                        _quant_formats(args, projections, samples), sizes,
                        levels=args.levels, keep=args.keep, max_len=args.max_len,
                        run_length=args.run_length, progress=not args.no_progress)
    try:
        args.levels_chosen = allocate_joint(costs, target, rounds=args.rounds,
                                            progress=not args.no_progress)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return {p: lev.k for p, lev in args.levels_chosen.items()}


def _reallocate(args, setup, learned, samples):
    """--reallocate: the joint allocation again, on the learned projections (components
    ordered by their coefficients' variance, ``variance_ordered``): steps, widths and which
    learned components to keep, chosen by the KL measured through the learned bases. Returns
    the reordered projections and the new component counts (levels in ``args.levels_chosen``)."""
    from golden.calibration.allocation import variance_ordered

    ordered = {p: variance_ordered(pr, samples[p]) for p, pr in learned.items()}
    ks = _joint(args, setup, ordered, samples, args.sizes, args.bits_per_value)
    return ordered, ks


def _allocation_summary(levels):
    """Components and coefficient widths per point of an allocation (for report.json)."""
    return {p: {"k": int(lev.k), "group_bits": lev.group_bits.tolist(),
                "group_bounds": lev.group_bounds.tolist()} for p, lev in levels.items()}


def _kl_curves(args, setup, projections, samples):
    """Per point, the output KL against k on held-out calibration inputs (the last
    VAL_FRACTION, at most KL_INPUTS of them), with the hardware's rounding."""
    from golden.calibration.allocation import kl_curves
    from golden.projection.learning import quant_format

    n_val = max(1, round(len(setup.x_calib) * VAL_FRACTION))
    x_val = setup.x_calib[-min(n_val, KL_INPUTS[args.model]):]
    quant = {p: quant_format(pr, samples[p], bits=_bits_list(args.group_bits)[0],
                             in_bits=args.in_bits, unsigned=_unsigned(args),
                             x_method=args.x_method, method=args.scale_method)
             for p, pr in projections.items()}
    return kl_curves(setup.model, x_val, projections, quant=quant,
                     progress=not args.no_progress)


def _unsigned(args):
    return "auto" if args.unsigned == "auto" else False


def _calibrate_all(args, points, projections, ks, samples, levels=None):
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.scales import activation_format

    group_bits = _bits_list(args.group_bits)
    arts = {}
    for p in _progress(args, points, desc="calibrate", unit="layer"):
        in_bits, relu = activation_format(samples[p], args.in_bits, _unsigned(args))
        kw = {"group_bits": group_bits}
        if levels is not None:
            # The joint allocation's groups, widths and steps (the PCA steps, kept after
            # learning: training ran through them).
            kw = {"group_bits": levels[p].group_bits, "group_bounds": levels[p].group_bounds,
                  "steps": levels[p].steps}
        arts[p] = calibrate_layer(projections[p].truncate(ks[p]), samples[p], name=p,
                                  method=args.scale_method,
                                  granularity=args.granularity, in_bits=in_bits,
                                  x_method=args.x_method, w_bits=args.w_bits,
                                  max_len=args.max_len, relu=relu or args.relu,
                                  run_length=args.run_length, **kw)
    return arts


def cmd_calibrate(args):
    _check_args(args)
    _bits_list(args.group_bits)
    import torch

    from golden.calibration.report import (
        activation_tables,
        evaluate,
        plot_bits_per_layer,
        plot_learning_curve,
        plot_rate_fidelity,
    )
    from golden.datapath.artifacts import save_artifact, write_json
    from golden.nets.capture import activation_points, sample_pixels
    from golden.projection.pca import pca_fit

    times = {}
    t0 = time.time()
    setup = _setup(args)
    model = setup.model
    points = activation_points(model, args.where)
    times["setup_s"] = time.time() - t0
    if args.quick:
        args.max_pixels = args.max_pixels or 2000
    t = time.time()
    samples = sample_pixels(model, setup.x_calib, points, max_pixels=args.max_pixels or 20000,
                            seed=args.seed, progress=not args.no_progress)
    samples = {p: s.astype(np.float64) for p, s in samples.items()}
    projections = {p: pca_fit(samples[p]) for p in _progress(args, points, desc="pca")}
    times["capture_pca_s"] = time.time() - t
    ks = _choose_k(args, points, projections, samples, setup)
    pca = projections
    curve = []
    if args.method != "pca":
        t = time.time()
        projections = _learn(args, setup, {p: projections[p].truncate(ks[p]) for p in points},
                             samples, curve)
        times["learn_s"] = time.time() - t
    first_allocation = None
    if args.reallocate:
        t = time.time()
        first_allocation = _allocation_summary(args.levels_chosen)
        projections, ks = _reallocate(args, setup, projections, samples)
        times["reallocate_s"] = time.time() - t
    t = time.time()
    arts = _calibrate_all(args, points, projections, ks, samples,
                          getattr(args, "levels_chosen", None))
    times["calibrate_s"] = time.time() - t
    t = time.time()
    result = evaluate(model, setup.x_eval, arts, labels=setup.labels,
                      progress=not args.no_progress, groups=setup.groups, baseline=True,
                      baseline_tables=activation_tables(arts, samples, args.max_len),
                      seed=args.seed)
    result["network"]["calibration_source"] = setup.description["calibration_source"]
    times["evaluate_s"] = time.time() - t
    operating = [dict(result["network"], label=_label(args))]
    for thr in (_float_list(args.sweep, "--sweep") if args.sweep else []):
        from golden.projection.pca import k_for_energy
        sweep_ks = {p: k_for_energy(pca[p].eigenvalues, thr) for p in points}
        sweep_arts = _calibrate_all(args, points, pca, sweep_ks, samples)
        r = evaluate(model, setup.x_eval, sweep_arts, labels=setup.labels,
                     progress=not args.no_progress, groups=setup.groups, seed=args.seed)
        operating.append(dict(r["network"], label=f"PCA T={thr}"))
    times["total_s"] = time.time() - t0

    layers = []
    for i, p in enumerate(points):
        art = arts[p]
        layers.append({"name": p, "file": f"{i:02d}_{p}.npz", "channels": art.channels,
                       "k": art.k, "group_bits": art.group_bits.tolist(),
                       "group_bounds": art.group_bounds.tolist(),
                       "group_run_max": [t.run_max for t in art.tables.tables],
                       "x_scale": art.x_scale,
                       "in_bits": art.in_bits, "relu": art.relu,
                       **result["layers"][p]})
    report = {"model": args.model, "method": args.method, "points": args.where,
              "target": {a: getattr(args, a) for a in ("threshold", "k", "bits_per_value",
                                                       "ceiling") if getattr(args, a)},
              "allocation": args.allocation if args.bits_per_value is not None else None,
              **({"joint": {"levels": args.levels, "keep": args.keep, "rounds": args.rounds,
                            "reallocate": args.reallocate,
                            **({"before_learning": first_allocation}
                               if first_allocation else {})}}
                 if args.bits_per_value is not None and args.allocation == "joint" else {}),
              "inputs": setup.description,
              "settings": {"group_bits": _bits_list(args.group_bits),
                           "scale_method": args.scale_method, "granularity": args.granularity,
                           "x_method": args.x_method, "unsigned": args.unsigned,
                           "in_bits": args.in_bits, "w_bits": args.w_bits,
                           "max_len": args.max_len, "run_length": args.run_length,
                           "relu": args.relu, "seed": args.seed,
                           "calibration_pixels_per_layer": args.max_pixels or 20000},
              "network": result["network"], "operating_points": operating,
              "layers": layers, "times": times, "torch_threads": torch.get_num_threads()}
    if curve:
        report["learning"] = {"validation_curve": curve,
                              "validation_inputs": max(1, round(len(setup.x_calib)
                                                                * VAL_FRACTION))}

    out = Path(args.out)
    made = _make_parents(out)
    tmp = Path(tempfile.mkdtemp(dir=out.resolve().parent, prefix=f".{out.name}.tmp-"))
    done = False
    try:
        for lay in layers:
            save_artifact(arts[lay["name"]], tmp / lay["file"])
        write_json(tmp / "report.json", report)
        title = (f"{args.model} {args.method} {_label(args)}: "
                 f"{result['network']['bits_per_value']:.2f} bits/value, top-1 agreement "
                 f"{100 * result['network']['top1_agreement']:.1f}%")
        plot_bits_per_layer(layers, tmp / "bits_per_layer.png", title)
        plot_rate_fidelity(layers, operating, tmp / "rate_fidelity.png")
        if curve:
            plot_learning_curve(curve, tmp / "learning_curve.png",
                                f"{args.model} {args.method} {_label(args)}")
        _publish(tmp, out)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:  # no partial output: not even the folders made for it
            for d in made:
                d.rmdir()
    net = result["network"]
    extra = (f", accuracy {net['accuracy']:.4f} -> {net['compressed_accuracy']:.4f}"
             if "accuracy" in net else "")
    conf = net["top1_agreement_confident"]
    ci = net.get("top1_agreement_confident_ci95")
    conf_text = ("no confident crop" if conf is None else
                 f"confident {conf:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] (n={net['num_confident_crops']}"
                 f", 8-bit only {net['baseline_top1_agreement_confident']:.4f})")
    print(f"{len(points)} layers -> {out}: {net['bits_per_value']:.3f} bits/value, top-1 "
          f"agreement {net['top1_agreement']:.4f} (n={net['num_eval_crops']} crops of "
          f"{net.get('num_eval_photos', net['num_eval_crops'])} photos), {conf_text}, mean KL "
          f"{net['mean_kl']:.4f} (8-bit only {net['baseline_mean_kl']:.4f}){extra}, "
          f"{times['total_s']:.0f} s")


def _label(args):
    for a, short in (("threshold", "T"), ("k", "k"), ("bits_per_value", "B"),
                     ("ceiling", "ceiling")):
        if getattr(args, a) is not None:
            return f"{short}={getattr(args, a)}"
    return ""


def _missing_parents(out: Path) -> list[Path]:
    """The folders above ``out`` that do not exist yet, deepest first."""
    missing, p = [], out.resolve().parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    return missing


def _make_parents(out: Path) -> list[Path]:
    """Create the missing folders above ``out``; returns them deepest first."""
    made = _missing_parents(out)
    for d in reversed(made):
        d.mkdir()
    return made


def _publish(tmp: Path, out: Path):
    """Move finished files from ``tmp`` into ``out`` (created if needed)."""
    if not out.exists():
        os.replace(tmp, out)
        tmp.mkdir()  # the caller removes it
        return
    for f in sorted(tmp.iterdir()):
        os.replace(f, out / f.name)


# ---------------------------------------------------------------------------------------------
# vectors


def _real_activations(args, name):
    import torch

    from golden.nets.capture import sample_pixels
    from golden.nets.images import bundled_photos, make_batch, split_photos

    if args.model == "digits":
        from golden.nets.digits import train_digits_cnn
        model, data = train_digits_cnn(seed=0)
        x = data.x_test
    else:
        from golden.nets.mobilenet import load_mobilenet_v2
        model = load_mobilenet_v2()
        x = make_batch(split_photos(bundled_photos())[1], 4, seed=args.seed)
    if name not in dict(model.named_modules()):
        raise UsageError(f"artifact point {name!r} is not a module of {args.model}")
    with torch.no_grad():
        return sample_pixels(model, x, [name], max_pixels=args.pixels, seed=args.seed)[name]


def cmd_vectors(args):
    from golden.datapath.artifacts import load_artifact
    from golden.datapath.pipeline import layer_vectors
    from golden.datapath.quant import int_range

    if args.pixels < 1:
        raise UsageError(f"--pixels must be a positive integer, not {args.pixels}")
    sources = sum(bool(s) for s in (args.activations, args.model, args.random))
    if sources != 1:
        raise UsageError("give exactly one of --activations, --model, --random")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    art = load_artifact(args.artifact)
    if args.activations:
        try:
            acts = np.load(args.activations, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise UsageError(f"cannot read {args.activations}: {e}") from None
        if not isinstance(acts, np.ndarray) or not np.issubdtype(acts.dtype, np.number):
            raise UsageError(f"{args.activations} must hold a numeric array")
    elif args.model:
        acts = _real_activations(args, art.name)
    else:
        # Uniform over the whole input range: saturating sums and escape codes included.
        lo, hi = int_range(art.in_bits)
        rng = np.random.default_rng(args.seed)
        acts = rng.integers(lo, hi + 1, size=(args.pixels, art.channels)) * art.x_scale
    vec = layer_vectors(art, acts)
    vec["words"] = vec["words"].astype(np.uint32)
    vec["nbits"] = np.int64(vec["nbits"])
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{art.name}_vectors.npz"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".vectors-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **vec)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"{path}: {len(vec['x_int'])} pixels, {vec['nbits']} coded bits "
          f"({vec['nbits'] / vec['x_int'].size:.3f} bits/value)")


# ---------------------------------------------------------------------------------------------
# distill

# Per model: input channels, normalisation, classes, and the default DistillSettings fields.
DISTILL = {
    "mobilenet_v2": {"channels": 3, "classes": 1000, "size": 224, "low_size": 112},
    "digits": {"channels": 1, "classes": 10, "size": 8, "low_size": None},
}


def cmd_distill(args):
    from golden.projection.distill import DistillSettings

    spec = DISTILL[args.model]
    fields = {"size": spec["size"] if args.size is None else args.size,
              "low_size": spec["low_size"]}
    if args.low_size is not None:
        fields["low_size"] = args.low_size or None
    for name in ("low_steps", "steps", "lr", "ce_weight", "tv_weight", "l2_weight"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if args.low_size is None and fields["low_size"] is not None and \
            fields["low_size"] >= fields["size"]:  # only the default gives way to --size
        fields["low_size"] = None
    settings = DistillSettings(**fields)
    try:
        settings.check()
    except ValueError as e:
        raise UsageError(str(e)) from None
    for name in ("num_images", "batch"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, "
                             f"not {getattr(args, name)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    import torch

    from golden.projection.distill import distill_to_folder

    if args.model == "digits":
        from golden.nets.digits import train_digits_cnn
        model, _ = train_digits_cnn(seed=0)
        mean, std = (0.0,), (1.0,)
    else:
        from golden.nets.images import IMAGENET_MEAN, IMAGENET_STD
        from golden.nets.mobilenet import load_mobilenet_v2
        model = load_mobilenet_v2()
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    log = (lambda line: None) if args.no_progress else (
        lambda line: print(line, file=sys.stderr, flush=True))
    manifest = distill_to_folder(model, out, args.num_images, batch=args.batch,
                                 settings=settings, seed=args.seed, channels=spec["channels"],
                                 mean=mean, std=std, classes=spec["classes"],
                                 model_name=args.model, log=log)
    print(f"{args.num_images} images -> {out}: BatchNorm loss {manifest['start_bn']:.3f} -> "
          f"{manifest['final_bn']:.3f}, {manifest['seconds']:.0f} s of optimisation "
          f"({torch.get_num_threads()} threads)")


def cmd_program(args):
    """``golden program``: a calibrated network's artifacts -> one network program."""
    from golden.datapath.artifacts import write_atomic
    from golden.program import (ProgramError, check_maxima, load_artifacts, pack_program,
                                unpack_program)

    if (args.artifacts is None) == (args.show is None):
        raise UsageError("give --artifacts DIR (with --out FILE) or --show FILE")
    if args.show is not None:
        try:
            data = Path(args.show).read_bytes()
        except OSError as e:
            raise UsageError(str(e)) from None
        prog = unpack_program(data)
    else:
        if args.out is None:
            raise UsageError("--artifacts needs --out FILE")
        data = pack_program(load_artifacts(args.artifacts))
        prog = unpack_program(data)
    check_maxima(prog, args.max_channels, args.max_k, args.max_groups)
    for line in prog.summary():
        print(line)
    print(f"{len(prog.layers)} layers, {len(data)} bytes; widths: activations {prog.in_bits}, "
          f"outputs {prog.out_bits}, weights {prog.w_bits}, bias {prog.bias_bits}, "
          f"multipliers {prog.mult_bits}, ReLU {'on' if prog.relu else 'off'}")
    if prog.in_bits == prog.out_bits:
        print(f"hardware for it: python -m hdl.build --max-channels {prog.max_channels} "
              f"--max-k {prog.max_k} --max-groups {prog.max_groups} --in-width "
              f"{max(prog.max_coef_bits, 2)} --out-width {prog.in_bits} --weight-width "
              f"{prog.w_bits} --bias-width {prog.bias_bits} --mult-width {prog.mult_bits}"
              + (" --relu" if prog.relu else ""))
    else:
        print(f"note: activations of {prog.in_bits} bits in and {prog.out_bits} out; the "
              f"run-time tops take one activation width (hdl.build --out-width)")
    if args.artifacts is not None:
        out = Path(args.out)
        if out.exists() and out.is_dir():
            raise ProgramError(f"Output path {str(out)!r} is a folder")
        write_atomic(out, data)
        print(f"wrote {out}")


# ---------------------------------------------------------------------------------------------


def make_parser():
    p = _Parser(prog=PROG, description="Golden projections: calibrate artifacts, test vectors.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("calibrate", help="calibrate a network's projections into artifacts")
    c.add_argument("--model", required=True, choices=MODELS)
    c.add_argument("--images", help="folder of calibration photos (mobilenet_v2)")
    c.add_argument("--eval-images", help="folder of evaluation photos, disjoint from --images")
    c.add_argument("--extra-photos", action="store_true",
                   help="also calibrate on the other pictures bundled with scikit-image and "
                   "matplotlib (grey photos, textures; golden.nets.images.extra_photos)")
    c.add_argument("--threshold", type=float, help="PCA eigenvalue-energy threshold per layer")
    c.add_argument("--k", type=int, help="the same number of components in every layer")
    c.add_argument("--bits-per-value", type=float,
                   help="target network bits/value (greedy allocation, "
                   "golden.calibration.allocation)")
    c.add_argument("--ceiling", type=float,
                   help="ceiling in bits per coded feature map and input (ceiling allocation, "
                   "golden.calibration.allocation)")
    c.add_argument("--method", choices=METHODS, default="pca")
    c.add_argument("--allocation", choices=("kl", "share", "joint"), default="kl",
                   help="greedy allocation (--bits-per-value): kl, k per point at 8-bit "
                   "coefficients by the output KL measured per point and component count on "
                   "held-out calibration inputs (default); share, by the dropped eigenvalue's "
                   "share (CAP's proxy); joint, k and coefficient step and widths per point "
                   "together, by measured KL (golden.calibration.allocation.allocate_joint)")
    c.add_argument("--levels", type=int, default=JOINT_LEVELS,
                   help=f"--allocation joint: precision levels per point, steps sqrt(2) apart "
                   f"({JOINT_LEVELS})")
    c.add_argument("--keep", type=float, default=JOINT_KEEP,
                   help=f"--allocation joint: keep the components whose deviation is at least "
                   f"this many steps ({JOINT_KEEP}; 0 keeps every component)")
    c.add_argument("--rounds", type=int, default=0,
                   help="--allocation joint: re-measure every point's KL with the other points "
                   "at their allocated levels and re-allocate, this many times (0)")
    c.add_argument("--reallocate", action="store_true",
                   help="--allocation joint with --method cap or price: after learning, run "
                   "the joint allocation again on the learned projections (their components "
                   "ordered by coefficient variance), so that the rate counts the coefficients "
                   "the learned bases produce")
    c.add_argument("--out", required=True)
    c.add_argument("--quick", action="store_true",
                   help="small defaults for a smoke test (8 calibration and 8 eval crops)")
    c.add_argument("--num-images", type=int, help="calibration crops (default 128) or digits")
    c.add_argument("--num-eval", type=int, help="evaluation crops (default: --crops-per-photo "
                   "of every evaluation photo) or digits")
    c.add_argument("--crops-per-photo", type=int,
                   help="evaluation crops per photo when --num-eval is not given (16)")
    c.add_argument("--size", type=int, help="crop size (default 224)")
    c.add_argument("--max-pixels", type=int, help="calibration pixels per layer (20000)")
    c.add_argument("--where", choices=("post", "pre", "act"), default="post",
                   help="post-activation (default), pre-activation points, or act: the "
                   "activation modules' outputs only (MobileNetV2: ReLU6 outputs, no block "
                   "outputs)")
    c.add_argument("--group-bits", default="8",
                   help="coefficient widths of equal-size component groups, e.g. 8,6,4")
    c.add_argument("--scale-method", choices=("max", "percentile", "mse", "kl"), default="mse")
    c.add_argument("--granularity", choices=("component", "layer"), default="component")
    c.add_argument("--x-method", choices=("max", "percentile", "mse", "kl"), default="mse",
                   help="activation step calibration (golden.datapath.scales.clip_scale)")
    c.add_argument("--in-bits", type=int, default=8, help="stored activation width")
    c.add_argument("--unsigned", choices=("auto", "off"), default="auto",
                   help="auto: points without negative values stored unsigned (in-bits + 1 "
                   "at the MACs, reconstruction clamped at 0); off: every point signed")
    c.add_argument("--w-bits", type=int, default=8, help="projection weight width")
    c.add_argument("--max-len", type=int, default=12, help="maximum Huffman code length")
    c.add_argument("--run-length", choices=("off", "on", "auto"), default="off",
                   help="coding mode of every group's table: plain (bitstream version 1), "
                        "run-length (version 2), or per group whichever is smaller on the "
                        "calibration coefficients; the allocation counts the same mode's bits")
    c.add_argument("--relu", action="store_true", help="clamp reconstructions at 0")
    c.add_argument("--learn-steps", type=int,
                   help="optimiser steps of --method cap|price (default 150 on digits, "
                   "golden.projection.learning's on mobilenet_v2)")
    c.add_argument("--learn-rate", type=float,
                   help="relative Adam step of --method cap|price (default 1e-2 on digits, "
                   "1e-4 on mobilenet_v2)")
    c.add_argument("--sweep", help="extra PCA thresholds evaluated for the rate plot (PCA "
                   "projections, same calibration), e.g. 0.97,0.99")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_calibrate)
    d = sub.add_parser("distill", help="synthesise calibration images from the network's "
                       "BatchNorm statistics (no real data)")
    d.add_argument("--model", required=True, choices=MODELS)
    d.add_argument("--num-images", type=int, required=True)
    d.add_argument("--out", required=True, help="folder for the PNGs and manifest.json; a "
                   "stopped run resumes in the same folder")
    d.add_argument("--size", type=int, help="image side (default 224; digits 8)")
    d.add_argument("--low-size", type=int, help="side of the first, low-resolution phase "
                   "(default 112; 0: none)")
    d.add_argument("--low-steps", type=int, help="Adam steps at the low resolution (200)")
    d.add_argument("--steps", type=int, help="Adam steps at full size (40)")
    d.add_argument("--batch", type=int, default=32, help="images optimised together (32)")
    d.add_argument("--lr", type=float, help="Adam learning rate (0.2)")
    d.add_argument("--ce-weight", type=float, help="weight of the random-class cross-entropy "
                   "(0.1; 0: BatchNorm statistics and priors only, as ZeroQ)")
    d.add_argument("--tv-weight", type=float, help="total-variation prior weight (1e-4)")
    d.add_argument("--l2-weight", type=float, help="L2 prior weight (1e-5)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_distill)
    g = sub.add_parser("program", help="pack a calibrated network's artifacts into a network "
                       "program for run-time-shape hardware (docs/program.md)")
    g.add_argument("--artifacts", help="folder of NN_<point>.npz artifacts (golden calibrate "
                   "--out)")
    g.add_argument("--out", help="program file to write")
    g.add_argument("--show", metavar="FILE", help="check and summarise a program file")
    g.add_argument("--max-channels", type=int, help="refuse layers with more channels")
    g.add_argument("--max-k", type=int, help="refuse layers with more components")
    g.add_argument("--max-groups", type=int, help="refuse layers with more table groups")
    g.set_defaults(func=cmd_program)
    v = sub.add_parser("vectors", help="export a layer's integer test vectors (npz)")
    v.add_argument("--artifact", required=True)
    v.add_argument("--out", required=True)
    v.add_argument("--activations", help="channels-last float activations (.npy)")
    v.add_argument("--model", choices=MODELS, help="capture the layer on held-out inputs")
    v.add_argument("--random", action="store_true",
                   help="uniformly random quantized activations")
    v.add_argument("--pixels", type=int, default=1024)
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_vectors)
    return p


def main(argv=None):
    from golden.codec.errors import HuffmanError

    try:
        args = make_parser().parse_args(argv)
        args.func(args)
    except (UsageError, HuffmanError, ValueError, TypeError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:  # e.g. the weights package is missing
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
