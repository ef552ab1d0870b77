"""``golden.program``: network programs round-trip every integer and table, refuse corrupt,
truncated or ill-fitting input with ``ProgramError``, and ``python -m golden program`` writes
one (or exits 2 with one line and no file)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from golden.__main__ import main
from golden.calibration.folding import calibrate_layer
from golden.datapath.artifacts import load_artifact, save_artifact
from golden.program import (MAGIC, VERSION, ProgramError, check_maxima, layer_streams,
                            load_artifacts, mac_cfg_beats, pack_program, unpack_program)
from golden.projection.pca import pca_fit

# (name, C, K, group bounds, group widths) of each layer
SHAPES = [("features.3", 24, 6, [0, 2, 6], [5, 3]),
          ("features.6", 32, 10, [0, 3, 6, 10], [6, 4, 3]),
          ("features.10", 16, 16, [0, 8, 16], [8, 4])]
HEAD = 22          # bytes before the layer names (docs/program.md)


def make_art(name, c, k, bounds, bits, seed, run_length="off"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1500, c)) * np.linspace(3, 0.2, c) + np.linspace(-1, 1, c)
    return calibrate_layer(pca_fit(x, k), x, name=name, group_bits=tuple(bits),
                           group_bounds=bounds, run_length=run_length)


@pytest.fixture(scope="module")
def arts():
    return [make_art(*spec, seed=i) for i, spec in enumerate(SHAPES)]


@pytest.fixture(scope="module")
def data(arts):
    return pack_program(arts)


def recrc(data: bytes) -> bytes:
    """The file with its final CRC recomputed (for edits that must pass the outer check)."""
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def record_offsets(data: bytes, n: int) -> list[int]:
    off = HEAD
    for _ in range(n):
        off += 1 + data[off]
    starts = []
    for _ in range(n):
        starts.append(off)
        (size,) = struct.unpack_from("<I", data, off)
        off += 8 + size
    assert off == len(data) - 4
    return starts


def edit_record(data: bytes, n: int, layer: int, fn) -> bytes:
    """Replace one layer's body by ``fn(body)`` with both CRCs made valid again."""
    off = record_offsets(data, n)[layer]
    (size,) = struct.unpack_from("<I", data, off)
    body = fn(bytearray(data[off + 4:off + 4 + size]))
    rec = struct.pack("<I", len(body)) + bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    return recrc(data[:off] + rec + data[off + 8 + size:])


# ---------------------------------------------------------------------------- round trip

def test_round_trip(arts, data):
    prog = unpack_program(data)
    assert data[:4] == MAGIC and data[4] == VERSION
    assert len(prog.layers) == 3
    assert (prog.max_channels, prog.max_k, prog.max_groups, prog.max_coef_bits,
            prog.max_run) == (32, 16, 3, 8, 0)
    assert (prog.in_bits, prog.out_bits, prog.w_bits, prog.bias_bits, prog.mult_bits,
            prog.relu) == (8, 8, 8, 32, 16, False)
    for lay, art in zip(prog.layers, arts):
        assert lay.name == art.name
        assert (lay.channels, lay.k) == (art.channels, art.k)
        assert lay.group_bounds == art.group_bounds.tolist()
        assert lay.group_bits == art.group_bits.tolist()
        for key in ("weight", "bias", "mult", "shift"):
            np.testing.assert_array_equal(lay.fwd[key], getattr(art, "fwd_" + key))
            np.testing.assert_array_equal(lay.inv[key], getattr(art, "inv_" + key))
        assert [t.serialize() for t in lay.tables] == [t.serialize()
                                                        for t in art.tables.tables]
    # Negative weights and biases survive the two's complement packing.
    assert min(int(lay.fwd["weight"].min()) for lay in prog.layers) < 0
    assert min(int(lay.inv["bias"].min()) for lay in prog.layers) < 0
    assert pack_program(arts) == data           # deterministic


def test_size_matches_layout(arts, data):
    """The size docs/program.md gives: header, names, per layer 8 + descriptor + groups +
    values + tables, final CRC."""
    want = HEAD + sum(1 + len(a.name) for a in arts) + 4
    for a in arts:
        g, c, k = len(a.group_bits), a.channels, a.k
        want += 8 + 8 + 2 * (g + 1) + g + 2 * c * k + (c + k) * (4 + 2 + 1)
        want += sum(2 + len(t.serialize()) for t in a.tables.tables)
    assert len(data) == want


def test_run_length_layer():
    arts = [make_art("rl", 12, 4, [0, 2, 4], [6, 4], seed=7, run_length="on")]
    assert all(t.run_max for t in arts[0].tables.tables)
    prog = unpack_program(pack_program(arts))
    assert prog.max_run == max(t.run_max for t in arts[0].tables.tables) > 0
    assert [t.serialize() for t in prog.layers[0].tables] == [t.serialize()
                                                              for t in arts[0].tables.tables]
    with pytest.raises(ProgramError, match="run-length tables"):
        check_maxima(prog, 12, 4)
    check_maxima(prog, 12, 4, run_length=True)


