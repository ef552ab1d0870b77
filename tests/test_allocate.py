"""golden.calibration.allocation: CAP's greedy reduction and Price and Tanner's ceiling
allocation."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.calibration.allocation import (
    LayerCost,
    allocate_ceiling,
    allocate_greedy,
    ceiling_allocate,
    greedy_allocate,
    layer_costs,
    network_bits_per_value,
)
from golden.calibration.folding import calibrate_layer
from golden.codec.runlength import build_rl_table, encode_rl_tile
from golden.datapath.pipeline import coded_bits, forward_int, quantize_input
from golden.projection.pca import pca_fit


def _layer(name, c, pixels, spectrum, bits_per_coef=2.0, rng=None):
    ev = np.sort(np.asarray(spectrum, dtype=float))[::-1]
    per = np.full(c, bits_per_coef) if rng is None else rng.uniform(0.5, 4.0, c)
    return LayerCost(name, ev, pixels * c, np.cumsum(per) * pixels)


def _layers(rng, n):
    out = []
    for i in range(n):
        c = int(rng.integers(2, 24))
        out.append(_layer(f"l{i}", c, int(rng.integers(1, 200)), rng.exponential(1.0, c) ** 3,
                          rng=rng))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t1=st.floats(0.6, 3.0), t2=st.floats(0.6, 3.0))
def test_greedy_meets_target_and_is_monotone(seed, t1, t2):
    layers = _layers(np.random.default_rng(seed), 4)
    lo, hi = sorted((t1, t2))
    lowest = network_bits_per_value(layers, {lay.name: 1 for lay in layers})
    if lo < lowest:
        with pytest.raises(ValueError, match=r"^Target of .* bits per value cannot be met"):
            greedy_allocate(layers, lo)
        return
    k_lo, k_hi = greedy_allocate(layers, lo), greedy_allocate(layers, hi)
    # The allocator compares the same float64 sum; 1e-12 covers a different summation order.
    assert network_bits_per_value(layers, k_lo) <= lo + 1e-12
    assert network_bits_per_value(layers, k_hi) <= hi + 1e-12
    for lay in layers:
        assert 1 <= k_lo[lay.name] <= k_hi[lay.name] <= lay.channels


def test_greedy_stops_at_the_first_point_that_meets_the_target():
    layers = _layers(np.random.default_rng(1), 5)
    history = []
    ks = greedy_allocate(layers, 1.5, history=history)
    assert history[-1][2] <= 1.5 < history[-2][2]
    assert history[-1][1] == ks[history[-1][0]]


def test_greedy_cuts_the_layer_whose_components_carry_least_energy_per_bit():
    # Same sizes and bit costs (2 bits per coefficient, 2.0 bits/value at full k); "peaked"
    # holds its energy in one component, so its tail goes first: 4 drops reach 1.5.
    flat = _layer("flat", 8, 10, np.ones(8))
    peaked = _layer("peaked", 8, 10, [100, 1, 1, 1, 1, 1, 1, 1])
    assert greedy_allocate([flat, peaked], 1.5) == {"flat": 8, "peaked": 4}
    assert greedy_allocate([flat, peaked], 0.75) == {"flat": 5, "peaked": 1}
    assert greedy_allocate([flat, peaked], 2.0) == {"flat": 8, "peaked": 8}


def test_greedy_prefers_drops_that_save_more_bits():
    # Equal spectra; "cheap" coefficients cost 1 bit, "dear" ones 4: dropping a dear one
    # saves 4x the bits for the same energy.
    cheap = _layer("cheap", 4, 10, np.ones(4), bits_per_coef=1.0)
    dear = _layer("dear", 4, 10, np.ones(4), bits_per_coef=4.0)
    assert greedy_allocate([cheap, dear], 2.0) == {"cheap": 4, "dear": 3}
    assert greedy_allocate([cheap, dear], 1.0) == {"cheap": 4, "dear": 1}


def test_greedy_size_weighting_and_sensitivity():
    small = LayerCost("small", np.ones(4), 40, np.arange(1, 5) * 20.0)
    big = LayerCost("big", np.ones(4), 4000, np.arange(1, 5) * 2000.0)
    ks = greedy_allocate([small, big], 1.5)
    assert ks["small"] == 4 and ks["big"] < 4  # bits count each layer at its size
    assert network_bits_per_value([small, big], ks) <= 1.5
    shy = LayerCost("big", np.ones(4), 4000, np.arange(1, 5) * 2000.0, sensitivity=1e6)
    assert greedy_allocate([small, shy], 1.98)["small"] < 4


def test_greedy_errors():
    layers = _layers(np.random.default_rng(2), 3)
    lowest = network_bits_per_value(layers, {lay.name: 1 for lay in layers})
    with pytest.raises(ValueError, match=r"^Target of 0.01 bits per value cannot be met: the "
                                         r"greedy path ends at "):
        greedy_allocate(layers, 0.01)
    with pytest.raises(ValueError, match=re.escape(f"(lowest possible {lowest:.4f})")):
        greedy_allocate(layers, 0.01)
    with pytest.raises(ValueError, match=r"^Target bits per value must be a positive number, "
                                         r"not -1$"):
        greedy_allocate(layers, -1)
    with pytest.raises(ValueError, match=r"^Allocation needs at least one layer$"):
        greedy_allocate([], 1.0)
    with pytest.raises(ValueError, match=r"^Layer names must be unique$"):
        greedy_allocate([layers[0], layers[0]], 1.0)
    with pytest.raises(TypeError, match=r"^Layers must be golden.calibration.allocation."
                                        r"LayerCost, not dict$"):
        greedy_allocate([{}], 1.0)
    with pytest.raises(ValueError, match=r"^Minimum component count must be a positive "):
        greedy_allocate(layers, 1.0, min_k=0)


def test_layer_cost_validation():
    with pytest.raises(ValueError, match=r"^Layer 'a': bits table must have 3 entries "
                                         r"\(k = 1 \.\. 3\), not \(2,\)$"):
        LayerCost("a", np.ones(3), 30, [1, 2])
    with pytest.raises(ValueError, match=r"^Layer 'a': value count must be a positive "):
        LayerCost("a", np.ones(3), 0, [1, 2, 3])
    lay = LayerCost("a", np.ones(3), 30, lambda k: -1.0)
    with pytest.raises(ValueError, match=r"^Layer 'a': bits\(2\) must be a non-negative"):
        lay.bits_at(2)
    with pytest.raises(ValueError, match=r"^Component count must be between 1 and 3, not 4$"):
        lay.bits_at(4)
    calls = []
    lazy = LayerCost("b", np.ones(3), 30, lambda k: calls.append(k) or 10.0 * k)
    assert greedy_allocate([lazy], 20 / 30) == {"b": 2} and sorted(calls) == [1, 2, 3]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ceiling=st.floats(1.0, 3000.0))
def test_ceiling_is_respected_and_tight(seed, ceiling):
    layers = _layers(np.random.default_rng(seed), 4)
    if any(lay.bits_at(1) > ceiling for lay in layers):
        with pytest.raises(ValueError, match=r"^Ceiling of .* bits cannot be met: layer "):
            ceiling_allocate(layers, ceiling)
        return
    ks = ceiling_allocate(layers, ceiling)
    for lay in layers:
        k = ks[lay.name]
        assert lay.bits_at(k) <= ceiling
        assert k == lay.channels or lay.bits_at(k + 1) > ceiling


def test_ceiling_errors():
    lay = LayerCost("wide", np.ones(4), 400, [100.0, 200.0, 300.0, 400.0])
    assert ceiling_allocate([lay], 250) == {"wide": 2}
    assert ceiling_allocate([lay], 1e9) == {"wide": 4}
    with pytest.raises(ValueError, match=r"^Ceiling of 50 bits cannot be met: layer 'wide' "
                                         r"needs 100 bits with one component$"):
        ceiling_allocate([lay], 50)
    with pytest.raises(ValueError, match=r"^Ceiling must be a positive number of bits, not 0$"):
        ceiling_allocate([lay], 0)


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    # Six strong components, six so weak that their coefficients round to zero.
    spread = np.r_[np.geomspace(4.0, 0.5, 6), np.full(6, 1e-3)]
    return (rng.normal(size=(3000, 12)) * spread) @ q.T + 1.0


def test_layer_costs_match_the_calibrated_codec(samples):
    proj = pca_fit(samples)
    cost = layer_costs(proj, samples, values=12 * 3000, grid=None)
    for k in (1, 5, 12):
        art = calibrate_layer(proj.truncate(k), samples)
        y = forward_int(art, quantize_input(art, samples))
        assert cost.bits_at(k) == coded_bits(art, y), f"k={k}"
    assert np.all(np.diff(cost.bits) > 0)
    art = calibrate_layer(proj, samples)
    again = layer_costs(proj, samples, values=12 * 3000, grid=None, artifact=art)
    np.testing.assert_array_equal(again.bits, cost.bits)
    with pytest.raises(ValueError, match=r"^Layer costs need a one-group artifact"):
        layer_costs(proj, samples, 1200, artifact=calibrate_layer(proj, samples,
                                                                  group_bits=(8, 4)))
    coarse = layer_costs(proj, samples, values=12 * 3000, grid=4)
    assert coarse.bits_at(12) == cost.bits_at(12) and coarse.bits_at(1) == cost.bits_at(1)
    rl = layer_costs(proj, samples, values=12 * 3000, grid=None, run_length=True)
    art = calibrate_layer(proj, samples)
    y = forward_int(art, quantize_input(art, samples))
    for k in (3, 12):
        table = build_rl_table(y[:, :k].ravel(), 8, 12)
        _, nbits = encode_rl_tile(y[:, :k].ravel(), table)
        assert rl.bits_at(k) == nbits, f"run-length k={k}"
    assert rl.bits_at(12) <= cost.bits_at(12)
    auto = layer_costs(proj, samples, values=12 * 3000, grid=None, run_length="auto")
    np.testing.assert_array_equal(auto.bits, np.minimum(cost.bits, rl.bits))
    np.testing.assert_array_equal(
        layer_costs(proj, samples, values=12 * 3000, grid=None, run_length="on").bits, rl.bits)


def test_cli_adapters(samples):
    proj = pca_fit(samples)
    sizes = {"a": 12 * 100}
    ks = allocate_greedy({"a": proj}, {"a": samples}, 1.0, sizes=sizes)
    assert 1 <= ks["a"] < 12
    full = allocate_ceiling({"a": proj}, {"a": samples}, 1e9, sizes=sizes)
    assert full == {"a": 12}
    with pytest.raises(ValueError, match=r"^Allocation needs the feature-map sizes"):
        allocate_greedy({"a": proj}, {"a": samples}, 1.0)
    with pytest.raises(ValueError, match=r"^Layer costs need the full projection"):
        layer_costs(proj.truncate(3), samples, 1200)


def test_layer_sensitivity_is_kl_per_relative_error():
    import torch
    from torch import nn

    from golden.calibration.allocation import layer_sensitivity
    from golden.nets.capture import capture, replaced
    from golden.projection.learning import Projector
    from golden.projection.pca import k_for_energy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10)).eval()
    x = torch.randn(32, 3, 4, 4)
    maps = capture(model, x, ["1", "3"])
    proj = {p: pca_fit(maps[p].numpy()) for p in ("1", "3")}
    sens = layer_sensitivity(model, x, proj, threshold=0.8, batch=5)

    def logits():  # in batches of 5, as asked of layer_sensitivity: the same float32 sums
        return torch.cat([model(x[s:s + 5]) for s in range(0, len(x), 5)])

    for p in ("1", "3"):
        k = k_for_energy(proj[p].eigenvalues, 0.8)
        with torch.no_grad():
            base = logits().log_softmax(1)
            with replaced(model, {p: Projector(proj[p].truncate(k))}):
                logq = logits().log_softmax(1)
            kl = float((base.exp() * (base - logq)).sum(1).mean())
            a = maps[p].double().numpy().reshape(-1, 8)
            t = proj[p].truncate(k)
            rec = t.reconstruct(t.project(a))
        rel = ((rec - a) ** 2).sum() / ((a - a.mean(0)) ** 2).sum()
        # The KL is the same float32 arithmetic; the relative error here is float64, there
        # from the float32 reconstruction (~1e-7 relative per value): they agree to ~1e-7.
        assert sens[p] == pytest.approx(kl / rel, rel=1e-5), p
    dead = nn.Sequential(*model[:5], nn.Linear(8 * 4 * 4, 10)).eval()
    with torch.no_grad():
        dead[5].weight.zero_()  # output ignores every map: no sensitivity, the floor is 1
    assert layer_sensitivity(dead, x, proj) == {"1": 1.0, "3": 1.0}


def test_allocators_measure_each_point_in_its_stored_format(samples):
    # A ReLU map is stored unsigned (golden.datapath.scales.activation_format): its bits(k) are
    # those
    # of the 9-bit-at-the-MACs artifact calibrate_network builds, a signed map's the 8-bit one.
    from golden.calibration.allocation import _costs_from_cli

    relu_map = np.clip(samples, 0.0, None)
    projs = {"relu": pca_fit(relu_map), "signed": pca_fit(samples)}
    data = {"relu": relu_map, "signed": samples}
    sizes = {"relu": 1200, "signed": 1200}
    costs = _costs_from_cli(projs, data, sizes, grid=None)
    want = layer_costs(projs["relu"], relu_map, 1200, grid=None, in_bits=9, relu=True)
    np.testing.assert_array_equal(costs[0].bits, want.bits)
    want = layer_costs(projs["signed"], samples, 1200, grid=None)
    np.testing.assert_array_equal(costs[1].bits, want.bits)
    off = _costs_from_cli(projs, data, sizes, grid=None, unsigned=False)
    assert off[0].bits[-1] < costs[0].bits[-1]  # the finer unsigned step costs bits at full k
