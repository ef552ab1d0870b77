"""MAC array testbench: bit-exact against ``golden.datapath.mac.matvec`` on both simulators.

Per parameter point (the main one under the 3 x 3 grid of idle and backpressure patterns and
the stress pairs of ``tb.common.flow_pairs``, the others under the diagonal): a random
configuration, a saturation-corner configuration (rows cycle through extreme weights, bias,
multiplier and shift against extreme pixels), a partial reload (weights and bias only, the
requantization parameters kept), and, where marked, real MobileNetV2 data (PCA of a real
layer's activations folded by ``golden.calibration`` into integer weights, real coefficient
vectors). Every reload is queued while the previous pixels are still in flight, and the next
pixels compete with the load (queued with it, or once it is under way). A separate no-stall
run over many pixels measures the cycles between input handshakes (must be
``C*K/M`` exactly, or the padded schedule's count), the latency (must be ``LATENCY``) and the output beat count. The main
point also checks loads without ``last`` (``run_cfg_framing``). The shared ``StreamRule``
monitor watches ``o_stream``.
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

from tb.common import BUILD_ROOT, flow_pairs, load_config, primitive_models, run_cocotb
from tb.real_data import fit_and_held, save_atomic

REAL_POINT = "features.10"  # a 64-channel MobileNetV2 block output (signed values)
REAL_PATH = BUILD_ROOT / "mac_array_mobilenet_v2.npz"

W8 = {"in_width": 8, "weight_width": 8, "bias_width": 32, "mult_width": 16, "out_width": 8}
CONFIGS = [
    # M = 1: one product per cycle.
    {"name": "c4k3m1", "co": 4, "ci": 3, "multipliers": 1, "out_group": 1, "relu": False, **W8},
    # M = C*K: the full array, one pixel per cycle, all outputs in one beat.
    {"name": "c4k3m12", "co": 4, "ci": 3, "multipliers": 12, "out_group": 4, "relu": True,
     **W8},
    # In between: chunks of 2 products, 3 channels gathered per beat, odd widths.
    {"name": "c6k4m2", "co": 6, "ci": 4, "multipliers": 2, "out_group": 3, "relu": True,
     "in_width": 4, "weight_width": 6, "bias_width": 12, "mult_width": 8, "out_width": 5},
    # Two whole rows per cycle, wide everything.
    {"name": "c6k4m8", "co": 6, "ci": 4, "multipliers": 8, "out_group": 2, "relu": False,
     "in_width": 16, "weight_width": 16, "bias_width": 32, "mult_width": 32, "out_width": 16},
    # Issue 16's DSP budget: the lanes past the budget are LUT shift-and-add multipliers, and
    # the requantization product is built from LUT partial products (16/32-bit operands).
    {"name": "c6k4m8-lut", "co": 6, "ci": 4, "multipliers": 8, "out_group": 2, "relu": False,
     "in_width": 16, "weight_width": 16, "bias_width": 32, "mult_width": 32, "out_width": 16,
     "dsp_budget": 3, "requant_mult": "lut"},
    {"name": "c4k3m12-budget", "co": 4, "ci": 3, "multipliers": 12, "out_group": 4,
     "relu": True, "dsp_budget": 5, **W8},
    # FPGA family options, their DSP primitives simulated by models (tb.common): registered
    # MULT18X18D tiles (4 requantizer slices: 34 x 32 bits) and distributed-RAM tables, and
    # two 8 x 8 products per SB_MAC16 (5 tiles for 10 products, 2 LUT lanes).
    {"name": "c6k4m8-ecp5", "co": 6, "ci": 4, "multipliers": 8, "out_group": 2, "relu": False,
     "in_width": 16, "weight_width": 16, "bias_width": 32, "mult_width": 32, "out_width": 16,
     "family": "ecp5"},
    {"name": "c4k3m12-ice40", "co": 4, "ci": 3, "multipliers": 12, "out_group": 4,
     "relu": True, "dsp_budget": 5, "family": "ice40", **W8},
    # The product's inverse projection, C=64 K=16, with real data.
    # Main point: every stall pattern pair, the cfg framing test.
    {"name": "c64k16m64", "co": 64, "ci": 16, "multipliers": 64, "out_group": 4,
     "relu": False, "real": "inv", "pixels": 200, "segments": ("corners", "real"),
     "main": True, **W8},
    # The hdl.build default (M = 16, 64 cycles per pixel): the no-stall run only; and the
    # ECP5 build measured at 150 MHz (docs/fpga.md), the diagonal of stalls.
    {"name": "c64k16m16", "co": 64, "ci": 16, "multipliers": 16, "out_group": 1,
     "relu": False, "pixels": 50, "only": "mac_array_throughput", **W8},
    {"name": "c64k16m16-ecp5", "co": 64, "ci": 16, "multipliers": 16, "out_group": 1,
     "relu": False, "pixels": 50, "family": "ecp5", **W8},
    # The forward projection (16 from 64), baked from the real artifact.
    {"name": "fwd16x64m16-baked", "co": 16, "ci": 64, "multipliers": 16, "out_group": 2,
     "relu": False, "real": "fwd", "baked": "real", **W8},
    # Baked full array: constant weights straight into the multipliers.
    {"name": "c4k3m12-baked", "co": 4, "ci": 3, "multipliers": 12, "out_group": 4,
     "relu": False, "baked": "random", **W8},
    # Counts without a clean schedule (hdl.mac_array.schedule): the last input chunk padded
    # with zeros (3 of 4 lanes; 1 of 2 lanes, loaded at run time; 2 of 3 lanes baked), and
    # fewer rows per step than M allows (2 rows of 7, 14 of 16 multipliers).
    {"name": "c4k7m4-pad", "co": 4, "ci": 7, "multipliers": 4, "out_group": 2,
     "relu": False, "expect_cycles": 8, **W8},
    {"name": "c3k5m2-pad", "co": 3, "ci": 5, "multipliers": 2, "out_group": 3,
     "relu": True, "expect_cycles": 9, **W8},
    {"name": "c6k5m3-pad-baked", "co": 6, "ci": 5, "multipliers": 3, "out_group": 3,
     "relu": False, "baked": "random", "expect_cycles": 12, **W8},
    {"name": "c32k7m16-rows", "co": 32, "ci": 7, "multipliers": 16, "out_group": 2,
     "relu": False, "expect_cycles": 16, **W8},
]


# ----------------------------------------------------------------------------- stimulus

def shift_max(cfg) -> int:
    from golden.datapath.quant import acc_bits
    from hdl.requantizer import shift_width

    acc = acc_bits(cfg["in_width"], cfg["weight_width"], cfg["ci"], cfg["bias_width"])
    return (1 << shift_width(acc, cfg["mult_width"])) - 1


def random_params(cfg, rng) -> dict:
    """Random weights over the full range; shifts that keep most outputs unsaturated."""
    co, ci = cfg["co"], cfg["ci"]
    w_lo, w_hi = int_range(cfg["weight_width"])
    b_lo, b_hi = int_range(cfg["bias_width"])
    typical = cfg["in_width"] + cfg["weight_width"] + int(np.log2(ci) / 2)
    bias_mag = min(b_hi, 1 << typical)
    return {
        "weight": rng.integers(w_lo, w_hi + 1, (co, ci)),
        "bias": rng.integers(max(b_lo, -bias_mag), min(b_hi, bias_mag) + 1, co),
        "mult": rng.integers(0, 1 << cfg["mult_width"], co),
        "shift": np.clip(rng.integers(0, 8, co) + cfg["mult_width"] + typical
                         - cfg["out_width"], 0, shift_max(cfg)),
    }


def corner_params(cfg, rng) -> dict:
    """Rows cycle through extreme weights, bias, multiplier and shift combinations."""
    co, ci = cfg["co"], cfg["ci"]
    w_lo, w_hi = int_range(cfg["weight_width"])
    b_lo, b_hi = int_range(cfg["bias_width"])
    m_hi = (1 << cfg["mult_width"]) - 1
    rows = [w_lo, w_hi, None]
    biases = [b_lo, b_hi, 0]
    mults = [m_hi, 1, 0, m_hi]
    shifts = [0, shift_max(cfg), 1, cfg["mult_width"] + cfg["in_width"]]
    weight = np.empty((co, ci), dtype=np.int64)
    bias, mult, shift = (np.empty(co, dtype=np.int64) for _ in range(3))
    for c in range(co):
        row = rows[c % 3]
        weight[c] = rng.integers(w_lo, w_hi + 1, ci) if row is None else row
        bias[c] = biases[(c // 3) % 3]
        mult[c] = mults[c % 4]
        shift[c] = min(shifts[(c // 2) % 4], shift_max(cfg))
    return {"weight": weight, "bias": bias, "mult": mult, "shift": shift}


def corner_pixels(cfg, rng) -> np.ndarray:
    """All-min, all-max, zero, alternating extremes and single-extreme pixels."""
    ci = cfg["ci"]
    lo, hi = int_range(cfg["in_width"])
    alt = np.where(np.arange(ci) % 2, hi, lo)
    one = np.zeros(ci, dtype=np.int64)
    one[rng.integers(ci)] = lo
    return np.stack([np.full(ci, lo), np.full(ci, hi), np.zeros(ci, np.int64), alt, -alt - 1,
                     one])


def random_pixels(cfg, rng, n) -> np.ndarray:
    lo, hi = int_range(cfg["in_width"])
    return rng.integers(lo, hi + 1, (n, cfg["ci"]))


def real_data():
    """Real MobileNetV2 data, cached under build/sim: the PCA of ``REAL_POINT`` (K = 16) on
    two photo crops folded by ``golden.calibration.folding.calibrate_layer`` into an artifact; the
    quantized activations ``x`` of two other crops and their coefficients ``y``."""
    if REAL_PATH.exists():
        with np.load(REAL_PATH) as npz:
            return {key: npz[key] for key in npz.files}
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.pipeline import forward_int, quantize_input
    from golden.projection.pca import pca_fit

    fit, held = fit_and_held(REAL_POINT)
    art = calibrate_layer(pca_fit(fit, k=16), fit, name=REAL_POINT)
    x_int = quantize_input(art, held)
    out = {key: np.asarray(val) for key, val in art.arrays().items()
           if key.startswith(("fwd_", "inv_"))}
    out["x"] = x_int
    out["y"] = forward_int(art, x_int)
    save_atomic(REAL_PATH, lambda tmp: np.savez(tmp, **out))
    return out


def real_segment(cfg, rng, n):
    real = {key: val for key, val in np.load(cfg["real_path"]).items()}
    prefix = cfg["real"] + "_"
    params = {key: real[prefix + key].astype(np.int64) for key in ("weight", "bias", "mult",
                                                                    "shift")}
    pix = real["y"] if cfg["real"] == "inv" else real["x"]
    rows = rng.choice(pix.shape[0], n, replace=False)
    return params, pix[rows].astype(np.int64)


def golden(cfg, params, pixels) -> np.ndarray:
    return matvec(pixels, params["weight"], params["bias"], params["mult"], params["shift"],
                  in_bits=cfg["in_width"], w_bits=cfg["weight_width"],
                  bias_bits=cfg["bias_width"], out_bits=cfg["out_width"], relu=cfg["relu"])


def cfg_beats(cfg, params, partial=False) -> list[int]:
    """The cfg words of a load (docs/mac_array.md): W row-major, bias, mult, shift; a partial
    load stops after the bias (``last`` there), keeping mult and shift."""
    parts = [params["weight"].ravel(), params["bias"]]
    if not partial:
        parts += [params["mult"], params["shift"]]
    values = np.concatenate(parts)
    dw = cfg["cfg_data_width"]
    mask = (1 << dw) - 1
    return [(int(v) & mask) | (int(i == len(values) - 1) << dw) for i, v in enumerate(values)]


def pack_pixel(cfg, px) -> int:
    w = cfg["in_width"]
    return sum((int(v) & ((1 << w) - 1)) << (w * j) for j, v in enumerate(px))


def unpack_beat(cfg, word) -> tuple[list[int], int]:
    w, g = cfg["out_width"], cfg["out_group"]
    vals = []
    for j in range(g):
        v = (word >> (w * j)) & ((1 << w) - 1)
        vals.append(v - (1 << w) if v >> (w - 1) else v)
    return vals, (word >> (w * g)) & 1


def baked_params(cfg) -> dict:
    if cfg["baked"] == "real":
        return real_segment(cfg, np.random.default_rng(0), 1)[0]
    return random_params(cfg, np.random.default_rng(zlib.crc32(cfg["name"].encode())))


# ----------------------------------------------------------------------------- cocotb

class TB:
    def __init__(self, dut, cfg, idle, backpressure, seed):
        from tb.streams import StreamSink, StreamSource

        self.dut = dut
        self.cfg = cfg
        self.source = StreamSource(dut, "i_stream", dut.clk, None, idle, seed)
        self.sink = StreamSink(dut, "o_stream", dut.clk, None, backpressure, seed + 1,
                               (dut.i_stream__valid, dut.i_stream__ready),
                               threshold=cfg["cycles"] + 16)
        self.fill = self.sink.pattern
        self.loader = (StreamSource(dut, "cfg", dut.clk, None, idle, seed + 2)
                       if not cfg.get("baked") else None)
        self.paused = False
        pattern = self.sink.pattern
        self.sink.pattern = (0 if self.paused else next(pattern) for _ in iter(int, 1))
        self.in_cycles: list[int] = []
        self.out_cycles: list[int] = []
        cocotb.start_soon(self._watch())

    async def _watch(self):
        """Clock edges at which each input and output handshake happens (one counter)."""
        from cocotb.triggers import RisingEdge

        dut, cycle = self.dut, 0
        while True:
            await RisingEdge(dut.clk)
            cycle += 1
            if int(dut.i_stream__valid.value) and int(dut.i_stream__ready.value):
                self.in_cycles.append(cycle)
            if int(dut.o_stream__valid.value) and int(dut.o_stream__ready.value):
                self.out_cycles.append(cycle)

    async def reset(self):
        from tb.streams import start_clock_and_reset

        await start_clock_and_reset(self.dut)

    async def load(self, params, partial=False):
        beats = cfg_beats(self.cfg, params, partial)
        self.loader.send(beats)
        await self.loader.wait_sent(timeout_ns=100 * len(beats) + 10_000)

    async def pause_output(self, cycles):
        """Hold ``o_stream.ready`` low for ``cycles``: the array stalls with pixels inside."""
        from cocotb.triggers import ClockCycles

        self.paused = True
        await ClockCycles(self.dut.clk, cycles)
        self.paused = False

    async def load_then_pixels(self, params, pixels, partial, together):
        """Queue a load and the pixels that must see it, so that they compete for the array:
        ``together`` queues both at once (the offered cfg beat must win); otherwise the pixels
        are queued once the first beat is in (the load under way must hold them back)."""
        from cocotb.triggers import RisingEdge, with_timeout

        beats = cfg_beats(self.cfg, params, partial)
        start = self.loader.sent
        self.loader.send(beats)
        if not together:
            async def started():
                while self.loader.sent == start:
                    await RisingEdge(self.dut.clk)
            await with_timeout(started(), 100 * len(beats) + 20_000, "ns")
        self.source.send(pack_pixel(self.cfg, px) for px in pixels)
        await self.loader.wait_sent(timeout_ns=100 * len(beats) + 10_000)
        await self.source.wait_sent(timeout_ns=100 * len(pixels) * self.cfg["cycles"] + 10_000)

    async def pixels(self, pixels):
        self.source.send(pack_pixel(self.cfg, px) for px in pixels)
        await self.source.wait_sent(timeout_ns=100 * len(pixels) * self.cfg["cycles"] + 10_000)

    def check(self, expect: np.ndarray, got: list[int], what: str):
        cfg = self.cfg
        per_pixel = cfg["co"] // cfg["out_group"]
        data, lasts = [], []
        for word in got:
            vals, last = unpack_beat(cfg, word)
            data += vals
            lasts.append(last)
        data = np.array(data, dtype=np.int64).reshape(expect.shape)
        bad = np.argwhere(data != expect)
        assert bad.size == 0, (
            f"{what}: {len(bad)} mismatches; first at pixel {bad[0][0]} channel {bad[0][1]}: "
            f"got {data[tuple(bad[0])]} expected {expect[tuple(bad[0])]}")
        want = [int(i % per_pixel == per_pixel - 1) for i in range(len(got))]
        assert lasts == want, f"{what}: last flags {lasts} != {want}"


async def run_test(dut, idle, backpressure):
    from cocotb.triggers import ClockCycles

    cfg = load_config()
    seed = zlib.crc32(f"{cfg['name']}/{idle}/{backpressure}".encode())
    rng = np.random.default_rng(seed)
    tb = TB(dut, cfg, idle, backpressure, seed)
    await tb.reset()
    if cfg.get("baked"):
        params = baked_params(cfg)
        segments = [(params, np.concatenate([corner_pixels(cfg, rng),
                                             random_pixels(cfg, rng, 10)]), None)]
        if cfg.get("real"):
            segments.append((params, real_segment(cfg, rng, 8)[1], None))
    else:
        r1 = random_params(cfg, rng)
        corners = corner_params(cfg, rng)
        r2 = random_params(cfg, rng)
        partial = {"weight": r2["weight"], "bias": r2["bias"], "mult": corners["mult"],
                   "shift": corners["shift"]}
        plan = {
            "random": (r1, np.concatenate([random_pixels(cfg, rng, 6),
                                           corner_pixels(cfg, rng)]), "full"),
            "corners": (corners, np.concatenate([corner_pixels(cfg, rng),
                                                 random_pixels(cfg, rng, 4)]), "full"),
            "partial": (partial, np.concatenate([corner_pixels(cfg, rng)[:3],
                                                 random_pixels(cfg, rng, 3)]), "partial"),
        }
        if cfg.get("real"):
            plan["real"] = (*real_segment(cfg, rng, 8), "full")
        # Large points keep fewer loads (1216 beats each at C=64, K=16) to save sim time.
        segments = [plan[key] for key in cfg.get("segments", plan)]
    expect = []
    for i, (params, pixels, load) in enumerate(segments):
        # The previous pixels may still be in the array: the load must wait for them. Once
        # per run they are also frozen there (output held) for longer than the load takes.
        if i == 1 and load is not None:
            cocotb.start_soon(tb.pause_output(len(cfg_beats(cfg, params)) + 20))
        if load is None:
            await tb.pixels(pixels)
        else:
            await tb.load_then_pixels(params, pixels, load == "partial", idle == "none")
        expect.append(golden(cfg, params, pixels))
    expect = np.concatenate(expect)
    beats = expect.shape[0] * cfg["co"] // cfg["out_group"]
    got = await tb.sink.wait_for(beats, timeout_ns=100 * (beats + cfg["latency"]) + 100_000)
    tb.check(expect, got, f"{idle}/{backpressure}")
    await ClockCycles(dut.clk, cfg["latency"] + 20)
    assert len(tb.sink.received) == beats, "MAC array emitted extra beats"
    if backpressure == "fill":
        assert tb.fill.fills > 0, "backpressure never filled the MAC array"
        assert tb.sink.rule.stalls > 0, "the output was never stalled"


async def run_cfg_framing(dut):
    """A load without ``last`` ends after its ``C_out * C_in + 3 * C_out`` beats.

    A full load with no ``last`` at all is applied and pixels flow after it (an array that
    waited for ``last`` would hold them for ever and time out here); a full load without
    ``last`` followed at once by a partial load: the beat after the final value starts the
    partial load, which replaces weights and bias and keeps the first load's mult and shift.
    """
    cfg = load_config()
    rng = np.random.default_rng(31)
    tb = TB(dut, cfg, "none", "none", 31)
    await tb.reset()
    mask = (1 << cfg["cfg_data_width"]) - 1

    def no_last(beats):
        return [b & mask for b in beats]

    p1 = random_params(cfg, rng)
    full = no_last(cfg_beats(cfg, p1))
    assert len(full) == cfg["co"] * cfg["ci"] + 3 * cfg["co"]
    tb.loader.send(full)
    await tb.loader.wait_sent(timeout_ns=100 * len(full) + 10_000)
    px1 = random_pixels(cfg, rng, 5)
    await tb.pixels(px1)
    p2, p3 = random_params(cfg, rng), random_params(cfg, rng)
    partial = {"weight": p3["weight"], "bias": p3["bias"], "mult": p2["mult"],
               "shift": p2["shift"]}
    beats = no_last(cfg_beats(cfg, p2)) + cfg_beats(cfg, p3, partial=True)
    tb.loader.send(beats)
    await tb.loader.wait_sent(timeout_ns=100 * len(beats) + 10_000)
    px2 = random_pixels(cfg, rng, 5)
    await tb.pixels(px2)
    expect = np.concatenate([golden(cfg, p1, px1), golden(cfg, partial, px2)])
    n = expect.shape[0] * cfg["co"] // cfg["out_group"]
    got = await tb.sink.wait_for(n, timeout_ns=100 * (n + cfg["latency"]) + 100_000)
    tb.check(expect, got, "cfg framing")


def cocotb_tests(cfg) -> int:
    """The cocotb tests a configuration runs (pytest checks that all of them did)."""
    if cfg.get("only"):
        return 1
    return len(flow_pairs(cfg.get("main", False))) + 1 + bool(cfg.get("main"))


if cocotb is not None:
    # The tests a configuration runs are generated from it: nothing returns early.
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), flow_pairs(_CFG.get("main", False))))
    async def mac_array_matches_golden(dut, idle, backpressure):
        await run_test(dut, idle, backpressure)

    if _CFG.get("main"):
        @cocotb.test()
        async def mac_array_cfg_framing(dut):
            await run_cfg_framing(dut)

    @cocotb.test()
    async def mac_array_throughput(dut):
        """No stalls over many pixels: C*K/M cycles between input handshakes, LATENCY."""
        from cocotb.triggers import ClockCycles

        cfg = load_config()
        rng = np.random.default_rng(7)
        tb = TB(dut, cfg, "none", "none", 7)
        await tb.reset()
        params = baked_params(cfg) if cfg.get("baked") else random_params(cfg, rng)
        if not cfg.get("baked"):
            await tb.load(params)
        n = cfg.get("pixels", 40)
        pixels = random_pixels(cfg, rng, n)
        start = len(tb.in_cycles)
        await tb.pixels(pixels)
        beats = n * cfg["co"] // cfg["out_group"]
        got = await tb.sink.wait_for(beats, timeout_ns=20 * (n * cfg["cycles"] + 1000))
        tb.check(golden(cfg, params, pixels), got, "throughput")
        gaps = np.diff(tb.in_cycles[start:])
        dut._log.info(f"{cfg['name']}: {n} pixels, cycles between input handshakes "
                      f"{sorted(set(gaps.tolist()))}, expected {cfg['cycles']}; latency "
                      f"{tb.out_cycles[0] - tb.in_cycles[start]}")
        assert (gaps == cfg["cycles"]).all(), (
            f"cycles per pixel {sorted(set(gaps.tolist()))}, expected exactly {cfg['cycles']}")
        # The output keeps pace: the last pixel's final beat is LATENCY + (n - 1) * T + the
        # pixel's own beat spread after the first input handshake, no later.
        spread = (cfg["co"] // cfg["out_group"] - 1) * cfg["cycles"] * cfg["out_group"] \
            // cfg["co"]
        assert tb.out_cycles[beats - 1] - tb.in_cycles[start] == \
            cfg["latency"] + (n - 1) * cfg["cycles"] + spread, "output fell behind"
        latency = tb.out_cycles[0] - tb.in_cycles[start]
        assert latency == cfg["latency"], f"latency {latency}, LATENCY says {cfg['latency']}"
        await ClockCycles(dut.clk, 20)
        assert len(tb.sink.received) == beats, "MAC array emitted extra beats"


# ----------------------------------------------------------------------------- pytest

def build(cfg):
    from hdl.mac_array import MacArray

    weights = baked_params(cfg) if cfg.get("baked") else None
    return MacArray(cfg["co"], cfg["ci"], in_width=cfg["in_width"],
                    weight_width=cfg["weight_width"], bias_width=cfg["bias_width"],
                    mult_width=cfg["mult_width"], out_width=cfg["out_width"],
                    multipliers=cfg["multipliers"], out_group=cfg["out_group"],
                    relu=cfg["relu"], weights=weights, dsp_budget=cfg.get("dsp_budget"),
                    requant_mult=cfg.get("requant_mult", "dsp"),
                    family=cfg.get("family", "generic"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["name"])
def test_mac_array(cfg):
    from amaranth.back import verilog

    cfg = dict(cfg)
    if cfg.get("real"):
        real_data()
        cfg["real_path"] = str(REAL_PATH)
    comp = build(cfg)
    cfg.update(latency=comp.LATENCY, cycles=comp.CYCLES_PER_PIXEL,
               cfg_data_width=comp.cfg_data_width)
    assert cfg["cycles"] == cfg.get("expect_cycles", cfg["co"] * cfg["ci"] // cfg["multipliers"])
    text = verilog.convert(comp, name="mac_array", emit_src=False)
    sources = {"mac_array.v": text, **primitive_models(cfg.get("family", "generic"))}
    run_cocotb(f"mac_array-{cfg['name']}", sources, "mac_array",
               "tb.test_mac_array", cfg, testcase=cfg.get("only"), tests=cocotb_tests(cfg))


def test_real_data_is_not_trivial():
    """The real coefficients and activations span many values (the data is not degenerate)."""
    real = real_data()
    assert real["x"].shape[1] == 64 and real["y"].shape[1] == 16
    assert len(np.unique(real["y"])) > 50 and len(np.unique(real["x"])) > 50
