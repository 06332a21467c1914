"""One survey of a Ray cluster's GPUs: a tiny task pinned to every live node samples NVML there.

Imports ray (like ray_exec.py, which joins the cluster): only the scheduler, already the
cluster's driver, and `qtui cluster` load this module. A task asks for nothing (no CPU, no
GPU), so a node busy with qtui's jobs still answers; a node that does not answer in time is
listed with Ray's counts and the reason in words, never waited for.
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before ray is imported: nothing leaves the cluster

import ray  # noqa: E402
from ray.exceptions import RayError  # noqa: E402

from qtui.core.cluster.ray_exec import connect, remote_of  # noqa: E402
from qtui.core.cluster.survey import ClusterSurvey, NodeReading, node_reading, sample_here  # noqa: E402

_RAY: Any = ray
"""ray through Any: its functions carry no annotations, and the core's typing is strict"""
DEAD = "Ray lists the node as dead"


def _available_per_node() -> dict[str, dict[str, Any]] | None:
    """Free resources per node id (a private Ray helper: None if this Ray lacks it)."""
    try:
        from ray._private import state

        per_node: Any = state
        return dict(per_node.available_resources_per_node())
    except Exception:  # any Ray version without it: the free count is then unknown, not wrong
        return None


def survey(address: str, timeout_s: float = 10.0) -> ClusterSurvey:
    """Join the cluster at `address` (once per process) and read every node: at most about
    `timeout_s` seconds, whatever the nodes do. Raises ray_exec.ClusterError when the cluster
    cannot be joined."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    connect(address)
    nodes = list(_RAY.nodes())
    available = _available_per_node()
    refs: dict[str, Any] = {}
    for n in nodes:
        if not n.get("Alive"):
            continue
        pinned = NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)
        refs[n["NodeID"]] = remote_of(sample_here).options(num_cpus=0, num_gpus=0, max_retries=0,
                                                   scheduling_strategy=pinned).remote()
    ready: list[Any] = []
    if refs:
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    done = set(ready)
    readings: list[NodeReading] = []
    for n in nodes:
        node_id = n.get("NodeID", "")
        ref = refs.get(node_id)
        answer, reason = None, None
        if ref is None:
            reason = DEAD
        elif ref in done:
            try:
                answer = ray.get(ref, timeout=1)
            except (RayError, TimeoutError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:160]
                reason = f"the node's reading failed ({type(exc).__name__}{': ' + first if first else ''})"
        else:
            reason = f"the node did not answer within {timeout_s:g} s"
            try:
                ray.cancel(ref, force=True)  # never left running or pending behind us
            except (RayError, ValueError):
                pass  # its node is gone: nothing of it is left to stop
        per_node = None if available is None else available.get(node_id, {})
        readings.append(node_reading(n, per_node, answer, reason))
    readings.sort(key=lambda r: (not r.alive, r.name, r.node_id))
    return ClusterSurvey(address=address, taken_at=time.time(), nodes=tuple(readings))
