"""Run-time-shape MAC array testbench: one array, layer after layer, on both simulators.

An array generated for maxima (``MacArray(..., runtime_shape=True)``) is loaded through ``cfg``
with a descriptor and the values of each layer in turn: real MobileNetV2 inverse (64 x 16) and
forward (16 x 64) projections of ``features.10`` (``tb.test_mac_array.real_data``) and random
shapes with padded last chunks. Every output beat equals ``golden.datapath.mac.matvec`` for its
layer, under the stall diagonal; input lanes past a layer's C_in carry random values that must
not matter. The no-stall run asserts each layer's cycles per pixel (``layer_cycles``) and logs
the cycles a layer switch costs.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from golden.datapath.mac import matvec
from golden.datapath.quant import int_range

try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a test dependency
    cocotb = None

from tb.common import flow_pairs, load_config, primitive_models, run_cocotb

W8 = {"in_width": 8, "weight_width": 8, "bias_width": 32, "mult_width": 16, "out_width": 8}
CONFIGS = [
    # One array for both directions of a 64-channel, 16-component layer and smaller shapes.
    {"name": "rt-c64k64m16", "co": 64, "ci": 64, "multipliers": 16, "out_group": 1,
     "relu": False, "layers": [["inv", 64, 16], ["rand", 24, 7], ["fwd", 16, 64],
                               ["rand", 5, 33], ["rand", 1, 1]], **W8},
    # Beats of 2 channels, 4 lanes: every last-chunk fill, ECP5 primitives.
    {"name": "rt-c12k10m4-ecp5", "co": 12, "ci": 10, "multipliers": 4, "out_group": 2,
     "relu": True, "family": "ecp5", "layers": [["rand", 12, 10], ["rand", 4, 3],
                                                ["rand", 2, 9], ["rand", 10, 5]], **W8},
]


def _shift_max(cfg, ci):
    from golden.datapath.quant import acc_bits
    from hdl.requantizer import shift_width

    return (1 << shift_width(acc_bits(cfg["in_width"], cfg["weight_width"], ci,
                                      cfg["bias_width"]), cfg["mult_width"])) - 1


def layer_data(cfg, index, rng, n):
    """(params, pixels) of layer ``index``: real projections with real inputs, or random."""
    kind, co, ci = cfg["layers"][index]
    if kind in ("inv", "fwd"):
        real = dict(np.load(cfg["real_path"]))
        params = {key: real[f"{kind}_{key}"].astype(np.int64)
                  for key in ("weight", "bias", "mult", "shift")}
        pix = real["y"] if kind == "inv" else real["x"]
        assert params["weight"].shape == (co, ci) and pix.shape[1] == ci
        return params, pix[rng.choice(pix.shape[0], n, replace=False)].astype(np.int64)
    w_lo, w_hi = int_range(cfg["weight_width"])
    typical = cfg["in_width"] + cfg["weight_width"] + int(np.log2(ci) / 2)
    params = {"weight": rng.integers(w_lo, w_hi + 1, (co, ci)),
              "bias": rng.integers(-(1 << typical), 1 << typical, co),
              "mult": rng.integers(0, 1 << cfg["mult_width"], co),
              "shift": np.clip(rng.integers(0, 8, co) + cfg["mult_width"] + typical
                               - cfg["out_width"], 0, _shift_max(cfg, ci))}
    lo, hi = int_range(cfg["in_width"])
    return params, rng.integers(lo, hi + 1, (n, ci))


def load_beats(cfg, params) -> list[int]:
    """Descriptor (C_out, C_in), then W row-major, bias, mult, shift; ``last`` on the end."""
    co, ci = params["weight"].shape
    values = [co, ci] + [int(v) for v in params["weight"].ravel()] + [
        int(v) for key in ("bias", "mult", "shift") for v in params[key]]
    dw = cfg["cfg_data_width"]
    return [(v & ((1 << dw) - 1)) | (int(i == len(values) - 1) << dw)
            for i, v in enumerate(values)]


def pack_pixel(cfg, px, rng) -> int:
    """The pixel in the low lanes, random values in the lanes past its C_in."""
    w = cfg["in_width"]
    lo, hi = int_range(w)
    lanes = [int(v) for v in px] + [int(v) for v in rng.integers(lo, hi + 1,
                                                                 cfg["ci"] - len(px))]
    return sum((v & ((1 << w) - 1)) << (w * j) for j, v in enumerate(lanes))


def expected_beats(cfg, params, pixels) -> list[int]:
    y = matvec(pixels, params["weight"], params["bias"], params["mult"], params["shift"],
               in_bits=cfg["in_width"], w_bits=cfg["weight_width"],
               bias_bits=cfg["bias_width"], out_bits=cfg["out_width"], relu=cfg["relu"])
    ow, og = cfg["out_width"], cfg["out_group"]
    beats = []
    for row in y:
        for b in range(0, len(row), og):
            data = sum((int(v) & ((1 << ow) - 1)) << (ow * j) for j, v in enumerate(row[b:b + og]))
            beats.append(data | (int(b + og == len(row)) << (ow * og)))
    return beats


async def run_layers(dut, idle, backpressure, n):
    """Every layer in turn: its load, then (once the load has started) its pixels. Returns
    the input handshake cycles per layer and the load's first and last beat cycles."""
    from cocotb.triggers import RisingEdge, with_timeout

    from tb.streams import StreamSink, StreamSource, start_clock_and_reset

    cfg = load_config()
    seed = zlib.crc32(f"{cfg['name']}/{idle}/{backpressure}".encode())
    rng = np.random.default_rng(seed)
    source = StreamSource(dut, "i_stream", dut.clk, None, idle, seed)
    loader = StreamSource(dut, "cfg", dut.clk, None, idle, seed + 2)
    sink = StreamSink(dut, "o_stream", dut.clk, None, backpressure, seed + 1)
    await start_clock_and_reset(dut)
    expect, spans = [], []
    for index in range(len(cfg["layers"])):
        params, pixels = layer_data(cfg, index, rng, n)
        beats = load_beats(cfg, params)
        start = loader.sent
        loader.send(beats)

        async def started():
            while loader.sent == start:
                await RisingEdge(dut.clk)
        await with_timeout(started(), 200 * len(beats) + 50_000, "ns")
        first_pixel = source.sent
        source.send(pack_pixel(cfg, px, rng) for px in pixels)
        await loader.wait_sent(timeout_ns=200 * len(beats) + 50_000)
        await source.wait_sent(timeout_ns=200 * n * cfg["ci"] * cfg["co"] + 50_000)
        spans.append((loader.handshakes[start], loader.handshakes[-1],
                      source.handshakes[first_pixel:]))
        expect += expected_beats(cfg, params, pixels)
    got = await sink.wait_for(len(expect), timeout_ns=200 * len(expect) + 100_000)
    for i, (g, e) in enumerate(zip(got, expect)):
        assert g == e, f"{idle}/{backpressure}: beat {i}: got {g:#x}, expected {e:#x}"
    assert int(dut.error.value) == 0, "error raised by good descriptors"
    return spans


