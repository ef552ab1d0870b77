"""``hdl.coder_parts.TableParser`` (the table loader shared by the encoder and the decoder) on
the Amaranth simulator, against golden's own table parser (``golden.codec.container``).

- Good tables (escape, no escape, run-length, several groups, run-time widths): the count and
  symbol events carry golden's counts, canonical order and codes, and the load ends good on
  the byte flagged ``last``.
- The input register: ``cfg.ready`` high whenever it is empty, ``pending`` exactly while a
  byte is offered or held there, every cycle of every case.
- Every rule: single-byte mutations, truncations, a missing or an early ``last`` and trailing
  bytes of good tables; the parser refuses exactly what golden's ``parse_table`` refuses (or
  what the block cannot hold: another width, a longer code, a run-length table in a plain
  block), with random gaps in ``cfg.valid``, ``may_start`` and ``hold``. Not generated: a
  symbol listed at two different lengths, the one rule the parser does not check
  (``TableParser``'s docstring).
"""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from golden.codec.container import ContainerError, parse_table
from golden.codec.tables import HuffmanTable, build_table
from hdl.coder_parts import TableParser

EVENTS = ("start", "header", "count", "advance", "symbol", "end", "failed")


def _good_tables():
    rng = np.random.default_rng(11)
    out = []
    for bits, max_len, escape in [(3, 5, True), (4, 7, False), (2, 4, True), (3, 6, False)]:
        hist = rng.geometric(0.35, size=3000) % (1 << bits)
        out.append(build_table(hist, bits, max_len, signed=False, escape=escape))
    # One coded entry (length 1), and every length used once with an incomplete tail.
    out.append(HuffmanTable(2, 3, [0, 1, 0, 0, 0], escape=False))
    lengths = np.zeros(9, dtype=np.int64)
    lengths[:6] = [1, 2, 3, 4, 5, 6]
    lengths[8] = 6
    out.append(HuffmanTable(3, 6, lengths))
    # Run-length (R' = 4): values, ESC and RUN_1 .. RUN_4.
    out.append(HuffmanTable(2, 5, [2, 3, 4, 0, 4, 3, 3, 0, 4], escape=True, run_max=4))
    return out


class Bench:
    """One parser, cases run one after the other with a reset between them."""

    def __init__(self, dut, seed, stall, rst):
        self.dut, self.rng, self.stall, self.rst = dut, np.random.default_rng(seed), stall, rst

    async def run_case(self, ctx, data, lasts, group=0):
        """Offer ``data`` (``lasts[i]``: byte i flagged last); returns the events seen."""
        dut, rng = self.dut, self.rng
        ctx.set(self.rst, 1)
        await ctx.tick()
        ctx.set(self.rst, 0)
        runtime = "widths" in dut.signature.members
        if runtime:
            for g in range(len(dut.widths)):
                ctx.set(dut.widths[g], dut._b)
        events, i, idle = [], 0, 0
        held = False        # a byte waits in the parser's input register
        while i < len(data) or idle < 40:
            stall = self.stall and rng.random() < 0.3
            ctx.set(dut.cfg.valid, int(i < len(data) and not stall))
            if i < len(data):
                ctx.set(dut.cfg.payload.data, data[i])
                ctx.set(dut.cfg.payload.last, int(lasts[i]))
                if "group" in dut.cfg.payload.shape().members:
                    ctx.set(dut.cfg.payload.group, group)
            ctx.set(dut.may_start, int(not (self.stall and rng.random() < 0.3)))
            ctx.set(dut.hold, int(self.stall and rng.random() < 0.3))
            # Events are about the byte in the parser's input register: the last one taken.
            for name in EVENTS:
                if ctx.get(getattr(dut, name)):
                    events.append(self._event(ctx, name, i - 1))
            width = None
            if runtime and ctx.get(dut.set_width):
                assert ctx.get(dut.data) == data[i - 1]
                width = (ctx.get(dut.start_group), data[i - 1])
            # The input register: ready while empty (or its byte goes on); ``pending`` while
            # a byte is offered or held.
            valid, ready = ctx.get(dut.cfg.valid), ctx.get(dut.cfg.ready)
            assert ready or held
            assert ctx.get(dut.pending) == int(valid or held)
            held = bool(valid and ready) or (held and not ready)
            if valid and ready:
                i += 1
            else:
                idle += i >= len(data)
            await ctx.tick()
            if width is not None:
                # The block keeps the width in a register and gives it back on ``widths``.
                ctx.set(dut.widths[width[0]], width[1])
        return events

    def _event(self, ctx, name, i):
        d = self.dut
        if name == "count":
            return (name, i, ctx.get(d.index), ctx.get(d.value), ctx.get(d.total),
                    ctx.get(d.final))
        if name == "symbol":
            return (name, i, ctx.get(d.value), ctx.get(d.code), ctx.get(d.code_len),
                    ctx.get(d.is_lit), ctx.get(d.is_esc), ctx.get(d.is_run))
        if name == "start":
            return (name, i, ctx.get(d.start_group), ctx.get(d.group_ok),
                    ctx.get(d.set_width))
        return (name, i)


