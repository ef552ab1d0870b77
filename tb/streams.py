"""Stream drivers and monitors for every testbench (cocotb side), and the flow patterns.

``StreamSource`` drives a stream from a queue and ``StreamSink`` takes one, each under an idle
or backpressure pattern from ``flow()``: Amaranth stream ports (``<prefix>__payload/valid/
ready``, struct payloads packed by ``Fields``) or, with ``axi=True``, AXI4-Stream ports
(``<prefix>_tvalid/tready`` with ``tdata``/``tlast``/``tuser``). Every sink checks the
AXI4-Stream rule on its output with ``StreamRule`` (once valid and not ready, valid and payload
hold until the handshake; a break fails the test). Each runs in a task of its own, or
(``start=False``) its ``step()`` is called once per clock edge by a testbench that does all of
its per-cycle work in one coroutine. Every wait is bounded (``with_timeout``).
"""

from __future__ import annotations

import itertools
import random
from collections import deque

from tb.common import FLOW_PATTERNS, STRESS_PATTERNS


def flow(pattern: str, seed: int = 0, watch=None, threshold: int = 16):
    """An endless iterator of 0/1, drawn once per cycle: 1 lets a beat through this cycle.

    ``none`` never stalls; ``cycle`` is ``1,1,1,0``; ``random`` is seeded bursts of random
    length (1-8 cycles on, 1-4 off); ``long`` is bursts of 1-16 cycles with 1-4-cycle gaps
    and, one gap in five, a stall of 64-160 cycles; ``toggle`` is ``1,0,1,0``; ``fill``
    (backpressure only) is a ``Fill``: ready held low until the block refuses the input
    ``watch`` = ``(valid, ready)`` for ``threshold`` cycles in a row (its buffers are full),
    then released for a while, again and again.
    """
    if pattern == "none":
        return itertools.repeat(1)
    if pattern == "cycle":
        return itertools.cycle([1, 1, 1, 0])
    if pattern == "toggle":
        return itertools.cycle([1, 0])
    if pattern in ("random", "long"):
        rng = random.Random(seed)

        def bursts():
            while True:
                if pattern == "random":
                    yield from [1] * rng.randint(1, 8)
                    yield from [0] * rng.randint(1, 4)
                else:
                    yield from [1] * rng.randint(1, 16)
                    yield from [0] * (rng.randint(64, 160) if rng.random() < 0.2
                                      else rng.randint(1, 4))
        return bursts()
    if pattern == "fill":
        if watch is None:
            raise ValueError("the fill pattern needs the (valid, ready) input to watch")
        return Fill(*watch, threshold=threshold, seed=seed)
    raise ValueError(f"Unknown flow pattern {pattern!r}; expected one of "
                     f"{FLOW_PATTERNS + STRESS_PATTERNS}")


class Fill:
    """Backpressure held until the block is full, then released; the ``fill`` pattern.

    Drawn once per cycle after the clock edge, it watches the block's input ``valid``/``ready``:
    while holding (0), once the input was offered and refused ``threshold`` cycles in a row
    the block's buffers are full (``fills`` counts these), and it releases (1) for 1-48
    cycles, then holds again. A hold also ends when no input was offered for ``4 *
    threshold`` cycles (nothing left to fill it with). ``threshold`` must exceed the longest
    refusal of a block that is not stalled (e.g. a MAC array's cycles per pixel).
    """

    def __init__(self, valid, ready, threshold: int = 16, seed: int = 0):
        self.valid, self.ready = valid, ready
        self.threshold = threshold
        self.rng = random.Random(seed)
        self.fills = 0
        self.release = 0
        self.refused = self.idle = 0

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.release:
            self.release -= 1
            return 1
        if int(self.valid.value):
            self.idle = 0
            self.refused = 0 if int(self.ready.value) else self.refused + 1
        else:
            self.idle += 1
        if self.refused >= self.threshold or self.idle >= 4 * self.threshold:
            self.fills += self.refused >= self.threshold
            self.refused = self.idle = 0
            self.release = self.rng.randint(1, 48)
        return 0


