"""What runs on a cluster node for one job: the child, and its output sent back as it comes.

`run_here` is a plain generator of events, so the Ray task (ray_exec.py) is a thin wrapper and
the node side can be tested without Ray. The child writes into files in a private folder on the
node, exactly as a local child writes into its job folder (no pipe that could fill or break);
the generator reads what is new every POLL_S and yields it:

    ("note", str)        something the job's log should say (a base file made on this node)
    ("started", {"pid"}) the child runs
    ("stdout", bytes)    new output, at most CHUNK bytes per event
    ("stderr", bytes)
    ("dump", bytes)      new per-token data (kld jobs)
    ("end", {"exit_code": int} or {"error": str})

The child dies with the worker that started it (PR_SET_PDEATHSIG): a cancelled task or a
node's Ray processes going away never leave a llama-perplexity computing for nobody.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from qtui.core.fsutil import file_lock
from qtui.core.llama.basefile import BaseFileError, check_base_file
from qtui.core.llama.tokendump import DUMP_ENV, JOB_FILE

POLL_S = 0.25
CHUNK = 1 << 20
"""bytes per event at most: one Ray object each, small enough never to hold a big dump in memory"""
BASE_FLAG = "--kl-divergence-base"
STREAMS = ("stdout", "stderr", "dump")

Event = tuple[str, Any]


class NodeError(Exception):
    """Why the job could not run on this node, in words."""


def base_path_of(argv: Sequence[str]) -> str | None:
    """The base log-prob file an argv names (the last --kl-divergence-base wins, as in llama.cpp)."""
    value = None
    for i, arg in enumerate(argv[:-1]):
        if arg == BASE_FLAG:
            value = argv[i + 1]
    return value


def with_base_path(argv: Sequence[str], path: str) -> list[str]:
    """`argv` with every --kl-divergence-base value replaced by `path`."""
    out = list(argv)
    for i in range(len(out) - 1):
        if out[i] == BASE_FLAG:
            out[i + 1] = path
    return out


def node_base_path(name: str) -> Path:
    """Where this node keeps a base file it made itself: its own qtui cache (QTUI_CACHE_DIR)."""
    from qtui.core import paths  # platformdirs: only where a node makes a base file of its own

    return paths.bases_dir() / name


def _usable(path: Path) -> bool:
    try:
        check_base_file(path)
    except (BaseFileError, OSError):
        return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    # prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills the child when its parent goes.
    _LIBC.prctl(1, signal.SIGKILL)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _start(argv: Sequence[str], env: dict[str, str], cwd: Path, out: IO[bytes], err: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        raise NodeError(f"could not start {argv[0]} on this node: {exc.strerror or exc}") from exc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _env(job_env: dict[str, str], dump: Path | None) -> dict[str, str]:
    # The node's own environment (its PATH, its HOME), never the qtui machine's; llama.cpp reads
    # LLAMA_ARG_* as defaults for its flags, so they are dropped as on the qtui machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMA_ARG_", "LLAMA_LOG_")) and k != DUMP_ENV}
    env.update(job_env)
    env.pop(DUMP_ENV, None)
    if dump is not None:
        env[DUMP_ENV] = str(dump)
    return env


def ensure_base(argv: Sequence[str], base_argv: Sequence[str], env: dict[str, str], work: Path) -> Generator[Event, None, list[str]]:
    """Make sure the base file `argv` reads exists on this node; returns (as the generator's
    value) the argv to run. Made at most once per node: under a lock beside the file, a second
    job waiting for it finds it made."""
    wanted = base_path_of(argv)
    if wanted is None or _usable(Path(wanted)):
        return list(argv)
    local = Path(wanted) if Path(wanted).parent.is_dir() and os.access(Path(wanted).parent, os.W_OK) \
        else node_base_path(Path(wanted).name)
    with file_lock(Path(str(local) + ".lock")):
        if not _usable(local):
            yield ("note", f"the base file is not on this node: making {local} here first (once per node)")
            partial = Path(str(local) + ".partial")
            log = work / "base.log"
            proc = None
            try:
                with open(log, "wb") as out:
                    proc = _start(with_base_path(base_argv, str(partial)), _env(env, None), work, out, out)
                    rc = proc.wait()
            finally:
                _stop(proc)
            if rc != 0 or not _usable(partial):
                tail = log.read_bytes()[-400:].decode("utf-8", "replace").strip().splitlines()[-1:] if log.exists() else []
                partial.unlink(missing_ok=True)
                raise NodeError(f"could not make the base file {local} on this node (exit {rc})" + (f": {tail[0]}" if tail else ""))
            os.replace(partial, local)
            yield ("note", f"made the base file {local} on this node")
    return with_base_path(argv, str(local))


def _read_new(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(CHUNK)
    except FileNotFoundError:
        return b""


def _drain(files: dict[str, Path], offsets: dict[str, int]) -> Iterator[Event]:
    for name, path in files.items():
        while True:
            data = _read_new(path, offsets[name])
            if not data:
                break
            offsets[name] += len(data)
            yield (name, data)


def stop_here(pid: int, grace_s: float, poll_s: float = 0.1) -> bool:
    """Stop a job's child on this node as a local cancel does: SIGTERM to its group, SIGKILL
    once `grace_s` is over; returns once it is gone (True), so that nothing is judged, or a
    partial file removed, while the child still writes. False: no such process was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace_s
    while _running(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        time.sleep(poll_s)
    return True


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def run_here(argv: Sequence[str], env: dict[str, str], dump: bool = False, base_argv: Sequence[str] | None = None,
             poll_s: float = POLL_S) -> Iterator[Event]:
    """Run one job's child on this node and yield its output as it comes (events above)."""
    work = Path(tempfile.mkdtemp(prefix="qtui-job-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        try:
            run_argv = list(argv)
            if base_argv:
                run_argv = yield from ensure_base(argv, base_argv, env, work)
            elif "--kl-divergence" in argv and (wanted := base_path_of(argv)) and not Path(wanted).exists():
                raise NodeError(f"the base file {wanted} is not on this node and qtui has no command to make it "
                                "(a base file given without a corpus): copy it there, or name a shared cluster_base_dir")
            files = {"stdout": work / "stdout", "stderr": work / "stderr", "dump": work / JOB_FILE}
            with open(files["stdout"], "wb") as out, open(files["stderr"], "wb") as err:
                proc = _start(run_argv, _env(env, files["dump"] if dump else None), work, out, err)
        except (NodeError, OSError) as exc:
            yield ("end", {"error": str(exc)})
            return
        yield ("started", {"pid": proc.pid})
        offsets = dict.fromkeys(files, 0)
        rc: int | None = None
        while True:
            yield from _drain(files, offsets)  # after the exit is seen: what it wrote before is read
            if rc is not None:
                yield ("end", {"exit_code": rc if rc >= 0 else 128 - rc})
                return
            try:
                rc = proc.wait(timeout=poll_s)  # returns the moment the child exits
            except subprocess.TimeoutExpired:
                rc = None
    finally:
        _stop(proc)
        shutil.rmtree(work, ignore_errors=True)
