"""Facts about processes that any qtui may ask: is a job's child alive, is a scheduler running.

Kept apart from the scheduler so that the queue (a cancel in the user's own process) can ask
them too without importing the scheduler.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import traceback
from pathlib import Path

import psutil


def create_time(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return float(psutil.Process(pid).create_time())
    return None


def alive(pid: int | None, started: float | None) -> bool:
    """True while `pid` is the child we started (not a zombie, not a recycled pid)."""
    if pid is None:
        return False
    try:
        p = psutil.Process(pid)
        if started is not None and abs(p.create_time() - started) > 1.0:
            return False  # the pid was recycled by another process
        return bool(p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def signal_group(pid: int, sig: int) -> None:
    # Children run in their own session, so the group id is the child's pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# -- the scheduler's singleton lock ---------------------------------------------------------
def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / "jobs" / ".scheduler.lock"


def scheduler_running(data_dir: Path) -> bool:
    path = lock_path(data_dir)
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


# -- the scheduler's log ----------------------------------------------------------------------
def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / "jobs" / "scheduler.log"


def log(data_dir: Path, text: str, exc: BaseException | None = None) -> None:
    """Append a line (and a traceback) to scheduler.log. Never raises: the log lives on the
    same disk as everything else, and a full disk must not turn a logged failure into a crash."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    body = f"{stamp} [{os.getpid()}] {text}\n"
    if exc is not None:
        body += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    with contextlib.suppress(OSError):
        path = log_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(body)
