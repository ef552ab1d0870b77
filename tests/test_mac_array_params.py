"""MacArray parameters: schedule rule, derived facts and error messages (no simulator)."""

import json

import numpy as np
import pytest

from golden.datapath.quant import acc_bits
from hdl.build import main as build_main
from hdl.mac_array import MacArray, schedule, valid_multipliers

# Components built only to inspect parameters or errors are never elaborated, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.* created but never used")


def test_valid_multipliers_rule():
    assert valid_multipliers(64, 16) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert valid_multipliers(6, 4) == [1, 2, 4, 8, 12, 24]
    assert valid_multipliers(4, 3) == [1, 3, 6, 12]


@pytest.mark.parametrize("co, ci", [(64, 16), (16, 64), (6, 4), (4, 3), (5, 7), (1, 1)])
def test_schedule_covers_every_product_once(co, ci):
    for m in valid_multipliers(co, ci):
        s = schedule(co, ci, m)
        assert s["rows"] * s["lanes"] == m
        assert s["rows"] * s["groups"] == co and s["lanes"] * s["chunks"] == ci
        assert s["cycles"] * m == co * ci


@pytest.mark.parametrize("co, ci", [(64, 16), (16, 64), (6, 4), (4, 3), (5, 7), (1, 1),
                                    (32, 7), (7, 32), (24, 144)])
def test_any_count_schedules_every_product_once(co, ci):
    """Every M from 1 to past C_out * C_in: at most M products, every weight in exactly
    one (row, chunk, lane) slot, padding only in the last chunk, and a clean count needs none
    and is exactly C_out * C_in / M cycles."""
    clean = set(valid_multipliers(co, ci))
    for m in range(1, co * ci + 3):
        s = schedule(co, ci, m)
        assert s["products"] == s["rows"] * s["lanes"] <= m
        assert s["rows"] * s["groups"] == co
        assert s["lanes"] * s["chunks"] == ci + s["in_pad"] and 0 <= s["in_pad"] < s["chunks"]
        assert s["cycles"] == s["groups"] * s["chunks"]
        assert s["efficiency"] == round(co * ci / (m * s["cycles"]), 4)
        if m in clean:
            assert s["in_pad"] == 0 and s["cycles"] * m == co * ci
        # Never slower than the best clean count below m.
        best = max(c for c in clean if c <= m)
        assert s["cycles"] <= co * ci // best


def test_schedule_of_the_issue_example():
    """C = 32, K = 7 with 16 multipliers: no clean count served both arrays, and the build
    fell back to M = 1 (224 cycles per pixel)."""
    assert schedule(7, 32, 16)["cycles"] == 14          # forward: 2 chunks of 16
    inv = schedule(32, 7, 16)                            # inverse: 2 rows of 7 per step
    assert (inv["rows"], inv["lanes"], inv["cycles"], inv["products"]) == (2, 7, 16, 14)
    assert inv["efficiency"] == 0.875


@pytest.mark.parametrize("m", [0, -3])
def test_bad_multiplier_count(m):
    with pytest.raises(ValueError, match=rf"^Multiplier count must be a positive integer, "
                                         rf"not {m}$"):
        MacArray(64, 16, multipliers=m)


def test_derived_facts():
    mac = MacArray(64, 16, multipliers=16)
    assert mac.CYCLES_PER_PIXEL == 64
    assert mac.acc_width == acc_bits(8, 8, 16, 32)
    # 16 lanes: 4 adder levels in 2 registered stages; one output per step. Issue 16 added
    # two product registers, 5 requantizer stages and the output FIFO (10 -> 18 cycles), then
    # the accumulator split in two halves one more (19).
    assert mac.LATENCY == 16 + 2 + 1
    assert mac.cfg_beats == 64 * 16 + 3 * 64
    full = MacArray(4, 3, multipliers=12, out_group=4)
    assert full.CYCLES_PER_PIXEL == 1
    assert MacArray(4, 3, multipliers=1, out_group=2).LATENCY == 16 + 0 + 2 * 3


