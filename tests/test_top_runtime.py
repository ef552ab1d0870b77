"""Run-time-shape tops (``runtime_shape=True``) on the Amaranth simulator, against golden.

One compressor and one decompressor, generated for C <= 16, K <= 8 and at most 3 groups, take
three layers of other shapes in turn (C, K, group bounds and widths), each configured by its
layer descriptor, weights and tables as a network program (``golden.program``) carries them:
every word, bit count and reconstructed beat equals ``golden`` for that layer. A bad
descriptor raises ``layer_error``, drops its load and leaves the previous layer working.
The real-network testbench on Verilator and Icarus is ``tb/test_top_runtime.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.calibration.folding import calibrate_layer
from golden.codec.plain import encode_groups
from golden.datapath.pipeline import forward_int, inverse_int, quantize_input
from golden.program import layer_streams, pack_program, unpack_program
from golden.projection.pca import pca_fit
from hdl.top import Compressor, Decompressor

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

C_MAX, K_MAX, G_MAX, M, W = 16, 8, 3, 4, 16
# (C, K, group bounds, group widths) of each layer.
LAYERS = [(16, 8, [0, 3, 8], [6, 4]), (12, 5, [0, 5], [5]), (10, 3, [0, 1, 2, 3], [7, 4, 2])]


def make_layer(c, k, bounds, bits, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, c)) * np.linspace(3, 0.3, c) + 0.5
    art = calibrate_layer(pca_fit(x, k), x, group_bits=tuple(bits), group_bounds=bounds)
    held = quantize_input(art, rng.normal(size=(9, c)) * np.linspace(3, 0.3, c) + 0.5)
    return art, held


def program_layer(art):
    """The layer as a network program carries it: packed and parsed by ``golden.program``."""
    return unpack_program(pack_program([art])).layers[0]


def layer_beats(art, forward, g_max, width):
    """The ``s_axis_weights`` load of one layer, from its program (``layer_streams``): the
    descriptor, then the MAC array's values."""
    values = layer_streams(program_layer(art), "forward" if forward else "inverse",
                           g_max)["weights"]
    mask = (1 << width) - 1
    return [{"tdata": v & mask, "tlast": int(i == len(values) - 1)}
            for i, v in enumerate(values)]


def table_beats(art):
    return [{"tdata": b, "tuser": g, "tlast": last}
            for b, g, last in layer_streams(program_layer(art), "forward", G_MAX)["tables"]]


def run(dut, steps, sinks, cycles_after=300):
    """``steps``: [(prefix, beats)], each stream's beats sent in order, one step after the
    other. Sinks always ready. Returns {sink: [(tdata, tlast)]} and ``layer_error`` after
    each step."""
    from amaranth.sim import Simulator

    got = {name: [] for name in sinks}
    errors = []
    done = [False]

    async def bench(ctx):
        for prefix, beats in steps:
            for beat in beats:
                for name, value in beat.items():
                    ctx.set(getattr(dut, f"{prefix}_{name}"), value)
                ctx.set(getattr(dut, f"{prefix}_tvalid"), 1)
                await ctx.tick().until(getattr(dut, f"{prefix}_tready"))
                ctx.set(getattr(dut, f"{prefix}_tvalid"), 0)
            await ctx.tick().repeat(3)
            errors.append(ctx.get(dut.layer_error))
        await ctx.tick().repeat(cycles_after)
        done[0] = True

    ports = []
    for name in sinks:
        last = getattr(dut, f"{name}_tlast", None)
        ports += [getattr(dut, f"{name}_tvalid"), getattr(dut, f"{name}_tdata"),
                  last if last is not None else getattr(dut, f"{name}_tvalid")]

    async def sink(ctx):
        for name in sinks:
            ctx.set(getattr(dut, f"{name}_tready"), 1)
        async for values in ctx.tick().sample(*ports):
            vals = values[2:]
            for i, name in enumerate(sinks):
                v, d, last = vals[3 * i:3 * i + 3]
                if v:
                    got[name].append((int(d), int(last)))
            if done[0]:
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench, background=True)
    sim.add_testbench(sink)
    sim.run()
    return got, errors


@pytest.fixture(scope="module")
def layers():
    return [make_layer(c, k, b, bits, i) for i, (c, k, b, bits) in enumerate(LAYERS)]


def bad_descriptors(art, width):
    """Descriptors that must be refused: K above the maximum, edges not rising, a width of
    9 bits; each followed by values that would load if it were taken."""
    good = layer_beats(art, True, G_MAX, width)
    out = []
    for i, value in ((1, K_MAX + 1), (3, 0), (3 + G_MAX - 1, 9)):
        beats = [dict(b) for b in good]
        beats[i]["tdata"] = value
        out.append(beats)
    return out


def test_compressor_layers_in_turn(layers):
    dut = Compressor(C_MAX, K_MAX, multipliers=M, word_width=W, runtime_shape=True,
                     max_groups=G_MAX)
    width = dut.mac.cfg_data_width
    steps, want_words, want_bits = [], [], []
    for n, (art, x) in enumerate(layers):
        if n == 1:
            # Refused descriptors between two layers: layer 0 keeps working.
            for beats in bad_descriptors(layers[2][0], width):
                steps.append(("s_axis_weights", beats))
                steps += _compress_tile(layers[0], x=layers[0][1][:2], want=(want_words,
                                                                             want_bits))
        steps.append(("s_axis_weights", layer_beats(art, True, G_MAX, width)))
        steps.append(("s_axis_table", table_beats(art)))
        for tile in (x[:4], x[4:5], x[5:]):
            steps += _compress_tile((art, x), tile, (want_words, want_bits))
    got, errors = run(dut, steps, ("m_axis", "m_axis_bits"))
    assert [d for d, _ in got["m_axis_bits"]] == want_bits
    assert got["m_axis"] == want_words
    assert 1 in errors and errors[-1] == 0
    # Each refused descriptor raised layer_error right after its load.
    assert [e for (p, _), e in zip(steps, errors) if p == "s_axis_weights"] == [
        0, 1, 1, 1, 0, 0]


