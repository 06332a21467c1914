"""A job that names a Ray cluster (JobSpec.cluster): run as a Ray task, its output streamed
into its own folder here, so judging and recording it is the same as for a local job.

Ray is imported here only, inside the functions, and only for such a job: a queue without a
cluster job never loads it (`qtui[ray]` is an optional extra).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from qtui.core.cluster.placement import LOOPBACK_ENV, is_loopback
from qtui.core.cluster.survey import cluster_holders
from qtui.core.jobs.procs import log
from qtui.core.jobs.queue import TERM_GRACE_S, Job, JobQueue
from qtui.core.llama.tokendump import JOB_FILE

CAPACITY_TTL_S = 2.0
"""how long a reading of the cluster's size is trusted (a node that joins or dies counts soon)"""
JOIN_TIMEOUT_S = 60.0
"""joining a cluster nobody answers at can hang for many minutes inside Ray: jobs for it fail
with words after this long instead of waiting in silence"""
JOIN_RETRY_S = 10.0
"""after failing to join a cluster, how long jobs for it fail at once before qtui tries again"""
WARM_TIMEOUT_S = 120.0
"""the longest a warm-up of the cluster's workers is waited for (they are never needed: a job
that finds no warm worker starts one, as it would without the warm-up)"""


def cluster_gpu_holders(jobs: Iterable[Job]) -> dict[tuple[str, int], str]:
    """(node id, GPU index) -> the label of the running cluster job that holds that GPU: what
    `qtui cluster` and the app's GPU panel print beside the cluster's GPUs."""
    return cluster_holders((j.spec.label or j.spec.kind, j.state.node) for j in jobs
                           if j.state.status == "running" and j.spec.cluster)


class RemoteFailed(Exception):
    """The job could not finish on the cluster (its node died, Ray is missing...): words only."""


def _ray_exec(address: str) -> Any:
    if is_loopback(address):
        # A cluster on this box's loopback (one machine, or the tests): Ray replaces 127.0.0.1
        # by the machine's interface address unless this is set before it is imported, and
        # would then look for the cluster where it does not listen.
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        from qtui.core.cluster import ray_exec
    except ImportError as exc:
        raise RemoteFailed(f"the job asks for a Ray cluster but Ray is not installed here ({exc}): "
                           "pip install 'qtui[ray]', or run it on this machine (cluster = \"\")") from exc
    return ray_exec


def asked_gpus(job: Job) -> int | None:
    """GPUs the job asked for (its gpus_per_run); None lets the cluster decide (1 with GPUs, 0
    without). "auto" is None too: free memory on a remote node is not known here."""
    asked = job.spec.gpus_per_run
    if isinstance(asked, int) and not isinstance(asked, bool):
        return asked
    if isinstance(asked, str) and asked.strip().isdigit():
        return int(asked)
    return None