def test_layer_streams(arts, data):
    """The descriptor (C, K, G, G_MAX - 1 edges, G_MAX widths, unused entries 0), then the MAC
    values; tables byte by byte with their group and tlast."""
    prog = unpack_program(data)
    lay, art = prog.layers[0], arts[0]            # C 24, K 6, 2 groups
    s = layer_streams(lay, "forward", 4)
    assert s["weights"][:11] == [24, 6, 2, 2, 0, 0, 5, 3, 0, 0, int(art.fwd_weight[0, 0])]
    assert s["weights"][10:] == mac_cfg_beats(lay, "forward")[2:]
    assert len(s["weights"]) == 10 + 6 * 24 + 3 * 6
    inv = layer_streams(lay, "inverse", 2)["weights"]
    assert inv[:6] == [24, 6, 2, 2, 5, 3]
    assert inv[6:6 + 6] == art.inv_weight[0].tolist()
    assert len(inv) == 6 + 24 * 6 + 3 * 24
    raw = [t.serialize() for t in art.tables.tables]
    assert s["tables"] == ([(b, 0, int(i == len(raw[0]) - 1)) for i, b in enumerate(raw[0])]
                           + [(b, 1, int(i == len(raw[1]) - 1)) for i, b in enumerate(raw[1])])
    with pytest.raises(ProgramError, match="3 table groups, more than the hardware's 2"):
        layer_streams(prog.layers[1], "forward", 2)
    with pytest.raises(ValueError, match="Direction"):
        mac_cfg_beats(lay, "sideways")


# ---------------------------------------------------------------------------- bad input

def test_every_truncation_raises(data):
    for n in range(len(data)):
        with pytest.raises(ProgramError):
            unpack_program(data[:n])


def test_bit_flips_raise(data):
    """A CRC-32 catches every single-bit error: flip one bit at 600 places."""
    rng = np.random.default_rng(1)
    for pos in rng.integers(0, len(data), 600):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(ProgramError):
            unpack_program(bytes(bad))


def test_extra_bytes_raise(data):
    with pytest.raises(ProgramError):
        unpack_program(data + b"\0")
    with pytest.raises(ProgramError, match="after the last layer"):
        unpack_program(recrc(data[:-4] + b"\0\0\0\0" + data[-4:]))


@pytest.mark.parametrize("edit, message", [
    (lambda d: b"ACHX" + d[4:], "Not a network program"),
    (lambda d: d[:4] + bytes([2]) + d[5:], "Unsupported program version 2"),
    (lambda d: d[:5] + bytes([1]) + d[6:], "Bad program header"),
    (lambda d: d[:6] + struct.pack("<H", 0) + d[8:], "Bad program header"),
    (lambda d: d[:6] + struct.pack("<H", 4) + d[8:], "Program ends"),
    (lambda d: d[:8] + struct.pack("<H", 31) + d[10:], "Header maxima"),
    (lambda d: d[:18] + bytes([0]) + d[19:], "Bad weight width 0"),
])
def test_bad_header(data, edit, message):
    with pytest.raises(ProgramError, match=message):
        unpack_program(recrc(edit(data[:-4]) + data[-4:]))


def _set(off, fmt, value):
    def fn(body):
        struct.pack_into(fmt, body, off, value)
        return body
    return fn


@pytest.mark.parametrize("fn, message", [
    (_set(0, "<H", 5), "bad descriptor C=5 K=6"),                  # C < K
    (_set(2, "<H", 0), "bad descriptor"),                          # K = 0
    (_set(4, "<B", 7), "bad descriptor"),                          # G > K
    (_set(5, "<B", 3), "bad descriptor"),                          # unknown mode
    (_set(6, "<B", 1), "bad descriptor"),                          # reserved byte
    (_set(10, "<H", 7), "group bounds"),                           # edge past K
    (_set(14, "<B", 9), "group widths"),                           # 9-bit group
    (_set(15, "<B", 4), "does not match its group"),               # table width 3 vs 4
    (lambda b: b[:40], "ends inside its values"),
    (lambda b: b[:-1], "ends inside table 1"),
    (lambda b: b + b"\0", "1 bytes after its tables"),
])
def test_bad_record(data, fn, message):
    """Fields the CRCs cannot vouch for (a writer's bug): each is checked on its own."""
    with pytest.raises(ProgramError, match=message):
        unpack_program(edit_record(data, 3, 0, fn))


def test_corrupt_table_in_record(data):
    """A table whose bytes are not a canonical code: golden's table parser names it."""
    off = 8 + 2 * 3 + 2 + 2 * 24 * 6 + (24 + 6) * 7 + 2   # layer 0: table 0's first byte

    def fn(body):
        body[off + 1] ^= 0xFF         # its code-length counts
        return body
    with pytest.raises(ProgramError, match="table 0"):
        unpack_program(edit_record(data, 3, 0, fn))


def test_pack_refuses(arts):
    with pytest.raises(ProgramError, match="at least one layer"):
        pack_program([])
    other = make_art("x", 8, 4, [0, 4], [8], seed=3)
    other.relu = True
    with pytest.raises(ProgramError, match="ReLU"):
        pack_program([arts[0], other])