def _simulate(dut, cases, seed, stall=True):
    """Run ``cases`` [(data, lasts, group)] and return the events of each."""
    m = Module()
    m.domains.sync = cd = ClockDomain()
    m.submodules.dut = dut
    bench = Bench(dut, seed, stall, cd.rst)
    results = []

    async def testbench(ctx):
        for data, lasts, group in cases:
            results.append(await bench.run_case(ctx, data, lasts, group))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return results


def _expected_events(table):
    """The count and symbol events golden's table implies, in order."""
    out = []
    total = 0
    for ln in range(1, table.max_len + 1):
        c = int(table.counts[ln - 1])
        out.append(("count", ln - 1, c, total, int(ln == table.max_len)))
        total += c
    esc = 1 << table.bits
    for s in table.symbols:
        s = int(s)
        out.append(("symbol", s, int(table.codes[s]), int(table.lengths[s]), int(s < esc),
                    int(s == esc and table.escape), int(s > esc)))
    return out


def _block_for(table, runtime=False, groups=1):
    b = max(table.bits, 3)
    return TableParser(b, max(table.max_len, 7), groups,
                       None if runtime else [table.bits] * groups,
                       run_max=8 if table.run_max else 0, runtime=runtime)


@pytest.mark.parametrize("runtime", [False, True], ids=["fixed", "runtime"])
def test_good_tables_give_golden_codes(runtime):
    tables = _good_tables()
    for t in tables:
        dut = _block_for(t, runtime)
        raw = t.serialize()
        cases = [(raw, [0] * (len(raw) - 1) + [1], 0)]
        events, = _simulate(dut, cases, seed=len(raw))
        kinds = [e[0] for e in events]
        assert kinds.count("failed") == 0, (t, events)
        assert kinds[0] == "start" and events[0][3] == 1
        assert events[0][4] == int(runtime)     # set_width only in a run-time block
        assert kinds.count("header") == 1
        got = [e[:1] + e[2:] for e in events if e[0] in ("count", "symbol")]
        assert got == _expected_events(t), t
        # The load ends on the byte flagged last, and nothing follows it.
        assert events[-1] == ("end", len(raw) - 1)


def test_group_is_kept_and_checked():
    """With G = 3, a load names its group on cfg; a group of 3 (the field holds 0..3) is
    refused at the first byte."""
    t = _good_tables()[0]
    dut = TableParser(3, 7, 3, [3, 2, 3])
    raw = t.serialize()
    lasts = [0] * (len(raw) - 1) + [1]
    out = _simulate(dut, [(raw, lasts, 2), (raw, lasts, 3), (raw, lasts, 1)], seed=3)
    assert [e[0] for e in out[0]][-1] == "end" and "failed" not in [e[0] for e in out[0]]
    assert out[0][0][2:4] == (2, 1)
    assert out[1][0][2:4] == (3, 0) and out[1][1] == ("failed", 0)
    # Group 1 is 2 bits wide: a 3-bit table is refused at byte 0.
    assert out[2][1] == ("failed", 0)


