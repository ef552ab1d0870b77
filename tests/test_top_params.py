"""``hdl.top``: parameter errors, ports, the ``--top`` option and baking an artifact."""

import json

import numpy as np
import pytest

from hdl.build import main as build_main
from hdl.huffman_encoder import HuffmanEncoder
from hdl.top import Compressor, Decompressor


@pytest.mark.parametrize("cls, kwargs, exc, msg", [
    (Compressor, {"channels": 8, "k": 16}, ValueError,
     "Component count 16 must not exceed channel count 8"),
    (Compressor, {"channels": "8", "k": 4}, TypeError, "Channel count must be an integer"),
    (Decompressor, {"channels": 8, "k": 0}, ValueError,
     "Component count must be between 1 and 4096, not 0"),
    (Compressor, {"channels": 8, "k": 4, "group_bits": [9]}, ValueError,
     "Group bit width must be between 2 and 8, not 9"),
    (Compressor, {"channels": 8, "k": 4, "group_bits": []}, TypeError,
     "Group bit widths must be a non-empty list"),
    (Decompressor, {"channels": 8, "k": 4, "group_bits": [4, 4]}, ValueError,
     "Group bounds are needed with 2 groups"),
    (Decompressor, {"channels": 8, "k": 4, "group_bits": [4, 4], "group_bounds": [0, 4, 4]},
     ValueError, "Group bounds must rise from 0 to 4"),
    (Compressor, {"channels": 8, "k": 4, "multipliers": 3}, ValueError,
     "Multiplier count 3 has no clean schedule"),
    (Decompressor, {"channels": 8, "k": 4, "multipliers": 4, "pixels_width": 40}, ValueError,
     "Pixel count width must be between 1 and 32, not 40"),
    (Compressor, {"channels": 8, "k": 4, "multipliers": 4, "word_width": 12}, ValueError,
     "Word width must be one of 8, 16, 32, 64, not 12"),
])
def test_bad_parameters(cls, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(**kwargs)


def test_ports_follow_axi4_stream_names():
    c = Compressor(64, 16, multipliers=16)
    assert {"s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "m_axis_tdata",
            "m_axis_tlast", "m_axis_bits_tdata", "s_axis_weights_tdata", "s_axis_table_tdata",
            "error"} <= set(c.signature.members)
    assert "s_axis_table_tuser" not in c.signature.members      # one group
    assert len(c.s_axis_tdata) == 64 * 8
    assert c.cycles_per_pixel == 64
    d = Decompressor(64, 16, multipliers=64, group_bits=[6, 4], group_bounds=[0, 8, 16])
    assert {"s_axis_pixels_tdata", "s_axis_tdata", "m_axis_tdata", "m_axis_tlast",
            "s_axis_table_tuser", "error", "error_code"} <= set(d.signature.members)
    assert d.coef_width == 6 and d.cycles_per_pixel == 16
    assert len(d.m_axis_tdata) == 4 * 8   # 4 rows per cycle


def _files(out):
    return sorted(p.name for p in out.iterdir())


def test_top_option_selects_what_is_written(tmp_path, capsys):
    out = tmp_path / "c"
    assert build_main(["--out", str(out), "--top", "compressor"]) == 0
    assert _files(out) == ["actcomp_generated.core", "compressor.v", "manifest.json"]
    man = json.loads((out / "manifest.json").read_text())
    (mod,) = man["modules"]
    assert mod["cycles_per_pixel"] == 64
    assert mod["latency"]["huffman"] == HuffmanEncoder.LATENCY
    assert "toplevel: compressor" in (out / "actcomp_generated.core").read_text()
    out = tmp_path / "b"
    assert build_main(["--out", str(out), "--top", "blocks"]) == 0
    assert "compressor.v" not in _files(out) and "mac_array.v" in _files(out)
    out = tmp_path / "all"
    assert build_main(["--out", str(out)]) == 0
    assert {"compressor.v", "decompressor.v", "huffman_decoder.v"} <= set(_files(out))


@pytest.mark.parametrize("argv, msg", [
    (["--top", "nope"], "argument --top: invalid choice: 'nope'"),
    (["--groups", "17"], "Table group count 17 must not exceed component count 16"),
    (["--in-width", "9"], "code coefficients of at most 8 bits, not --in-width 9"),
    (["--top", "decompressor", "--multipliers", "1024", "--out-group", "3"],
     "Output group must divide 64 output channels"),
])
def test_cli_errors_one_line_exit_2_no_files(argv, msg, tmp_path, capsys):
    out = tmp_path / "out"
    assert build_main(["--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err, err
    assert not out.exists()


def test_weights_bake_both_tops(tmp_path, capsys):
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.projection.pca import pca_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) * np.linspace(3, 0.1, 8) + 1
    art = save_artifact(calibrate_layer(pca_fit(x, 4), x, group_bits=(6, 4)),
                        tmp_path / "a.npz")
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--channels", "8", "--k", "4", "--weights", str(art),
                       "--multipliers", "4", "--in-width", "6"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    tops = {m["name"]: m for m in man["modules"] if m["name"] in ("compressor", "decompressor")}
    for mod in tops.values():
        names = {p["name"] for p in mod["ports"]}
        assert not any(n.startswith(("s_axis_weights", "s_axis_table")) for n in names)
        assert mod["parameters"]["group_bits"] == [6, 4]
        assert mod["parameters"]["baked_weights"] and mod["parameters"]["baked_table"]


def test_run_length_artifact_is_refused_by_the_tops(tmp_path, capsys):
    """The stand-alone coders take run-length tables; the tops do not yet, and say so
    rather than build coders whose tiles they would feed in the wrong layout."""
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.projection.pca import pca_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) * np.linspace(3, 0.1, 8) + 1
    layer = calibrate_layer(pca_fit(x, 4), x, group_bits=(6, 4), steps=np.full(4, 2.0),
                            run_length="on")
    assert all(t.run_max for t in layer.tables.tables)
    art = save_artifact(layer, tmp_path / "rl.npz")
    out = tmp_path / "out"
    assert build_main(["--out", str(out), "--channels", "8", "--k", "4", "--weights", str(art),
                       "--multipliers", "4", "--in-width", "6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "run-length mode is not supported by the compressor and decompressor yet" in err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"^run-length mode is not supported by the "):
        Compressor(8, 4, multipliers=4, group_bounds=[0, 2, 4], group_bits=[6, 4],
                   table=layer.tables)


def test_family_reaches_both_mac_arrays(tmp_path):
    assert Compressor(8, 4, multipliers=4, family="ecp5").mac._family == "ecp5"
    assert Decompressor(8, 4, multipliers=4, family="ecp5").mac._family == "ecp5"
    assert Compressor(8, 4, multipliers=4).mac._family == "generic"
    with pytest.raises(ValueError, match=r"^FPGA family must be one of generic, ecp5, ice40, "
                                         r"not 'xilinx'$"):
        Decompressor(8, 4, multipliers=4, family="xilinx")
    out = tmp_path / "e"
    assert build_main(["--out", str(out), "--top", "decompressor", "--family", "ecp5"]) == 0
    (mod,) = json.loads((out / "manifest.json").read_text())["modules"]
    assert mod["latency"]["huffman"] == Decompressor(64, 16).dec.LATENCY
