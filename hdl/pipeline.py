"""Stall logic shared by the streaming pipelines in ``hdl/``.

A pipeline of N register stages moves every stage together when the output can take a beat
(``o_ready``) or when a bubble lies ahead of a stage, so that bubbles are squeezed out: a stage
loads when it is empty or when the stage after it loads. This keeps a beat per cycle under
any valid/ready pattern and never drops or duplicates a beat. ``i_ready`` depends
combinationally on ``o_ready`` (ready to ready), never valid on ready.
"""

from amaranth.hdl import Signal

__all__ = ["stage_enables"]


def stage_enables(m, o_ready, n_stages: int, name: str = "stage"):
    """Build the valid bits and load enables of an ``n_stages`` pipeline.

    Returns
    -------
    valid : list of Signal
        ``valid[i]`` is set when stage ``i`` holds a beat; ``valid[-1]`` drives ``o_valid``.
    load : list of Signal
        ``load[i]`` is high when stage ``i`` takes a new value this cycle; ``load[0]`` is the
        pipeline's ``i_ready``. The caller updates ``valid[0]`` from its input valid; every
        later stage copies the valid bit of the stage before it (done here).
    """
    valid = [Signal(name=f"{name}{i}_valid") for i in range(n_stages)]
    load = [Signal(name=f"{name}{i}_load") for i in range(n_stages)]
    m.d.comb += load[-1].eq(~valid[-1] | o_ready)
    for i in reversed(range(n_stages - 1)):
        m.d.comb += load[i].eq(~valid[i] | load[i + 1])
    for i in range(1, n_stages):
        with m.If(load[i]):
            m.d.sync += valid[i].eq(valid[i - 1])
    return valid, load