def _compress_tile(layer, x, want):
    art, _ = layer
    words_out, bits_out = want
    y = forward_int(art, x, reference=True)
    words, nbits = encode_groups(y, art.tables.tables, art.group_bounds.tolist(), W)
    words_out += [(int(w), int(i == len(words) - 1)) for i, w in enumerate(words)]
    bits_out.append(int(nbits))
    mask = (1 << art.in_bits) - 1
    beats = [{"tdata": sum((int(v) & mask) << (art.in_bits * j) for j, v in enumerate(px)),
              "tlast": int(p == len(x) - 1)} for p, px in enumerate(x)]
    return [("s_axis", beats)]


def test_decompressor_layers_in_turn(layers):
    dut = Decompressor(C_MAX, K_MAX, multipliers=M, word_width=W, runtime_shape=True,
                       max_groups=G_MAX)
    width = dut.mac.cfg_data_width
    steps, want = [], []
    for art, x in layers:
        steps.append(("s_axis_weights", layer_beats(art, False, G_MAX, width)))
        steps.append(("s_axis_table", table_beats(art)))
        for tile in (x[:4], x[4:5], x[5:]):
            y = forward_int(art, tile, reference=True)
            words, _ = encode_groups(y, art.tables.tables, art.group_bounds.tolist(), W)
            steps.append(("s_axis_pixels", [{"tdata": len(tile)}]))
            steps.append(("s_axis", [{"tdata": int(w), "tlast": int(i == len(words) - 1)}
                                     for i, w in enumerate(words)]))
            rec = inverse_int(art, y, reference=True)
            mask = (1 << art.out_bits) - 1
            for p, px in enumerate(rec):
                for j, v in enumerate(px):
                    want.append(((int(v) & mask), int(p == len(rec) - 1 and j == len(px) - 1)))
    got, errors = run(dut, steps, ("m_axis",))
    assert got["m_axis"] == want
    assert errors == [0] * len(errors)


def test_layer_cycles():
    c = Compressor(C_MAX, K_MAX, multipliers=M, runtime_shape=True, max_groups=G_MAX)
    d = Decompressor(C_MAX, K_MAX, multipliers=M, runtime_shape=True, max_groups=G_MAX)
    # Compressor: K rows of ceil(C / 4) chunks; decompressor: C rows of ceil(K / 4) chunks.
    assert c.layer_cycles(16, 8) == 32 and d.layer_cycles(16, 8) == 32
    assert c.layer_cycles(10, 3) == 9 and d.layer_cycles(10, 3) == 10


# ----------------------------------------------------------------------------- hdl.build

@pytest.mark.parametrize("argv, message", [
    (["--max-channels", "64"], "--max-channels and --max-k go together"),
    (["--max-groups", "2"], "--max-groups needs --max-channels and --max-k"),
    (["--max-channels", "64", "--max-k", "16", "--run-max", "64"],
     "--run-max does not go with --max-channels/--max-k"),
    (["--max-channels", "64", "--max-k", "16", "--lanes", "2"],
     "--lanes does not go with --max-channels/--max-k"),
    (["--max-channels", "64", "--max-k", "3", "--max-groups", "4"],
     "Most table groups 4 must be at most 3"),
    (["--max-channels", "8", "--max-k", "16"], "Component count 16 must not exceed"),
])
def test_build_cli_errors(argv, message, tmp_path, capsys):
    from hdl.build import main

    assert main(["--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_build_cli_runtime_manifest(tmp_path, capsys):
    import json

    from hdl.build import main

    assert main(["--out", str(tmp_path), "--max-channels", "40", "--max-k", "12",
                 "--max-groups", "3", "--multipliers", "8"]) == 0
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["parameters"]["runtime_shape"] == {"max_channels": 40, "max_k": 12,
                                                "max_groups": 3}
    mods = {x["name"]: x for x in m["modules"]}
    assert {"compressor", "decompressor", "mac_array", "mac_array_fwd", "huffman_encoder",
            "huffman_decoder"} <= set(mods)
    rt = mods["decompressor"]["runtime_shape"]
    assert (rt["max_channels"], rt["max_k"], rt["max_groups"]) == (40, 12, 3)
    # Inverse array: 40 rows of ceil(12 / 8) = 2 words of 8 weights of 8 bits.
    assert rt["memory_bits"]["mac_array"]["weights"] == 40 * 2 * 8 * 8
    assert rt["memory_bits"]["total"] > rt["memory_bits"]["mac_array_total"]
    assert mods["mac_array"]["runtime_shape"]["lanes"] == 8
    ports = {p["name"] for p in mods["compressor"]["ports"]}
    assert {"layer_error", "s_axis_weights_tdata", "s_axis_table_tuser"} <= ports
    assert mods["huffman_encoder"]["parameters"]["runtime_groups"] is True
