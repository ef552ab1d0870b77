"""Allocation of components across layers: CAP's greedy reduction and Price's ceiling.

Every layer (point) is described by a ``LayerCost``: its PCA eigenvalues, its size (activation
values per input) and ``bits(k)``, the coded size in bits of its feature map for one input when
the first ``k`` components are kept (quantized and Huffman-coded, as ``layer_costs`` measures
it with ``golden.calibration`` and ``golden.codec`` / ``golden.codec.runlength``).

* ``greedy_allocate`` (CAP, Tai et al. 2022): start from full k everywhere and repeatedly drop
  the last component of the layer where it costs the least accuracy per bit saved, until the
  network's size-weighted average bits per value reaches the target. The accuracy cost of
  dropping component j of a layer is its eigenvalue's share of that layer's energy (the
  relative reconstruction error it adds; times an optional per-layer ``sensitivity``); the
  saving is the change of that layer's coded bits per input. CAP writes the ratio as
  S = d_accuracy / d_bits; the component dropped is the one with the smallest accuracy loss
  per bit saved (the largest bits saved per unit of accuracy). The share is not weighted by
  the layer's size: a layer's relative error is what propagates to the output, whatever its
  size, while the bits already count each layer at its size (the target is an average over
  all values of the network), so large maps are cheaper to cut per unit of error, as they
  should be.
* ``ceiling_allocate`` (Price and Tanner): the smallest compression (largest k) of each layer
  whose coded map fits under one ceiling in bits (the on-chip buffer); layers that fit at full
  k keep every component.

The drop sequence of ``greedy_allocate`` does not depend on the target, so lowering the
target never raises any layer's k.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from golden.projection.pca import Projection

__all__ = ["JointCosts", "LayerCost", "PrecisionLevel", "allocate_ceiling", "allocate_greedy",
           "allocate_joint", "ceiling_allocate", "greedy_levels", "joint_bits", "joint_costs", "level_bits",
           "level_kl_curves", "precision_levels",
           "greedy_allocate", "kl_curves", "layer_costs", "layer_sensitivity",
           "network_bits_per_value"]


@dataclass
class LayerCost:
    """What the allocators know about one layer.

    Attributes
    ----------
    name : str
        The point.
    eigenvalues : ndarray (C,)
        PCA spectrum, largest first (``Projection.eigenvalues``).
    values : int
        Activation values of the feature map per input (H * W * C).
    bits : sequence of C numbers, or callable k -> number
        Coded bits of the feature map per input with k = 1 .. C components (``bits[k - 1]``).
    sensitivity : float
        Multiplies the eigenvalue share (1.0: every layer alike).
    distortion : sequence of C numbers, optional
        Measured accuracy cost with k = 1 .. C components (``distortion[k - 1]``, e.g. the
        output KL of ``kl_curves``); when given, dropping component k costs
        ``distortion[k - 2] - distortion[k - 1]`` instead of the eigenvalue share. Made
        non-increasing in k (a running minimum: more components never cost more).
    """

    name: str
    eigenvalues: np.ndarray
    values: int
    bits: Sequence[float] | Callable[[int], float]
    sensitivity: float = 1.0
    distortion: Sequence[float] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.eigenvalues = np.clip(np.asarray(self.eigenvalues, dtype=np.float64), 0.0, None)
        if self.eigenvalues.ndim != 1 or self.eigenvalues.size < 1:
            raise ValueError(f"Layer {self.name!r}: eigenvalues must be a non-empty 1-D array, "
                             f"not shape {self.eigenvalues.shape}")
        if isinstance(self.values, bool) or not isinstance(self.values, (int, np.integer)) \
                or self.values < 1:
            raise ValueError(f"Layer {self.name!r}: value count must be a positive integer, "
                             f"not {self.values!r}")
        if not callable(self.bits):
            table = np.asarray(self.bits, dtype=np.float64)
            if table.shape != (self.channels,):
                raise ValueError(f"Layer {self.name!r}: bits table must have {self.channels} "
                                 f"entries (k = 1 .. {self.channels}), not {table.shape}")
            self.bits = table
        if self.distortion is not None:
            d = np.asarray(self.distortion, dtype=np.float64)
            if d.shape != (self.channels,) or not np.all(np.isfinite(d)):
                raise ValueError(f"Layer {self.name!r}: distortion must have {self.channels} "
                                 f"finite entries (k = 1 .. {self.channels}), not {d.shape}")
            self.distortion = np.minimum.accumulate(np.maximum(d, 0.0))
        if not (isinstance(self.sensitivity, (int, float)) and self.sensitivity > 0):
            raise ValueError(f"Layer {self.name!r}: sensitivity must be positive, "
                             f"not {self.sensitivity!r}")

    @property
    def channels(self) -> int:
        return self.eigenvalues.size

    def bits_at(self, k: int) -> float:
        """Coded bits per input with ``k`` components."""
        if not 1 <= k <= self.channels:
            raise ValueError(f"Component count must be between 1 and {self.channels}, not {k}")
        if isinstance(self.bits, np.ndarray):
            return float(self.bits[k - 1])
        if k not in self._cache:
            b = float(self.bits(k))
            if not np.isfinite(b) or b < 0:
                raise ValueError(f"Layer {self.name!r}: bits({k}) must be a non-negative "
                                 f"number, not {b}")
            self._cache[k] = b
        return self._cache[k]

    def drop_cost(self, k: int) -> float:
        """Accuracy cost of going from ``k`` to ``k - 1`` components: the measured distortion
        increase, or the dropped component's eigenvalue share times the sensitivity."""
        if self.distortion is not None:
            return float(self.distortion[k - 2] - self.distortion[k - 1])
        return self.sensitivity * self.share(k - 1)

    def share(self, j: int) -> float:
        """Eigenvalue share of component ``j`` (0-based) in the layer's energy."""
        total = self.eigenvalues.sum()
        return float(self.eigenvalues[j] / total) if total > 0 else 0.0