@pytest.mark.parametrize("kwargs, tiles, products", [
    ({}, 16, 16), ({"dsp_budget": 5}, 5, 5), ({"dsp_budget": 0}, 0, 0),
    ({"family": "ice40"}, 8, 16), ({"family": "ice40", "dsp_budget": 3}, 3, 6),
    ({"family": "ecp5", "dsp_budget": 16}, 16, 16),
])
def test_dsp_budget(kwargs, tiles, products):
    mac = MacArray(64, 16, multipliers=16, **kwargs)
    assert (mac.dsp_tiles, mac.dsp_products) == (tiles, products)
    # The latency does not depend on how the products are built.
    assert mac.LATENCY == MacArray(64, 16, multipliers=16).LATENCY


def test_ports():
    mac = MacArray(6, 4, multipliers=2, out_group=3, in_width=4, out_width=5)
    members = mac.signature.members
    assert set(members) == {"i_stream", "o_stream", "cfg"}
    baked = MacArray(2, 2, multipliers=4, out_group=2,
                     weights={"weight": np.ones((2, 2)), "bias": [0, 1], "mult": [1, 1],
                              "shift": [0, 0]})
    assert set(baked.signature.members) == {"i_stream", "o_stream"}


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"channels_out": 0}, ValueError, (r"^Output channel count must be between 1 and 4096, "
                                      r"not 0$")),
    ({"channels_in": "16"}, TypeError, r"^Input channel count must be an integer, not '16'$"),
    ({"in_width": 1}, ValueError, r"^Input width must be between 2 and 16, not 1$"),
    ({"weight_width": 8.0}, TypeError, r"^Weight width must be an integer, not 8\.0$"),
    ({"bias_width": 33}, ValueError, r"^Bias width must be between 2 and 32, not 33$"),
    ({"mult_width": 0}, ValueError, r"^Multiplier width must be between 1 and 32, not 0$"),
    ({"out_width": 17}, ValueError, r"^Output width must be between 2 and 16, not 17$"),
    ({"multipliers": 0}, ValueError, r"^Multiplier count must be a positive integer, not 0$"),
    ({"multipliers": True}, TypeError, r"^Multiplier count must be an integer, not True$"),
    ({"out_group": 3}, ValueError, (r"^Output group must divide 64 output channels and be a "
                                   r"multiple of 1 \(rows finished per cycle\), not 3$")),
    ({"multipliers": 64, "out_group": 2}, ValueError, (r"^Output group must divide 64 output "
                                                      r"channels and be a multiple of 4")),
    ({"relu": 1}, TypeError, r"^ReLU flag must be a bool, not 1$"),
    ({"dsp_budget": -1}, ValueError, r"^DSP budget must be a non-negative integer, not -1$"),
    ({"dsp_budget": 2.0}, TypeError, r"^DSP budget must be an integer, not 2\.0$"),
    ({"dsp_budget": 17}, ValueError, r"^DSP budget 17 exceeds the 16 tiles that 16 products take$"),
    ({"family": "ice40", "dsp_budget": 9}, ValueError,
     r"^DSP budget 9 exceeds the 8 tiles that 16 products take$"),
    ({"family": "xilinx"}, ValueError,
     r"^FPGA family must be one of generic, ecp5, ice40, not 'xilinx'$"),
    ({"family": "ice40", "in_width": 9}, ValueError,
     r"^FPGA family ice40 needs input and weight widths of at most 8, not 9 and 8$"),
    ({"requant_mult": "abc"}, ValueError,
     r"^Requantizer multiplier must be one of dsp, lut, not 'abc'$"),
    ({"weights": 3}, TypeError, r"^Weights must be a dict or an artifact path, not 3$"),
    ({"weights": {"inv_weight": np.zeros((16, 64))}}, ValueError,
     r"^Weights hold no weight/bias/mult/shift set with a weight matrix of shape \(64, 16\)$"),
])
def test_bad_parameters(kwargs, exc, msg):
    args = {"channels_out": 64, "channels_in": 16, "multipliers": 16, **kwargs}
    with pytest.raises(exc, match=msg):
        MacArray(**args)


def _consts(co=4, ci=3, **over):
    c = {"inv_weight": np.zeros((co, ci), np.int64), "inv_bias": np.zeros(co, np.int64),
         "inv_mult": np.ones(co, np.int64), "inv_shift": np.zeros(co, np.int64)}
    c.update(over)
    return c


