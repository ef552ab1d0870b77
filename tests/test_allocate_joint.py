"""golden.calibration.allocation's joint allocation of component count and coefficient
precision: the chain of levels per point, their coded bits, their measured KL on a real
network, the greedy descent, and the CLI that folds the result into artifacts."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from golden.calibration.allocation import (
    allocate_joint,
    greedy_levels,
    joint_costs,
    level_bits,
    level_kl_curves,
    precision_levels,
    variance_ordered,
)
from golden.calibration.folding import calibrate_layer
from golden.datapath.artifacts import load_artifact
from golden.datapath.pipeline import coded_bits, forward_int, quantize_input
from golden.projection.learning import Projector, quant_format
from golden.projection.pca import pca_fit


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    spread = np.geomspace(6.0, 0.02, 12)
    return (rng.normal(size=(4000, 12)) * spread) @ q.T + 1.0


def test_levels_start_at_the_8bit_steps_and_share_one_step_below(samples):
    proj = pca_fit(samples)
    base = quant_format(proj, samples).steps
    chain = precision_levels(proj.eigenvalues, base, levels=10, keep=0.0)
    assert len(chain) == 10
    first = chain[0]
    assert first.k == 12 and first.group_bits.tolist() == [8]
    np.testing.assert_array_equal(first.steps, base)
    prev = first
    for c, lev in enumerate(chain[1:], 1):
        delta = base.min() * 2 ** (c / 2)
        assert lev.k == 12  # keep 0: no component is dropped
        np.testing.assert_allclose(lev.steps, np.maximum(base, delta), rtol=1e-12)
        w = lev.widths
        assert np.all(np.diff(w) <= 0) and w.min() >= 2 and w.max() <= 8
        # Every width covers the component's 8-bit range at its step ...
        assert np.all(((1 << (w - 1)) - 1) * lev.steps >= 127 * base * (1 - 1e-12) - lev.steps)
        # ... and groups are runs of equal widths.
        assert np.all(np.diff(lev.group_bits) < 0)
        assert lev.group_bounds[0] == 0 and lev.group_bounds[-1] == 12
        assert np.all(lev.steps >= prev.steps) and np.all(w <= prev.widths)
        prev = lev
    assert chain[-1].widths.min() < 8  # coarse steps narrow the minor components


def test_keep_drops_the_components_below_the_water_level(samples):
    proj = pca_fit(samples)
    base = quant_format(proj, samples).steps
    chain = precision_levels(proj.eigenvalues, base, levels=12, keep=0.6)
    sigma = np.sqrt(proj.eigenvalues)
    ks = [lev.k for lev in chain]
    assert ks[0] == 12 and ks == sorted(ks, reverse=True) and ks[-1] < 12
    for c, lev in enumerate(chain[1:], 1):
        delta = base.min() * 2 ** (c / 2)
        assert lev.k == max(1, int(np.sum(sigma >= 0.6 * delta)))
        assert lev.steps.shape == (lev.k,)


def test_level_errors(samples):
    proj = pca_fit(samples)
    base = quant_format(proj, samples).steps
    with pytest.raises(ValueError, match=r"^Base steps must be 12 positive numbers, not "
                                         r"shape \(11,\)$"):
        precision_levels(proj.eigenvalues, base[:11])
    with pytest.raises(ValueError, match=r"^Level count must be a positive integer, not 0$"):
        precision_levels(proj.eigenvalues, base, levels=0)
    with pytest.raises(ValueError, match=r"^Step factor must be greater than 1, not 1\.0$"):
        precision_levels(proj.eigenvalues, base, factor=1.0)


def test_level_bits_are_what_the_folded_artifact_codes(samples):
    proj = pca_fit(samples)
    fmt = quant_format(proj, samples)
    chain = precision_levels(proj.eigenvalues, fmt.steps, levels=12)
    x_q = np.clip(np.rint(samples / fmt.x_scale), fmt.x_lo, fmt.x_hi) * fmt.x_scale
    bits = level_bits(chain, proj.project(x_q), 12 * 4000)
    assert np.all(np.diff(bits) < 0)  # coarser steps code smaller
    for c in (0, 5, 11):
        lev = chain[c]
        art = calibrate_layer(proj.truncate(lev.k), samples, group_bounds=lev.group_bounds,
                              group_bits=lev.group_bits, steps=lev.steps)
        assert art.group_bits.tolist() == lev.group_bits.tolist()
        y = forward_int(art, quantize_input(art, samples))
        # level_bits rounds the float projection, the artifact its 8-bit weights'
        # integer one: a few coefficients land in the neighbouring bin.
        assert coded_bits(art, y) == pytest.approx(bits[c], rel=0.02), c
    with pytest.raises(ValueError, match=r"^Coefficient steps must be 12 positive numbers"):
        calibrate_layer(proj, samples, steps=np.ones(11))


def test_level_bits_in_run_length_mode(samples):
    """level_bits(run_length=...) counts what calibrate_layer(run_length=...) codes: "auto"
    is the smaller mode of the layer, level by level, and wins at the coarse levels."""
    proj = pca_fit(samples)
    fmt = quant_format(proj, samples)
    chain = precision_levels(proj.eigenvalues, fmt.steps, levels=12)
    x_q = np.clip(np.rint(samples / fmt.x_scale), fmt.x_lo, fmt.x_hi) * fmt.x_scale
    y = proj.project(x_q)
    bits = {m: level_bits(chain, y, 12 * 4000, run_length=m) for m in ("off", "on", "auto")}
    np.testing.assert_array_equal(bits["auto"], np.minimum(bits["off"], bits["on"]))
    assert bits["on"][-1] < bits["off"][-1], "coarsest level: mostly zeros, runs pay"
    np.testing.assert_array_equal(level_bits(chain, y, 12 * 4000, run_length=True), bits["on"])
    lev = chain[-1]
    art = calibrate_layer(proj.truncate(lev.k), samples, group_bounds=lev.group_bounds,
                          group_bits=lev.group_bits, steps=lev.steps, run_length="auto")
    assert all(t.run_max for t in art.tables.tables)
    # Float against 8-bit-weight projection, as above; the calibration pixels are one tile.
    assert coded_bits(art, forward_int(art, quantize_input(art, samples))) == pytest.approx(
        bits["auto"][-1], rel=0.03)
    with pytest.raises(ValueError, match=r"^Run-length mode must be one of off, on, auto"):
        level_bits(chain, y, 12 * 4000, run_length="sometimes")


def test_greedy_levels_spends_kl_where_it_is_cheapest():
    bits = {"a": [100.0, 60.0, 30.0], "b": [100.0, 60.0, 30.0]}
    cost = {"a": [0.0, 1.0, 5.0], "b": [0.0, 0.1, 0.3]}
    values = {"a": 50, "b": 50}
    assert greedy_levels(bits, cost, values, 2.0) == {"a": 0, "b": 0}
    assert greedy_levels(bits, cost, values, 1.6) == {"a": 0, "b": 1}
    assert greedy_levels(bits, cost, values, 1.3) == {"a": 0, "b": 2}
    assert greedy_levels(bits, cost, values, 0.9) == {"a": 1, "b": 2}
    # A level that saves nothing is skipped for the next one within the lookahead.
    flat = {"a": [100.0, 100.0, 30.0], "b": [100.0, 99.0, 98.0]}
    assert greedy_levels(flat, {"a": [0, 0, 1.0], "b": [0, 5.0, 6.0]}, values, 1.4) == \
        {"a": 2, "b": 0}
    with pytest.raises(ValueError, match=r"^Target of 0\.5 bits per value cannot be met: the "
                                         r"coarsest levels reach 0\.6000$"):
        greedy_levels(bits, cost, values, 0.5)
    with pytest.raises(ValueError, match=r"^Target bits per value must be a positive number"):
        greedy_levels(bits, cost, values, 0)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.ReLU6(),
        torch.nn.Flatten(), torch.nn.Linear(12 * 6 * 6, 10)).eval()
    with torch.no_grad():
        model[-1].weight *= 20  # confident outputs: KLs well above float32 noise
    x = torch.rand(40, 3, 6, 6) * 4
    from golden.nets.capture import capture

    maps = capture(model, x, ["1", "3"])
    samples = {p: m.reshape(-1, m.shape[-1]).double().numpy() for p, m in maps.items()}
    pcas = {p: pca_fit(s) for p, s in samples.items()}
    formats = {p: quant_format(pcas[p], samples[p]) for p in pcas}
    sizes = {p: int(np.prod(m.shape[1:])) for p, m in maps.items()}
    return model, x, samples, pcas, formats, sizes


def _kl(model, x, fns):
    from golden.nets.capture import replaced

    with torch.no_grad():
        base = torch.cat([model(x[s:s + 8]).float() for s in range(0, len(x), 8)])
        with replaced(model, fns):
            q = torch.cat([model(x[s:s + 8]).float() for s in range(0, len(x), 8)])
    base, q = base.double().log_softmax(1), q.double().log_softmax(1)
    return float((base.exp() * (base - q)).sum(1).mean())


def _projector(pcas, formats, p, lev):
    fmt = dataclasses.replace(formats[p], steps=lev.steps, widths=lev.widths)
    return Projector(pcas[p].truncate(lev.k), quant=fmt)


def test_level_kl_is_measured_on_the_network_alone_and_in_context(net):
    model, x, samples, pcas, formats, sizes = net
    chains = {p: precision_levels(pcas[p].eigenvalues, formats[p].steps, levels=8)
              for p in pcas}
    curves = level_kl_curves(model, x, pcas, formats, chains, measure=[0, 3, 7])
    for p in pcas:
        assert curves[p].shape == (8,)
        wants = [_kl(model, x, {p: _projector(pcas, formats, p, chains[p][c])})
                 for c in (0, 3, 7)]
        # Same float32 passes in the same batches; between measured levels the curve is
        # interpolated, then made non-decreasing (a running maximum).
        for i, c in enumerate((0, 3, 7)):
            assert curves[p][c] == pytest.approx(max(wants[:i + 1]), abs=1e-12), (p, c)
        assert curves[p][1] == pytest.approx(max(wants[0], (2 * wants[0] + wants[1]) / 3),
                                             abs=1e-12)
        assert np.all(np.diff(curves[p]) >= 0)
    assert curves["3"][7] > 10 * curves["3"][0]  # coarse steps cost the output
    ctx = level_kl_curves(model, x, pcas, formats, chains, measure=[0, 7], context={"1": 7})
    # In context, point 3's curve starts at the KL of point 1 at its coarsest level.
    alone_1 = _kl(model, x, {"1": _projector(pcas, formats, "1", chains["1"][7])})
    assert ctx["3"][0] == pytest.approx(
        _kl(model, x, {"1": _projector(pcas, formats, "1", chains["1"][7]),
                       "3": _projector(pcas, formats, "3", chains["3"][0])}), abs=1e-12)
    assert ctx["3"][0] > 0.5 * alone_1


def test_allocate_joint_meets_the_target_and_re_measures_in_context(net):
    model, x, samples, pcas, formats, sizes = net
    costs = joint_costs(model, x[-8:], pcas, samples, formats, sizes, levels=10)
    total = sum(sizes.values())
    top = sum(costs.bits[p][0] for p in pcas) / total
    target = 0.5 * top
    hist = []
    levels = allocate_joint(costs, target, rounds=1, history=hist)
    assert len(hist) == 2
    for h in hist:
        assert sum(costs.bits[p][c] for p, c in h.items()) / total <= target + 1e-12
        assert any(c > 0 for c in h.values())
    assert {p: lev.k for p, lev in levels.items()} == {p: pcas[p].channels for p in pcas}
    for p, lev in levels.items():
        assert lev is costs.chains[p][hist[-1][p]]


def test_cli_joint_allocation_folds_its_levels(tmp_path):
    from golden.__main__ import main

    out = tmp_path / "joint"
    assert main(["calibrate", "--model", "digits", "--bits-per-value", "2.0", "--allocation",
                 "joint", "--num-images", "400", "--num-eval", "100", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["allocation"] == "joint"
    assert report["joint"] == {"levels": 14, "keep": 0.0, "rounds": 0, "reallocate": False}
    assert report["network"]["bits_per_value"] < 2.0 * 1.1
    widths = set()
    for lay in report["layers"]:
        art = load_artifact(out / lay["file"])
        assert art.group_bits.tolist() == lay["group_bits"]
        assert art.group_bounds.tolist() == lay["group_bounds"]
        widths |= set(lay["group_bits"])
    assert min(widths) < 8  # some components were narrowed


def test_cli_run_length_auto_writes_version_2_tables(tmp_path):
    """--run-length auto: the allocation counts run-length bits, and the coarse layers of a
    low rate get version-2 tables, which the report lists per group."""
    from golden.__main__ import main

    out = tmp_path / "rl"
    assert main(["calibrate", "--model", "digits", "--bits-per-value", "1.25", "--allocation",
                 "joint", "--keep", "0.3", "--run-length", "auto", "--num-images", "400",
                 "--num-eval", "100", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["run_length"] == "auto"
    modes = []
    for lay in report["layers"]:
        art = load_artifact(out / lay["file"])
        assert lay["group_run_max"] == [t.run_max for t in art.tables.tables]
        modes.append(bool(lay["group_run_max"][0]))
        assert len(set(map(bool, lay["group_run_max"]))) == 1, "one mode per layer"
    assert any(modes), report["layers"]


def test_variance_ordered_sorts_a_learned_basis_without_changing_it(samples):
    """A basis whose components are in no particular order (as learning leaves them) comes
    back sorted by its coefficients' variance, which become its eigenvalues; projecting and
    reconstructing through it gives what the unsorted one gives."""
    rng = np.random.default_rng(3)
    pca = pca_fit(samples)
    order = rng.permutation(7)
    forward = pca.forward[:7][order] + 0.01 * rng.normal(size=(7, 12))
    from golden.projection.pca import Projection
    learned = Projection(pca.mean, forward, np.linalg.pinv(forward), pca.eigenvalues)
    ordered = variance_ordered(learned, samples)
    var = learned.project(samples).var(axis=0)
    assert ordered.k == 7 and ordered.eigenvalues.shape == (7,)
    assert np.all(np.diff(ordered.eigenvalues) <= 0)
    np.testing.assert_allclose(ordered.eigenvalues, np.sort(var)[::-1], rtol=1e-12)
    np.testing.assert_allclose(ordered.reconstruct(ordered.project(samples)),
                               learned.reconstruct(learned.project(samples)), atol=1e-9)
    assert not np.all(order == np.arange(7))  # the permutation was not the identity


def test_cli_reallocate_after_learning(tmp_path):
    """--reallocate: the joint allocation runs again on the learned bases; the report keeps
    the first allocation, and every point keeps at most the components it learned."""
    from golden.__main__ import main

    out = tmp_path / "re"
    assert main(["calibrate", "--model", "digits", "--bits-per-value", "1.5", "--allocation",
                 "joint", "--method", "cap", "--learn-steps", "20", "--reallocate",
                 "--num-images", "400", "--num-eval", "100", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    joint = report["joint"]
    assert joint["reallocate"] is True
    first = joint["before_learning"]
    assert set(first) == {lay["name"] for lay in report["layers"]}
    for lay in report["layers"]:
        art = load_artifact(out / lay["file"])
        assert art.k == lay["k"] <= first[lay["name"]]["k"]
        assert art.group_bits.tolist() == lay["group_bits"]
    assert report["network"]["bits_per_value"] < 1.5 * 1.1


@pytest.mark.parametrize("flag, value, message", [
    ("--method", "pca", "--reallocate needs --bits-per-value with --allocation joint and "
                        "--method cap or price"),
    ("--allocation", "kl", "--reallocate needs --bits-per-value with --allocation joint and "
                           "--method cap or price"),
])
def test_cli_reallocate_errors(tmp_path, capsys, flag, value, message):
    from golden.__main__ import main

    out = tmp_path / "bad"
    args = ["calibrate", "--model", "digits", "--bits-per-value", "2.0", "--allocation",
            "joint", "--method", "cap", "--reallocate", flag, value, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"python -m golden: error: {re.escape(message)}\n", err), err
    assert not out.exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--levels", "0", "--levels must be a positive integer, not 0"),
    ("--keep", "-1", "--keep must not be negative, not -1.0"),
    ("--rounds", "-2", "--rounds must not be negative, not -2"),
])
def test_cli_joint_errors(tmp_path, capsys, flag, value, message):
    from golden.__main__ import main

    out = tmp_path / "bad"
    assert main(["calibrate", "--model", "digits", "--bits-per-value", "2.0", "--allocation",
                 "joint", flag, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"python -m golden: error: {re.escape(message)}\n", err), err
    assert not out.exists()
