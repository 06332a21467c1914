"""What a Ray cluster's GPUs are doing: one reading per node, gathered by the scheduler.

The pure part (no Ray import, so the app and the unit tests use it without the extra): a node's
reading (`NodeReading`: Ray's GPU counts and the node's own NVML snapshot, or why there is
none), `sample_here` that runs ON a node and returns plain picklable data, a whole survey's
JSON form (the scheduler writes it into the data dir, the app reads it from there: the app never
joins Ray itself), staleness, and which qtui job holds which GPU of which node.
ray_survey.py sends `sample_here` to every node.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qtui.core.fsutil import atomic_write_json, read_json
from qtui.core.gpu import GpuProcess, GpuSample, GpuSnapshot, Nvml

VERSION = 1
FRESH_S = 30.0
"""a survey older than this says nothing about now: the app shows no cluster section then"""
FILE_NAME = "cluster_survey.json"


def survey_path(data_dir: Path) -> Path:
    """Where the scheduler keeps the latest survey of the cluster it runs jobs on."""
    return data_dir / "jobs" / FILE_NAME


@dataclass(frozen=True)
class NodeReading:
    """One node of the cluster as qtui shows it."""

    node_id: str
    ip: str
    hostname: str
    alive: bool
    gpus_total: int
    """GPUs Ray counts on the node (its `GPU` resource)"""
    gpus_free: int | None
    """of those, how many no Ray task holds now (None: Ray did not say)"""
    snapshot: GpuSnapshot | None = None
    """the node's own NVML reading; None when the node did not answer (see reason)"""
    reason: str | None = None
    """why there is no snapshot (a dead node, no answer in time), in words"""

    @property
    def name(self) -> str:
        """How a person names the node: its host name, else its address."""
        return self.hostname or self.ip or self.node_id[:12]


@dataclass(frozen=True)
class ClusterSurvey:
    address: str
    taken_at: float
    nodes: tuple[NodeReading, ...] = field(default_factory=tuple)

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.taken_at

    def fresh(self, now: float | None = None, limit_s: float = FRESH_S) -> bool:
        # a reading from the future (clocks of two machines, a file copied) is not trusted either
        return -limit_s <= self.age(now) <= limit_s


# -- on the node ---------------------------------------------------------------------------
def sample_here(nvml: Nvml | None = None) -> dict[str, Any]:
    """Run on a node: its host name and its GPUs as NVML sees them (every GPU of the node, not
    only those Ray gave this task), as plain data that pickles and turns into JSON. Never raises:
    a node without a GPU or driver answers with the reason."""
    own = nvml is None
    nv = nvml or Nvml()
    try:
        snap = nv.sample()
    finally:
        if own:
            nv.shutdown()
    return {"hostname": socket.gethostname(), "snapshot": snapshot_to_dict(snap)}


# -- JSON ----------------------------------------------------------------------------------
def snapshot_to_dict(snap: GpuSnapshot) -> dict[str, Any]:
    """JSON's own types only (lists, not tuples): what a node sends equals what a file holds."""
    d: dict[str, Any] = json.loads(json.dumps(asdict(snap)))
    return d


def snapshot_from_dict(d: Mapping[str, Any]) -> GpuSnapshot:
    gpus = []
    for g in d.get("gpus") or ():
        procs = tuple(GpuProcess(int(p["pid"]), _opt_int(p.get("used_bytes"))) for p in g.get("processes") or ())
        gpus.append(GpuSample(
            index=int(g["index"]), name=str(g.get("name") or f"GPU {g['index']}"), uuid=g.get("uuid"),
            mem_used=_opt_int(g.get("mem_used")), mem_total=_opt_int(g.get("mem_total")),
            util_gpu=_opt_int(g.get("util_gpu")), util_mem=_opt_int(g.get("util_mem")),
            temperature_c=_opt_int(g.get("temperature_c")), power_w=_opt_float(g.get("power_w")),
            power_limit_w=_opt_float(g.get("power_limit_w")), processes=procs,
        ))
    return GpuSnapshot(available=bool(d.get("available")), reason=d.get("reason"), driver=d.get("driver"),
                       gpus=tuple(gpus), taken_at=float(d.get("taken_at") or 0.0))


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def survey_to_dict(s: ClusterSurvey) -> dict[str, Any]:
    return {"version": VERSION, "address": s.address, "taken_at": s.taken_at,
            "nodes": [{**{k: v for k, v in asdict(n).items() if k != "snapshot"},
                       "snapshot": None if n.snapshot is None else snapshot_to_dict(n.snapshot)} for n in s.nodes]}


def survey_from_dict(d: Mapping[str, Any]) -> ClusterSurvey:
    if d.get("version") != VERSION:
        raise ValueError(f"a cluster survey of version {d.get('version')!r}, not {VERSION}")
    nodes = tuple(
        NodeReading(node_id=str(n["node_id"]), ip=str(n.get("ip") or ""), hostname=str(n.get("hostname") or ""),
                    alive=bool(n.get("alive")), gpus_total=int(n.get("gpus_total") or 0),
                    gpus_free=_opt_int(n.get("gpus_free")),
                    snapshot=None if n.get("snapshot") is None else snapshot_from_dict(n["snapshot"]),
                    reason=n.get("reason"))
        for n in d.get("nodes") or ())
    return ClusterSurvey(address=str(d.get("address") or ""), taken_at=float(d["taken_at"]), nodes=nodes)