def _check_layers(layers) -> list[LayerCost]:
    layers = list(layers.values()) if isinstance(layers, Mapping) else list(layers)
    if not layers:
        raise ValueError("Allocation needs at least one layer")
    for lay in layers:
        if not isinstance(lay, LayerCost):
            raise TypeError(f"Layers must be golden.calibration.allocation.LayerCost, not "
                            f"{type(lay).__name__}")
    names = [lay.name for lay in layers]
    if len(set(names)) != len(names):
        raise ValueError("Layer names must be unique")
    return layers


def network_bits_per_value(layers, ks: Mapping[str, int]) -> float:
    """Size-weighted average coded bits per value of the network with ``ks`` components."""
    layers = _check_layers(layers)
    bits = sum(lay.bits_at(int(ks[lay.name])) for lay in layers)
    return bits / sum(lay.values for lay in layers)


def greedy_allocate(layers, target_bits_per_value: float, *, min_k: int = 1,
                    history: list | None = None) -> dict[str, int]:
    """CAP's greedy dimension reduction down to ``target_bits_per_value``.

    Parameters
    ----------
    layers : sequence or mapping of LayerCost
    target_bits_per_value : float
        Network average coded bits per activation value (total bits / total values).
    min_k : int
        No layer goes below this many components.
    history : list, optional
        Receives one ``(name, new_k, bits_per_value)`` tuple per dropped component.

    Returns
    -------
    dict of str to int
        k per layer, the largest along the greedy path that meets the target.

    Raises
    ------
    ValueError
        If the target is not positive, or not met even with ``min_k`` components everywhere.
    """
    layers = _check_layers(layers)
    if isinstance(target_bits_per_value, bool) or not isinstance(
            target_bits_per_value, (int, float)) or not target_bits_per_value > 0:
        raise ValueError(f"Target bits per value must be a positive number, "
                         f"not {target_bits_per_value!r}")
    if isinstance(min_k, bool) or not isinstance(min_k, int) or min_k < 1:
        raise ValueError(f"Minimum component count must be a positive integer, not {min_k!r}")
    total_values = sum(lay.values for lay in layers)
    budget = target_bits_per_value * total_values
    floor = {lay.name: min(min_k, lay.channels) for lay in layers}
    lowest = sum(lay.bits_at(floor[lay.name]) for lay in layers)
    ks = {lay.name: lay.channels for lay in layers}
    bits = {lay.name: lay.bits_at(lay.channels) for lay in layers}
    total = sum(bits.values())
    if total <= budget:
        return ks
    by_name = {lay.name: lay for lay in layers}

    def key(lay):
        k = ks[lay.name]
        saved = bits[lay.name] - lay.bits_at(k - 1)
        loss = lay.drop_cost(k)
        # Accuracy lost per bit saved; drops that save nothing go last.
        return loss / saved if saved > 0 else np.inf

    heap = [(key(lay), i, lay.name) for i, lay in enumerate(layers)
            if ks[lay.name] > floor[lay.name]]
    heapq.heapify(heap)
    while total > budget and heap:
        _, i, name = heapq.heappop(heap)
        lay = by_name[name]
        ks[name] -= 1
        new = lay.bits_at(ks[name])
        total += new - bits[name]
        bits[name] = new
        if history is not None:
            history.append((name, ks[name], total / total_values))
        if ks[name] > floor[name]:
            heapq.heappush(heap, (key(lay), i, name))
    if total > budget:
        raise ValueError(f"Target of {target_bits_per_value} bits per value cannot be met: "
                         f"the greedy path ends at {total / total_values:.4f} with at least "
                         f"{min_k} component(s) per layer (lowest possible "
                         f"{lowest / total_values:.4f})")
    return ks