@pytest.mark.parametrize("over, msg", [
    ({"inv_weight": np.full((4, 3), 128)}, (r"^Weight values must be between -128 and 127, not "
                                           r"128\.\.128$")),
    ({"inv_bias": np.zeros(5, np.int64)}, r"^Bias must have shape \(4,\), not \(5,\)$"),
    ({"inv_mult": np.full(4, -1)}, r"^Multiplier values must be between 0 and 65535"),
    ({"inv_shift": np.full(4, 64)}, r"^Shift values must be between 0 and 63, not 64\.\.64$"),
])
def test_bad_baked_values(over, msg):
    with pytest.raises(ValueError, match=msg):
        MacArray(4, 3, multipliers=3, weights=_consts(**over))


def test_accumulator_never_overflows_the_bound():
    # The widest legal point still fits the 48-bit limit of the contract.
    mac = MacArray(2, 4096, in_width=16, weight_width=16, bias_width=32, multipliers=1)
    assert mac.acc_width == acc_bits(16, 16, 4096, 32) <= 48


@pytest.mark.parametrize("argv, msg", [
    (["--multipliers", "0"], "argument --multipliers: Multiplier count must be a positive"),
    (["--multipliers", "1024", "--out-group", "2"],
     "mac_array: Output group must divide 64 output channels and be a multiple of 64"),
    (["--weights", "/nonexistent/a.npz"], "does not exist"),
])
def test_build_cli_errors(argv, msg, tmp_path, capsys):
    out = tmp_path / "out"
    assert build_main(["--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err
    assert not out.exists()


def test_build_bakes_an_artifact(tmp_path, capsys):
    import json

    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.projection.pca import pca_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) * np.linspace(3, 0.1, 8) + 1
    art = save_artifact(calibrate_layer(pca_fit(x, 4), x), tmp_path / "a.npz")
    out = tmp_path / "out"
    base = ["--out", str(out), "--channels", "8", "--k", "4", "--weights", str(art)]
    assert build_main([*base, "--relu"]) == 2
    assert "--weights file has relu False, but the build asks for True" in \
        capsys.readouterr().err
    assert not out.exists()
    assert build_main([*base, "--multipliers", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    mods = {m["name"]: m for m in manifest["modules"]}
    for name in ("mac_array", "mac_array_fwd"):
        assert mods[name]["parameters"]["baked"] is True
        assert "configuration" not in mods[name]
        assert not any(p["name"].startswith("cfg") for p in mods[name]["ports"])
    assert mods["mac_array"]["cycles_per_pixel"] == 8


def test_weights_alone_set_channels_k_relu_and_widths(tmp_path, capsys):
    import json

    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.projection.pca import pca_fit

    # A non-negative map: stored unsigned (relu, 9 bits at the MACs), as calibrate does it.
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(500, 8)) * np.linspace(3, 0.1, 8))
    art = calibrate_layer(pca_fit(x, 4), x, in_bits=9, relu=True, group_bits=(6, 4))
    path = save_artifact(art, tmp_path / "a.npz")
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--weights", str(path)]) == 0
    assert "note" not in capsys.readouterr().out
    p = json.loads((out / "manifest.json").read_text())["parameters"]
    assert (p["channels"], p["k"], p["relu"], p["out_width"], p["in_width"]) == (8, 4, True, 9, 6)
    # An option given on the command line still has to agree with the artifact.
    assert build_main(["--out", str(tmp_path / "o2"), "--weights", str(path),
                       "--k", "3"]) == 2
    assert "--weights file has C=8 K=4, not --channels 8 --k 3" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_default_build_of_any_shape_needs_no_note(tmp_path, capsys):
    """The default 16 multipliers serve any C and K: C = 16, K = 14 used to fall back to 2."""
    out = tmp_path / "o"
    assert build_main(["--out", str(out), "--channels", "16", "--k", "14", "--top",
                       "blocks"]) == 0
    assert "note" not in capsys.readouterr().out
    mods = {m["name"]: m for m in json.loads((out / "manifest.json").read_text())["modules"]}
    inv, fwd = mods["mac_array"]["schedule"], mods["mac_array_fwd"]["schedule"]
    assert (inv["rows"], inv["lanes"], inv["cycles"], inv["products"]) == (1, 14, 16, 14)
    assert (fwd["lanes"], fwd["chunks"], fwd["cycles"], fwd["products"]) == (16, 1, 14, 16)
    assert inv["efficiency"] == 0.875 and fwd["efficiency"] == 1.0

