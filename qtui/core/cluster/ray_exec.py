"""Running one job as a Ray task: Ray picks the node, qtui streams the child's output home.

The scheduler calls `run_remote` for a job that names a cluster. The task (`_task`) runs
node.run_here on whatever node Ray chose (asking for the job's GPUs, `num_gpus`, so Ray sets
CUDA_VISIBLE_DEVICES there) and yields the child's stdout, stderr and per-token dump as they
are written; this side appends them to the job's own files on the qtui machine, so the live
panel, the parser and the store read a remote job exactly like a local one.

Only this module imports ray, and only when a cluster is configured. Ray must never call
out: usage statistics are switched off before it is imported.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before ray is imported: nothing leaves the cluster

import ray  # noqa: E402
from ray.exceptions import NodeDiedError, RayError, TaskCancelledError  # noqa: E402

from qtui.core.cluster.node import Event, run_here, stop_here  # noqa: E402
from qtui.core.cluster.placement import (  # noqa: E402
    capacity,
    died_words,
    gpus_for,
    lost_words,
    no_node_fits,
    ray_init_args,
    seats,
    task_options,
)

POLL_S = 0.25
WARM_HOLD_S = 1.0
_RAY: Any = ray
"""ray through Any: its functions carry no annotations, and the core's typing is strict"""
_connect_lock = threading.Lock()
_connected_to: str | None = None
_connected_gcs: str | None = None
"""the GCS address of the session joined for _connected_to (a session ended and begun anew is another)"""


class ClusterError(Exception):
    """The cluster cannot be reached or used; the message says why in one sentence."""


def _live_gcs() -> str | None:
    """The GCS address of the Ray session this process is in (None: none, or Ray cannot say)."""
    try:
        return str(_RAY.get_runtime_context().gcs_address)
    except Exception:  # not connected, or a Ray without it
        return None


def connect(address: str) -> None:
    """Join the cluster at `address` once per process (Ray allows one cluster per driver)."""
    global _connected_to, _connected_gcs
    with _connect_lock:
        if ray.is_initialized():
            live = _live_gcs()
            # the session this process joined for another address is still the one it is in
            if _connected_to not in (None, address) and _connected_gcs == live:
                raise ClusterError(f"this scheduler is connected to the Ray cluster {_connected_to}; a job for {address} "
                                   "must wait until the queue is empty")
            _connected_to, _connected_gcs = address, live
            return
        try:
            ray.init(**ray_init_args(address, str(Path(__file__).resolve().parents[2])))
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all "cannot join"
            raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        _connected_to, _connected_gcs = address, _live_gcs()


def cluster_capacity(address: str, gpus: int | None) -> int:
    """Jobs the cluster can run at once (jobs beyond it wait in qtui's queue, not Ray's)."""
    connect(address)
    return capacity(_RAY.nodes(), gpus_for(gpus, _RAY.cluster_resources()))


def _warm(hold_s: float) -> int:
    """A task that does nothing: the worker that runs it has loaded Ray and qtui's node side
    (unpickling this function imports this module) and stays in the pool for the jobs. It waits
    a moment, so that each task gets a worker of its own instead of one worker running them all
    in turn."""
    time.sleep(hold_s)
    return os.getpid()