def cocotb_tests(cfg) -> int:
    return len(flow_pairs(False)) + 1


if cocotb is not None:
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(False)))
    async def runtime_layers_match_golden(dut, idle, backpressure):
        await run_layers(dut, idle, backpressure, 6)

    @cocotb.test()
    async def runtime_layer_cycles(dut):
        """No stalls: each layer's pixels are taken every ``layer_cycles`` cycles; the
        switch (last pixel of a layer to first pixel of the next) is logged."""
        cfg = load_config()
        spans = await run_layers(dut, "none", "none", 12)
        prev_end = None
        for (kind, co, ci), (load_first, load_last, pix) in zip(cfg["layers"], spans):
            gaps = set(np.diff(pix).tolist())
            want = cfg["layer_cycles"][f"{co}x{ci}"]
            switch = "" if prev_end is None else (
                f", switch {pix[0] - prev_end} cycles (load {load_last - load_first + 1} "
                f"cycles for {co * ci + 3 * co + 2} beats)")
            dut._log.info(f"{cfg['name']} layer {co}x{ci} ({kind}): cycles per pixel "
                          f"{sorted(gaps)}, expected {want}{switch}")
            assert gaps == {want}, f"{co}x{ci}: cycles per pixel {sorted(gaps)} != {want}"
            prev_end = pix[-1]


# ----------------------------------------------------------------------------- pytest

@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["name"])
def test_mac_array_runtime(cfg):
    from amaranth.back import verilog

    from hdl.mac_array import MacArray
    from tb.test_mac_array import REAL_PATH, real_data

    cfg = dict(cfg)
    if any(kind != "rand" for kind, _, _ in cfg["layers"]):
        real_data()
        cfg["real_path"] = str(REAL_PATH)
    comp = MacArray(cfg["co"], cfg["ci"], in_width=cfg["in_width"],
                    weight_width=cfg["weight_width"], bias_width=cfg["bias_width"],
                    mult_width=cfg["mult_width"], out_width=cfg["out_width"],
                    multipliers=cfg["multipliers"], out_group=cfg["out_group"],
                    relu=cfg["relu"], family=cfg.get("family", "generic"), runtime_shape=True)
    cfg.update(cfg_data_width=comp.cfg_data_width,
               layer_cycles={f"{co}x{ci}": comp.layer_cycles(co, ci)
                             for _, co, ci in cfg["layers"]})
    text = verilog.convert(comp, name="mac_array", emit_src=False)
    sources = {"mac_array.v": text, **primitive_models(cfg.get("family", "generic"))}
    run_cocotb(f"mac_array_runtime-{cfg['name']}", sources, "mac_array",
               "tb.test_mac_array_runtime", cfg, tests=cocotb_tests(cfg))