class ClusterSeats:
    """How many cluster jobs may run at once: the cluster's own size, read from Ray, so that
    jobs beyond it wait in qtui's queue (where they can still be reordered or cancelled) rather
    than in Ray's. Ray still chooses the node of every job.

    Asked under the queue lock, so it never blocks: joining a cluster (seconds, or minutes for
    an address nobody answers at) happens in a thread, and until it is done there is no room.

    `prepare` does the slow part of a cluster's first jobs early, while they still wait (on the
    base job that runs here first): it joins the cluster and starts one Ray worker per seat,
    so that the jobs start at once when the base is done instead of paying for both then."""

    def __init__(self, note: Callable[[str], None] | None = None) -> None:
        self._cache: dict[tuple[str, int | None], tuple[float, int]] = {}
        self._joining: dict[str, threading.Thread] = {}
        self._since: dict[str, float] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._prepared: set[str] = set()
        self._note = note
        self._lock = threading.Lock()

    def _join(self, address: str) -> None:
        try:
            ray_exec = _ray_exec(address)
            ray_exec.connect(address)
        except RemoteFailed as exc:
            error = str(exc)
        except Exception as exc:  # ClusterError and anything Ray raises: words, not a traceback
            error = str(exc) or type(exc).__name__
        else:
            return
        with self._lock:
            self._failed[address] = (time.monotonic(), error)

    def capacity(self, address: str, gpus: int | None) -> int:
        """Jobs the cluster runs at once; 0 while qtui is still joining it. Raises RemoteFailed
        when it cannot be joined (asked again after JOIN_RETRY_S: a retried job tries anew)."""
        with self._lock:
            failed = self._failed.get(address)
            if failed is not None:
                if time.monotonic() - failed[0] < JOIN_RETRY_S:
                    raise RemoteFailed(failed[1])
                del self._failed[address]
                self._joining.pop(address, None)
            joining = self._joining.get(address)
            if joining is None:
                joining = self._joining[address] = threading.Thread(target=self._join, args=(address,), daemon=True)
                self._since[address] = time.monotonic()
                joining.start()
            if joining.is_alive():
                if time.monotonic() - self._since[address] > JOIN_TIMEOUT_S:
                    raise RemoteFailed(f"cannot join the Ray cluster at {address}: no answer within {JOIN_TIMEOUT_S:g} s "
                                       "(is `ray start` running there, and the address right?)")
                return 0
        if address in self._failed:
            return self.capacity(address, gpus)
        key = (address, gpus)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CAPACITY_TTL_S:
            return hit[1]
        ray_exec = _ray_exec(address)
        try:
            n = int(ray_exec.cluster_capacity(address, gpus))
        except ray_exec.ClusterError as exc:
            raise RemoteFailed(str(exc)) from exc
        self._cache[key] = (time.monotonic(), n)
        return n

    def prepare(self, address: str, gpus: int | None) -> None:
        """Join `address` and warm its workers in the background, once per address; returns at once."""
        with self._lock:
            if address in self._prepared:
                return
            self._prepared.add(address)
        threading.Thread(target=self._warm, args=(address, gpus), name=f"qtui warm {address}", daemon=True).start()

    def _warm(self, address: str, gpus: int | None) -> None:
        t0 = time.monotonic()
        try:
            while (seats := self.capacity(address, gpus)) <= 0:  # 0 while joining; raises if it cannot
                time.sleep(0.1)
            warmed = int(_ray_exec(address).warm_workers(address, gpus, WARM_TIMEOUT_S))
        except Exception as exc:  # the jobs themselves report a cluster they cannot use, in words
            self._tell(f"could not prepare the Ray cluster at {address} while its jobs wait: {exc}")
            return
        self._tell(f"joined the Ray cluster at {address} and warmed {warmed} of {seats} workers in "
                   f"{time.monotonic() - t0:.1f} s while its jobs wait")

    def _tell(self, text: str) -> None:
        if self._note is not None:
            self._note(text)


def run_on_cluster(queue: JobQueue, job: Job) -> int | None:
    """Run `job` on its cluster and return the child's exit status (None when it was cancelled
    before it ended). Raises RemoteFailed with the reason when the job cannot finish there."""
    ray_exec = _ray_exec(str(job.spec.cluster))
    for old in (job.stdout_path, job.stderr_path, job.dir / JOB_FILE):
        old.unlink(missing_ok=True)  # fresh files (new inodes): watchers notice a re-run
    address = str(job.spec.cluster)
    run = ray_exec.RemoteRun(
        argv=list(job.spec.argv), env=dict(job.spec.env), stdout=job.stdout_path, stderr=job.stderr_path,
        dump=job.dir / JOB_FILE if job.spec.kind == "kld" else None,
        base_argv=list(job.spec.base_argv) if job.spec.base_argv else None, gpus=asked_gpus(job),
        grace_s=TERM_GRACE_S,
    )

    def on_node(node: dict[str, Any]) -> None:
        queue.update(job.id, node={**node, "cluster": address})

    def cancel_asked() -> bool:
        try:
            now = queue.get(job.id)
        except OSError:
            return False
        return now is None or now.state.cancel_requested_at is not None

    try:
        outcome = ray_exec.run_remote(address, run, on_node, cancel_asked)
    except ray_exec.ClusterError as exc:
        raise RemoteFailed(str(exc)) from exc
    for note in run.notes:
        log(queue.data_dir, f"job {job.id} ({job.spec.label or job.spec.kind}): {note}")
    if outcome.error and not outcome.cancelled:
        raise RemoteFailed(outcome.error)
    return outcome.exit_code  # type: ignore[no-any-return]


def orphan_words(job: Job) -> str:
    """Why a cluster job left running by a scheduler that died is failed rather than adopted."""
    node = (job.state.node or {}).get("ip") or "its node"
    return (f"the qtui scheduler that ran it on the Ray cluster stopped, and Ray ends a task with the driver that "
            f"started it (on {node}); `qtui retry` runs it again")
