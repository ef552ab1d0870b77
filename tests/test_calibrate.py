"""Coefficient calibration, folding into integer artifacts, artifact files, test vectors."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.calibration.folding import calibrate_layer
from golden.codec.plain import decode_groups
from golden.datapath.artifacts import ARTIFACT_KEYS, load_artifact, save_artifact
from golden.datapath.pipeline import (
    coded_bits,
    forward_int,
    inverse_int,
    layer_vectors,
    quantize_input,
    roundtrip,
)
from golden.datapath.quant import int_range
from golden.datapath.scales import clip_scale, component_scales, split_groups
from golden.projection.pca import pca_fit


def low_rank(n=4000, c=24, rank=5, seed=0, positive=True):
    """Activations with a few strong directions, a mean and a little noise, like a ReLU map."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, c))
    z = rng.normal(size=(n, rank)) * np.geomspace(3.0, 0.2, rank)
    x = z @ basis + 0.05 * rng.normal(size=(n, c)) + 1.0
    return np.clip(x, 0, 6) if positive else x


def reference_pixel(art, x_int):
    """The pipeline in words, with Python integers, for one pixel (independent of
    golden.datapath.mac)."""
    def requant(acc, mult, shift, bits, relu):
        v = (acc * mult + ((1 << shift) >> 1)) >> shift
        lo, hi = int_range(bits)
        return min(hi, max(0 if relu else lo, v))

    y = []
    for k in range(art.k):
        acc = sum(int(w) * int(v) for w, v in zip(art.fwd_weight[k], x_int)) + int(
            art.fwd_bias[k])
        v = requant(acc, int(art.fwd_mult[k]), int(art.fwd_shift[k]), art.coef_bits, False)
        g = int(np.searchsorted(art.group_bounds, k, side="right")) - 1
        lo, hi = int_range(int(art.group_bits[g]))
        y.append(min(hi, max(lo, v)))
    out = []
    for c in range(art.channels):
        acc = sum(int(w) * v for w, v in zip(art.inv_weight[c], y)) + int(art.inv_bias[c])
        out.append(requant(acc, int(art.inv_mult[c]), int(art.inv_shift[c]), art.out_bits,
                           art.relu))
    return y, out


@pytest.fixture(scope="module")
def layer():
    x = low_rank()
    proj = pca_fit(x[:3000], k=6)
    return proj, x[:3000], x[3000:]


# ---------------------------------------------------------------------------------------------
# Scales


def test_clip_scale_methods():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.laplace(size=20000), [40.0]])  # heavy tail, one outlier
    s_max = clip_scale(v, 8, "max")
    assert s_max == pytest.approx(40.0 / 127)
    s_pct = clip_scale(v, 8, "percentile", percentile=99.0)
    assert s_pct == pytest.approx(np.percentile(np.abs(v), 99.0) / 127)
    s_mse = clip_scale(v, 4, "mse")
    s_kl = clip_scale(v, 4, "kl")
    assert s_mse < clip_scale(v, 4, "max") and 0 < s_kl < clip_scale(v, 4, "max")

    def mse(s, bits=4):
        q = np.clip(np.rint(v / s), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return np.mean((v - q * s) ** 2)

    # The MSE clip beats max-abs and percentile at 4 bits (by far, with the outlier).
    assert mse(s_mse) < 0.5 * mse(clip_scale(v, 4, "max"))
    assert mse(s_mse) <= mse(clip_scale(v, 4, "percentile"))
    assert clip_scale(np.zeros(10), 8, "mse") == 1.0


def test_clip_scale_errors():
    with pytest.raises(ValueError, match=r"^Calibration method must be one of max, percentile, "
                                         r"mse, kl, not 'median'$"):
        clip_scale([1.0], 8, "median")
    with pytest.raises(ValueError, match=r"^Bit width must be an integer between 2 and 16, "
                                         r"not 1$"):
        clip_scale([1.0], 1)
    with pytest.raises(ValueError, match=r"^Calibration values must be finite$"):
        clip_scale([1.0, np.nan], 8)


def test_split_groups():
    b, g = split_groups(10, [8, 6, 4])
    assert b.tolist() == [0, 3, 7, 10] and g.tolist() == [8, 6, 4]
    b, g = split_groups(2, [8, 6, 4])
    assert b.tolist() == [0, 1, 2] and g.tolist() == [8, 6]
    with pytest.raises(ValueError, match=r"^Group widths must be a non-empty list of integers "
                                         r"between 2 and 8, not \[9\]$"):
        split_groups(4, [9])


def test_component_scales_per_layer_and_per_component():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(5000, 4)) * np.array([10.0, 1.0, 0.1, 0.01])
    per_comp = component_scales(y, [0, 4], [8], "max")
    np.testing.assert_allclose(per_comp, np.abs(y).max(0) / 127)
    per_layer = component_scales(y, [0, 2, 4], [8, 4], "max", "layer")
    assert per_layer[0] == per_layer[1] == pytest.approx(np.abs(y[:, :2]).max() / 127)
    assert per_layer[2] == per_layer[3] == pytest.approx(np.abs(y[:, 2:]).max() / 7)