def ceiling_allocate(layers, ceiling_bits: float) -> dict[str, int]:
    """Price and Tanner's ceiling compression: the largest k per layer whose coded feature map
    (bits per input) is at most ``ceiling_bits``.

    Raises
    ------
    ValueError
        If the ceiling is not positive, or a layer exceeds it even with one component.
    """
    layers = _check_layers(layers)
    if isinstance(ceiling_bits, bool) or not isinstance(ceiling_bits, (int, float)) or \
            not ceiling_bits > 0:
        raise ValueError(f"Ceiling must be a positive number of bits, not {ceiling_bits!r}")
    ks = {}
    for lay in layers:
        fits = [k for k in range(lay.channels, 0, -1) if lay.bits_at(k) <= ceiling_bits]
        if not fits:
            raise ValueError(f"Ceiling of {ceiling_bits:g} bits cannot be met: layer "
                             f"{lay.name!r} needs {lay.bits_at(1):.0f} bits with one component")
        ks[lay.name] = fits[0]
    return ks


# ---------------------------------------------------------------------------------------------
# Measuring bits(k) from calibration samples


def _mode(run_length) -> str:
    """``run_length`` as a mode name: True/False (older callers) or "off", "on", "auto"."""
    from golden.codec.runlength import RUN_LENGTH_MODES

    if run_length is True or run_length is False:
        return "on" if run_length else "off"
    if run_length not in RUN_LENGTH_MODES:
        raise ValueError(f"Run-length mode must be one of {', '.join(RUN_LENGTH_MODES)}, not "
                         f"{run_length!r}")
    return run_length


def _layer_bits(groups, bits, max_len, mode) -> float:
    """Bits of one layer's calibration coefficients, per group its values (coding order) and
    width, with the tables ``calibrate_layer`` would fit in ``mode`` (one mode per layer)."""
    from golden.codec.runlength import fit_tables, tile_bits

    return float(sum(tile_bits(v, t) for v, t in zip(groups, fit_tables(groups, bits, max_len,
                                                                        mode))))


def layer_costs(projection: Projection, samples, values: int, *, name: str = "layer",
                bits: int = 8, max_len: int = 12, run_length: bool | str = "off",
                grid: int | None = 48, artifact=None, **calibrate_kwargs) -> LayerCost:
    """Measure ``bits(k)`` of one layer on calibration pixels.

    The full-k projection is calibrated once (``golden.calibration.folding.calibrate_layer``: per-
    component scales, which do not depend on k); for each k the first k coefficients get
    their own optimal length-limited table (with escape) and the coded size of the sample,
    scaled to the map's ``values`` per input, is ``bits(k)``. ``run_length`` "on" (or True)
    measures the run-length mode (``golden.codec.runlength``, bitstream version 2) instead,
    coding pixel after pixel, components in order; "auto" the smaller of the two modes at
    each k, as ``calibrate_layer(run_length="auto")`` will choose. ``grid`` k values
    (log-spaced, always including 1
    and C) are measured and the rest interpolated linearly; None measures every k.
    ``artifact``: the full-k ``LayerArtifact`` of ``projection`` when the caller already has
    it (skips the calibration; ``bits``, ``max_len`` and ``calibrate_kwargs`` are then unused).
    """
    from golden.calibration.folding import calibrate_layer
    from golden.codec.tables import build_table
    from golden.datapath.pipeline import forward_int, quantize_input

    samples = np.asarray(samples, dtype=np.float64).reshape(-1, projection.channels)
    c = projection.channels
    if projection.k != c:
        raise ValueError(f"Layer costs need the full projection (k = C = {c}), not k = "
                         f"{projection.k}")
    if artifact is None:
        art = calibrate_layer(projection, samples, name=name, group_bits=(bits,),
                              max_len=max_len, **calibrate_kwargs)
    else:
        art = artifact
        if art.k != c or art.channels != c or len(art.group_bits) != 1:
            raise ValueError(f"Layer costs need a one-group artifact with k = C = {c}, not "
                             f"k = {art.k}, C = {art.channels}, {len(art.group_bits)} groups")
        bits, max_len = int(art.group_bits[0]), int(art.tables.tables[0].max_len)
    y = forward_int(art, quantize_input(art, samples))
    pixels_per_input = values / c
    if grid is None or grid >= c:
        ks = np.arange(1, c + 1)
    else:
        ks = np.unique(np.r_[1, np.rint(np.geomspace(1, c, grid)).astype(int), c])
    measured = []
    mode = _mode(run_length)
    if mode != "off":
        for k in ks:
            measured.append(_layer_bits([y[:, :k]], [bits], max_len, mode)
                            * pixels_per_input / y.shape[0])
    else:
        mask = (1 << bits) - 1
        hists = np.stack([np.bincount(y[:, j] & mask, minlength=1 << bits) for j in range(c)])
        cum = np.cumsum(hists, axis=0)
        for k in ks:
            t = build_table(cum[k - 1], bits, max_len, histogram=True)
            measured.append(float((cum[k - 1] * t.enc_len[:1 << bits]).sum())
                            * pixels_per_input / y.shape[0])
    table = np.interp(np.arange(1, c + 1), ks, measured)
    return LayerCost(name, projection.eigenvalues, int(values), table)


