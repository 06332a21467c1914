"""The scheduler's survey of its cluster, written into the data dir every few seconds.

The scheduler is the one qtui process joined to the cluster (its Ray driver); the app reads the
survey file and never joins Ray itself. While cluster jobs run, a daemon thread surveys the
cluster (ray_survey.survey) and writes the result atomically; a survey that fails (Ray busy, a
node slow) is skipped, not fatal: the file ages and the app stops showing it after
survey.FRESH_S seconds.

    with watching(address, survey_path(data_dir)):   # around running one cluster job
        ...

starts one watch per (address, file) for the first job and stops it when the last one ends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from qtui.core.cluster.placement import LOOPBACK_ENV, is_loopback
from qtui.core.cluster.survey import ClusterSurvey, write_survey

INTERVAL_S = 5.0
TIMEOUT_S = 10.0
"""a node has this long to answer each survey"""

Surveyor = Callable[[str, float], ClusterSurvey]


def _ray_surveyor(address: str, timeout_s: float) -> ClusterSurvey:
    from qtui.core.cluster.ray_survey import survey  # imports ray: only once a watch runs

    return survey(address, timeout_s)


class Unreachable(Exception):
    """The cluster cannot be surveyed from here (Ray missing, nobody answers): one sentence."""


def host_port(address: str) -> tuple[str, int] | None:
    """The host and port an address names ("ray://h:10001", "h:6379"); None for "auto"."""
    rest = address.strip().removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def survey_once(address: str, timeout_s: float = TIMEOUT_S) -> ClusterSurvey:
    """Join the cluster at `address` and survey it once (`qtui cluster`). Raises Unreachable
    with the reason in words. Joining an address nobody answers at can hang inside Ray for
    minutes, so the port is tried first; the caller bounds the rest (a process that waits on a
    join it cannot interrupt can only end itself)."""
    if is_loopback(address):
        os.environ.setdefault(LOOPBACK_ENV, "0")  # before ray is imported: Ray keeps 127.0.0.1
    try:
        from qtui.core.cluster import ray_survey
        from qtui.core.cluster.ray_exec import ClusterError, connect
    except ImportError as exc:
        raise Unreachable(f"surveying a Ray cluster needs Ray, which is not installed here ({exc}): "
                          "pip install 'qtui[ray]'") from exc
    where = host_port(address)
    if where is not None:
        try:
            socket.create_connection(where, timeout=5.0).close()
        except OSError as exc:
            raise Unreachable(f"cannot join the Ray cluster at {address}: nobody answers at {where[0]}:{where[1]} "
                              f"({exc.strerror or exc}); is `ray start` running there?") from exc
    try:
        connect(address)  # in the caller's thread: Ray installs its signal handlers there
        return ray_survey.survey(address, timeout_s)
    except ClusterError as exc:
        raise Unreachable(str(exc)) from exc


class ClusterWatch:
    """Survey the cluster at `address` into `path` every `interval_s` seconds until stop()."""

    def __init__(self, address: str, path: Path, interval_s: float = INTERVAL_S, timeout_s: float = TIMEOUT_S,
                 surveyor: Surveyor | None = None, on_error: Callable[[str], None] | None = None) -> None:
        self.address = address
        self.path = path
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._survey = surveyor or _ray_surveyor
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        """surveys written so far"""
        self.last_error: str | None = None

    def start(self) -> ClusterWatch:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"qtui cluster survey {self.address}", daemon=True)
            self._thread.start()
        return self

    def stop(self, wait_s: float | None = None) -> None:
        """Ask the thread to end; with `wait_s`, wait that long for it (a survey under way ends
        within its timeout)."""
        self._stop.set()
        if self._thread is not None and wait_s is not None:
            self._thread.join(wait_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def once(self) -> None:
        """One survey, written; a failure is remembered (and told once per new reason)."""
        try:
            s = self._survey(self.address, self.timeout_s)
            write_survey(self.path, s)
        except SystemExit:  # Ray was shut down under a survey in flight (its process is ending)
            self._stop.set()
            return
        except Exception as exc:  # a watch must never take the scheduler down
            text = f"could not survey the Ray cluster at {self.address}: {str(exc) or type(exc).__name__}"
            if text != self.last_error and self._on_error is not None:
                self._on_error(text)
            self.last_error = text
            return
        self.written += 1
        self.last_error = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.once()
            self._stop.wait(self.interval_s)


_lock = threading.Lock()
_active: dict[tuple[str, Path], tuple[ClusterWatch, int]] = {}


@contextlib.contextmanager
def watching(address: str, path: Path, **kwargs: object) -> Iterator[ClusterWatch]:
    """A watch of `address` into `path` while at least one caller is inside: the first starts
    it, the last one out stops it. Keyword arguments go to ClusterWatch (first caller's win)."""
    key = (address, path)
    with _lock:
        watch, users = _active.get(key, (None, 0))
        if watch is None:
            watch = ClusterWatch(address, path, **kwargs).start()  # type: ignore[arg-type]
        _active[key] = (watch, users + 1)
    try:
        yield watch
    finally:
        with _lock:
            watch, users = _active[key]
            if users <= 1:
                del _active[key]
                watch.stop()
            else:
                _active[key] = (watch, users - 1)