def test_check_maxima(data):
    prog = unpack_program(data)
    check_maxima(prog, 32, 16, 3)
    for args, message in (((31, 16, 3), "features.6 has channels C 32, more than the "
                                         "hardware's 31"),
                          ((32, 15, 3), "features.10 has components K 16"),
                          ((32, 16, 2), "features.6 has table groups 3"),
                          ((32, 16, 3, 7), "features.10 has coefficient bits 8")):
        with pytest.raises(ProgramError, match=message):
            check_maxima(prog, *args)


# ---------------------------------------------------------------------------- CLI

@pytest.fixture()
def folder(tmp_path, arts):
    d = tmp_path / "arts"
    d.mkdir()
    for i, a in enumerate(arts):
        save_artifact(a, d / f"{i:02d}_{a.name}.npz")
    (d / "report.json").write_text("{}")        # what calibrate also leaves there
    return d


def test_cli_writes_and_shows(folder, tmp_path, capsys, data):
    out = tmp_path / "net.achp"
    assert main(["program", "--artifacts", str(folder), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes() == data
    assert [a.name for a in load_artifacts(folder)] == ["features.3", "features.6",
                                                        "features.10"]
    assert f"3 layers, {len(data)} bytes" in text
    assert ("python -m hdl.build --max-channels 32 --max-k 16 --max-groups 3 --in-width 8 "
            "--out-width 8 --weight-width 8 --bias-width 32 --mult-width 16") in text
    assert f"  1 {'features.6':24s} C=  32 K= 10 G=3 bits=6,4,3 plain" in text
    assert main(["program", "--show", str(out)]) == 0
    assert "3 layers" in capsys.readouterr().out
    # the artifacts round-trip from their files too
    for lay, art in zip(unpack_program(out).layers, load_artifacts(folder)):
        np.testing.assert_array_equal(lay.inv["weight"], art.inv_weight)


@pytest.mark.parametrize("args, message", [
    (["--max-k", "10"], "features.10 has components K 16, more than the hardware's 10"),
    (["--max-channels", "24"], "features.6 has channels C 32"),
    (["--max-groups", "2"], "table groups 3"),
])
def test_cli_refuses_maxima(folder, tmp_path, capsys, args, message):
    out = tmp_path / "net.achp"
    code = main(["program", "--artifacts", str(folder), "--out", str(out)] + args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]


def test_cli_bad_input(folder, tmp_path, capsys, data):
    out = tmp_path / "p.achp"
    bad = tmp_path / "bad.achp"
    bad.write_bytes(data[:-10])
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in ((["--artifacts", str(tmp_path / "nope"), "--out", str(out)],
                           "does not exist"),
                          (["--artifacts", str(empty), "--out", str(out)], "No NN_<point>"),
                          (["--artifacts", str(folder)], "--out"),
                          (["--show", str(bad)], "CRC mismatch"),
                          (["--show", str(tmp_path / "missing.achp")], "missing.achp"),
                          ([], "--artifacts DIR"),
                          (["--artifacts", str(folder), "--out", str(out), "--show",
                            str(bad)], "--artifacts DIR")):
        assert main(["program"] + args) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not out.exists()


def test_record_crc_names_the_layer(data):
    """A layer whose bytes changed under a valid file CRC (e.g. a record spliced in from
    another program) fails its own CRC, named."""
    off = record_offsets(data, 3)[1] + 20
    bad = bytearray(data)
    bad[off] ^= 0x10
    with pytest.raises(ProgramError, match="Layer features.6: record CRC mismatch"):
        unpack_program(recrc(bytes(bad)))


def test_printed_build_line_builds(folder, tmp_path, capsys):
    """The second and third of the three commands: the ``hdl.build`` line ``golden program``
    prints builds run-time tops whose maxima and widths are the program's."""
    import json
    import shlex

    from hdl.build import main as build_main

    out = tmp_path / "net.achp"
    assert main(["program", "--artifacts", str(folder), "--out", str(out)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if ln.startswith("hardware for it: "))
    argv = shlex.split(line.removeprefix("hardware for it: "))
    assert argv[:3] == ["python", "-m", "hdl.build"]
    build = tmp_path / "build"
    assert build_main(argv[3:] + ["--out", str(build), "--top", "decompressor"]) == 0
    params = json.loads((build / "manifest.json").read_text())["parameters"]
    prog = unpack_program(out)
    assert params["runtime_shape"] == {"max_channels": prog.max_channels,
                                       "max_k": prog.max_k, "max_groups": prog.max_groups}
    assert (params["out_width"], params["weight_width"], params["bias_width"],
            params["mult_width"], params["relu"]) == (prog.out_bits, prog.w_bits,
                                                      prog.bias_bits, prog.mult_bits,
                                                      prog.relu)
    assert params["in_width"] >= prog.max_coef_bits
    check_maxima(prog, params["runtime_shape"]["max_channels"],
                 params["runtime_shape"]["max_k"], params["runtime_shape"]["max_groups"],
                 params["in_width"])
