"""Surveying a real local Ray cluster's GPUs (the loopback cluster of conftest.py: a head and two
workers, all on 127.0.0.1, CPU only): every node answers from itself, a node that dies is listed
in words without a hang, the scheduler's watch writes the survey file, and `qtui cluster` prints
it (or one line and exit 2 for an address nobody listens at)."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import pytest

from qtui.core.cluster.placement import LOOPBACK_ENV, SLOT_RESOURCE
from qtui.core.cluster.survey import ClusterSurvey, read_survey, survey_path
from qtui.core.gpu import Nvml
from qtui.core.jobs.queue import JobQueue, JobSpec
from tests.helpers import one_line_error, run_qtui, wait_until

pytestmark = pytest.mark.slow

# Read by Ray when it is imported: Ray never calls out, and every node stays on 127.0.0.1.
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ[LOOPBACK_ENV] = "0"

ANSWER_S = 60.0
"""how long a node has to answer: a fresh worker process on a loaded 2-core box takes seconds"""


def _survey(address: str, timeout_s: float = ANSWER_S) -> ClusterSurvey:
    from qtui.core.cluster.ray_survey import survey

    return survey(address, timeout_s)


def _ids(c: Any) -> set[str]:
    return {c.head_node.node_id, *(n.node_id for n in c.worker_nodes)}


def test_every_node_answers_from_itself(cluster) -> None:
    local = Nvml().sample()  # every node runs on this machine: it must see what this process sees
    s = _survey(cluster.address)
    assert {n.node_id for n in s.nodes} == _ids(cluster) and len(s.nodes) == 3
    for n in s.nodes:
        assert n.alive and n.ip == "127.0.0.1" and n.hostname == socket.gethostname(), n
        assert n.snapshot is not None, n.reason
        assert n.snapshot.available == local.available and n.snapshot.reason == local.reason
        assert n.gpus_total == 0 and n.gpus_free == 0  # Ray's count: a CPU-only cluster
    if not local.available:
        assert all("NVML unavailable" in (n.snapshot.reason or "") for n in s.nodes if n.snapshot)


def test_the_watch_writes_the_survey_while_in_use(cluster, tmp_path) -> None:
    from qtui.core.cluster.watch import watching

    path = survey_path(tmp_path)
    with watching(cluster.address, path, interval_s=0.5, timeout_s=ANSWER_S) as watch:
        wait_until(lambda: watch.written >= 2, timeout=120, what="two surveys written")
        got = read_survey(path)
        assert got is not None and got.fresh() and len(got.nodes) == 3 and all(n.snapshot for n in got.nodes)
    wait_until(lambda: not watch.running, timeout=ANSWER_S + 10, what="the watch to stop with its last user")


def test_a_dead_node_is_listed_in_words_without_a_hang(cluster) -> None:
    victim = min(cluster.worker_nodes, key=lambda n: n.node_id)
    victim_id = victim.node_id
    cluster.remove_node(victim)
    try:
        def says_so() -> bool:
            t0 = time.monotonic()
            s = _survey(cluster.address, timeout_s=5)
            assert time.monotonic() - t0 < 30, "a survey waited far beyond its timeout"
            node = next((n for n in s.nodes if n.node_id == victim_id), None)
            if node is None:
                return False
            assert node.snapshot is None and node.reason, node  # never a reading from a dead node
            if node.alive:  # Ray has not noticed yet: the node is listed as not answering
                assert node.reason == "the node did not answer within 5 s", node.reason
                return False
            return node.reason == "Ray lists the node as dead" and node.gpus_free == 0

        wait_until(says_so, timeout=120, interval=1, what="the removed node listed as dead")
        s = _survey(cluster.address)
        assert sum(n.alive for n in s.nodes) == 2 and all(n.snapshot for n in s.nodes if n.alive)
    finally:
        cluster.add_node(num_cpus=1, resources={SLOT_RESOURCE: 1}, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()


def test_qtui_cluster_prints_the_nodes_and_who_holds_what(cluster, tmp_path) -> None:
    q = JobQueue(tmp_path / "d")
    job = q.add(JobSpec(kind="kld", argv=["llama-perplexity"], env={}, model={"label": "Q4_0"}, ctx=128, label="Q4_0",
                        cluster=cluster.address))
    worker = min(n.node_id for n in cluster.worker_nodes)
    job.state.status = "running"
    job.state.node = {"cluster": cluster.address, "node_id": worker, "ip": "127.0.0.1", "gpus": ["0"]}
    q.write_state(job)

    out = run_qtui("cluster", "--address", cluster.address, "--timeout", str(ANSWER_S), tmp=tmp_path, timeout=240,
                   path=os.environ["PATH"], columns="250")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    known = _survey(cluster.address).nodes  # with any node an earlier test removed: Ray lists it dead
    alive = sum(1 for n in known if n.alive)
    assert alive == 3
    assert lines[0] == f"Ray cluster {cluster.address}: {len(known)} nodes, 3 alive; Ray GPUs 0 free of 0", out.stdout
    assert sum(line.endswith(": dead (Ray lists the node as dead)") for line in lines) == len(known) - 3
    for node_id in _ids(cluster):
        assert sum(f"id {node_id[:12]}): Ray GPUs 0 free of 0" in line for line in lines) == 1, out.stdout
    assert sum(line.startswith(f"{socket.gethostname()} (127.0.0.1, id ") and "): Ray GPUs" in line for line in lines) == 3

    out = run_qtui("cluster", "--address", cluster.address, "--json", "--timeout", str(ANSWER_S), tmp=tmp_path,
                   timeout=240, path=os.environ["PATH"])
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert {n["node_id"] for n in doc["nodes"] if n["alive"]} == _ids(cluster)
    assert all(n["snapshot"] is not None for n in doc["nodes"] if n["alive"])
    assert doc["holders"] == [{"node_id": worker, "gpu": 0, "job": "Q4_0"}]


def test_qtui_cluster_at_an_address_nobody_listens_at(tmp_path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    out = run_qtui("cluster", "--address", f"127.0.0.1:{port}", tmp=tmp_path, timeout=60, path=os.environ["PATH"])
    line = one_line_error(out)
    assert line.startswith(f"error: cannot join the Ray cluster at 127.0.0.1:{port}: nobody answers at 127.0.0.1:{port}"), line
    assert time.monotonic() - t0 < 45


def test_qtui_cluster_at_an_address_that_never_answers_ends_in_words(tmp_path) -> None:
    """Something listens at the port but never speaks Ray: Ray would wait for minutes inside
    ray.init; `qtui cluster` ends itself after its bound (shortened here) with one line."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)  # connections complete in the backlog; nothing is ever read or written
        port = mute.getsockname()[1]
        script = ("import sys\nfrom qtui import headless\nheadless.JOIN_BOUND_S = 3.0\nfrom qtui.cli import main\n"
                  f"sys.exit(main(['cluster', '--address', '127.0.0.1:{port}', '--timeout', '1']))\n")
        env = {**os.environ, "QTUI_DATA_DIR": str(tmp_path / "d"), "QTUI_CONFIG_DIR": str(tmp_path / "c"),
               "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env,
                             stdin=subprocess.DEVNULL)
        took = time.monotonic() - t0
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: cannot join the Ray cluster at 127.0.0.1:{port}: no answer within 4 s (is `ray start` running "
        "there, and the address right?)"), out.stderr
    assert took < 30