def _costs_from_cli(projections, samples, sizes, unsigned="auto", **kwargs):
    from golden.datapath.scales import activation_format

    if sizes is None:
        raise ValueError("Allocation needs the feature-map sizes: pass sizes={point: values "
                         "per input}")
    costs = []
    for p in projections:
        # Each point's storage format, as golden.calibration.network.calibrate_network chooses it.
        kw = dict(kwargs)
        in_bits, relu = activation_format(samples[p], kw.pop("in_bits", 8), unsigned)
        kw["relu"] = relu or kw.get("relu", False)
        costs.append(layer_costs(projections[p], samples[p], int(sizes[p]), name=p,
                                 in_bits=in_bits, **kw))
    return costs


def allocate_greedy(projections: Mapping[str, Projection], samples: Mapping[str, np.ndarray],
                    target: float, *, sizes: Mapping[str, int] | None = None,
                    distortion: Mapping[str, np.ndarray] | None = None,
                    **kwargs) -> dict[str, int]:
    """``greedy_allocate`` from full PCA projections and calibration pixels per point;
    ``sizes`` gives each point's activation values per input (H * W * C); ``distortion``
    ({point: (C,)}, e.g. from ``kl_curves``) replaces the eigenvalue share by a measured
    cost; ``kwargs`` go to ``layer_costs`` (``in_bits``, default 8, and ``unsigned``, default
    ``"auto"``, choose each point's format with ``golden.datapath.scales.activation_format``)."""
    costs = _costs_from_cli(projections, samples, sizes, **kwargs)
    if distortion is not None:
        for c in costs:
            c.distortion = distortion[c.name]
            c.__post_init__()
    return greedy_allocate(costs, target)


def allocate_ceiling(projections: Mapping[str, Projection], samples: Mapping[str, np.ndarray],
                     ceiling: float, *, sizes: Mapping[str, int] | None = None,
                     **kwargs) -> dict[str, int]:
    """``ceiling_allocate`` (ceiling in bits per feature map and input) from full PCA
    projections and calibration pixels, like ``allocate_greedy``."""
    return ceiling_allocate(_costs_from_cli(projections, samples, sizes, **kwargs), ceiling)