def _mutations(table, rng, n):
    """(data, lasts) variants of a good table's bytes: one byte changed, truncated, ``last``
    missing or early, trailing bytes; and other good tables of the same width."""
    out = []
    raw = table.serialize()
    for _ in range(n):
        data = bytearray(raw)
        lasts = [0] * (len(data) - 1) + [1]
        kind = rng.integers(10)
        if kind == 8 and not np.any(table.lengths > 1):
            kind = 6
        if kind == 9 and not np.any(table.counts >= 2):
            kind = 7
        if kind == 8:
            # One code a bit shorter, the list kept canonical: Kraft decides.
            lengths = table.lengths.copy()
            coded = np.flatnonzero(lengths > 1)
            lengths[rng.choice(coded)] -= 1
            data = bytearray(_raw(raw[:4], lengths, table.max_len))
            lasts = [0] * (len(data) - 1) + [1]
        elif kind == 9:
            # Two symbols of one length swapped: not canonical order.
            at = [ln for ln in range(1, table.max_len + 1) if table.counts[ln - 1] >= 2]
            ln = at[int(rng.integers(len(at)))]
            syms = [int(x) for x in table.symbols]
            lo = int(np.sum(table.counts[:ln - 1]))
            i, j = sorted(rng.choice(int(table.counts[ln - 1]), 2, replace=False) + lo)
            syms[i], syms[j] = syms[j], syms[i]
            data = bytearray(raw[:4 + 2 * table.max_len]
                             + np.asarray(syms, dtype="<u2").tobytes())
        elif kind >= 6:
            hist = rng.geometric(rng.uniform(0.1, 0.6), size=500) % (1 << table.bits)
            other = build_table(hist, table.bits, int(rng.integers(table.bits + 1, 8)),
                                signed=False, escape=bool(rng.integers(2)))
            data = bytearray(other.serialize())
            lasts = [0] * (len(data) - 1) + [1]
        elif kind <= 2:
            pos = int(rng.integers(len(data)))
            data[pos] = int(rng.integers(256)) if kind == 0 else (data[pos] + rng.choice(
                [-1, 1])) % 256
            if kind == 2 and len(data) > 4:
                # a count or a symbol: often a neighbour's value (repeats, disorder, Kraft)
                pos = int(rng.integers(4, len(data)))
                data[pos] = data[int(rng.integers(4, len(data)))]
        elif kind == 3:
            cut = int(rng.integers(1, len(data)))
            data, lasts = data[:cut], [0] * (cut - 1) + [1]
        elif kind == 4:
            lasts[-1] = 0
            if rng.random() < 0.5:
                lasts[int(rng.integers(len(data)))] = 1
        else:
            data += bytes(rng.integers(256, size=int(rng.integers(1, 3))).tolist())
            lasts = [0] * (len(data) - 1) + [1]
        out.append((bytes(data), lasts))
    return out


def _raw(head, lengths, max_len):
    """Table bytes for per-entry code lengths, listed in canonical order (no checks)."""
    coded = np.flatnonzero(lengths)
    syms = coded[np.lexsort((coded, lengths[coded]))]
    counts = np.bincount(lengths[coded], minlength=max_len + 1)[1:]
    return bytes(head) + counts.astype("<u2").tobytes() + syms.astype("<u2").tobytes()


