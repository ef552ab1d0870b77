"""Probe: how fast can the decoder's one-symbol-per-cycle loop run on the open FPGA flow, with
and without looking one code ahead? The measurement behind docs/fpga.md, "Decode loop:
look-ahead probe".

    python scripts/probe_decode_loop.py [--targets ecp5-25k] [--seeds 3] [--out build/probe]

Builds three bare decode loops at the default point (b = 8, L = 12, W = 32, one group, limits
and ESC range as inputs) and runs each through ``scripts/fpga_flow.py`` (registered I/O,
synthesis, nextpnr, median of the seeds):

- ``loop_now``: the structure of ``hdl.huffman_decoder`` today. Each cycle the canonical
  length decoder (``hdl.coder_parts.CanonicalLength``) reads the buffer's top L bits, and the
  buffer shifts by the result: compare, select and shift all lie in one cycle.
- ``loop_lookahead``: the length of the code at the top is a register. Each cycle the buffer
  shifts by it while L + 1 length decoders read the buffer at offsets 0 .. L (where the next
  code starts for each possible current length), and the register takes the one the current
  length selects: compare and shift fall into two paths, buffer -> compares -> select ->
  length register and length register -> shift -> buffer, instead of one. After an ESC code (its length with the raw bits is not among the offsets)
  the next length is read at offset 0 a cycle later: one bubble per escape.
- ``loop_lookahead_onehot``: the same with only the one-hot length and the ESC flag as loop
  registers, the shift amount encoded from them at the start of the cycle.

All three are loops only (no symbol memory, queue, tile control or table loader): the symbol's
window and length go to registered outputs, which is what the decoder's pipeline takes from
its loop. They differ only in the loop, so their Fmax and LUTs compare the structures.
``tests/test_probe_decode_loop.py`` checks that all three decode a coded tile alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amaranth.hdl import Cat, Const, Module, Mux, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hdl.coder_parts import CanonicalLength  # noqa: E402

B_BITS, MAX_LEN, WORD = 8, 12, 32


class DecodeLoop(wiring.Component):
    """A bare decode loop: W-bit words in, per cycle one code's window and total out.

    Ports: ``i_word``/``i_valid``/``i_ready`` the words (MSB first); ``room`` gates decoding
    (the decoder's output credit); ``limits``, ``esc``, ``esc_lo``, ``esc_hi``, ``esc_total``
    the table (``CanonicalLength``'s inputs); ``o_valid``, ``o_window`` (L + b bits),
    ``o_total`` the decoded code each cycle.
    """

    def __init__(self, lookahead: bool, b=B_BITS, max_len=MAX_LEN, word_width=WORD, *,
                 onehot=False):
        self._la = lookahead
        self._onehot = onehot
        self._b, self._L, self._W = b, max_len, word_width
        L, CW = max_len, max_len + b
        super().__init__({
            "i_word": In(word_width), "i_valid": In(1), "i_ready": Out(1), "room": In(1),
            "limits": In(L * (L + 1)), "esc": In(1), "esc_lo": In(L + 1),
            "esc_hi": In(L + 1), "esc_total": In(range(CW + 1)),
            "o_valid": Out(1), "o_window": Out(CW), "o_total": Out(range(CW + 1))})

    def _length_unit(self, m, name, top):
        cl = CanonicalLength(self._L, self._b)
        m.submodules[name] = cl
        m.d.comb += [cl.top.eq(top), cl.limits.eq(self.limits), cl.esc.eq(self.esc),
                     cl.esc_lo.eq(self.esc_lo), cl.esc_hi.eq(self.esc_hi),
                     cl.esc_total.eq(self.esc_total)]
        return cl

    def elaborate(self, platform):
        m = Module()
        b, L, W = self._b, self._L, self._W
        CW = L + b
        B = W + 2 * CW
        buf = Signal(B)
        fill = Signal(range(B + 1))
        need = 2 * L if self._la else CW     # bits the loop reads past the top
        take = Signal()
        m.d.comb += [take.eq(self.i_valid & (fill <= B - W)), self.i_ready.eq(take)]
        ins = Mux(take, Cat(Const(0, B - W), self.i_word) >> fill, 0)
        merged = Signal(B)
        m.d.comb += merged.eq(buf | ins)

        step = Signal()
        total = Signal(range(CW + 1))
        if not self._la:
            cl = self._length_unit(m, "length", buf[B - L:])
            m.d.comb += [total.eq(cl.total),
                         step.eq(self.room & (fill >= need) & ~cl.invalid)]
        else:
            # The current code's length: a register (binary for the shift, one-hot over
            # 1 .. L for the select), valid unless the previous code was ESC.
            known = Signal()
            cur_total = Signal(range(CW + 1))
            if self._onehot:
                # Only the one-hot length and the ESC flag are loop registers; the shift
                # amount is encoded from them (registers) at the start of the next cycle.
                cur_total_r = Signal(range(CW + 1))
            else:
                cur_total_r = cur_total
            cur_sel = Signal(L + 1)
            cur_esc = Signal()
            units = [self._length_unit(m, f"length{s}", buf[B - s - L:B - s])
                     for s in range(L + 1)]
            m.d.comb += [total.eq(cur_total),
                         step.eq(self.room & (fill >= need) & known)]
            pick_total = 0
            pick_sel = 0
            pick_esc = 0
            pick_bad = 0
            for s in range(1, L + 1):
                u = units[s]
                pick_total = pick_total | Mux(cur_sel[s], u.total, 0)
                pick_sel = pick_sel | Mux(cur_sel[s], u.onehot, 0)
                pick_esc = pick_esc | (cur_sel[s] & u.is_esc)
                pick_bad = pick_bad | (cur_sel[s] & u.invalid)
            u0 = units[0]
            if self._onehot:
                binary = Signal(range(L + 1))
                for k in range(len(binary)):
                    m.d.comb += binary[k].eq(
                        Cat(cur_sel[t] for t in range(1, L + 1) if t >> k & 1).any())
                m.d.comb += cur_total.eq(Mux(cur_esc, self.esc_total, binary))
            with m.If(step):
                # Shift past this code; the next one's length is the unit at its offset
                # (unknown after ESC: read at offset 0 next cycle).
                m.d.sync += [cur_total_r.eq(pick_total), cur_sel.eq(pick_sel),
                             cur_esc.eq(pick_esc), known.eq(~cur_esc & ~pick_bad)]
            with m.Elif(~known & (fill >= need)):
                m.d.sync += [cur_total_r.eq(u0.total), cur_sel.eq(u0.onehot),
                             cur_esc.eq(u0.is_esc), known.eq(~u0.invalid)]

        if not self._la:
            shifted = Signal(B)
            m.d.comb += shifted.eq(merged << total)
            m.d.sync += [buf.eq(Mux(step, shifted[:B], merged)),
                         fill.eq(fill + Mux(take, W, 0) - Mux(step, total, 0))]
        else:
            # Everything the shift needs comes from registers: the buffer shifted by the
            # current length, the word placed below the bits left after that shift (at
            # fill - length) or below all of them; step and take only pick.
            word = Cat(Const(0, B - W), self.i_word)
            after = Signal(range(B + 1))
            m.d.comb += after.eq(fill - cur_total)
            kept = Signal(B)
            m.d.comb += kept.eq((buf << cur_total)[:B] | Mux(take, word >> after, 0))
            m.d.sync += [buf.eq(Mux(step, kept, merged)),
                         fill.eq(Mux(step, after, fill) + Mux(take, W, 0))]
        m.d.sync += [self.o_valid.eq(step), self.o_window.eq(buf[B - CW:]),
                     self.o_total.eq(total)]
        return m


def main(argv=None):
    import fpga_flow

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+",
                   default=["loop_now", "loop_lookahead", "loop_lookahead_onehot"])
    p.add_argument("--targets", nargs="+", default=["ecp5-25k"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="build/probe_decode_loop")
    args = p.parse_args(argv)
    info = {"parallelism": 1, "multipliers": 0, "values_per_cycle": 1.0}
    fpga_flow.add_config("loop_now", lambda: (DecodeLoop(False), dict(info, family="loop_now")))
    fpga_flow.add_config("loop_lookahead",
                         lambda: (DecodeLoop(True), dict(info, family="loop_lookahead")))
    fpga_flow.add_config("loop_lookahead_onehot",
                         lambda: (DecodeLoop(True, onehot=True),
                                  dict(info, family="loop_lookahead_onehot")))
    return fpga_flow.main(["--configs", *args.configs, "--targets",
                           *args.targets, "--seeds", str(args.seeds), "--out", args.out])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
