"""The harness itself: a design that never answers must fail fast, not hang the run.

A deliberately stuck block (never ready, never valid) is driven through the same
``StreamSource``/``StreamSink`` waits every testbench uses; each wait must end in
``SimTimeoutError`` within its bound, on both simulators.
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


if cocotb is not None:
    @cocotb.test()
    async def waits_are_bounded(dut):
        from cocotb.triggers import SimTimeoutError

        from tb.common import StreamSink, StreamSource, start_clock_and_reset

        source = StreamSource(dut, "i_stream", dut.clk)
        sink = StreamSink(dut, "o_stream", dut.clk)
        await start_clock_and_reset(dut)
        source.send([1, 2, 3])
        with pytest.raises(SimTimeoutError):
            await source.wait_sent(timeout_ns=1000)
        with pytest.raises(SimTimeoutError):
            await sink.wait_for(1, timeout_ns=1000)
        assert source.sent == 0 and sink.received == []


def test_stuck_design_times_out():
    run_cocotb("harness-stuck", {"stuck.v": STUCK}, "stuck", "tb.test_harness")