# ---------------------------------------------------------------------------------------------
# Folding and the integer pipeline


def test_roundtrip_tracks_the_float_projection(layer):
    proj, calib, held = layer
    art = calibrate_layer(proj, calib, name="toy")
    x_rec, y_int = roundtrip(art, held)
    ideal = proj.reconstruct(proj.project(held))
    err_int = np.mean((x_rec - held) ** 2)
    err_float = np.mean((ideal - held) ** 2)
    # Integer effects add little on top of the truncation error of the float projection.
    assert err_int < 1.3 * err_float + 1e-3, (err_int, err_float)
    assert y_int.shape == (len(held), 6)
    # Without truncation the round trip is only quantization noise.
    full = calibrate_layer(pca_fit(calib), calib)
    x_full, _ = roundtrip(full, held)
    assert np.mean((x_full - held) ** 2) < 0.02 * held.var()


def test_fast_path_equals_reference_matvec(layer):
    proj, calib, held = layer
    art = calibrate_layer(proj, calib, group_bits=(8, 5), w_bits=8)
    x_int = quantize_input(art, held)
    y_fast = forward_int(art, x_int)
    y_ref = forward_int(art, x_int, reference=True)
    np.testing.assert_array_equal(y_fast, y_ref, err_msg="forward fast path != matvec")
    np.testing.assert_array_equal(inverse_int(art, y_ref), inverse_int(art, y_ref, True),
                                  err_msg="inverse fast path != matvec")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), bits=st.lists(st.integers(2, 8), min_size=1, max_size=3),
       relu=st.booleans(), method=st.sampled_from(["max", "percentile", "mse"]),
       w_bits=st.sampled_from([4, 8, 12]))
def test_pipeline_matches_independent_reference(seed, bits, relu, method, w_bits):
    x = low_rank(n=600, c=10, rank=4, seed=seed, positive=False)
    art = calibrate_layer(pca_fit(x, k=5), x, group_bits=bits, relu=relu, method=method,
                          w_bits=w_bits)
    vec = layer_vectors(art, x[:7])
    for n in range(7):
        y, out = reference_pixel(art, vec["x_int"][n])
        assert vec["y_int"][n].tolist() == y, f"pixel {n} coefficients"
        assert vec["x_rec_int"][n].tolist() == out, f"pixel {n} reconstruction"


def test_mixed_precision_groups(layer):
    proj, calib, held = layer
    art = calibrate_layer(proj, calib, group_bits=(8, 4, 2), method="mse")
    assert art.group_bounds.tolist() == [0, 2, 4, 6] and art.coef_bits == 8
    _, y = roundtrip(art, held)
    for lo, hi, b in zip(art.group_bounds[:-1], art.group_bounds[1:], art.group_bits):
        lo_v, hi_v = int_range(int(b))
        assert y[:, lo:hi].min() >= lo_v and y[:, lo:hi].max() <= hi_v
    assert [t.bits for t in art.tables.tables] == [8, 4, 2]
    # Fewer bits, fewer coded bits.
    wide = calibrate_layer(proj, calib, group_bits=(8,), method="mse")
    assert coded_bits(art, y) < coded_bits(wide, roundtrip(wide, held)[1])


def test_relu_clamps_reconstruction(layer):
    proj, calib, held = layer
    art = calibrate_layer(proj, calib, relu=True)
    assert roundtrip(art, held)[0].min() >= 0
    assert roundtrip(calibrate_layer(proj, calib), held)[0].min() < 0