def write_survey(path: Path, s: ClusterSurvey) -> None:
    """Atomically: the app reading it every few seconds never sees half a file."""
    atomic_write_json(path, survey_to_dict(s))


def read_survey(path: Path) -> ClusterSurvey | None:
    """The survey in `path`; None when there is none or it cannot be read (the app then shows
    no cluster section, as for a stale one)."""
    try:
        return survey_from_dict(read_json(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def fresh_survey(path: Path, now: float | None = None, limit_s: float = FRESH_S) -> ClusterSurvey | None:
    """The survey in `path` when it is recent enough to show, else None."""
    s = read_survey(path)
    return s if s is not None and s.fresh(now, limit_s) else None


# -- from Ray's facts ----------------------------------------------------------------------
def node_reading(ray_node: Mapping[str, Any], available: Mapping[str, Any] | None, answer: Mapping[str, Any] | None,
                 reason: str | None) -> NodeReading:
    """One node from ray.nodes()'s entry, its available resources and its answer (None: it
    gave none, and `reason` says why)."""
    total = int(ray_node.get("Resources", {}).get("GPU", 0) or 0)
    alive = bool(ray_node.get("Alive", False))
    free = None if available is None else min(int(available.get("GPU", 0) or 0), total)
    snap = None
    hostname = str(ray_node.get("NodeManagerHostname") or "")
    if answer is not None:
        snap = snapshot_from_dict(answer["snapshot"])
        hostname = str(answer.get("hostname") or hostname)
        reason = None
    return NodeReading(node_id=str(ray_node.get("NodeID") or ""), ip=str(ray_node.get("NodeManagerAddress") or ""),
                       hostname=hostname, alive=alive, gpus_total=total, gpus_free=free if alive else 0, snapshot=snap,
                       reason=reason)


# -- who holds what ------------------------------------------------------------------------
def cluster_holders(running: Iterable[tuple[str, Mapping[str, Any] | None]]) -> dict[tuple[str, int], str]:
    """(node id, GPU index) -> the label of the running job that holds it, from each running
    job's label and JobState.node. Ray's GPU ids on a node are the indices NVML lists there
    (unless the node's Ray was started with CUDA_VISIBLE_DEVICES restricting it)."""
    held: dict[tuple[str, int], str] = {}
    for label, node in running:
        if not node or not node.get("node_id"):
            continue
        for g in node.get("gpus") or ():
            try:
                held[(str(node["node_id"]), int(g))] = label
            except (TypeError, ValueError):
                continue
    return held


# -- in words ------------------------------------------------------------------------------
def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1024**3:.1f}"


def gpu_words(g: GpuSample, holder: str | None = None) -> str:
    """One GPU of a node on one line, as `qtui cluster` prints it."""
    util = "n/a" if g.util_gpu is None else f"{g.util_gpu}%"
    vram = f"{_gib(g.mem_used)}/{_gib(g.mem_total)} GiB" if g.mem_total else "n/a"
    temp = "" if g.temperature_c is None else f"  {g.temperature_c}°C"
    power = "" if g.power_w is None else f"  {g.power_w:.0f} W"
    job = f"  job {holder}" if holder else ""
    return f"GPU {g.index} {g.name}  util {util}  VRAM {vram}{temp}{power}{job}"


def ray_gpus_words(n: NodeReading) -> str:
    free = "?" if n.gpus_free is None else str(n.gpus_free)
    return f"Ray GPUs {free} free of {n.gpus_total}"


def survey_lines(s: ClusterSurvey, holders: Mapping[tuple[str, int], str] | None = None) -> list[str]:
    """The survey as `qtui cluster` prints it: a summary, then each node and its GPUs."""
    held = holders or {}
    alive = [n for n in s.nodes if n.alive]
    total = sum(n.gpus_total for n in alive)
    frees = [n.gpus_free for n in alive]
    free = "?" if any(f is None for f in frees) else str(sum(f or 0 for f in frees))
    lines = [f"Ray cluster {s.address}: {len(s.nodes)} node{'s' if len(s.nodes) != 1 else ''}, {len(alive)} alive; "
             f"Ray GPUs {free} free of {total}"]
    for n in s.nodes:
        head = f"{n.name} ({n.ip}, id {n.node_id[:12]})"
        if not n.alive:
            lines.append(f"{head}: dead ({n.reason or 'Ray lists the node as dead'})")
            continue
        lines.append(f"{head}: {ray_gpus_words(n)}")
        if n.snapshot is None:
            lines.append(f"  no reading: {n.reason or 'the node did not answer'}")
        elif not n.snapshot.available or not n.snapshot.gpus:
            lines.append(f"  {n.snapshot.reason or 'NVML lists no GPU'}")
        else:
            lines.extend("  " + gpu_words(g, held.get((n.node_id, g.index))) for g in n.snapshot.gpus)
    return lines
