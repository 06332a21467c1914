"""Fault tests: the REAL scheduler (spawned detached, as qtui does, or run in-process where that
is enough) and real child processes, with the fake llama-perplexity where a fault needs one
(nan output, an exit code, a child that ignores SIGTERM), a real full disk (a 1 MiB tmpfs when
running as root, an injected ENOSPC otherwise).

Every process a test starts is ended by its id when the test ends, and a tmpfs is unmounted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from qtui.core.jobs.queue import JobQueue, JobSpec

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "fake_llama_perplexity.py"
IK = ROOT / "tests" / "fixtures" / "ik"
IS_ROOT = os.geteuid() == 0


def fake_spec(kind: str, case: str, data_dir: Path, *, delay: float = 0.0, depends_on: str | None = None,
              output: Path | None = None, **env: str) -> JobSpec:
    """A job running the fake llama-perplexity on a recorded ik_llama.cpp transcript."""
    out = str(output or data_dir / "base.kld")
    argv = [sys.executable, str(FAKE), "-m", "x.gguf", "--kl-divergence-base", out + ".partial" if kind == "base" else out]
    if kind == "kld":
        argv.append("--kl-divergence")
    return JobSpec(kind=kind, argv=argv,  # type: ignore[arg-type]
                   env={"FAKE_LLAMA_CASE": str(IK / case), "FAKE_LLAMA_DELAY": str(delay), **env},
                   model={"label": case, "size_bytes": 1000}, label=f"{kind}-{case}",
                   output=out if kind == "base" else None, depends_on=depends_on)


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll until cond() is truthy; fail with `what` at the deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def status(q: JobQueue, job_id: str) -> str | None:
    job = q.get(job_id)
    return job.state.status if job else None


def scheduler_procs(data_dir: Path) -> list[psutil.Process]:
    """The detached schedulers serving data_dir (found by their command line)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "qtui.core.jobs.scheduler" in cmd and str(data_dir) in cmd:
            found.append(p)
    return found


def kill9(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(timeout=10)


def fill_disk(directory: Path) -> Path:
    """Write zeros into directory until its filesystem refuses (ENOSPC). Returns the filler."""
    filler = directory / "filler"
    block = b"\0" * 4096
    with open(filler, "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler


def _end_processes(data_dir: Path) -> None:
    for p in scheduler_procs(data_dir):
        kill9(p.pid)
    for job in JobQueue(data_dir).jobs() if data_dir.is_dir() else []:
        if job.state.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.state.pid, signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir on the ordinary disk; schedulers and children started on it end with the test."""
    d = tmp_path / "data"
    d.mkdir()
    yield d
    _end_processes(d)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 1 MiB tmpfs as the data dir when running as root (so a disk can fill for real), None
    otherwise (the test then injects ENOSPC)."""
    if not IS_ROOT:
        yield None
        return
    d = tmp_path / "small"
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        why = f"cannot mount a tmpfs as root ({mounted.stderr.strip()})"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must run the real full-disk tests")
        warnings.warn(f"{why}: injecting ENOSPC instead", stacklevel=1)
        yield None
        return
    try:
        yield d
    finally:
        _end_processes(d)
        if subprocess.run(["umount", str(d)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], check=True)