def test_layer_vectors_bitstream(layer):
    proj, calib, held = layer
    art = calibrate_layer(proj, calib, group_bits=(8, 6))
    vec = layer_vectors(art, held.reshape(10, 100, 24))
    assert vec["x_int"].shape == (1000, 24) and vec["y_int"].shape == (1000, 6)
    assert vec["nbits"] == coded_bits(art, vec["y_int"])
    assert len(vec["words"]) == -(-vec["nbits"] // 32)
    back = decode_groups(vec["words"], vec["nbits"], 1000, art.tables.tables,
                         art.group_bounds.tolist())
    np.testing.assert_array_equal(back, vec["y_int"], err_msg="bitstream does not decode")
    np.testing.assert_array_equal(vec["x_rec"], vec["x_rec_int"] * art.out_scale)


def test_calibrate_errors(layer):
    proj, calib, _ = layer
    with pytest.raises(ValueError, match=r"^Calibration activations must be channels-last with "
                                         r"24 channels, not shape \(10, 5\)$"):
        calibrate_layer(proj, np.zeros((10, 5)))
    with pytest.raises(TypeError, match=r"^Projection must be a golden.projection.pca.Projection"):
        calibrate_layer("pca", calib)
    big = pca_fit(calib + 1000.0, k=3)
    with pytest.raises(ValueError, match=r"^Forward projection bias needs more than 8 bits"):
        calibrate_layer(big, calib + 1000.0, bias_bits=8)
    art = calibrate_layer(proj, calib)
    with pytest.raises(ValueError, match=r"^Activations must be channels-last with 24 channels"):
        roundtrip(art, np.zeros((3, 4)))


# ---------------------------------------------------------------------------------------------
# Artifact files


def test_artifact_save_load_round_trip(layer, tmp_path):
    proj, calib, held = layer
    art = calibrate_layer(proj, calib, name="features.3", group_bits=(8, 4), relu=True)
    path = save_artifact(art, tmp_path / "a.npz")
    with np.load(path) as npz:
        assert set(npz.files) == ARTIFACT_KEYS
        assert npz["fwd_weight"].shape == (6, 24) and npz["inv_weight"].shape == (24, 6)
        assert npz["tables"].dtype == np.uint8
    back = load_artifact(path)
    assert back.name == "features.3" and (back.channels, back.k) == (24, 6) and back.relu
    for key in ("fwd_weight", "fwd_bias", "fwd_mult", "fwd_shift", "inv_weight", "inv_bias",
                "inv_mult", "inv_shift", "group_bounds", "group_bits"):
        np.testing.assert_array_equal(getattr(back, key), getattr(art, key), err_msg=key)
    assert back.tables == art.tables
    assert back.x_scale == art.x_scale and back.out_scale == art.out_scale
    np.testing.assert_array_equal(roundtrip(back, held)[0], roundtrip(art, held)[0])
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temp files left


def _rewrite(path, **changes):
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    for k, v in changes.items():
        if v is None:
            del data[k]
        else:
            data[k] = v
    np.savez(path, **data)


@pytest.mark.parametrize("changes, message", [
    ({"fwd_bias": None}, r"lacks fwd_bias$"),
    ({"extra": np.zeros(1)}, r"has unknown extra$"),
    ({"inv_weight": np.zeros((24, 6))}, r"Artifact inv_weight must hold integers, not float64$"),
    ({"fwd_mult": np.zeros(5, np.int64)}, r"Artifact fwd_mult must have shape \(6,\), not \(5,\)$"),
    ({"w_bits": np.int64(3)}, r"Artifact fwd_weight values must fit the 3-bit signed range"),
    ({"tables": np.zeros(40, np.uint8)}, r"Artifact tables are corrupt: "),
    ({"group_bits": np.array([8, 9])}, r"Artifact group_bits must be between 2 and 8"),
    ({"x_scale": np.float64(-1.0)}, r"Artifact x_scale must be positive and finite, not -1.0$"),
    ({"k": np.int64(7)}, r"Artifact channels/k \(24, 7\) do not match its weights \(24, 6\)$"),
])
def test_artifact_load_errors(layer, tmp_path, changes, message):
    proj, calib, _ = layer
    path = save_artifact(calibrate_layer(proj, calib, group_bits=(8, 4)), tmp_path / "a.npz")
    _rewrite(path, **changes)
    with pytest.raises(ValueError, match=r"^Artifact file '.*a.npz'(:| ).*" + message):
        load_artifact(path)


def test_artifact_load_not_npz(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"^Artifact file '.*x.npz' is not a readable npz"):
        load_artifact(tmp_path / "x.npz")
    with pytest.raises(ValueError, match=re.escape("does not exist")):
        load_artifact(tmp_path / "missing.npz")


def test_step_floor_keeps_components_unseen_in_calibration():
    # Like a deep ReLU map seen on a few photos: 3 channels active, 9 almost always exactly 0
    # (so their components barely vary); other photos use all 12.
    rng = np.random.default_rng(5)
    calib = np.zeros((4000, 12))
    calib[:, :3] = np.abs(rng.normal(size=(4000, 3))) * 2
    calib[:, 0] = 6.0 * (rng.random(4000) < 0.01)  # pins x_scale to 6 / 127
    calib[::97, 3:] = 6.0 / 127
    held = np.abs(rng.normal(size=(500, 12)))
    proj = pca_fit(calib)  # all 12 components: lossless but for quantization

    def err(art):
        return np.mean((roundtrip(art, held)[0] - held) ** 2)

    floored = calibrate_layer(proj, calib, method="max")
    bare = calibrate_layer(proj, calib, method="max", min_step=0)
    assert err(floored) < 0.2 * err(bare), (err(floored), err(bare))


def test_calibrate_network_on_a_users_module():
    import torch

    from golden.calibration.network import calibrate_network
    from golden.calibration.report import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()
    x = torch.randn(40, 3, 12, 12)
    arts = calibrate_network(model, x[:24], threshold=1.0, max_pixels=2000)
    assert list(arts) == ["1", "3"] and all(a.channels == 8 for a in arts.values())
    result = evaluate(model, x[24:], arts)
    assert result["network"]["num_eval_inputs"] == 16
    assert result["network"]["top1_agreement"] >= 0.85
    assert all(lay["relative_error"] < 0.05 for lay in result["layers"].values())
    few = calibrate_network(model, x[:24], ks={"1": 1, "3": 1}, max_pixels=2000)
    worse = evaluate(model, x[24:], few)
    assert worse["network"]["bits_per_value"] < result["network"]["bits_per_value"]
    # At full k this random head's KL is float32 noise (~1e-8, of either sign); one component
    # per point moves it to ~5e-5, thousands of times that noise.
    assert worse["network"]["mean_kl"] > result["network"]["mean_kl"]
    assert worse["network"]["mean_kl"] > 1e-6
    with pytest.raises(ValueError, match=r"^Give exactly one of threshold and ks$"):
        calibrate_network(model, x, threshold=0.9, ks={})


# ---------------------------------------------------------------------------------------------
# Activation format and step (issue 4: what the integer pipeline alone costs)


def test_activation_format():
    from golden.datapath.scales import activation_format

    relu_map = low_rank()
    assert relu_map.min() == 0.0
    assert activation_format(relu_map) == (9, True)
    assert activation_format(relu_map, 6) == (7, True)
    assert activation_format(relu_map, unsigned=False) == (8, False)
    assert activation_format(low_rank(positive=False)) == (8, False)
    assert activation_format(low_rank(positive=False), unsigned=False) == (8, False)
    with pytest.raises(ValueError, match=r"^Activations stored unsigned must not be negative$"):
        activation_format(low_rank(positive=False), unsigned=True)
    with pytest.raises(ValueError, match=r"^Activation width must be an integer between 2 and "
                                         r"15, not 16$"):
        activation_format(relu_map, 16)
    with pytest.raises(ValueError, match=r"^Unsigned must be 'auto', True or False, not 'yes'$"):
        activation_format(relu_map, unsigned="yes")


def test_unsigned_format_quarters_the_activation_error(layer):
    # A ReLU map stored unsigned in 8 bits: x_int spans 0..255 (9-bit signed at the MACs), the
    # step halves, and the reconstruction stays in the stored range.
    from golden.datapath.scales import activation_format

    proj, calib, held = layer
    in_bits, relu = activation_format(calib)
    unsigned = calibrate_layer(proj, calib, in_bits=in_bits, relu=relu)
    signed = calibrate_layer(proj, calib)
    assert unsigned.x_scale == pytest.approx(clip_scale(calib, 9, "mse"))
    assert 0.45 < unsigned.x_scale / signed.x_scale < 0.55

    def act_err(art):
        return np.mean((quantize_input(art, held) * art.x_scale - held) ** 2)

    assert act_err(unsigned) < 0.3 * act_err(signed)
    x_rec_int = inverse_int(unsigned, forward_int(unsigned, quantize_input(unsigned, held)))
    assert x_rec_int.min() >= 0 and x_rec_int.max() <= 255 and x_rec_int.max() > 127


def test_default_activation_step_is_the_mse_clip():
    # Heavy-tailed activations (as MobileNetV2's expansion outputs, whose largest value is
    # several times the 99.99th percentile): the max-abs step rounds every value coarsely to
    # make room for a handful of peaks; the MSE clip trades those peaks for finer steps.
    rng = np.random.default_rng(4)
    x = np.abs(rng.laplace(size=(6000, 8))) @ np.abs(rng.normal(size=(8, 8)))
    x[::1500, 0] *= 12.0
    proj = pca_fit(x[:4000])
    art = calibrate_layer(proj, x[:4000])
    assert art.x_scale == clip_scale(x[:4000], 8, "mse")
    assert art.x_scale < 0.5 * clip_scale(x[:4000], 8, "max")
    coarse = calibrate_layer(proj, x[:4000], x_method="max")

    def err(a):
        return np.mean((roundtrip(a, x[4000:])[0] - x[4000:]) ** 2)

    assert err(art) < 0.5 * err(coarse), (err(art), err(coarse))


def test_bias_correction_removes_the_mean_error_of_a_clamped_truncation():
    # A ReLU map truncated to 2 of 24 components and clamped at 0 on reconstruction: the
    # clamp turns zero-mean truncation error into a positive bias on every channel.
    from golden.datapath.scales import activation_format

    x = low_rank(n=6000, rank=8)
    calib, held = x[:4000], x[4000:]
    in_bits, relu = activation_format(calib)
    proj = pca_fit(calib, k=2)
    plain = calibrate_layer(proj, calib, in_bits=in_bits, relu=relu)
    fixed = calibrate_layer(proj, calib, in_bits=in_bits, relu=relu, bias_correction=True)
    np.testing.assert_array_equal(fixed.fwd_weight, plain.fwd_weight)
    np.testing.assert_array_equal(fixed.inv_weight, plain.inv_weight)

    def bias(art, data):
        return np.abs((roundtrip(art, data)[0] - data).mean(axis=0)).mean()

    assert bias(plain, held) > 2 * fixed.x_scale
    assert bias(fixed, held) < 0.5 * bias(plain, held), (bias(fixed, held), bias(plain, held))
    assert bias(fixed, calib) < 0.5 * fixed.x_scale


def test_run_length_tables_count_bits_tile_by_tile(tmp_path):
    """calibrate_layer(run_length=...) changes the tables only; coded_bits of a run-length
    layer is the nbits of encoding each tile, group by group (runs never cross a tile)."""
    from golden.codec.runlength import encode_rl_tile

    x = low_rank(rank=2)
    proj = pca_fit(x[:3000], k=8)
    # Coarse steps on the weak components: mostly zero coefficients, where runs pay.
    kw = dict(group_bits=(8, 4), group_bounds=[0, 2, 8], steps=np.r_[0.05, 0.05, np.full(6, 2.0)])
    arts = {m: calibrate_layer(proj, x[:3000], run_length=m, **kw) for m in ("off", "on", "auto")}
    assert [t.run_max for t in arts["off"].tables.tables] == [0, 0]
    assert all(t.run_max for t in arts["on"].tables.tables)
    assert arts["auto"].tables == arts["on"].tables, "93% zeros: run-length is smaller"
    ys = {m: forward_int(a, quantize_input(a, x[3000:])) for m, a in arts.items()}
    np.testing.assert_array_equal(ys["on"], ys["off"])
    y = ys["on"]
    for rows in (100, 333, None):
        step = rows or len(y)
        expect = sum(encode_rl_tile(y[s:s + step, lo:hi].ravel(), t)[1]
                     for t, lo, hi in zip(arts["on"].tables.tables, [0, 2], [2, 8])
                     for s in range(0, len(y), step))
        assert coded_bits(arts["on"], y, tile_rows=rows) == expect, rows
    assert coded_bits(arts["on"], y, tile_rows=100) < 0.9 * coded_bits(arts["off"], y)
    assert coded_bits(arts["off"], y, tile_rows=100) == coded_bits(arts["off"], y)
    save_artifact(arts["on"], tmp_path / "rl.npz")
    assert load_artifact(tmp_path / "rl.npz").tables == arts["on"].tables
    with pytest.raises(ValueError, match=r"^Run-length mode must be one of off, on, auto"):
        calibrate_layer(proj, x[:3000], run_length="maybe", **kw)