class StreamRule:
    """The AXI4-Stream rule on one output stream, checked once per cycle by ``sample()``.

    Once ``valid`` is high and ``ready`` low at a clock edge, ``valid`` must still be high and
    every payload signal unchanged at the next edge. A break raises ``AssertionError`` at once
    (from a background task this fails the running cocotb test). ``stalls`` counts the cycles
    the rule was in force. Call ``sample()`` right after each ``RisingEdge`` (it reads the
    values the design saw at that edge); ``start()`` runs it in a task of its own. While
    ``reset`` is high the rule is not in force.
    """

    def __init__(self, name: str, valid, ready, payload=(), reset=None):
        self.name = name
        self.valid, self.ready = valid, ready
        self.payload = list(payload)
        self.reset = reset
        self.held = None
        self.stalls = 0
        self.cycle = 0

    def sample(self) -> None:
        self.cycle += 1
        if self.reset is not None and str(self.reset.value) != "0":
            self.held = None
            return
        valid = self.valid.value
        if self.held is not None:
            now = tuple(p.value for p in self.payload)
            if str(valid) != "1" or now != self.held:
                what = "valid dropped" if str(valid) != "1" else "payload changed"
                raise AssertionError(f"{self.name}: {what} while valid and not ready "
                                     f"(cycle {self.cycle} of the monitor)")
        if str(valid) == "1" and str(self.ready.value) != "1":
            self.held = tuple(p.value for p in self.payload)
            self.stalls += 1
        else:
            self.held = None

    def start(self, clk):
        import cocotb

        async def run():
            from cocotb.triggers import RisingEdge

            while True:
                await RisingEdge(clk)
                self.sample()
        return cocotb.start_soon(run())


class Fields:
    """Pack and unpack a struct payload given ``[(name, width, signed), ...]`` from bit 0."""

    def __init__(self, fields):
        self.fields = [(n, int(w), bool(s)) for n, w, s in fields]
        self.width = sum(w for _, w, _ in self.fields)

    @classmethod
    def from_manifest(cls, port: dict) -> Fields:
        return cls([(f["name"], f["width"], f["signed"]) for f in port["fields"]])

    def pack(self, values: dict) -> int:
        word, offset = 0, 0
        for name, width, signed in self.fields:
            v = int(values.get(name, 0))
            lo = -(1 << (width - 1)) if signed else 0
            hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
            if not lo <= v <= hi:
                raise ValueError(f"field {name}={v} does not fit {width} bits")
            word |= (v & ((1 << width) - 1)) << offset
            offset += width
        return word

    def unpack(self, word: int) -> dict:
        out, offset = {}, 0
        for name, width, signed in self.fields:
            v = (word >> offset) & ((1 << width) - 1)
            if signed and v >> (width - 1):
                v -= 1 << width
            out[name] = v
            offset += width
        return out


def _ports(dut, prefix, axi, names):
    """(valid, ready, {name: signal}) of an Amaranth (``{None: payload}``) or AXI stream."""
    if axi:
        return (getattr(dut, f"{prefix}_tvalid"), getattr(dut, f"{prefix}_tready"),
                {n: getattr(dut, f"{prefix}_{n}") for n in names if hasattr(dut, f"{prefix}_{n}")})
    payload = getattr(dut, f"{prefix}__payload", None)
    return (getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready"),
            {} if payload is None else {None: payload})


