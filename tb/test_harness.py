"""The harness itself: stuck designs fail fast, and rule breaks fail the test.

* A deliberately stuck block (never ready, never valid) is driven through the same
  ``StreamSource``/``StreamSink`` waits every testbench uses; each wait must end in
  ``SimTimeoutError`` within its bound, on both simulators.
* The shared AXI4-Stream monitor ``StreamRule`` (run by every sink) must catch an output
  that drops valid or changes its payload while not ready, must not flag an output that
  keeps the rule, and a break seen by a ``StreamSink`` must fail the running cocotb test.
"""

import pytest

try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

from tb.common import run_cocotb

STUCK = """
module stuck(input clk, input rst,
             input [7:0] i_stream__payload, input i_stream__valid, output i_stream__ready,
             output [7:0] o_stream__payload, output o_stream__valid, input o_stream__ready);
  assign i_stream__ready = 1'b0;
  assign o_stream__valid = 1'b0;
  assign o_stream__payload = 8'd0;
endmodule
"""

# Three output streams: ``drop`` withdraws valid every other cycle whatever ready says,
# ``change`` keeps valid but counts its payload up every cycle, ``good`` is a counter that
# holds valid and payload until ready.
BREAKER = """
module breaker(input clk, input rst,
               output reg [7:0] drop__payload, output reg drop__valid, input drop__ready,
               output reg [7:0] change__payload, output reg change__valid, input change__ready,
               output reg [7:0] good__payload, output reg good__valid, input good__ready);
  always @(posedge clk) begin
    if (rst) begin
      drop__valid <= 1'b0; drop__payload <= 8'd0;
      change__valid <= 1'b0; change__payload <= 8'd0;
      good__valid <= 1'b0; good__payload <= 8'd0;
    end else begin
      drop__valid <= ~drop__valid;
      change__valid <= 1'b1; change__payload <= change__payload + 8'd1;
      if (!good__valid || good__ready) begin
        good__valid <= 1'b1; good__payload <= good__payload + 8'd1;
      end
    end
  end
endmodule
"""


if cocotb is not None:
    @cocotb.test()
    async def waits_are_bounded(dut):
        from cocotb.triggers import SimTimeoutError

        from tb.streams import StreamSink, StreamSource, start_clock_and_reset

        source = StreamSource(dut, "i_stream", dut.clk)
        sink = StreamSink(dut, "o_stream", dut.clk)
        await start_clock_and_reset(dut)
        source.send([1, 2, 3])
        with pytest.raises(SimTimeoutError):
            await source.wait_sent(timeout_ns=1000)
        with pytest.raises(SimTimeoutError):
            await sink.wait_for(1, timeout_ns=1000)
        assert source.sent == 0 and sink.received == []

    @cocotb.test()
    async def rule_catches_breaks(dut):
        from cocotb.triggers import RisingEdge

        from tb.streams import StreamRule, flow, start_clock_and_reset

        rules = {name: StreamRule(name, getattr(dut, f"{name}__valid"),
                                  getattr(dut, f"{name}__ready"),
                                  [getattr(dut, f"{name}__payload")], dut.rst)
                 for name in ("drop", "change", "good")}
        what = {"drop": "valid dropped", "change": "payload changed"}
        ready = flow("random", 3)
        for name in rules:
            getattr(dut, f"{name}__ready").value = 0
        await start_clock_and_reset(dut)
        caught = set()
        received = []
        for _ in range(200):
            await RisingEdge(dut.clk)
            for name, rule in rules.items():
                try:
                    rule.sample()
                except AssertionError as e:
                    assert str(e).startswith(f"{name}: {what.get(name)}"), str(e)
                    caught.add(name)
                    rule.held = None
            if int(dut.good__valid.value) and int(dut.good__ready.value):
                received.append(int(dut.good__payload.value))
            dut.good__ready.value = next(ready)
        assert caught == {"drop", "change"}, f"breaks caught on {sorted(caught)}"
        assert rules["good"].stalls > 10, "the good stream was hardly stalled"
        assert received == list(range(1, len(received) + 1)), "the good stream lost a beat"

    @cocotb.test(expect_fail=True)
    async def sink_fails_the_test(dut):
        """Expected to fail: the sink's monitor sees ``change`` break the rule."""
        from cocotb.triggers import ClockCycles

        from tb.streams import StreamSink, start_clock_and_reset

        StreamSink(dut, "change", dut.clk, backpressure="toggle")
        await start_clock_and_reset(dut)
        await ClockCycles(dut.clk, 100)


def test_stuck_design_times_out():
    run_cocotb("harness-stuck", {"stuck.v": STUCK}, "stuck", "tb.test_harness",
               testcase="waits_are_bounded", tests=1)


def test_stream_rule_breaks_fail():
    run_cocotb("harness-breaker", {"breaker.v": BREAKER}, "breaker", "tb.test_harness",
               testcase=["rule_catches_breaks", "sink_fails_the_test"], tests=2)