def _golden_accepts(data, lasts, block_bits, block_len, block_run, runtime, b):
    """What the block must accept: a table golden parses that fits the block, ``last`` on
    its final byte only."""
    if list(lasts) != [0] * (len(data) - 1) + [1]:
        return False
    try:
        t = parse_table(data, signed=False)
    except ContainerError:
        return False
    if (not 1 <= t.bits <= b) if runtime else t.bits != block_bits:
        return False
    return t.max_len <= block_len and t.run_max <= block_run


def _repeated_across_lengths(data):
    """A symbol listed at two lengths (the one rule the parser does not check)."""
    if len(data) < 4:
        return False
    L = data[1]
    counts = np.frombuffer(data[4:4 + 2 * L], dtype="<u2") if len(data) >= 4 + 2 * L else []
    n = int(np.sum(counts)) if len(counts) == L else 0
    syms = data[4 + 2 * L:4 + 2 * L + 2 * n]
    if n == 0 or len(syms) < 2 * n:
        return False
    syms = np.frombuffer(syms, dtype="<u2")
    lens = np.repeat(np.arange(1, L + 1), counts)
    # Repeats within one length stay in: the order check refuses them.
    return any(np.unique(lens[syms == s]).size > 1 for s in np.unique(syms))


@pytest.mark.parametrize("runtime", [False, True], ids=["fixed", "runtime"])
def test_refuses_what_golden_refuses(runtime):
    rng = np.random.default_rng(5 + runtime)
    tables = _good_tables()
    tried = refused = 0
    for t in tables:
        dut = _block_for(t, runtime)
        cases = []
        for data, lasts in _mutations(t, rng, 60):
            if _repeated_across_lengths(data):
                continue
            cases.append((data, lasts, 0))
        results = _simulate(dut, cases, seed=int(rng.integers(1 << 30)))
        for (data, lasts, _), events in zip(cases, results):
            want = _golden_accepts(data, lasts, t.bits, dut._L, dut._R, runtime, dut._b)
            # One verdict per case: the first table's end (good) or its first failure.
            verdict = next((e for e in events if e[0] in ("end", "failed")), None)
            good = (verdict is not None and verdict[0] == "end"
                    and verdict[1] == len(data) - 1
                    and not any(e[0] == "failed" and e[1] <= verdict[1] for e in events))
            assert good == want, (t, data.hex(), lasts, events)
            tried += 1
            refused += not want
    # The mutations reach both outcomes often.
    assert tried > 300 and 0.3 * tried < refused < 0.9 * tried, (tried, refused)


def test_failed_load_skips_to_last_and_recovers():
    """After a failure the bytes up to ``last`` are dropped (``loading`` low), and the next
    load is parsed from its first byte."""
    t = _good_tables()[0]
    raw = t.serialize()
    bad = bytes([raw[0], 0]) + raw[2:]     # maximum length 0: refused at byte 1
    data = bad + raw
    lasts = [0] * (len(bad) - 1) + [1] + [0] * (len(raw) - 1) + [1]
    dut = _block_for(t)
    events, = _simulate(dut, [(data, lasts, 0)], seed=9, stall=False)
    fails = [e for e in events if e[0] == "failed"]
    assert fails == [("failed", 1)]
    starts = [e[1] for e in events if e[0] == "start"]
    assert starts == [0, len(bad)]
    assert events[-1] == ("end", len(data) - 1)
    got = [e[:1] + e[2:] for e in events if e[0] in ("count", "symbol")]
    assert got == _expected_events(t)


@pytest.mark.parametrize("kwargs, message", [
    (dict(symbol_width=0, max_len=5), "Symbol width must be between 1 and 8, not 0"),
    (dict(symbol_width=3, max_len=25), "Maximum code length must be between 1 and 24, not 25"),
    (dict(symbol_width=3, max_len=5, groups=2, group_bits=[3]),
     "Group widths must be 2 values from 1 to 3, not [3]"),
    (dict(symbol_width=3, max_len=5, run_max=300), "Longest run must be between 0 and 256"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as e:
        TableParser(**kwargs)
    assert str(e.value).startswith(message)
