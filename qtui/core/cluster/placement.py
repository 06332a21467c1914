"""The pure part of running on a Ray cluster: no Ray import, so unit tests and the rest of
qtui can use it without the extra installed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

SLOT_RESOURCE = "qtui_slot"
"""A custom Ray resource: a node started with `--resources '{"qtui_slot": N}'` runs at most N
qtui jobs at once. When any node has it, only nodes that have it take qtui jobs (so a head
node without it is left alone); when none has it, Ray places jobs by CPUs and GPUs alone."""

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""set to 0 before ray is imported, Ray keeps 127.0.0.1 as the address of a node on loopback"""


def is_loopback(address: str) -> bool:
    host = address.strip().removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def ray_init_args(address: str, code: str | None = None) -> dict[str, Any]:
    """What ray.init gets for a configured address: it joins, never starts, a cluster. `code`:
    qtui's package folder, shipped to the nodes (about 1 MB, once per cluster and version), so a
    node runs this very qtui's node side and needs only Ray, not qtui installed."""
    args: dict[str, Any] = {"address": address.strip(), "log_to_driver": False, "logging_level": "warning"}
    if code:
        args["runtime_env"] = {"py_modules": [code], "excludes": ["__pycache__", "*.pyc"]}
    return args


def task_options(gpus: int, total: Mapping[str, float]) -> dict[str, Any]:
    """The resources one job's task asks for, given the cluster's totals (ray.cluster_resources)."""
    opts: dict[str, Any] = {"num_cpus": 1, "num_gpus": gpus, "max_retries": 0, "num_returns": "streaming"}
    if total.get(SLOT_RESOURCE, 0) > 0:
        opts["resources"] = {SLOT_RESOURCE: 1}
    return opts


def gpus_for(requested: int | None, total: Mapping[str, float]) -> int:
    """GPUs a job asks for: what it was given (its spec; 1 unless told otherwise), else 1. On a
    cluster without any GPU, 0: llama.cpp runs on the CPU there, as it does on a box without."""
    if total.get("GPU", 0) <= 0:
        return 0
    return requested if requested is not None and requested >= 0 else 1


def no_node_fits(nodes: Iterable[Mapping[str, Any]], gpus: int) -> str | None:
    """Why no live node can ever run a job asking for `gpus` GPUs (None: some node can). Ray
    would keep such a task pending for ever; qtui says so instead."""
    most = max((math.floor(n.get("Resources", {}).get("GPU", 0)) for n in nodes if n.get("Alive", True)), default=0)
    if gpus <= most:
        return None
    return f"the job asks for {gpus} GPUs but no node of the Ray cluster has that many (the most on one node: {most})"


def _per_node(nodes: Iterable[Mapping[str, Any]], gpus: int) -> list[tuple[str, int]]:
    """(node id, seats) for each live node: how many jobs asking for `gpus` GPUs it runs at once,
    by its CPUs, its GPUs and its qtui_slot resource where nodes have one."""
    nodes = [n for n in nodes if n.get("Alive", True)]
    slotted = any(n.get("Resources", {}).get(SLOT_RESOURCE, 0) > 0 for n in nodes)
    out: list[tuple[str, int]] = []
    for node in nodes:
        res = node.get("Resources", {})
        fits = [math.floor(res.get("CPU", 0))]
        if gpus > 0:
            fits.append(math.floor(res.get("GPU", 0) / gpus))
        if slotted:
            fits.append(math.floor(res.get(SLOT_RESOURCE, 0)))
        out.append((str(node.get("NodeID", "")), max(0, min(fits))))
    return out


def seats(nodes: Iterable[Mapping[str, Any]], gpus: int) -> dict[str, int]:
    """Node id -> how many jobs asking for `gpus` GPUs that live node runs at once."""
    return dict(_per_node(nodes, gpus))


def capacity(nodes: Iterable[Mapping[str, Any]], gpus: int) -> int:
    """How many such jobs the cluster's live nodes can run at once (at least 1: Ray queues the
    rest). Counted per node, since a task never spans nodes."""
    return max(1, sum(n for _, n in _per_node(nodes, gpus)))


def node_words(node: Mapping[str, Any] | None) -> str:
    """A node as a person reads it: "127.0.0.1 (id 5bacfd017d6a)"."""
    if not node:
        return "an unknown node"
    where = node.get("ip") or node.get("hostname") or "?"
    node_id = str(node.get("node_id") or "")
    return f"{where} (id {node_id[:12]})" if node_id else str(where)


def died_words(node: Mapping[str, Any] | None) -> str:
    return f"the Ray node {node_words(node)} died while running the job; `qtui retry` runs it on another node"


def lost_words(node: Mapping[str, Any] | None, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    on = f" on {node_words(node)}" if node else ""
    return f"the Ray task{on} failed ({type(exc).__name__}{': ' + first if first else ''})"
