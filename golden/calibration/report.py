"""Network-level evaluation of a set of layer artifacts, ``report.json`` and PNG plots.

``evaluate`` runs held-out inputs through the uncompressed network and through the same
network with every artifact's integer round trip in place at once (``capture.replaced``), and
measures what the hardware would store: the Huffman-coded bits of every coefficient, per layer
and size-weighted over the network. Fidelity is top-1 agreement with the uncompressed network
(with its binomial standard error and a Wilson 95% interval, since a few hundred inputs make it
noisy), mean KL divergence of the output distributions, and for labelled data the accuracy and
its drop.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from golden.codec.tables import build_table, symbol_indices
from golden.datapath.artifacts import LayerArtifact
from golden.datapath.pipeline import coded_bits, quantize_input, roundtrip
from golden.datapath.quant import quantize
from golden.nets.capture import replaced

__all__ = ["activation_only", "activation_tables", "agreement_stats", "compare_logits", "evaluate",
           "paired_drop_ci", "plot_bits_per_layer", "plot_learning_curve", "plot_rate_fidelity"]


def agreement_stats(agree: int, n: int) -> dict:
    """Binomial standard error and Wilson 95% interval of an agreement count."""
    if n <= 0:
        raise ValueError(f"Input count must be positive, not {n}")
    p = agree / n
    z = 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"top1_agreement": p, "agreement_stderr": math.sqrt(p * (1 - p) / n),
            "agreement_ci95": [min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))],
            "num_eval_inputs": n}


class _Meter:
    """Per-layer coded bits, value count and reconstruction error during a compressed pass."""

    def __init__(self, art: LayerArtifact, recode=None):
        self.art = art
        self.recode = recode
        self.bits = 0
        self.recoded_bits = 0
        self.values = 0
        self.err = 0.0
        self.energy = 0.0
        self.mean = None

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        nhwc = act.detach().permute(0, 2, 3, 1) if act.dim() == 4 else act.detach()
        x = nhwc.to(torch.float64).cpu().numpy()
        x_rec, y_int = roundtrip(self.art, x)
        # One tile per input: an image's map (H * W pixels), or one vector.
        tile = y_int.shape[0] // x.shape[0]
        self.bits += coded_bits(self.art, y_int, tile_rows=tile)
        if self.recode is not None:
            self.recoded_bits += coded_bits(self.recode, y_int, tile_rows=tile)
        self.values += x.size
        flat = x.reshape(-1, x.shape[-1])
        self.err += float(((x_rec - x) ** 2).sum())
        self.energy += float(((flat - flat.mean(0)) ** 2).sum())
        out = torch.from_numpy(x_rec.astype(np.float32))
        return out.permute(0, 3, 1, 2) if act.dim() == 4 else out


def evaluate(model: torch.nn.Module, x: torch.Tensor, artifacts: dict[str, LayerArtifact],
             labels: torch.Tensor | None = None, batch: int = 16, progress: bool = False, *,
             groups=None, baseline: bool = False, baseline_tables=None,
             base_logits: torch.Tensor | None = None, return_logits: bool = False,
             seed: int = 0, recode: dict[str, LayerArtifact] | None = None) -> dict:
    """Compress every point of ``artifacts`` at once and compare with the uncompressed model.

    Parameters
    ----------
    groups : array_like of int (N,), optional
        The photo each input was cropped from: intervals are then bootstrapped over photos
        (crops of one photo are not independent), see ``compare_logits``.
    baseline : bool
        Also run the network with every point only quantized to its stored activation format
        (``activation_only``) on the same inputs, and report its figures as ``baseline_*``
        with the paired interval of the confident-agreement drop.
    base_logits : torch.Tensor, optional
        The uncompressed network's logits on ``x``, when the caller has them (saves a pass).
    return_logits : bool
        Also return the logits of every pass (``logits``: ``base``, ``comp`` and, with
        ``baseline``, ``base8``).
    baseline_tables : dict of str to HuffmanTable, optional
        With ``baseline``: code the stored activations with these tables
        (``activation_tables``) and report ``baseline_bits_per_value``, the lossless point.
    recode : dict of str to LayerArtifact, optional
        The same points with other tables (e.g. ``calibrate_layer(run_length="auto")`` of the
        same projection: the same coefficients, another coding mode): their coded bits of the
        very coefficients this pass produced are reported as ``recoded_bits_per_value``
        (network and layers), the other mode's rate at exactly this fidelity.

    Returns
    -------
    dict
        ``network``: bits_per_value, compression_ratio_vs_8bit and the figures of
        ``compare_logits`` (plus ``baseline_*`` and ``confident_drop_ci95`` with
        ``baseline``); ``layers``: per point bits_per_value, values and relative_error
        (squared reconstruction error over the map's variance, on the maps the compressed
        network actually produced).
    """
    meters = {p: _Meter(a, None if recode is None else recode[p]) for p, a in artifacts.items()}
    runs = {"comp": meters}
    if baseline:
        runs["base8"] = _quantize_only(artifacts, baseline_tables)
    logits = _logits(model, x, runs, batch, progress, base=base_logits is None)
    if base_logits is not None:
        logits["base"] = base_logits
    total_bits = sum(m.bits for m in meters.values())
    total_values = sum(m.values for m in meters.values())
    network = {"bits_per_value": total_bits / max(total_values, 1),
               "compression_ratio_vs_8bit": 8.0 * total_values / max(total_bits, 1),
               **compare_logits(logits["base"], logits["comp"], labels, groups=groups,
                                seed=seed)}
    if baseline:
        ref = compare_logits(logits["base"], logits["base8"], labels, groups=groups, seed=seed)
        for key in ("top1_agreement", "top1_agreement_confident", "mean_kl", "top5_containment",
                    "top1_agreement_confident_ci95", "accuracy_drop"):
            if key in ref:
                network[f"baseline_{key}"] = ref[key]
        if baseline_tables is not None:
            quantizers = runs["base8"].values()
            network["baseline_bits_per_value"] = (sum(q.bits for q in quantizers)
                                                  / max(sum(q.values for q in quantizers), 1))
        if groups is not None:
            network["confident_drop_ci95"] = paired_drop_ci(
                logits["base"], logits["base8"], logits["comp"], groups, seed=seed)
    layers = {p: {"bits_per_value": m.bits / max(m.values, 1), "values": m.values,
                  "relative_error": m.err / m.energy if m.energy else 0.0}
              for p, m in meters.items()}
    if recode is not None:
        network["recoded_bits_per_value"] = (sum(m.recoded_bits for m in meters.values())
                                             / max(total_values, 1))
        for p, m in meters.items():
            layers[p]["recoded_bits_per_value"] = m.recoded_bits / max(m.values, 1)
    result = {"network": network, "layers": layers}
    if return_logits:
        result["logits"] = logits
    return result


def _logits(model, x, runs, batch, progress, base=True):
    """Logits of the uncompressed model (``"base"``, unless ``base`` is False) and of the
    model with each of ``runs`` ({name: {point: fn}}) in place, batch by batch."""
    out = {**({"base": []} if base else {}), **{name: [] for name in runs}}
    starts = range(0, x.shape[0], batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="evaluate", unit="batch", leave=False)
    with torch.no_grad():
        for s in starts:
            xb = x[s:s + batch]
            if base:
                out["base"].append(model(xb).float())
            for name, fns in runs.items():
                with replaced(model, fns):
                    out[name].append(model(xb).float())
    return {name: torch.cat(parts) for name, parts in out.items()}


# Inputs whose uncompressed top-1 is a near tie flip under any perturbation: agreement is also
# reported on the confident ones (top-1 probability at least this).
CONFIDENT = 0.5
BOOTSTRAP = 2000


def _agreement_parts(base_logits, comp_logits):
    logp = base_logits.double().log_softmax(1)
    logq = comp_logits.double().log_softmax(1)
    same = (base_logits.argmax(1) == comp_logits.argmax(1)).numpy()
    confident = (logp.exp().max(1).values >= CONFIDENT).numpy()
    kl = (logp.exp() * (logp - logq)).sum(1).numpy()
    top5 = comp_logits.topk(min(5, comp_logits.shape[1]), dim=1).indices
    in5 = (top5 == base_logits.argmax(1, keepdim=True)).any(1).numpy()
    return same, confident, kl, in5


def _photo_resamples(groups, seed, n_boot=BOOTSTRAP):
    """Per bootstrap replicate, how many times each input counts: photos are drawn with
    replacement and carry all their crops along. Returns (n_boot, N) counts."""
    groups = np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    photo_counts = np.stack([np.bincount(d, minlength=len(ids)) for d in draws])
    return photo_counts[:, inverse]


def _ci(values):
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def compare_logits(base_logits: torch.Tensor, comp_logits: torch.Tensor,
                   labels: torch.Tensor | None = None, *, groups=None, seed: int = 0) -> dict:
    """Fidelity of ``comp_logits`` to ``base_logits`` (N, classes).

    Returns top-1 agreement (``agreement_stats``: binomial standard error and Wilson
    interval, which assume independent inputs), ``mean_kl`` (KL(base || comp) averaged over
    inputs, in float64), ``top5_containment`` (the uncompressed top-1 class is among the
    compressed top 5), the agreement on the confident inputs (uncompressed top-1 probability
    at least ``CONFIDENT``): ``top1_agreement_confident`` and ``num_confident_crops``,
    ``num_eval_crops``; with ``labels`` both accuracies and the drop. With ``groups`` (the
    photo of each input) also ``num_eval_photos`` and 95% percentile intervals bootstrapped
    over photos (``BOOTSTRAP`` replicates, seeded): ``top1_agreement_ci95_photos``,
    ``top1_agreement_confident_ci95`` and ``mean_kl_ci95``.
    """
    n = base_logits.shape[0]
    same, confident, kl, in5 = _agreement_parts(base_logits, comp_logits)
    network = {**agreement_stats(int(same.sum()), n), "mean_kl": float(kl.mean()),
               "top5_containment": float(in5.mean()), "num_eval_crops": n}
    n_conf = int(confident.sum())
    network["num_confident_crops"] = n_conf
    network["top1_agreement_confident"] = float(same[confident].mean()) if n_conf else None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"Photo groups must have one entry per input ({n}), not shape "
                             f"{groups.shape}")
        w = _photo_resamples(groups, seed)
        with np.errstate(invalid="ignore", divide="ignore"):
            network["top1_agreement_ci95_photos"] = _ci((w @ same) / w.sum(1))
            network["top1_agreement_confident_ci95"] = _ci(
                (w @ (same & confident)) / (w @ confident))
            network["mean_kl_ci95"] = _ci((w @ kl) / w.sum(1))
        network["num_eval_photos"] = int(np.unique(groups).size)
    if labels is not None:
        acc = float((base_logits.argmax(1) == labels).float().mean())
        cacc = float((comp_logits.argmax(1) == labels).float().mean())
        network.update(accuracy=acc, compressed_accuracy=cacc, accuracy_drop=acc - cacc)
    return network


def paired_drop_ci(base_logits, ref_logits, comp_logits, groups, seed: int = 0):
    """95% interval of the confident agreement of ``ref_logits`` (e.g. 8-bit activations
    alone) minus that of ``comp_logits``, both against ``base_logits``, bootstrapped over
    photos with the same draws for both (paired): the drop that compression adds."""
    same_r, confident, _, _ = _agreement_parts(base_logits, ref_logits)
    same_c, _, _, _ = _agreement_parts(base_logits, comp_logits)
    w = _photo_resamples(groups, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = w @ confident
        return _ci((w @ (same_r & confident) - w @ (same_c & confident)) / n)


def _symbols(art: LayerArtifact):
    """Symbol width and signedness of a point's stored activation: a map stored unsigned
    (``relu``, one bit more at the MACs) codes its ``in_bits - 1``-bit unsigned values."""
    return (art.in_bits - 1, False) if art.relu else (art.in_bits, True)


def activation_tables(artifacts: dict[str, LayerArtifact], samples, max_len: int = 12) -> dict:
    """One Huffman table per point for its stored activations themselves (no projection:
    the lossless operating point), fitted on calibration ``samples`` ({point: (..., C)}) with
    an escape code, so every value stays encodable."""
    tables = {}
    for p, art in artifacts.items():
        bits, signed = _symbols(art)
        tables[p] = build_table(quantize_input(art, samples[p]).ravel(), bits, max_len,
                                signed=signed, histogram=False)
    return tables


class _Quantizer:
    """The point only quantized to its stored format (``golden.datapath.quant.quantize``, as
    ``quantize_input``); with a table, also counts the Huffman-coded bits."""

    def __init__(self, art: LayerArtifact, table=None):
        self.art, self.table = art, table
        self.bits = 0
        self.values = 0

    def __call__(self, a):
        q = quantize(a.detach().cpu().numpy(), self.art.x_scale, self.art.in_bits)
        if self.table is not None:
            bits, signed = _symbols(self.art)
            self.bits += int(self.table.enc_len[symbol_indices(q, bits, signed)].sum())
            self.values += q.size
        return torch.from_numpy(q * self.art.x_scale).to(a.dtype)


def _quantize_only(artifacts, tables=None):
    return {p: _Quantizer(a, None if tables is None else tables[p])
            for p, a in artifacts.items()}


def activation_only(model: torch.nn.Module, x: torch.Tensor,
                    artifacts: dict[str, LayerArtifact], labels: torch.Tensor | None = None,
                    batch: int = 16, *, groups=None) -> dict:
    """The network with every artifact's point only quantized (``quantize_input``: ``x_int *
    x_scale`` at its ``x_scale`` and ``in_bits``), no projection: the fidelity the activation
    format alone allows. Returns ``compare_logits``' figures."""
    logits = _logits(model, x, {"q": _quantize_only(artifacts)}, batch, False)
    return compare_logits(logits["base"], logits["q"], labels, groups=groups)


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bits_per_layer(layers: list[dict], path, title: str = "") -> None:
    """Bar chart: coded bits per value of each layer, and its k / C ratio."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(layers) + 2), 4.0))
    idx = np.arange(len(layers))
    ax.bar(idx, [lay["bits_per_value"] for lay in layers], color="tab:blue",
           label="coded bits / value")
    ax.plot(idx, [8.0 * lay["k"] / lay["channels"] for lay in layers], "k.",
            label="8 k / C (uncoded 8-bit coefficients)")
    ax.set_xticks(idx)
    ax.set_xticklabels([lay["name"] for lay in layers], rotation=90, fontsize=6)
    ax.set_ylabel("bits per activation value")
    ax.set_title(title or "bits per layer")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_rate_fidelity(layers: list[dict], points: list[dict], path) -> None:
    """Left: per-layer rate against reconstruction error. Right: network operating points
    (bits per value against top-1 agreement, with the Wilson 95% interval)."""
    plt = _figure()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    a.scatter([lay["bits_per_value"] for lay in layers],
              [max(lay["relative_error"], 1e-6) for lay in layers], s=12)
    a.set_yscale("log")
    a.set_xlabel("coded bits / value")
    a.set_ylabel("relative reconstruction error")
    a.set_title("per layer (held-out inputs)")
    for pt in sorted(points, key=lambda q: q["bits_per_value"]):
        lo, hi = pt["agreement_ci95"]
        p = pt["top1_agreement"]
        # Rounding can put a bound a hair inside p at p = 0 or 1.
        err = [[100 * max(0.0, p - lo)], [100 * max(0.0, hi - p)]]
        b.errorbar(pt["bits_per_value"], 100 * p, yerr=err, fmt="o", capsize=3)
        b.annotate(pt.get("label", ""), (pt["bits_per_value"], 100 * p), fontsize=7,
                   xytext=(4, 4), textcoords="offset points")
    b.axvline(1.34, color="gray", ls=":", lw=1)
    b.set_xlabel("network bits / value")
    b.set_ylabel("top-1 agreement with uncompressed (%)")
    b.set_title("network operating points (CAP: 1.34 bits/value)")
    _save(plt, fig, path)


def plot_learning_curve(curve: list[dict], path, title: str = "") -> None:
    """Validation KL (held-out calibration inputs) against optimiser steps."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot([c["step"] for c in curve], [c["val_kl"] for c in curve], "o-")
    best = min(curve, key=lambda c: c["val_kl"])
    ax.plot([best["step"]], [best["val_kl"]], "r*", ms=12, label="kept")
    ax.set_xlabel("Adam steps")
    ax.set_ylabel("validation KL (teacher || compressed)")
    ax.set_yscale("log")
    ax.set_title(title or "learning curve")
    ax.legend(fontsize=8)
    _save(plt, fig, path)