def warm_workers(address: str, gpus: int | None, timeout_s: float) -> int:
    """Start a worker for each seat of the cluster (each job asking for `gpus` GPUs that a node
    can run at once), on that node, and wait for them (at most `timeout_s`). The tasks ask for
    no CPU or GPU: a job that becomes runnable meanwhile never waits for them. Returns how many
    distinct workers answered."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    connect(address)
    per_node = seats(_RAY.nodes(), gpus_for(gpus, _RAY.cluster_resources()))
    refs = [remote_of(_warm).options(num_cpus=0, num_gpus=0, max_retries=0,
                                       scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False))
            .remote(WARM_HOLD_S)
            for node, n in per_node.items() for _ in range(n)]
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s) if refs else ([], [])
    for ref in pending:
        ray.cancel(ref, force=True)  # never left behind: a job that needs a worker starts its own
    pids = set()
    for ref in ready:
        try:
            pids.add(ray.get(ref, timeout=5))
        except (RayError, TimeoutError):
            continue
    return len(pids)


def _node_facts() -> dict[str, Any]:
    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "ip": _RAY.util.get_node_ip_address(), "hostname": socket.gethostname(),
            "gpus": [str(g) for g in ray.get_gpu_ids()]}


def _task(argv: list[str], env: dict[str, str], dump: bool, base_argv: list[str] | None) -> Iterator[Event]:
    yield ("node", _node_facts())
    yield from run_here(argv, env, dump=dump, base_argv=base_argv)


@functools.cache
def remote_of(fn: Callable[..., Any]) -> Any:
    """`fn` as a Ray remote function, made once per process (on first use: never at import)."""
    return _RAY.remote(fn)


def _stop_child(node: dict[str, Any] | None, grace_s: float) -> None:
    """Stop the job's child where it runs and wait until it is gone: TERM, KILL after the
    grace period, as a local cancel does. A tiny task pinned to that node (no CPU asked, so a
    busy node takes it); a node that is gone has nothing left to stop."""
    if not node or not node.get("pid") or not node.get("node_id"):
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    pinned = NodeAffinitySchedulingStrategy(node_id=node["node_id"], soft=False)
    ref = remote_of(stop_here).options(num_cpus=0, max_retries=0, scheduling_strategy=pinned).remote(node["pid"], grace_s)
    try:
        ray.get(ref, timeout=grace_s + 30)
    except (RayError, TimeoutError):  # GetTimeoutError is one: the worker is killed below anyway
        pass


@dataclass
class RemoteRun:
    """What a job needs on a node, and where its output goes on this machine."""

    argv: list[str]
    env: dict[str, str]
    stdout: Path
    stderr: Path
    dump: Path | None = None
    """the per-token dump's path in the job folder (kld jobs), None for no dump"""
    base_argv: list[str] | None = None
    """the base job's command: a node without the base file makes it first (once per node)"""
    gpus: int | None = None
    """GPUs to ask for; None: 1 on a cluster with GPUs, 0 on a CPU cluster"""
    grace_s: float = 5.0
    """on cancel: how long the child has after SIGTERM before SIGKILL"""
    notes: list[str] = field(default_factory=list)


@dataclass
class RemoteOutcome:
    exit_code: int | None = None
    error: str | None = None
    """why the job could not finish on the cluster, in words (None: the child ended by itself)"""
    cancelled: bool = False
    node: dict[str, Any] | None = None


def run_remote(address: str, run: RemoteRun, on_node: Callable[[dict[str, Any]], None],
               cancel_asked: Callable[[], bool]) -> RemoteOutcome:
    """Run `run` on the cluster, writing its output into its files as it comes; returns once it
    ended. `on_node` hears where it runs (once, then with the child's pid); `cancel_asked` is
    polled: when true the task is cancelled (its worker killed, the child with it)."""
    connect(address)
    total = _RAY.cluster_resources()
    gpus = gpus_for(run.gpus, total)
    problem = no_node_fits(_RAY.nodes(), gpus)
    if problem:
        raise ClusterError(problem)
    opts = task_options(gpus, total)
    remote = remote_of(_task).options(**opts)
    gen = remote.remote(run.argv, run.env, run.dump is not None, run.base_argv)
    out = RemoteOutcome()
    sinks = {"stdout": run.stdout, "stderr": run.stderr, "dump": run.dump}
    # stdout/stderr exist from the start, as a local child's do; the dump only once data comes
    # (a build without the per-token patch writes none, and no file means "no per-token data")
    handles: dict[str, Any] = {name: open(p, "wb") for name, p in sinks.items() if p is not None and name != "dump"}
    try:
        while True:
            if not out.cancelled and cancel_asked():
                out.cancelled = True
                _stop_child(out.node, run.grace_s)  # returns once the child is gone
                ray.cancel(gen, force=True)
            ready, _ = ray.wait([gen], timeout=POLL_S)
            if not ready:
                continue
            try:
                kind, payload = ray.get(next(gen))
            except StopIteration:
                break
            except TaskCancelledError:
                out.cancelled = True
                break
            except NodeDiedError:
                out.error = died_words(out.node)
                break
            except RayError as exc:
                out.error = died_words(out.node) if _node_dead(out.node) else lost_words(out.node, exc)
                break
            if kind == "node":
                out.node = dict(payload)
                on_node(out.node)
            elif kind == "started":
                assert out.node is not None
                out.node["pid"] = payload["pid"]
                on_node(out.node)
            elif kind == "note":
                run.notes.append(str(payload))
            elif kind == "end":
                out.exit_code = payload.get("exit_code")
                out.error = payload.get("error")
            elif kind in sinks and sinks[kind] is not None:
                if kind not in handles:
                    handles[kind] = open(str(sinks[kind]), "wb")
                handles[kind].write(payload)
                handles[kind].flush()  # the live panel reads the file while the job runs
    finally:
        for fh in handles.values():
            fh.close()
    return out


def _node_dead(node: dict[str, Any] | None, wait_s: float = 5.0) -> bool:
    """Whether the node the task ran on is gone (Ray may need a moment to notice)."""
    if not node:
        return False
    deadline = time.monotonic() + wait_s
    while True:
        alive = {n.get("NodeID"): n.get("Alive") for n in _RAY.nodes()}
        if alive.get(node.get("node_id")) is False:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)