def layer_sensitivity(model, x, projections: Mapping[str, Projection], threshold: float = 0.9,
                      batch: int = 8) -> dict[str, float]:
    """Measured sensitivity of the network output to each point's reconstruction error.

    For each point alone, its float PCA projection truncated to the ``threshold`` energy
    (at most C - 1 components) replaces the feature map on inputs ``x``; the sensitivity is
    the mean KL divergence of the output from the uncompressed network's divided by the
    relative reconstruction error (squared error over variance) it caused. CAP's eigenvalue
    share treats every layer alike; on MobileNetV2 an error early in the network compounds
    through every later layer. Use as ``LayerCost.sensitivity`` (only ratios matter).
    Costs ``len(projections) + 1`` passes over ``x``.
    """
    import torch

    from golden.nets.capture import replaced
    from golden.projection.learning import Projector
    from golden.projection.pca import k_for_energy

    def logits():
        return torch.cat([model(x[s:s + batch]).float() for s in range(0, x.shape[0], batch)])

    with torch.no_grad():
        base = logits().log_softmax(1)
    out = {}
    for point, proj in projections.items():
        k = min(k_for_energy(proj.eigenvalues, threshold), proj.channels - 1)
        projector = Projector(proj.truncate(max(k, 1)))
        acc = {"err": 0.0, "n": 0, "sum": 0.0, "sq": 0.0}

        def fn(a, projector=projector, acc=acc):
            r = projector(a)
            flat = (a.permute(0, 2, 3, 1) if a.dim() == 4 else a).reshape(-1, a.shape[1])
            flat = flat.double()
            acc["err"] += float(((r - a).double() ** 2).sum())
            acc["n"] += flat.shape[0]
            acc["sum"] = acc["sum"] + flat.sum(0)
            acc["sq"] = acc["sq"] + (flat ** 2).sum(0)
            return r

        with torch.no_grad(), replaced(model, {point: fn}):
            logq = logits().log_softmax(1)
        kl = float((base.exp() * (base - logq)).sum(1).mean())
        var = float((acc["sq"] - acc["sum"] ** 2 / max(acc["n"], 1)).sum())
        rel = acc["err"] / var if var > 0 else 0.0
        out[point] = kl / rel if rel > 1e-12 else 0.0
    positive = [v for v in out.values() if v > 0]
    floor = min(positive) if positive else 1.0
    return {p: max(v, floor) for p, v in out.items()}


def kl_grid(channels: int, grid: int) -> np.ndarray:
    """``grid`` component counts from 1 to ``channels``, log-spaced, both ends included."""
    return np.unique(np.r_[1, np.rint(np.geomspace(1, channels, grid)).astype(int), channels])


def kl_curves(model, x, projections: Mapping[str, Projection], *, quant=None, grid: int = 6,
              batch: int = 8, progress: bool = False) -> dict[str, np.ndarray]:
    """Measured accuracy cost of each point alone, against its component count.

    For every point and every k of ``kl_grid(C, grid)``, the point's projection truncated to
    k (with the hardware's rounding when ``quant`` gives the point's full-k
    ``golden.projection.learning.QuantFormat``: the same steps, the first k of them) replaces the
    feature
    map on inputs ``x`` while every other point stays uncompressed; the cost is the mean KL
    divergence of the output from the uncompressed network's (float64). Values between grid
    points are interpolated linearly. Costs ``len(projections) * grid + 1`` passes over ``x``.

    Returns
    -------
    dict of str to ndarray (C,)
        KL with k = 1 .. C components: the ``distortion`` of ``LayerCost``.
    """
    import dataclasses

    import torch

    from golden.nets.capture import replaced
    from golden.projection.learning import Projector

    def logp():
        out = torch.cat([model(x[s:s + batch]).float() for s in range(0, x.shape[0], batch)])
        return out.double().log_softmax(1)

    with torch.no_grad():
        base = logp()
    items = list(projections.items())
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="kl curves", unit="layer", leave=False)
    out = {}
    for point, proj in items:
        c = proj.channels
        ks = kl_grid(c, grid)
        measured = []
        for k in ks:
            fmt = None
            if quant is not None:
                fmt = dataclasses.replace(quant[point], steps=quant[point].steps[:k])
            projector = Projector(proj.truncate(int(k)), quant=fmt)
            with torch.no_grad(), replaced(model, {point: projector}):
                q = logp()
            measured.append(float((base.exp() * (base - q)).sum(1).mean()))
        out[point] = np.interp(np.arange(1, c + 1), ks, measured)
    return out


# ---------------------------------------------------------------------------------------------
# Joint allocation of component count and coefficient precision


@dataclass
class PrecisionLevel:
    """One operating point of a layer: ``k`` components, their coefficient steps and the
    component groups (each with its own width and Huffman table) the artifact will carry.

    Attributes
    ----------
    k : int
    steps : ndarray (k,)
        Coefficient step per component (``calibrate_layer(..., steps=)``).
    group_bounds : ndarray (G + 1,)
    group_bits : ndarray (G,)
        Non-increasing widths, 2 to 8.
    """

    k: int
    steps: np.ndarray
    group_bounds: np.ndarray
    group_bits: np.ndarray

    @property
    def widths(self) -> np.ndarray:
        """Width of every component (k,)."""
        return np.repeat(self.group_bits, np.diff(self.group_bounds))


