"""Matrix-vector MAC array with per-channel requantization, ``M`` physical multipliers.

Golden twin: ``golden.datapath.mac.matvec``. ``y = requantize(W @ x + bias, mult, shift)`` per
output channel, for one pixel per ``channels_out * channels_in / multipliers`` cycles. The inverse
projection is ``channels_out = C, channels_in = K``; the forward one swaps the sizes.
Architecture, schedule, latency and the ``cfg`` protocol: ``docs/mac_array.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.utils import exact_log2
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.datapath.quant import acc_bits, int_range
from hdl.multiply import FAMILIES, ecp5_mult18, ice40_dual_mul8, partial_products, sum_terms
from hdl.registry import Block, UsageError, non_negative, positive
from hdl.registry import Module as BuildModule
from hdl.requantizer import (
    REQUANT_MULTS,
    REQUANT_SHIFT_STAGE,
    REQUANT_STAGES,
    check_family,
    check_requant_mult,
    requant_pipeline,
    shift_width,
)

__all__ = ["BLOCK", "MacArray", "layer_cycles", "load_weights", "runtime_schedule",
           "schedule", "valid_multipliers"]


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        if hi is None:
            kind = "non-negative" if lo == 0 else "positive"
            raise ValueError(f"{name} must be a {kind} integer, not {value}")
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


def valid_multipliers(channels_out: int, channels_in: int) -> list[int]:
    """Multiplier counts with a clean schedule: divisors of ``channels_in`` (chunks of one
    output row) and ``channels_in`` times a divisor of ``channels_out`` (whole rows)."""
    small = [d for d in range(1, channels_in + 1) if channels_in % d == 0]
    large = [channels_in * d for d in range(2, channels_out + 1) if channels_out % d == 0]
    return small + large


def schedule(channels_out: int, channels_in: int, multipliers: int) -> dict:
    """The schedule of at most ``multipliers`` products per cycle, for any count.

    Returns ``rows`` R (output rows per step), ``lanes`` L (products per row per step),
    ``chunks`` S (steps per row group), ``groups`` G (row groups), ``cycles`` = G * S,
    ``products`` = R * L (the multipliers built, at most ``multipliers``), ``in_pad`` (zero
    inputs appended so that S chunks of L lanes cover the row) and ``efficiency``, the useful
    products per cycle over M: ``C_out * C_in / (M * cycles)``.

    With M >= C_in a step does R whole rows, R the largest divisor of C_out up to M / C_in;
    with M < C_in a row takes S = ceil(C_in / M) steps of L = ceil(C_in / S) lanes, the last
    chunk padded with zeros. Counts that divide C_in, or are C_in times a divisor of C_out
    (``valid_multipliers``), need no padding and use all M multipliers.
    """
    co = _check_int("Output channel count", channels_out, 1)
    ci = _check_int("Input channel count", channels_in, 1)
    m = _check_int("Multiplier count", multipliers, 1)
    if m >= ci:
        per_step = m // ci
        rows = max(d for d in range(1, min(per_step, co) + 1) if co % d == 0)
        lanes, chunks = ci, 1
    else:
        rows = 1
        chunks = -(-ci // m)
        lanes = -(-ci // chunks)
    groups = co // rows
    cycles = groups * chunks
    products = rows * lanes
    return {"rows": rows, "lanes": lanes, "chunks": chunks, "groups": groups,
            "cycles": cycles, "products": products, "in_pad": chunks * lanes - ci,
            "efficiency": round(co * ci / (m * cycles), 4)}


def runtime_schedule(max_out: int, max_in: int, multipliers: int) -> dict:
    """The schedule of a run-time-shape array (``MacArray(..., runtime_shape=True)``).

    One output row per step (``rows`` 1) of ``lanes`` L = min(M, max_in) products; a layer of
    shape (C_out, C_in) takes ``layer_cycles(C_out, C_in, L)`` = C_out * ceil(C_in / L)
    cycles per pixel. The keys are ``schedule``'s, for the maximum shape.
    """
    co = _check_int("Most output channels", max_out, 1)
    ci = _check_int("Most input channels", max_in, 1)
    m = _check_int("Multiplier count", multipliers, 1)
    lanes = min(m, ci)
    chunks = -(-ci // lanes)
    cycles = co * chunks
    return {"rows": 1, "lanes": lanes, "chunks": chunks, "groups": co, "cycles": cycles,
            "products": lanes, "in_pad": chunks * lanes - ci,
            "efficiency": round(co * ci / (m * cycles), 4)}


def layer_cycles(channels_out: int, channels_in: int, lanes: int) -> int:
    """Cycles per pixel of one layer on a run-time-shape array of ``lanes`` products."""
    return channels_out * -(-channels_in // lanes)


_KEYS = ("weight", "bias", "mult", "shift")


def load_weights(weights, channels_out: int, channels_in: int) -> dict:
    """Normalise ``weights`` to ``{weight, bias, mult, shift}`` int64 arrays.

    ``weights`` is a dict or a golden artifact path (``.npz``) holding ``inv_*`` or ``fwd_*``
    keys (or the bare names); the set whose weight shape is ``(channels_out, channels_in)``
    is taken, the inverse one first.
    """
    if isinstance(weights, (str, Path)):
        from golden.datapath.artifacts import load_artifact
        weights = load_artifact(weights).arrays()
    if not isinstance(weights, dict):
        raise TypeError(f"Weights must be a dict or an artifact path, not {weights!r}")
    shape = (channels_out, channels_in)
    for prefix in ("inv_", "fwd_", ""):
        if all(prefix + key in weights for key in _KEYS):
            w = np.asarray(weights[prefix + "weight"])
            if w.shape == shape:
                return {key: np.asarray(weights[prefix + key]).astype(np.int64)
                        for key in _KEYS}
    raise ValueError(f"Weights hold no weight/bias/mult/shift set with a weight matrix of shape "
                     f"{shape}")


def _check_values(name, a, shape, lo, hi):
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {a.shape}")
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{name} values must be between {lo} and {hi}, not "
                         f"{int(a.min())}..{int(a.max())}")


class MacArray(wiring.Component):
    """``channels_out`` requantized dot products of one ``channels_in`` vector per pixel.

    Parameters
    ----------
    channels_out, channels_in : int
        Output channels (rows of W) and input channels (columns), 1 to 4096.
    in_width, weight_width : int
        Signed input and weight widths, 2 to 16.
    bias_width : int
        Signed bias width, 2 to 32.
    mult_width : int
        Unsigned requantization multiplier width, 1 to 32.
    out_width : int
        Signed output width, 2 to 16.
    multipliers : int
        At most M products per cycle, any M >= 1 (``schedule``): the array builds
        ``products`` <= M multipliers and takes ``cycles`` per pixel, exactly
        ``C_out * C_in / M`` when M divides ``channels_in`` or is ``channels_in`` times a
        divisor of ``channels_out`` (``valid_multipliers``); other counts pad the last input
        chunk with zeros or do fewer rows per step (``efficiency`` < 1).
    out_group : int
        Output channels per ``o_stream`` beat; divides ``channels_out`` and is a multiple of
        the rows done per cycle ``max(1, M / channels_in)`` (so the output keeps up).
    relu : bool
        Clamp outputs at zero.
    weights : dict, str, Path or None
        Bake these constants (``load_weights``); no ``cfg`` port. None: loaded through ``cfg``
        (all zero after reset, i.e. every output 0 until loaded).
    dsp_budget : int or None
        DSP tiles for the M weight products: the first ``dsp_budget`` products (two per tile
        with ``family="ice40"``) are DSP multipliers, the others LUT shift-and-add
        multipliers (``hdl.multiply.partial_products``). None: every product on a DSP tile.
        The requantizer's tiles (``requant_mult="dsp"``) are not counted.
    family : str
        The FPGA family to build for (``hdl.multiply``): ``"generic"`` (inferred ``*``, the
        portable default), ``"ecp5"`` (``MULT18X18D`` instances with input and output
        registers, also for the requantizer, and tables of at most ``LUTRAM_DEPTH`` words in
        distributed RAM) or ``"ice40"`` (two signed 8 x 8 products per ``SB_MAC16``; input
        and weight widths of at most 8).
    requant_mult : str
        ``"dsp"``: the requantization product on DSP tiles (ECP5: two ``MULT18X18D`` per row
        for 33 x 16 bits); ``"lut"``: from LUT partial products.
    runtime_shape : bool
        ``channels_out`` and ``channels_in`` are maxima: every ``cfg`` load starts with a
        descriptor (the layer's C_out, then its C_in) and the array computes that shape until
        the next load, one pixel per ``C_out * ceil(C_in / lanes)`` cycles (``lanes`` =
        min(M, channels_in), one row per step: ``runtime_schedule``). Input channels from
        C_in up are ignored. ``out_group`` must be a power of two dividing every C_out loaded.
        Needs run-time weights; adds the ``error`` port (a bad descriptor).

    Ports
    -----
    i_stream : In(stream)  payload ``ArrayLayout(signed(in_width), channels_in)``, element 0
        in the low bits: one pixel.
    o_stream : Out(stream) payload ``{data: ArrayLayout(signed(out_width), out_group), last}``;
        channels ascend from element 0; ``last`` marks the final beat of a pixel.
    cfg : In(stream)  payload ``{data, last}`` (run-time weights only): the values in the
        fixed order W (row-major), bias, mult, shift; applied between pixels (see the docs).
    error : Out(1)  (``runtime_shape`` only) a load's descriptor was out of range or cut
        short: the load's beats up to ``last`` are dropped and the shape and tables keep their
        previous contents; cleared by the next good descriptor.

    ``LATENCY`` cycles from an input handshake to the first output handshake when nothing
    stalls; ``CYCLES_PER_PIXEL`` between input handshakes after the pipeline fills.
    """

    def __init__(self, channels_out, channels_in, in_width=8, weight_width=8, bias_width=32,
                 mult_width=16, out_width=8, multipliers=1, out_group=1, relu=False,
                 weights=None, dsp_budget=None, family="generic", requant_mult="dsp",
                 runtime_shape=False):
        self._co = _check_int("Output channel count", channels_out, 1, 4096)
        self._ci = _check_int("Input channel count", channels_in, 1, 4096)
        self._in_w = _check_int("Input width", in_width, 2, 16)
        self._w_w = _check_int("Weight width", weight_width, 2, 16)
        self._b_w = _check_int("Bias width", bias_width, 2, 32)
        self._m_w = _check_int("Multiplier width", mult_width, 1, 32)
        self._o_w = _check_int("Output width", out_width, 2, 16)
        self._m = _check_int("Multiplier count", multipliers, 1)
        self._og = _check_int("Output group", out_group, 1)
        if not isinstance(relu, bool):
            raise TypeError(f"ReLU flag must be a bool, not {relu!r}")
        self._relu = relu
        check_requant_mult(requant_mult)
        self._requant_mult = requant_mult
        check_family(family)
        if family == "ice40" and max(self._in_w, self._w_w) > 8:
            raise ValueError(f"FPGA family ice40 needs input and weight widths of at most 8, "
                             f"not {self._in_w} and {self._w_w}")
        self._family = family
        if not isinstance(runtime_shape, bool):
            raise TypeError(f"Run-time shape flag must be a bool, not {runtime_shape!r}")
        self._runtime = runtime_shape
        if runtime_shape:
            if weights is not None:
                raise ValueError("A run-time-shape array loads its weights at run time; "
                                 "baked weights fix the shape")
            if self._og & (self._og - 1):
                raise ValueError(f"Output group of a run-time-shape array must be a power of "
                                 f"two, not {self._og}")
            self._sched = runtime_schedule(self._co, self._ci, self._m)
        else:
            self._sched = schedule(self._co, self._ci, self._m)
        products = self._sched["products"]
        per_tile = 2 if family == "ice40" else 1
        tiles = -(-products // per_tile)
        if dsp_budget is None:
            dsp_budget = tiles
        dsp_budget = _check_int("DSP budget", dsp_budget, 0)
        if dsp_budget > tiles:
            raise ValueError(f"DSP budget {dsp_budget} exceeds the {tiles} tiles that "
                             f"{products} products take")
        self._dsp_budget = dsp_budget
        rows = self._sched["rows"]
        if self._co % self._og or self._og % rows:
            raise ValueError(f"Output group must divide {self._co} output channels and be a "
                             f"multiple of {rows} (rows finished per cycle), not {self._og}")
        self._acc_w = acc_bits(self._in_w, self._w_w, self._ci, self._b_w)
        if self._acc_w > 48:
            raise ValueError(f"Accumulator would need {self._acc_w} bits, more than 48")
        self._sh_w = shift_width(self._acc_w, self._m_w)
        self._consts = None
        if weights is not None:
            self._consts = load_weights(weights, self._co, self._ci)
            c = self._consts
            _check_values("Weight", c["weight"], (self._co, self._ci), *int_range(self._w_w))
            _check_values("Bias", c["bias"], (self._co,), *int_range(self._b_w))
            _check_values("Multiplier", c["mult"], (self._co,), 0, (1 << self._m_w) - 1)
            _check_values("Shift", c["shift"], (self._co,), 0, (1 << self._sh_w) - 1)
        members = {
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(self._in_w), self._ci))),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(self._o_w), self._og),
                "last": unsigned(1)}))),
        }
        if self._consts is None:
            members["cfg"] = In(stream.Signature(data.StructLayout({
                "data": unsigned(self.cfg_data_width), "last": unsigned(1)})))
        if self._runtime:
            members["error"] = Out(1)
        super().__init__(members)

    # ------------------------------------------------------------------ derived facts

    @property
    def acc_width(self) -> int:
        return self._acc_w

    @property
    def cfg_data_width(self) -> int:
        width = max(self._w_w, self._b_w, self._m_w, self._sh_w)
        if self._runtime:  # the descriptor's counts
            width = max(width, self._co.bit_length(), self._ci.bit_length())
        return width

    @property
    def cfg_beats(self) -> int:
        """Beats of a full configuration load: C_out * C_in weights, then 3 * C_out (for the
        maximum shape, after the 2 descriptor beats, with ``runtime_shape``)."""
        return self._co * self._ci + 3 * self._co + (2 if self._runtime else 0)

    @property
    def runtime_shape(self) -> bool:
        return self._runtime

    @property
    def memory_bits(self) -> dict:
        """Bits of each table (sized by the maxima with ``runtime_shape``): the weights
        (``cycles`` words of ``products`` weights), bias, mult, shift (``groups`` words of
        ``rows`` values) and the output FIFO. Baked single-word tables are constants (0)."""
        s = self._sched
        words, groups = s["cycles"], s["groups"]
        baked = self._consts is not None
        out = {"weights": 0 if baked and words == 1 else words * s["products"] * self._w_w}
        for key, width in (("bias", self._b_w), ("mult", self._m_w), ("shift", self._sh_w)):
            out[key] = 0 if baked and groups == 1 else groups * s["rows"] * width
        out["output_fifo"] = self.FIFO_DEPTH * (self._og * self._o_w + 1)
        return out

    def layer_cycles(self, channels_out: int, channels_in: int) -> int:
        """Cycles per pixel of a layer (the fixed schedule's, without ``runtime_shape``)."""
        if not self._runtime:
            return self._sched["cycles"]
        return layer_cycles(channels_out, channels_in, self._sched["lanes"])

    def layer_latency(self, channels_out: int, channels_in: int) -> int:
        """``LATENCY`` for one layer: the output steps of a pixel's first beat grow with its
        input chunks (the fixed schedule's ``LATENCY`` without ``runtime_shape``)."""
        if not self._runtime:
            return self.LATENCY
        chunks = -(-channels_in // self._sched["lanes"])
        return self._latency_base + self._og * chunks - 1 + 2

    @property
    def CYCLES_PER_PIXEL(self) -> int:  # noqa: N802 - a constant of the instance
        return self._sched["cycles"]

    @property
    def products(self) -> int:
        """Multipliers built (weight products per cycle), at most ``multipliers``."""
        return self._sched["products"]

    @property
    def efficiency(self) -> float:
        """Useful products per cycle over ``multipliers`` (1.0 for a clean schedule)."""
        return self._sched["efficiency"]

    @property
    def _tree_stages(self) -> int:
        levels = (self._sched["lanes"] - 1).bit_length()
        return levels if self._sched["products"] > 32 else (levels + 1) // 2

    @property
    def dsp_products(self) -> int:
        """Weight products per cycle built on DSP tiles (the others are LUT multipliers)."""
        return min(self._sched["products"],
                   self._dsp_budget * (2 if self._family == "ice40" else 1))

    @property
    def dsp_tiles(self) -> int:
        """DSP tiles of the weight products (``dsp_budget``), requantizer not included."""
        return self._dsp_budget

    @property
    def FIFO_DEPTH(self) -> int:  # noqa: N802
        """Output FIFO entries: the beats of every pixel that can be in flight at full rate
        (``LATENCY`` plus a pixel's own steps, in pixels), plus one pixel of slack; with
        ``runtime_shape`` the most of any layer shape."""
        def depth(beats, cycles, core_latency):
            return beats * (-(-(core_latency + 4) // cycles) + 2)

        s = self._sched
        if not self._runtime:
            return depth(self._co // self._og, s["cycles"], self._core_latency)
        # More chunks only lengthen a pixel more than its latency: one chunk needs the most.
        return max(depth(co // self._og, co, self._latency_base + self._og - 1)
                   for co in range(self._og, self._co + 1, self._og))

    #: With ``family="ecp5"``, tables of at most this many words are distributed RAM.
    LUTRAM_DEPTH = 64

    #: Registered stages of a weight product: operands and product registers of an ECP5
    #: tile, product and a plain register otherwise (a LUT multiplier's partial products,
    #: then their sum), then a fabric register.
    PRODUCT_STAGES = 3

    #: Registered stages of the accumulator: its low half with the carry out, then its
    #: high half.
    ACC_STAGES = 2

    @property
    def _core_latency(self) -> int:
        """Input handshake to the first beat's write into the output FIFO: pixel register,
        operand and operand register stages, the product, the adder tree, the accumulator
        (``ACC_STAGES``), the requantizer (``REQUANT_STAGES``), then the output steps."""
        s = self._sched
        steps = (self._og // s["rows"]) * s["chunks"]
        return self._latency_base + steps - 1

    @property
    def _latency_base(self) -> int:
        return 3 + self.PRODUCT_STAGES + self._tree_stages + self.ACC_STAGES + REQUANT_STAGES

    @property
    def LATENCY(self) -> int:  # noqa: N802
        """``_core_latency`` plus the output FIFO's 2 cycles (write, read register)."""
        return self._core_latency + 2

    # ------------------------------------------------------------------ storage

    def _table(self, m, name, field_w, depth, lanes, init_rows):
        """A memory of ``depth`` words of ``lanes`` fields; returns (read port, write port).

        Baked single-word tables are constants (no register in between, so synthesis folds
        them); ``init_rows`` is a (depth, lanes) array for baked tables, else None.
        """
        mask = (1 << field_w) - 1
        init = None
        if init_rows is not None:
            init = [sum((int(v) & mask) << (field_w * j) for j, v in enumerate(row))
                    for row in init_rows]
            if depth == 1:
                return Const(init[0], field_w * lanes), None
        # ECP5 block RAM without its output register (yosys does not use it) has a 5.8 ns
        # clock-to-output, most of a 150 MHz cycle: small tables go to distributed RAM.
        attrs = None
        if self._family == "ecp5" and depth <= self.LUTRAM_DEPTH:
            attrs = {"ram_style": "distributed"}
        mem = Memory(shape=unsigned(field_w * lanes), depth=depth, init=init or [],
                     attrs=attrs)
        m.submodules[name] = mem
        rd = mem.read_port()
        wr = mem.write_port(granularity=field_w) if init_rows is None else None
        return rd, wr

    def _shape_values(self, co, ci) -> dict:
        """The shape-derived values the datapath and loader compare against, for a layer of
        ``co`` x ``ci`` (``runtime_shape``) or the fixed schedule (python ints)."""
        s = self._sched
        L = s["lanes"]
        if self._runtime:
            S = -(-ci // L)
            G, T = co, co * S
        else:
            S, G, T = s["chunks"], s["groups"], s["cycles"]
        ll = ci - (S - 1) * L    # real lanes of the last chunk
        beats = co // self._og
        # "- 2" values may be -1 (compared only when the counter can reach them).
        return {"s_last": S - 1, "s_m2": S - 2, "s_is1": int(S == 1),
                "g_last": G - 1, "g_m2": G - 2, "g_is1": int(G == 1),
                "t_total": T, "t_m2": T - 2, "t1": int(T == 1),
                "ll_m2": ll - 2, "ll_is1": int(ll == 1), "mask": (1 << ll) - 1,
                "beats": beats, "b_m1": beats - 1, "b2": 2 * beats, "b2_m1": 2 * beats - 1}

    def _shape_registers(self) -> dict:
        """Registers holding ``_shape_values`` of the loaded layer (``runtime_shape``), reset
        to the maximum shape's."""
        s = self._sched
        init = self._shape_values(self._co, self._ci)
        ranges = {"s": s["chunks"] + 1, "g": s["groups"] + 1, "t": s["cycles"] + 1,
                  "l": s["lanes"] + 1, "b": 2 * (self._co // self._og) + 1}
        regs = {}
        for key, value in init.items():
            if key == "mask":
                shape = unsigned(s["lanes"])
            elif key in ("s_is1", "g_is1", "t1", "ll_is1"):
                shape = unsigned(1)
            else:
                shape = range(ranges[key[0]])
            regs[key] = Signal(shape, init=max(value, 0), name=f"shape_{key}")
        return regs

    def elaborate(self, platform):
        m = Module()
        s = self._sched
        R, L, S, G, T = s["rows"], s["lanes"], s["chunks"], s["groups"], s["cycles"]
        Q = self._og // R
        c = self._consts
        # The shape: python ints for a fixed schedule, registers the loader sets per layer
        # with runtime_shape (T, S, G above are then the maxima, which size the storage).
        rt = (self._shape_registers() if self._runtime
              else self._shape_values(self._co, self._ci))

        # Constants, laid out by step: word t = g*S + s holds W[g*R + r, s*L + l] at r*L + l.
        w_init = b_init = m_init = s_init = None
        if c is not None:
            wp = np.zeros((self._co, S * L), dtype=np.int64)   # zero padding lanes
            wp[:, :self._ci] = c["weight"]
            w = wp.reshape(G, R, S, L).transpose(0, 2, 1, 3).reshape(T, R * L)
            w_init, b_init = w, c["bias"].reshape(G, R)
            m_init, s_init = c["mult"].reshape(G, R), c["shift"].reshape(G, R)
        w_rd, w_wr = self._table(m, "weights", self._w_w, T, R * L, w_init)
        b_rd, b_wr = self._table(m, "bias", self._b_w, G, R, b_init)
        m_rd, m_wr = self._table(m, "mult", self._m_w, G, R, m_init)
        s_rd, s_wr = self._table(m, "shift", self._sh_w, G, R, s_init)

        # Global stall: only a finished group meeting a full, unaccepted output holds the array.
        en = Signal()
        o = self.o_stream

        def token(name):
            return {"valid": Signal(name=f"{name}_valid"),
                    "first": Signal(name=f"{name}_first"),
                    "done": Signal(name=f"{name}_done"),
                    "gend": Signal(name=f"{name}_gend"),
                    "pend": Signal(name=f"{name}_pend"),
                    "g": Signal(range(max(G, 2)), name=f"{name}_g")}

        def advance(dst, src):
            m.d.sync += [dst[k].eq(src[k]) for k in dst]

        # Stage A: the pixel register and the step counters.
        x_reg = Signal(S * L * self._in_w)     # the pixel, zero-extended to S chunks of L
        active = Signal()
        t = Signal(range(max(T, 2)))
        sc = Signal(range(max(S, 2)))
        gc = Signal(range(max(G, 2)))
        qc = Signal(range(max(Q, 2)))
        tok_a = {"valid": active, "first": sc == 0, "done": sc == rt["s_last"],
                 "gend": qc == Q - 1, "pend": gc == rt["g_last"], "g": gc}
        # t == T - 1 kept as a flag beside t: the compare sat on the path to i_stream.ready
        # and the pixel register's load enable.
        last_step = Signal(name="last_step") if T > 1 else Const(1)
        # free: the pixel register is not needed after this cycle. It loads whenever free,
        # whether or not a pixel is handed over (a value taken without a handshake is never
        # used: active stays low), so its load enable is two flip-flops and one LUT and the
        # handshake does not fan out to it (at M = 64 on the ECP5-85k the handshake's
        # fanout was the critical path).
        free = Signal()
        # rdy: a register equal to "the output FIFO has room for a whole pixel (credits,
        # below), the pixel register is free and no configuration load is under way",
        # computed a cycle ahead (below), so that i_stream.ready is one LUT (rdy and no cfg
        # beat offered) and the handshake two: it feeds the counters, the credits and the
        # drain counter (the iCE40 critical path when ready took two LUTs of its own).
        rdy = Signal(init=1, name="rdy")
        loading, loading_next = Signal(name="loading"), Signal(name="loading_next")
        cfg_valid = self.cfg.valid if c is None else Const(0)
        m.d.comb += [free.eq(~active | last_step),
                     self.i_stream.ready.eq(rdy & ~cfg_valid)]
        # Written apart from i_stream.ready so that it is one LUT of three flip-flops rather
        # than a LUT behind the ready's LUT.
        accept = (self.i_stream.valid & rdy) & ~cfg_valid
        with m.If(en):
            with m.If(free):
                m.d.sync += x_reg.eq(self.i_stream.payload.as_value())
            with m.If(accept):
                m.d.sync += active.eq(1)
            with m.Elif(last_step):
                m.d.sync += active.eq(0)
            with m.If(active):
                m.d.sync += t.eq(Mux(last_step, 0, t + 1))
                if T > 1:
                    m.d.sync += last_step.eq(Mux(last_step, rt["t1"], t == rt["t_m2"]))
                m.d.sync += sc.eq(Mux(sc == rt["s_last"], 0, sc + 1))
                with m.If(sc == rt["s_last"]):
                    m.d.sync += [gc.eq(Mux(gc == rt["g_last"], 0, gc + 1)),
                                 qc.eq(Mux(qc == Q - 1, 0, qc + 1))]
        if not isinstance(w_rd, Const):
            m.d.comb += [w_rd.addr.eq(t), w_rd.en.eq(en)]
            w_word = w_rd.data
        else:
            w_word = w_rd

        # Stage 1: operands (the weight word arrives from the memory's read register).
        tok1 = token("op")
        xs = Signal(L * self._in_w)
        with m.If(en):
            advance(tok1, tok_a)
            chunk = x_reg.word_select(sc, L * self._in_w)
            if self._runtime:
                # Lanes past the layer's C_in in its last chunk hold whatever the pixel word
                # carries there, and their weights are a previous layer's: zero the inputs.
                keep = Cat(*[Mux(rt["mask"][j], (1 << self._in_w) - 1, 0) for j in range(L)])
                chunk = chunk & Mux(sc == rt["s_last"], keep, (1 << (L * self._in_w)) - 1)
            m.d.sync += xs.eq(chunk)

        # Stage 1b: a plain register after the memory, whose clock-to-output is slow (ECP5
        # DP16KD: 5.8 ns, then the multiplier: 59 MHz without this stage).
        tok1b = token("opr")
        xs_r = Signal.like(xs)
        w_reg = w_word
        if not isinstance(w_word, Const):
            w_reg = Signal.like(w_word, name="w_reg")
        with m.If(en):
            advance(tok1b, tok1)
            m.d.sync += xs_r.eq(xs)
            if w_reg is not w_word:
                m.d.sync += w_reg.eq(w_word)

        # Stage 2: the products, over two registered stages: a DSP multiplier for the first
        # dsp_products lanes (family: inferred, a registered MULT18X18D, or paired per
        # SB_MAC16), LUT shift-and-add multipliers (partial products, then their sum) for the
        # others.
        pw = self._in_w + self._w_w
        tok2, tok2b, tok2c = token("mul"), token("mulr"), token("mulp")
        with m.If(en):
            advance(tok2, tok1b)
            advance(tok2b, tok2)
            advance(tok2c, tok2b)
        operands = [(xs_r.word_select(i % L, self._in_w).as_signed(),
                     w_reg.word_select(i, self._w_w).as_signed()) for i in range(R * L)]
        n_dsp = self.dsp_products
        terms = []
        for i, (a, b) in enumerate(operands):
            if i >= n_dsp:
                # Four partial products of ceil(weight_width / 4) weight bits each (one adder
                # level for 8-bit weights), summed in the next stage (two levels): with two
                # of 4 bits, the first stage's three adder levels were the M = 64 critical
                # path on the ECP5-85k (144.7 MHz).
                terms.append(partial_products(a, b, -(-self._w_w // 4)))
            elif self._family == "ecp5":
                terms.append([(ecp5_mult18(m, f"dsp{i}", a, b, en, en), None)])
            elif self._family != "ice40":
                terms.append([(a * b, 0)])
            elif i % 2 == 0 and i + 1 < n_dsp:
                (a1, b1) = operands[i + 1]
                hi, lo = ice40_dual_mul8(m, f"dsp{i // 2}", a1, b1, a, b)
                terms += [[(lo, 0)], [(hi, 0)]]
            elif i % 2 == 0:
                terms.append([(a * b, 0)])
        # Generic and iCE40 DSP products reach stage 2c as copies of a fabric register, so
        # that stage can add the adder tree's first level when the tree's first stage holds
        # two levels (iCE40 M = 4: two carry chains after the products were its critical path);
        # the tree then starts a level later and keeps its stages, the latency unchanged.
        n_levels = (L - 1).bit_length()
        every = self._sched["products"] > 32
        fold = (self._family != "ecp5" and n_dsp == R * L and n_levels >= 2 and not every)
        prods = [[None] * L for _ in range(R)]
        for i, lane in enumerate(terms):
            name = f"{i // L}_{i % L}"
            if lane[0][1] is None:  # registered inside the tile, first two stages
                raw = lane[0][0]
            else:
                regs = []
                for k, (term, off) in enumerate(lane):
                    reg = Signal(term.shape(), name=f"pp{name}_{k}")
                    regs.append((reg, off))
                    with m.If(en):
                        m.d.sync += reg.eq(term)
                # The partial products' sum over the second and third stages, one adder level
                # each: the two levels in one stage were the M = 64 critical path on the
                # ECP5-85k (145.96 MHz).
                half = (len(regs) + 1) // 2
                raw = []
                for k, part in enumerate((regs[:half], regs[half:])):
                    if not part:
                        continue
                    base = part[0][1]
                    reg = Signal(signed(pw), name=f"pr{name}_{k}")
                    with m.If(en):
                        m.d.sync += reg.eq(sum_terms([(t, off - base) for t, off in part]))
                    raw.append((reg, base))
            if fold:   # a DSP product: one term, registered in stages 2a and 2b
                prods[i // L][i % L] = sum_terms(raw)
                continue
            # Third stage: a fabric register, so that the DSP tile's output routing (2.7 ns on
            # ECP5) does not share a cycle with the adder tree; LUT lanes add their two halves.
            prod = Signal(signed(pw), name=f"p{name}")
            with m.If(en):
                m.d.sync += prod.eq(raw if not isinstance(raw, list) else sum_terms(raw))
            prods[i // L][i % L] = prod
        if fold:
            for r in range(R):
                row = []
                for i in range(0, L, 2):
                    reg = Signal(signed(pw + 1), name=f"p{r}_{i // 2}")
                    with m.If(en):
                        m.d.sync += reg.eq(sum(prods[r][i:i + 2]))
                    row.append(reg)
                prods[r] = row

        # Adder trees.
        toks = [tok1, tok1b, tok2, tok2b, tok2c]
        sums = prods
        for level in range(1 if fold else 0, n_levels):
            nxt = []
            for r in range(R):
                terms = sums[r]
                pairs = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
                nxt.append(pairs)
            # A register after every two levels; after every level in arrays of more than
            # 32 products (at M = 64 two chained levels were the ECP5-85k critical path).
            if every or level % 2 == 1 or level == n_levels - 1:
                tok = token(f"tree{level}")
                regs = []
                with m.If(en):
                    advance(tok, toks[-1])
                    for r in range(R):
                        row = []
                        for i, v in enumerate(nxt[r]):
                            reg = Signal(signed(pw + level + 1), name=f"s{level}_{r}_{i}")
                            m.d.sync += reg.eq(v)
                            row.append(reg)
                        regs.append(row)
                toks.append(tok)
                nxt = regs
            sums = nxt
        row_sum = [sums[r][0] for r in range(R)]

        # Bias, mult and shift are read two stages ahead of the stage that uses them and
        # registered once after the block RAM (its clock-to-output is slow).
        def read(rd, tok, name):
            if isinstance(rd, Const):
                return rd
            m.d.comb += [rd.addr.eq(tok["g"]), rd.en.eq(en)]
            reg = Signal.like(rd.data, name=name)
            with m.If(en):
                m.d.sync += reg.eq(rd.data)
            return reg

        bias_word = read(b_rd, toks[-3], "bias_reg")
        mult_word = read(m_rd, toks[-1], "mult_reg")

        # Accumulator, two stages (ACC_STAGES): bias + first chunk, then + later chunks, in two
        # halves. The low half adds in the first stage and registers its carry out; the high
        # half adds the carry one cycle later (with the high halves of the chunk sum and the
        # bias delayed to match), and the low half waits a cycle beside it. Each carry chain
        # is a part of the accumulator (the 33-bit add was the iCE40 critical path: 52 MHz at
        # M = 4). The sum always fits acc_width bits (acc_bits), so the halves are exact.
        tok_acc, tok_acc2 = token("acc"), token("acch")
        w = self._acc_w
        # Low part a third on generic and iCE40 builds: on the UP5K the low part's carry out
        # leaves its chain through one more logic cell, so it gets the shorter chain.
        lo_w = (w + 1) // 2 if self._family == "ecp5" else (w + 2) // 3
        acc = []
        with m.If(en):
            advance(tok_acc, toks[-1])
            advance(tok_acc2, tok_acc)
        for r in range(R):
            b = Signal(signed(w), name=f"bias{r}")
            rs = Signal(signed(w), name=f"rowsum{r}")
            m.d.comb += [b.eq(bias_word.word_select(r, self._b_w).as_signed()),
                         rs.eq(row_sum[r])]
            lo = Signal(lo_w + 1, name=f"acc{r}_lo")  # the top bit is the carry out
            rs_hi = Signal(w - lo_w, name=f"rowsum{r}_hi")
            b_hi = Signal(w - lo_w, name=f"bias{r}_hi")
            hi = Signal(w - lo_w, name=f"acc{r}_hi")
            lo_d = Signal(lo_w, name=f"acc{r}_lo_d")
            carry = lo[lo_w]
            with m.If(en):
                with m.If(toks[-1]["valid"]):
                    base = Mux(toks[-1]["first"], b[:lo_w], lo[:lo_w])
                    m.d.sync += lo.eq(base + rs[:lo_w])
                m.d.sync += [rs_hi.eq(rs[lo_w:]), b_hi.eq(b[lo_w:]), lo_d.eq(lo[:lo_w])]
                with m.If(tok_acc["valid"]):
                    base = Mux(tok_acc["first"], b_hi, hi)
                    # base + rs_hi + carry in one carry chain: (2a + c) + (2b + c) = 2(a+b+c)
                    m.d.sync += hi.eq((Cat(carry, base) + Cat(carry, rs_hi))[1:])
            acc.append(Cat(lo_d, hi).as_signed())

        # The requantizer (hdl.requantizer.requant_pipeline), REQUANT_STAGES stages from the
        # finished accumulator; the shift enters stage REQUANT_SHIFT_STAGE, so it is read for
        # the token two stages ahead of that one, as above.
        rq_toks = [token(f"q{i}") for i in range(REQUANT_STAGES)]
        shift_word = read(s_rd, ([tok_acc2] + rq_toks)[REQUANT_SHIFT_STAGE - 2], "shift_reg")
        with m.If(en):
            advance(rq_toks[0], tok_acc2)
            m.d.sync += rq_toks[0]["valid"].eq(tok_acc2["valid"] & tok_acc2["done"])
            for dst, src in zip(rq_toks[1:], rq_toks):
                advance(dst, src)
        y = Cat(*[requant_pipeline(m, acc[r], mult_word.word_select(r, self._m_w),
                                   shift_word.word_select(r, self._sh_w),
                                   [en] * REQUANT_STAGES, out_width=self._o_w, relu=self._relu,
                                   requant_mult=self._requant_mult, name=f"rq{r}",
                                   family=self._family)
                  for r in range(R)])
        tok_q = rq_toks[-1]
        push = tok_q["valid"] & tok_q["gend"]
        # Nothing inside the array ever stalls (issue 16: at M = 64 the fanout of a global
        # stall enable was the critical path): finished beats go to an output FIFO that
        # always has room, since a pixel only enters with credits for all of its beats.
        m.d.comb += en.eq(1)
        if Q > 1:
            gather = Signal((Q - 1) * R * self._o_w)
            with m.If(tok_q["valid"] & ~tok_q["gend"]):
                m.d.sync += gather.eq(Cat(gather[R * self._o_w:], y))
            beat = Cat(gather, y)
        else:
            beat = y
        out = self._out_fifo(m, Cat(beat, tok_q["pend"]), push)
        m.d.comb += [o.payload.data.eq(out[:-1]), o.payload.last.eq(out[-1])]
        beats = self._co // self._og
        credits = Signal(range(self.FIFO_DEPTH + 1), init=self.FIFO_DEPTH)
        # The late signals are the handshakes: every outcome is a compare of the credit
        # register with a constant, and the handshakes only select among them (a 126 MHz
        # path at M = 64 when the input handshake fed a subtract, an add and a compare).
        out = o.valid & o.ready
        with m.If(accept):
            m.d.sync += credits.eq(credits - rt["beats"] + out)
        with m.Else():
            m.d.sync += credits.eq(credits + out)
        credit_next = Mux(accept, Mux(out, credits >= rt["b2_m1"], credits >= rt["b2"]),
                          Mux(out, credits >= rt["b_m1"], credits >= rt["beats"]))
        # free one cycle ahead: after a handshake the pixel register is busy for T steps;
        # otherwise it is free next cycle unless a pixel is in its steps before the last
        # but one (t == T - 2 turns last_step on).
        free_next = Const(1)
        if T > 1:
            free_next = ~accept & (~active | last_step | (t == rt["t_m2"]))
            if self._runtime:
                free_next = rt["t1"] | free_next
        m.d.sync += rdy.eq(credit_next & free_next & ~loading_next)

        if c is None:
            # idle: no pixel in flight, i.e. none in stage A or behind it (every stage moves
            # every cycle, so a pixel leaves the last token stage T + len(stages) cycles after
            # its handshake): a drain counter loaded by the handshake, and a flag beside it,
            # so cfg.ready comes from flip-flops instead of the OR of every stage's valid bit
            # (a 127 MHz path on the ECP5-25k) or the handshake (the M = 64 critical path on
            # the 85k, 124 MHz).
            stages = len(toks) + 2 + len(rq_toks)
            drain = Signal(range(T + stages + 1), name="drain")
            idle = Signal(init=1, name="idle")
            # The handshake only selects between the load value and the count down, both
            # from the registers (the count down under an enable of its own made the
            # handshake two LUT levels deep here, the iCE40 critical path).
            dec = Mux(idle, 0, drain - 1)
            drain_load = T + stages
            if self._runtime:
                drain_load = Signal(range(T + stages + 1), init=T + stages, name="drain_load")
            m.d.sync += [drain.eq(Mux(accept, drain_load, dec)),
                         idle.eq(Mux(accept, 0, idle | (drain == 1)))]
            self._loader(m, idle, loading, loading_next, (w_wr, b_wr, m_wr, s_wr), rt,
                         (drain_load, stages, last_step))
        return m

    def _out_fifo(self, m, entry, push):
        """The output FIFO: a memory whose read register is the output register
        (``o_stream``'s), 2 cycles from write to ``o_stream.valid``. Distributed RAM on ECP5
        (a block RAM read, 5.8 ns clock-to-output there, would feed the consumer)."""
        depth, o = self.FIFO_DEPTH, self.o_stream
        attrs = {"ram_style": "distributed"} if self._family == "ecp5" else None
        mem = Memory(shape=unsigned(len(entry)), depth=depth, init=[], attrs=attrs)
        m.submodules.out_fifo = mem
        # A synchronous read port whose register is the output register (the entry at rptr
        # was written at least a cycle earlier, so no transparency is needed).
        wr, rd = mem.write_port(), mem.read_port()
        wptr, rptr = Signal(range(depth), name="wptr"), Signal(range(depth), name="rptr")
        level = Signal(range(depth + 1), name="level")
        # level != 0 kept as a flag beside level (the compare and an adder behind the output
        # handshake were the iCE40 critical path at M = 4, 12 logic steps).
        nonempty = Signal(name="nonempty")
        take = ~o.valid | o.ready
        fetch = take & nonempty
        m.d.comb += [wr.addr.eq(wptr), wr.data.eq(entry), wr.en.eq(push), rd.addr.eq(rptr),
                     rd.en.eq(take)]
        with m.If(take):
            m.d.sync += o.valid.eq(nonempty)
        with m.If(fetch):
            m.d.sync += rptr.eq(Mux(rptr == depth - 1, 0, rptr + 1))
        with m.If(push):
            m.d.sync += wptr.eq(Mux(wptr == depth - 1, 0, wptr + 1))
        # Both handshake-side signals only select among level, level + 1 and level - 1 (an
        # adder after push was the ECP5-25k critical path at M = 16, 150.9 MHz).
        m.d.sync += [level.eq(Mux(push, Mux(fetch, level, level + 1),
                                  Mux(fetch, level - 1, level))),
                     nonempty.eq(push | (nonempty & ~(fetch & (level == 1))))]
        return rd.data

    def _loader(self, m, idle, loading, loading_next, ports, rt, extra):
        """The ``cfg`` port: a fixed-order stream of values written between pixels.

        A load ends at its ``last`` beat or at its final value (the last channel's shift),
        whichever comes first: a load without ``last`` cannot hold pixels back for ever, and
        the beat after the final value starts the next load. With ``runtime_shape`` a load
        starts with its descriptor (C_out, then C_in; ``_descriptor``).
        """
        s = self._sched
        R, L, S, G = s["rows"], s["lanes"], s["chunks"], s["groups"]
        w_wr, b_wr, m_wr, s_wr = ports
        cfg = self.cfg
        # idle (a flip-flop, from elaborate): no pixel in flight. A pixel cannot be handed
        # over in a cycle whose cfg beat is offered (i_stream.ready is low then), so idle
        # and the handshakes of the same cycle never overlap. A load starts only when idle
        # and no pixel enters while it is under way, so idle stays high until its end.
        # loading: a load is under way (its first beat taken, neither last nor its final
        # value yet); loading_next, its next value, goes into elaborate's rdy.
        # restart: the previous beat ended a load. For that one cycle cfg.ready is low and
        # every register below returns to its start value (a synchronous reset), so the
        # load's end (cfg.payload.last, or the final value) reaches one flip-flop and
        # loading_next instead of every register's enable and data (five LUT levels from
        # cfg.payload.last: an iCE40 critical path), and no register needs a "start value
        # after a restart" select in front of its logic (an ECP5-25k path at M = 16). A load
        # that follows another at once starts a cycle after the other's end.
        restart = Signal(name="ld_restart")
        # body: the beat is a value (not a descriptor's, nor a dropped one); busy: the
        # descriptor's set-up cycles, cfg.ready low.
        body, busy = Const(1), Const(0)
        if self._runtime:
            body, busy = Signal(name="ld_body"), Signal(name="ld_busy")
        m.d.comb += cfg.ready.eq(idle & ~restart & ~busy)
        hs = cfg.valid & idle & ~restart & ~busy
        d = cfg.payload.data
        phase = Signal(range(4), name="ld_phase")  # weights, bias, mult, shift
        # Each counter keeps "at its last value" as a flag beside it, so the nested wrap
        # conditions are single flip-flops, not compares (the iCE40 critical path). Its
        # start value, and the compare that sets it, come from the shape (run-time
        # registers with runtime_shape).
        ends = {"l": None, "s": (rt["s_is1"], rt["s_m2"]), "r": (int(R == 1), R - 2),
                "g": (rt["g_is1"], rt["g_m2"])}
        counters = {}
        for key, n in (("l", L), ("s", S), ("r", R), ("g", G)):
            value = Signal(range(max(n, 2)), name=f"ld_{key}")
            end_flag = Signal(init=int(n == 1), name=f"ld_{key}_end")
            counters[key] = (value, end_flag, n)
        (lc, lc_end, _), (sc, sc_end, _), (rc, row_end, _), (gc, gc_end, _) = counters.values()
        # The weight table's word (g * S + s) and lane (r * L + l) of the next weight, kept
        # as counters of their own (an adder of two counters fed the write port).
        word = Signal(range(max(G * S, 2)), name="ld_word")
        lane = Signal(range(max(R * L, 2)), name="ld_lane")

        def step(key):
            value, end_flag, n = counters[key]
            is1, m2 = ends[key]
            return [value.eq(Mux(end_flag, 0, value + 1)),
                    end_flag.eq(Mux(end_flag, is1, value == m2))]

        # A padded schedule (R = 1) has a last chunk of Llast < L real lanes: the lane
        # counter ends there, its end flag chosen by whether the chunk it moves into (the
        # same one, or the next when it wraps) is the last.
        l_last = self._ci - (S - 1) * L
        lanes_start = Mux(rt["s_is1"], rt["ll_is1"], L == 1)
        if l_last != L or self._runtime:
            assert R == 1

            def step_l():
                next_last = Mux(sc_end, rt["s_is1"], sc == rt["s_m2"])
                return [lc.eq(Mux(lc_end, 0, lc + 1)),
                        lc_end.eq(Mux(lc_end, Mux(next_last, rt["ll_is1"], L == 1),
                                      Mux(sc_end, lc == rt["ll_m2"], lc == L - 2)))]
        else:
            ends["l"] = (int(L == 1), L - 2)

            def step_l():
                return step("l")

        for wr, width, p in ((b_wr, self._b_w, 1), (m_wr, self._m_w, 2),
                             (s_wr, self._sh_w, 3)):
            m.d.sync += [wr.addr.eq(gc), wr.data.eq(Cat(*[d[:width]] * R)),
                         wr.en.eq(Mux(hs & body & (phase == p), 1 << rc, 0))]
        # The writes are registered (one cycle after the handshake: the enable decode
        # otherwise met the distributed RAM's write setup in one cycle). A pixel accepted
        # right after a load's end reads the tables later still. The weight table's write
        # takes one more register first (its beat, word and lane), so that the handshake
        # does not fan out to an enable per lane (the M = 64 path on the ECP5-85k,
        # cfg.valid -> write enable, 5 ns of routing); weights are followed by at least
        # three bias, mult and shift beats, and a load cut short by last is followed by the
        # restart cycle, so every weight is written before a pixel can read it.
        # Only arrays of more than 32 products (the fan-out of smaller ones is small, and the
        # extra flip-flops cost the UP5K's M = 4 its 60 MHz placement).
        w_pend, w_lane, w_word, w_data = hs & body & (phase == 0), lane, word, d[:self._w_w]
        if R * L > 32:
            regs = (Signal(name="ld_w_pend"), Signal.like(lane, name="ld_w_lane"),
                    Signal.like(word, name="ld_w_word"), Signal(self._w_w, name="ld_w_data"))
            m.d.sync += [r.eq(v) for r, v in zip(regs, (w_pend, w_lane, w_word, w_data))]
            w_pend, w_lane, w_word, w_data = regs
        m.d.sync += [w_wr.addr.eq(w_word), w_wr.data.eq(Cat(*[w_data] * (R * L))),
                     w_wr.en.eq(Mux(w_pend, 1 << w_lane, 0))]
        final = body & (phase == 3) & row_end & gc_end
        end = cfg.payload.last | final
        m.d.comb += loading_next.eq(Mux(hs, ~end, loading))
        m.d.sync += [loading.eq(loading_next), restart.eq(hs & end)]
        # On a beat, each register steps when its wrap condition holds; the wrap conditions
        # come from the registers alone. Weights (phase 0): l every beat, s when l wraps, r
        # when s wraps too, g when r wraps too; the word moves on with s (back to the row's
        # first word when s wraps and r does not), the lane with l (back to the row's first
        # lane when l wraps and s does not). Bias, mult, shift: r every beat, g when r wraps.
        ph0 = phase == 0
        wrap_s = ph0 & lc_end
        wrap_r = ~ph0 | (lc_end & sc_end)
        wrap_g = wrap_r & row_end
        updates = [
            (ph0, step_l() + [lane.eq(Mux(lc_end & ~sc_end, lane - (L - 1),
                                          Mux(lc_end & sc_end & row_end, 0, lane + 1)))]),
            (wrap_s, step("s") + [word.eq(Mux(sc_end & ~row_end, word - (S - 1),
                                              Mux(sc_end & row_end & gc_end, 0, word + 1)))]),
            (wrap_r, step("r")), (wrap_g, step("g")),
            (wrap_g & gc_end, [phase.eq(phase + 1)])]
        for wrap, stepped in updates:
            with m.If(hs & body & wrap):
                m.d.sync += stepped
        starts = [(lc_end, lanes_start), (sc_end, rt["s_is1"]), (row_end, int(R == 1)),
                  (gc_end, rt["g_is1"])]
        with m.If(restart):
            m.d.sync += [phase.eq(0), word.eq(0), lane.eq(0)]
            for value, end_flag, n in counters.values():
                m.d.sync += value.eq(0)
            if not self._runtime:
                m.d.sync += [flag.eq(start) for flag, start in starts]
        if self._runtime:
            self._descriptor(m, hs, restart, body, busy, rt, extra, starts)

    def _descriptor(self, m, hs, restart, body, busy, rt, extra, starts):
        """A run-time-shape load's first two beats: C_out, then C_in.

        A good descriptor takes ``chunks`` + 3 cycles of set-up (``busy``, cfg.ready low):
        the chunk count and the last chunk's lanes by repeated subtraction of L, the step
        count T = C_out * chunks by repeated addition, then every shape register at once (no
        pixel is in flight during a load), then the loader's end flags from them. A count
        out of range (C_out of 0 or above the maximum or not a multiple of ``out_group``,
        C_in of 0 or above the maximum) or a ``last`` on either beat sets ``error``; the
        load's beats up to ``last`` are then dropped (``body`` stays low) and nothing changes.
        """
        drain_load, stages, last_step = extra
        s = self._sched
        L = s["lanes"]
        d = self.cfg.payload.data
        last = self.cfg.payload.last
        # head: 0 expects C_out, 1 expects C_in, 2 the values (or the dropped beats).
        head = Signal(range(3), name="ld_head")
        new_co = Signal(range(self._co + 1), name="ld_co")
        rem = Signal(range(self._ci + 1), name="ld_rem")
        chunks = Signal(range(s["chunks"] + 1), name="ld_chunks")
        total = Signal(range(s["cycles"] + 1), name="ld_total")
        setup = Signal(range(4), name="ld_setup")   # 0 none, 1 divide, 2 apply, 3 ends
        co_ok = (d >= 1) & (d <= self._co)
        if self._og > 1:
            co_ok &= d[:exact_log2(self._og)] == 0
        ci_ok = (d >= 1) & (d <= self._ci)
        with m.If(hs & (head == 0)):
            m.d.sync += new_co.eq(d)
            with m.If(~last):
                m.d.sync += head.eq(1)
            with m.If(~co_ok | last):
                m.d.sync += [new_co.eq(0), self.error.eq(1)]
        with m.If(hs & (head == 1)):
            m.d.sync += head.eq(2)
            with m.If((new_co == 0) | ~ci_ok | last):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.sync += [self.error.eq(0), rem.eq(d), chunks.eq(1), total.eq(new_co),
                             setup.eq(1)]
        with m.Switch(setup):
            with m.Case(1):
                with m.If(rem > L):
                    m.d.sync += [rem.eq(rem - L), chunks.eq(chunks + 1),
                                 total.eq(total + new_co)]
                with m.Else():
                    m.d.sync += setup.eq(2)
            with m.Case(2):
                beats = new_co >> exact_log2(self._og)
                sets = {"s_last": chunks - 1, "s_m2": chunks - 2, "s_is1": chunks == 1,
                        "g_last": new_co - 1, "g_m2": new_co - 2, "g_is1": new_co == 1,
                        "t_total": total, "t_m2": total - 2, "t1": total == 1,
                        "ll_m2": rem - 2, "ll_is1": rem == 1,
                        "mask": Cat(*[rem > j for j in range(L)]),
                        "beats": beats, "b_m1": beats - 1, "b2": beats << 1,
                        "b2_m1": (beats << 1) - 1}
                m.d.sync += [rt[key].eq(value) for key, value in sets.items()]
                m.d.sync += [drain_load.eq(total + stages), setup.eq(3)]
                if not isinstance(last_step, Const):
                    m.d.sync += last_step.eq(total == 1)
            with m.Case(3):
                m.d.sync += [flag.eq(start) for flag, start in starts]
                m.d.sync += [setup.eq(0), body.eq(1)]
        m.d.comb += busy.eq(setup != 0)
        with m.If(restart):
            m.d.sync += [head.eq(0), body.eq(0)]


# ---------------------------------------------------------------------------- hdl.build

def _add_arguments(parser):
    parser.add_argument("--multipliers", type=positive("Multiplier count"), default=None,
                        help="most multipliers M of each MAC array (default 16): each array "
                             "takes its best schedule with at most M products per cycle, "
                             "C*K/M cycles per pixel when M divides its input count or is "
                             "the input count times a divisor of its output count")
    parser.add_argument("--out-group", type=positive("Output group"), default=None,
                        help="output channels per MAC output beat (default: the fewest the "
                             "schedule allows)")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="bake a golden artifact (.npz) into the MAC arrays")
    parser.add_argument("--family", choices=FAMILIES, default="generic",
                        help="FPGA family of the MAC arrays' multipliers and the Huffman "
                             "encoders' code table: generic (inferred, portable; default), "
                             "ecp5 (registered MULT18X18D, distributed-RAM tables: 150 MHz; "
                             "the code table in DP16KD tiles read through their output "
                             "register) or ice40 (two 8x8 products per SB_MAC16)")
    parser.add_argument("--dsp-budget", type=non_negative("DSP budget"), default=None,
                        metavar="N",
                        help="DSP tiles for each MAC array's weight products; the others "
                             "become LUT multipliers (default: all on DSP tiles)")
    parser.add_argument("--requant-mult", choices=REQUANT_MULTS, default="dsp",
                        help="requantization product on DSP tiles (default) or LUTs")


def _one(args, name, co, ci, in_width, out_width, relu, consts):
    runtime = getattr(args, "runtime", False)
    try:
        rows = (1 if runtime else schedule(co, ci, args.multipliers)["rows"])
        group = args.out_group or rows
        comp = MacArray(co, ci, in_width=in_width, weight_width=args.weight_width,
                        bias_width=args.bias_width, mult_width=args.mult_width,
                        out_width=out_width, multipliers=args.multipliers,
                        out_group=group, relu=relu,
                        weights=consts, dsp_budget=args.dsp_budget, family=args.family,
                        requant_mult=args.requant_mult, runtime_shape=runtime)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{name}: {e}") from None
    info = {
        "latency": comp.LATENCY,
        "latency_stages": {"product": comp.PRODUCT_STAGES, "accumulator": comp.ACC_STAGES,
                           "requantizer": REQUANT_STAGES},
        "cycles_per_pixel": comp.CYCLES_PER_PIXEL,
        "throughput": f"1 pixel per {comp.CYCLES_PER_PIXEL} cycles",
        "schedule": {key: comp._sched[key] for key in ("rows", "lanes", "chunks", "groups",
                                                        "cycles", "products", "in_pad",
                                                        "efficiency")},
        "parameters": {"channels_out": co, "channels_in": ci, "multipliers": args.multipliers,
                       "out_group": group, "acc_width": comp.acc_width,
                       "family": args.family, "dsp_tiles": comp.dsp_tiles,
                       "dsp_products": comp.dsp_products, "requant_mult": args.requant_mult,
                       "baked": consts is not None},
    }
    info["memory_bits"] = comp.memory_bits
    if runtime:
        info["runtime_shape"] = {
            "max_channels_out": co, "max_channels_in": ci, "lanes": comp._sched["lanes"],
            "cycles_per_pixel": f"C_out * ceil(C_in / {comp._sched['lanes']}) for a layer "
                                f"of C_out x C_in",
            "descriptor": "the first two cfg beats of a load: C_out, then C_in"}
    if consts is None:
        info["configuration"] = (
            f"cfg stream of {comp.cfg_beats} beats {{data, last}}: W row-major "
            f"({co}x{ci}), bias, mult, shift (low bits of data); the load ends at last (early "
            f"last keeps the rest) or after its {comp.cfg_beats}th beat; applied between "
            f"pixels: cfg waits for in-flight pixels, new pixels wait for the load's end "
            f"(docs/mac_array.md)")
    return BuildModule(name, comp, info)


def _modules(args):
    art = None
    if args.weights is not None:
        from golden.datapath.artifacts import load_artifact
        try:
            art = load_artifact(args.weights).arrays()
        except ValueError as e:
            raise UsageError(str(e)) from None
        if (int(art["channels"]), int(art["k"])) != (args.channels, args.k):
            raise UsageError(f"--weights file has C={int(art['channels'])} K={int(art['k'])}, "
                             f"not --channels {args.channels} --k {args.k}")
        # The baked array must compute what golden.datapath.pipeline.inverse_int computes.
        coef_bits = int(np.max(art["group_bits"]))
        for what, have, want in (("relu", bool(art["relu"]), args.relu),
                                 ("out_bits", int(art["out_bits"]), args.out_width),
                                 ("coefficient bits", coef_bits, args.in_width)):
            if have != want:
                raise UsageError(f"--weights file has {what} {have}, but the build asks for "
                                 f"{want} (--relu, --out-width, --in-width)")
    inv = {key: art[f"inv_{key}"] for key in _KEYS} if art is not None else None
    fwd = {key: art[f"fwd_{key}"] for key in _KEYS} if art is not None else None
    # Inverse: coefficients (in_width) -> activations (out_width, optional ReLU); the forward
    # projection maps activations back to coefficients.
    return [_one(args, "mac_array", args.channels, args.k, args.in_width, args.out_width,
                 args.relu, inv),
            _one(args, "mac_array_fwd", args.k, args.channels, args.out_width, args.in_width,
                 False, fwd)]


BLOCK = Block("mac_array", _add_arguments, _modules)