class StreamSource:
    """Drive a stream from a queue: ints or ``Fields`` dicts (Amaranth ports), or dicts of
    ``tdata``/``tlast``/``tuser`` (``axi=True``, missing keys 0). ``handshakes`` holds the
    cycle of every accepted item, counted from the source's first clock edge."""

    def __init__(self, dut, prefix: str, clk, fields: Fields | None = None,
                 idle: str = "none", seed: int = 0, *, axi: bool = False, start: bool = True):
        self.valid, self.ready, self.signals = _ports(dut, prefix, axi,
                                                      ("tdata", "tlast", "tuser"))
        self.clk = clk
        self.fields = fields
        self.axi = axi
        self.pattern = flow(idle, seed)
        self.queue: deque = deque()
        self.sent = 0
        self.handshakes: list[int] = []
        self.cycle = 0
        self.driving = False
        self.valid.value = 0
        if start:
            import cocotb

            self._task = cocotb.start_soon(self._run())

    def send(self, items) -> None:
        self.queue.extend(items)

    def _drive(self, item) -> None:
        if self.axi:
            for name, sig in self.signals.items():
                sig.value = int(item.get(name, 0))
        elif self.signals:
            self.signals[None].value = (self.fields.pack(item) if self.fields is not None
                                        else int(item))

    def step(self) -> None:
        """One clock edge: retire a handshake, offer the next item when the pattern allows."""
        self.cycle += 1
        if self.driving and int(self.ready.value):
            self.queue.popleft()
            self.sent += 1
            self.handshakes.append(self.cycle)
            self.driving = False
        if not self.driving and self.queue and next(self.pattern):
            self._drive(self.queue[0])
            self.driving = True
        self.valid.value = int(self.driving)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        while True:
            await RisingEdge(self.clk)
            self.step()

    async def wait_sent(self, timeout_ns: int) -> None:
        """Wait until every queued item was accepted, at most ``timeout_ns``."""
        from cocotb.triggers import RisingEdge, with_timeout

        async def drained():
            while self.queue:
                await RisingEdge(self.clk)
        await with_timeout(drained(), timeout_ns, "ns")


class StreamSink:
    """Take beats from a stream under a backpressure pattern, checking ``StreamRule``.

    ``received`` holds each beat: ``decode(word)`` when given, else the ``Fields`` dict (or the
    int) of an Amaranth payload, or a dict of ``tdata``/``tlast`` (``axi=True``);
    ``beat_cycles`` the cycle of each.
    """

    def __init__(self, dut, prefix: str, clk, fields: Fields | None = None,
                 backpressure: str = "none", seed: int = 1, watch=None, threshold: int = 16,
                 *, axi: bool = False, decode=None, start: bool = True):
        self.valid, self.ready, self.signals = _ports(dut, prefix, axi, ("tdata", "tlast"))
        self.clk = clk
        self.axi = axi
        if decode is None and fields is not None:
            decode = fields.unpack
        self.decode = decode
        self.pattern = flow(backpressure, seed, watch, threshold)
        self.rule = StreamRule(prefix, self.valid, self.ready, list(self.signals.values()),
                               getattr(dut, "rst", None))
        self.received: list = []
        self.beat_cycles: list[int] = []
        self.cycle = 0
        self.ready.value = 0
        if start:
            import cocotb

            self._task = cocotb.start_soon(self._run())

    def step(self) -> None:
        """One clock edge: check the rule, take a beat if one was handed over, set ready."""
        self.cycle += 1
        self.rule.sample()
        if int(self.ready.value) and int(self.valid.value):
            if self.axi:
                beat = {n: int(s.value) for n, s in self.signals.items()}
            else:
                word = int(self.signals[None].value) if self.signals else 1
                beat = self.decode(word) if self.decode is not None else word
            self.received.append(beat)
            self.beat_cycles.append(self.cycle)
        self.ready.value = next(self.pattern)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        while True:
            await RisingEdge(self.clk)
            self.step()

    async def wait_for(self, count: int, timeout_ns: int) -> list:
        """Wait for ``count`` beats in total, at most ``timeout_ns``; return them."""
        from cocotb.triggers import RisingEdge, with_timeout

        async def enough():
            while len(self.received) < count:
                await RisingEdge(self.clk)
        await with_timeout(enough(), timeout_ns, "ns")
        return self.received[:count]


async def start_clock_and_reset(dut, period_ns: int = 10, cycles: int = 3):
    """Start ``dut.clk`` and hold ``dut.rst`` for ``cycles`` cycles.

    The reset rises after a first clock edge rather than at time zero: Icarus runs every
    ``always @*`` block once at time zero, in an order of its own, and a block that ran
    before its inputs took their initial values keeps an X until one of them changes. A
    register fed by such a block (and by itself, like a counter) would otherwise stay X
    through a reset held from time zero; a reset edge makes every next-state block run
    again. ``cycles`` counts that first edge: the reset is high for ``cycles - 1`` edges."""
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(cycles - 1):     # the same cycle count as a reset held from time zero
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