def precision_levels(eigenvalues, base_steps, *, levels: int = 16, factor: float = 2 ** 0.5,
                     keep: float = 0.0) -> list[PrecisionLevel]:
    """A layer's chain of operating points, from every component at its 8-bit step down to
    one coarse component: entropy-coded uniform quantization in the PCA basis.

    Level 0 keeps all C components at ``base_steps`` (the 8-bit steps ``calibrate_layer``
    calibrates, e.g. ``golden.projection.learning.quant_format(...).steps``). Level ``c > 0``
    quantizes every component with one step ``delta = min(base_steps) * factor**c`` (a
    component whose 8-bit step is coarser keeps its own: the 8-bit range stays covered), and
    keeps the components whose standard deviation (square root of the eigenvalue) is at
    least ``keep * delta``: reverse water-filling, where every kept component carries the same
    squared error and a component below the water level costs more bits (at least one per
    coefficient with Huffman codes) than the error it removes. Each component gets the
    narrowest width, 2 to 8, that still covers its 8-bit range (``127 * base_steps``) at its
    step; widths are made non-increasing with the component index and equal widths form one
    group, so a level is expressible by the artifact as it is (``group_bounds``,
    ``group_bits``, folded steps).
    """
    sigma = np.sqrt(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None))
    base = np.asarray(base_steps, dtype=np.float64)
    if base.ndim != 1 or base.shape != sigma.shape or not np.all(base > 0):
        raise ValueError(f"Base steps must be {sigma.size} positive numbers, not shape "
                         f"{base.shape}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"Level count must be a positive integer, not {levels!r}")
    if not factor > 1:
        raise ValueError(f"Step factor must be greater than 1, not {factor!r}")
    if not keep >= 0:
        raise ValueError(f"Keep ratio must be non-negative, not {keep!r}")
    c_all = sigma.size
    out = []
    for lev in range(levels):
        if lev == 0:
            k, s = c_all, base.copy()
        else:
            delta = float(base.min()) * factor ** lev
            k = max(1, int(np.sum(sigma >= keep * delta)))
            s = np.maximum(base[:k], delta)
        need = 1 + np.ceil(np.log2(127.0 * base[:k] / s + 1.0))
        w = np.clip(need, 2, 8).astype(np.int64)
        w = np.maximum.accumulate(w[::-1])[::-1]
        edges = np.flatnonzero(np.diff(w)) + 1
        bounds = np.r_[0, edges, k].astype(np.int64)
        out.append(PrecisionLevel(k, s, bounds, w[bounds[:-1]]))
    return out


def level_bits(chain: Sequence[PrecisionLevel], coefficients, values: int, *,
               max_len: int = 12, run_length: bool | str = "off") -> np.ndarray:
    """Coded bits per input of every level of ``chain``: the calibration ``coefficients``
    (N, C, the full projection of the stored activations) rounded to each level's steps,
    saturated to its widths and coded with one optimal length-limited table (with escape) per
    group, scaled to the map's ``values`` per input. ``run_length`` as in ``layer_costs``:
    "on" codes every group in run-length mode, "auto" the level in the smaller mode (one mode
    per layer, as ``calibrate_layer`` chooses it)."""
    from golden.codec.tables import build_table

    mode = _mode(run_length)
    y = np.asarray(coefficients, dtype=np.float64)
    per_input = values / y.shape[1] / y.shape[0]
    out = []
    for lev in chain:
        total = 0.0
        groups = []
        for lo, hi, b in zip(lev.group_bounds[:-1], lev.group_bounds[1:], lev.group_bits):
            b = int(b)
            q = np.clip(np.rint(y[:, lo:hi] / lev.steps[lo:hi]), -(1 << (b - 1)),
                        (1 << (b - 1)) - 1).astype(np.int64)
            if mode != "off":
                groups.append(q)
                continue
            hist = np.bincount((q & ((1 << b) - 1)).ravel(), minlength=1 << b)
            t = build_table(hist, b, max_len, histogram=True)
            total += float((hist * t.enc_len[:1 << b]).sum())
        if groups:
            total = _layer_bits(groups, lev.group_bits, max_len, mode)
        out.append(total * per_input)
    return np.asarray(out)


def level_kl_curves(model, x, projections: Mapping[str, Projection], formats, chains, *,
                    measure=None, context=None, batch: int = 8,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """Measured output KL of every point at every level of its chain.

    For each point and each level index in ``measure`` (default: every other level and the
    last), the point's projection truncated to the level's k, rounded to its steps and
    saturated to its widths (``Projector`` with a ``QuantFormat``), replaces the feature map
    on inputs ``x``; every other point stays uncompressed or, with ``context`` ({point:
    level index}), sits at its level there: the cost of a point measured with the rest of the
    network already compressed, which is what compounds. KL of the output from the
    uncompressed network's, float64; levels between measured ones are interpolated and the
    curve is made non-decreasing. ``formats``: each point's full-k ``QuantFormat`` (activation
    format). Costs ``len(projections) * len(measure) + 1`` passes over ``x``.
    """
    import dataclasses

    import torch

    from golden.nets.capture import replaced
    from golden.projection.learning import Projector

    def projector(p, lev):
        fmt = dataclasses.replace(formats[p], steps=lev.steps, widths=lev.widths)
        return Projector(projections[p].truncate(lev.k), quant=fmt)

    def logp(fns):
        with torch.no_grad(), replaced(model, fns):
            out = torch.cat([model(x[s:s + batch]).float()
                             for s in range(0, x.shape[0], batch)])
        return out.double().log_softmax(1)

    base = logp({})
    fixed = {p: projector(p, chains[p][c]) for p, c in (context or {}).items()}
    items = list(projections)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="level kl", unit="layer", leave=False)
    out = {}
    for p in items:
        n = len(chains[p])
        idx = (sorted(set(range(0, n, 2)) | {n - 1}) if measure is None
               else sorted({int(i) for i in measure if 0 <= int(i) < n} | {0, n - 1}))
        measured = []
        for i in idx:
            fns = dict(fixed)
            fns[p] = projector(p, chains[p][i])
            q = logp(fns)
            measured.append(float((base.exp() * (base - q)).sum(1).mean()))
        out[p] = np.maximum.accumulate(np.interp(np.arange(n), idx, measured))
    return out


def greedy_levels(bits: Mapping[str, Sequence[float]], cost: Mapping[str, Sequence[float]],
                  values: Mapping[str, int], target_bits_per_value: float, *,
                  lookahead: int = 3, history: list | None = None) -> dict[str, int]:
    """Greedy descent along every layer's chain of levels down to a network average of
    ``target_bits_per_value``.

    Every layer starts at level 0; each move takes one layer from level ``c`` to one of the
    next ``lookahead`` levels, the one with the least accuracy lost per bit saved,
    S = (cost[c'] - cost[c]) / (bits[c] - bits[c']), and the move with the smallest S in the
    network goes first. Moves that save no bits are never taken.

    Returns
    -------
    dict of str to int
        The level index per layer.

    Raises
    ------
    ValueError
        If the target is not positive or is below what the last levels reach.
    """
    if isinstance(target_bits_per_value, bool) or not isinstance(
            target_bits_per_value, (int, float)) or not target_bits_per_value > 0:
        raise ValueError(f"Target bits per value must be a positive number, "
                         f"not {target_bits_per_value!r}")
    names = list(bits)
    b = {p: np.asarray(bits[p], dtype=np.float64) for p in names}
    d = {p: np.maximum.accumulate(np.asarray(cost[p], dtype=np.float64)) for p in names}
    for p in names:
        if b[p].shape != d[p].shape or b[p].ndim != 1 or b[p].size < 1:
            raise ValueError(f"Layer {p!r}: bits and cost must be equal-length 1-D arrays")
    total_values = sum(int(values[p]) for p in names)
    budget = target_bits_per_value * total_values
    level = {p: 0 for p in names}
    total = sum(b[p][0] for p in names)

    def move(p):
        c = level[p]
        best = None
        for n in range(c + 1, min(c + 1 + lookahead, b[p].size)):
            saved = b[p][c] - b[p][n]
            if saved <= 0:
                continue
            s = (d[p][n] - d[p][c]) / saved
            if best is None or s < best[0]:
                best = (s, n)
        return best

    heap = []
    for i, p in enumerate(names):
        m = move(p)
        if m is not None:
            heap.append((m[0], i, p, m[1]))
    heapq.heapify(heap)
    while total > budget and heap:
        _, i, p, n = heapq.heappop(heap)
        total += b[p][n] - b[p][level[p]]
        level[p] = n
        if history is not None:
            history.append((p, n, total / total_values))
        m = move(p)
        if m is not None:
            heapq.heappush(heap, (m[0], i, p, m[1]))
    if total > budget:
        raise ValueError(f"Target of {target_bits_per_value} bits per value cannot be met: "
                         f"the coarsest levels reach {total / total_values:.4f}")
    return level


@dataclass
class JointCosts:
    """What the joint allocation measured: per point its chain of levels
    (``precision_levels``), their coded bits per input (``level_bits``) and output KL
    (``level_kl_curves``), the map's values per input, and what re-measuring needs."""

    chains: dict
    bits: dict
    kl: dict
    values: dict
    model: object = None
    x_val: object = None
    projections: dict = None
    formats: dict = None


def variance_ordered(projection: Projection, samples) -> Projection:
    """``projection`` with its components sorted by the variance of their coefficients on
    ``samples`` (channels-last pixels), largest first, and those variances as its
    ``eigenvalues``: a learned basis put in the form ``precision_levels`` and ``joint_costs``
    expect of a PCA one (truncation drops the least-used components first). The projection
    itself is unchanged: the same components, reordered."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1, projection.channels)
    var = projection.project(x).var(axis=0)
    order = np.argsort(-var, kind="stable")
    return Projection(projection.mean, projection.forward[order], projection.inverse[:, order],
                      var[order])


def joint_bits(chains, projections: Mapping[str, Projection], samples, formats, sizes, *,
               max_len: int = 12, run_length: bool | str = "off") -> dict[str, np.ndarray]:
    """``level_bits`` of every point's chain: its calibration pixels (channels-last) stored in
    the point's activation format (``formats``), projected on its full PCA and coded in
    ``run_length`` mode; ``sizes``: values per input."""
    bits = {}
    for p, proj in projections.items():
        fmt = formats[p]
        x = np.asarray(samples[p], dtype=np.float64).reshape(-1, proj.channels)
        x_q = np.clip(np.rint(x / fmt.x_scale), fmt.x_lo, fmt.x_hi) * fmt.x_scale
        bits[p] = level_bits(chains[p], proj.project(x_q), int(sizes[p]), max_len=max_len,
                             run_length=run_length)
    return bits


def joint_costs(model, x_val, projections: Mapping[str, Projection], samples, formats, sizes,
                *, levels: int = 16, factor: float = 2 ** 0.5, keep: float = 0.0,
                max_len: int = 12, run_length: bool | str = "off", measure=None,
                progress: bool = False) -> JointCosts:
    """Chains, bits and measured KL of every point for ``allocate_joint``.

    ``projections``: full PCA per point; ``samples``: calibration pixels (channels-last);
    ``formats``: each point's full-k ``QuantFormat`` (``quant_format``: activation format and
    8-bit steps, level 0); ``sizes``: values per input; ``x_val``: held-out calibration
    inputs for the KL; ``run_length``: the coding mode the bits count (``level_bits``)."""
    chains = {p: precision_levels(proj.eigenvalues, formats[p].steps, levels=levels,
                                  factor=factor, keep=keep) for p, proj in projections.items()}
    bits = joint_bits(chains, projections, samples, formats, sizes, max_len=max_len,
                      run_length=run_length)
    kl = level_kl_curves(model, x_val, projections, formats, chains, measure=measure,
                         progress=progress)
    return JointCosts(chains, bits, kl, {p: int(sizes[p]) for p in projections}, model,
                      x_val, dict(projections), dict(formats))


def allocate_joint(costs: JointCosts, target_bits_per_value: float, *, rounds: int = 0,
                   measure=None, progress: bool = False, history: list | None = None,
                   ) -> dict[str, PrecisionLevel]:
    """Joint allocation of k and coefficient precision per point: ``greedy_levels`` on the
    measured bits and KL of ``costs``, then ``rounds`` times: every point's KL curve is
    measured again with all other points at their allocated levels (``level_kl_curves``
    with ``context``), and the greedy descent is redone on those curves. ``history``
    receives each round's levels. Returns the chosen level per point."""
    level = greedy_levels(costs.bits, costs.kl, costs.values, target_bits_per_value)
    if history is not None:
        history.append(dict(level))
    for _ in range(rounds):
        kl = level_kl_curves(costs.model, costs.x_val, costs.projections, costs.formats,
                             costs.chains, measure=measure, context=level, progress=progress)
        # Each curve was measured with the point's own level replaced, so it starts at the
        # KL of the rest of the network: only its increments drive the greedy descent.
        level = greedy_levels(costs.bits, kl, costs.values, target_bits_per_value)
        if history is not None:
            history.append(dict(level))
    return {p: costs.chains[p][c] for p, c in level.items()}
