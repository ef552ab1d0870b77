"""Mutation check: a requantizer whose output stage ignores ``ready`` (the ready gate removed
from ``hdl.pipeline.stage_enables``) must fail the stream-rule proof, and the failure must
name a counterexample trace that exists. The other mutations tried, and the proof that
caught each, are listed in ``docs/verification.md``."""

import re
from pathlib import Path

import pytest
from amaranth.hdl import Const
from sby_harness import run_sby
from test_requantizer_formal import PARAMS, StreamSpec

import hdl.requantizer
from hdl.pipeline import stage_enables
from hdl.requantizer import Requantizer


def stage_enables_without_ready_gate(m, o_ready, n_stages, name="stage"):
    """``hdl.pipeline.stage_enables`` as if the output were always ready."""
    return stage_enables(m, Const(1), n_stages, name)


def test_requantizer_without_ready_gate_fails(monkeypatch):
    monkeypatch.setattr(hdl.requantizer, "stage_enables", stage_enables_without_ready_gate)
    spec = StreamSpec(Requantizer(**PARAMS["a6m3o3"]))
    with pytest.raises(AssertionError, match=r"Assert failed") as failure:
        run_sby(spec, "mutation-requantizer-ready-gate", "prove", 3)
    trace = re.search(r"trace: (\S+\.vcd)", str(failure.value))
    assert trace, f"no trace path in the failure message:\n{failure.value}"
    assert Path(trace.group(1)).stat().st_size > 0
