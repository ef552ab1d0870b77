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

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from golden.artifacts import LayerArtifact
from golden.calibrate import coded_bits, roundtrip
from golden.capture import replaced
from golden.quant import int_range

__all__ = ["activation_only", "agreement_stats", "compare_logits", "evaluate",
           "plot_bits_per_layer", "plot_rate_fidelity", "write_json"]


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

    def __init__(self, art: LayerArtifact):
        self.art = art
        self.bits = 0
        self.values = 0
        self.err = 0.0
        self.energy = 0.0
        self.mean = None

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        nhwc = act.detach().permute(0, 2, 3, 1) if act.dim() == 4 else act.detach()
        x = nhwc.to(torch.float64).cpu().numpy()
        x_rec, y_int = roundtrip(self.art, x)
        self.bits += coded_bits(self.art, y_int)
        self.values += x.size
        flat = x.reshape(-1, x.shape[-1])
        self.err += float(((x_rec - x) ** 2).sum())
        self.energy += float(((flat - flat.mean(0)) ** 2).sum())
        out = torch.from_numpy(x_rec.astype(np.float32))
        return out.permute(0, 3, 1, 2) if act.dim() == 4 else out


def evaluate(model: torch.nn.Module, x: torch.Tensor, artifacts: dict[str, LayerArtifact],
             labels: torch.Tensor | None = None, batch: int = 16,
             progress: bool = False) -> dict:
    """Compress every point of ``artifacts`` at once and compare with the uncompressed model.

    Returns
    -------
    dict
        ``network``: bits_per_value, top1_agreement (+ stderr, ci95, num_eval_inputs),
        mean_kl, confident_top1_agreement (over the confident_inputs whose uncompressed top-1
        probability is at least 0.5), and with ``labels`` accuracy, compressed_accuracy and
        accuracy_drop;
        ``layers``: per point bits_per_value, values and relative_error (squared
        reconstruction error over the map's variance, on the maps the compressed network
        actually produced).
    """
    meters = {p: _Meter(a) for p, a in artifacts.items()}
    base_logits, comp_logits = _logits(model, x, meters, batch, progress)
    total_bits = sum(m.bits for m in meters.values())
    total_values = sum(m.values for m in meters.values())
    network = {"bits_per_value": total_bits / max(total_values, 1),
               "compression_ratio_vs_8bit": 8.0 * total_values / max(total_bits, 1),
               **compare_logits(base_logits, comp_logits, labels)}
    layers = {p: {"bits_per_value": m.bits / max(m.values, 1), "values": m.values,
                  "relative_error": m.err / m.energy if m.energy else 0.0}
              for p, m in meters.items()}
    return {"network": network, "layers": layers}


def _logits(model, x, fns, batch, progress):
    base, comp = [], []
    starts = range(0, x.shape[0], batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="evaluate", unit="batch", leave=False)
    with torch.no_grad():
        for s in starts:
            xb = x[s:s + batch]
            base.append(model(xb).float())
            with replaced(model, fns):
                comp.append(model(xb).float())
    return torch.cat(base), torch.cat(comp)


def compare_logits(base_logits: torch.Tensor, comp_logits: torch.Tensor,
                   labels: torch.Tensor | None = None) -> dict:
    """Fidelity of ``comp_logits`` to ``base_logits`` (N, classes): top-1 agreement
    (``agreement_stats``), mean KL(base || comp), agreement on the confident inputs, and with
    ``labels`` both accuracies and the drop."""
    n = base_logits.shape[0]
    same = base_logits.argmax(1) == comp_logits.argmax(1)
    logp = base_logits.log_softmax(1)
    logq = comp_logits.log_softmax(1)
    kl = float((logp.exp() * (logp - logq)).sum(1).mean())
    network = {**agreement_stats(int(same.sum()), n), "mean_kl": kl}
    # Inputs whose uncompressed top-1 is a near tie flip under any perturbation; report the
    # agreement on the confident ones too (top-1 probability at least 0.5).
    confident = logp.exp().max(1).values >= 0.5
    n_conf = int(confident.sum())
    network["confident_inputs"] = n_conf
    network["confident_top1_agreement"] = (float(same[confident].float().mean())
                                           if n_conf else None)
    if labels is not None:
        acc = float((base_logits.argmax(1) == labels).float().mean())
        cacc = float((comp_logits.argmax(1) == labels).float().mean())
        network.update(accuracy=acc, compressed_accuracy=cacc, accuracy_drop=acc - cacc)
    return network


def activation_only(model: torch.nn.Module, x: torch.Tensor,
                    artifacts: dict[str, LayerArtifact], labels: torch.Tensor | None = None,
                    batch: int = 16) -> dict:
    """The network with every artifact's point only quantized (``quantize_input``: ``x_int *
    x_scale`` at its ``x_scale`` and ``in_bits``), no projection: the fidelity the activation
    format alone allows. Returns ``compare_logits``' figures."""
    def fn_for(art):
        lo, hi = int_range(art.in_bits)

        def fn(a):
            # round() is half to even, as golden.quant.quantize.
            return torch.clamp(torch.round(a / art.x_scale), lo, hi) * art.x_scale
        return fn

    fns = {p: fn_for(a) for p, a in artifacts.items()}
    return compare_logits(*_logits(model, x, fns, batch, False), labels)


def write_json(path, data) -> None:
    """Write JSON atomically (temp file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
