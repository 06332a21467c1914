"""The Ray executor on a real local Ray cluster (ray.cluster_utils.Cluster: a head and two
worker nodes, all on 127.0.0.1, CPU only) with the REAL llama-perplexity on the tiny model,
driven through the real scheduler: jobs spread over the workers, output streamed back while a
job runs, per-token data and node provenance in the results, a cancel that stops the remote
child, and a worker killed mid-run whose job fails with that reason and is retried on the other.

The head offers no CPU and the workers a `qtui_slot` each (placement.SLOT_RESOURCE), so every
job lands on a worker, at most one per worker at a time.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from qtui.core.cluster.placement import LOOPBACK_ENV, SLOT_RESOURCE
from qtui.core.cluster.survey import read_survey, survey_path
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler, serve
from qtui.core.llama.tools import child_env
from qtui.core.results.store import ResultStore
from qtui.core.results.tokens import load_tokens
from qtui.core.showdown.plan import base_argv, kld_argv
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

# Read by Ray when it is imported (whoever imports it first in this process): Ray must never
# call out, and every node stays on 127.0.0.1 (without this Ray swaps in the interface address).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ[LOOPBACK_ENV] = "0"

CTX = 128
SLOW_CHUNKS = 128
"""a base generation of this many chunks takes several seconds on one thread: time to cancel or
kill it mid-run (KLD runs of the tiny model take about a second)"""
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _workers(c: Any) -> dict[str, Any]:
    return {n.node_id: n for n in c.worker_nodes}


@pytest.fixture(scope="module")
def base16(llama_tools, tiny_model, corpus, tmp_path_factory) -> Path:
    import subprocess

    out = tmp_path_factory.mktemp("raybase") / "base.kld"
    proc = subprocess.run(base_argv(llama_tools, tiny_model, corpus, CTX, 16, out, []), env=child_env(llama_tools),
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _slow_base_spec(tools, model: Path, corpus: Path, out: Path, address: str | None,
                    chunks: int = SLOW_CHUNKS) -> JobSpec:
    argv = base_argv(tools, model, corpus, CTX, chunks, Path(str(out) + ".partial"), ["-t", "1"])
    return JobSpec(kind="base", argv=argv, env=child_env(tools, base_env={}), model={"label": "tiny"}, ctx=CTX,
                   chunks=chunks, output=str(out), label="base tiny", cluster=address)


def _background(data_dir: Path) -> threading.Thread:
    """The scheduler as `qtui` runs it (serve: it holds the scheduler lock, which a cancel reads)."""
    t = threading.Thread(target=serve, args=(data_dir, 1), daemon=True)
    t.start()
    return t


def _running_on_node(q: JobQueue, job_id: str) -> dict[str, Any] | None:
    job = q.get(job_id)
    if job is None or job.state.status != "running" or not (job.state.node or {}).get("pid"):
        return None
    return job.state.node


def test_every_node_on_loopback(cluster) -> None:
    import ray

    ray.init(address=cluster.address, log_to_driver=False)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 3 and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    # every socket a Ray process of this test listens on is bound to loopback
    mine = psutil.Process().children(recursive=True)
    listening = [c for p in mine for c in _conns(p) if c.status == psutil.CONN_LISTEN]
    assert listening, "found no listening socket of the Ray processes"
    assert {c.laddr.ip for c in listening} <= LOOPBACK, sorted({c.laddr.ip for c in listening})


def _conns(p: psutil.Process) -> list[Any]:
    try:
        return list(p.net_connections(kind="inet"))
    except psutil.Error:
        return []


def test_jobs_spread_over_two_nodes_with_tokens_and_provenance(cluster, llama_tools, tiny_ladder, base16, tmp_path) -> None:
    q = JobQueue(tmp_path)
    ids = []
    for quant in ("Q8_0", "Q2_K"):
        spec = JobSpec(kind="kld", argv=kld_argv(llama_tools, tiny_ladder[quant], base16, CTX, ["-t", "1"]),
                       env=child_env(llama_tools, base_env={}), model={"label": quant, "path": str(tiny_ladder[quant])},
                       ctx=CTX, label=quant, cluster=cluster.address)
        ids.append(q.add(spec).id)
    # A worker on each node first, as qtui starts them while a run's base job runs. Without it,
    # a KLD run of the tiny model (under a second) can end before the other node's first worker
    # is up, and Ray then hands the second job to the first one's worker, on the same node.
    from qtui.core.cluster.ray_exec import warm_workers  # imports Ray: after this module set its environment

    assert warm_workers(cluster.address, None, timeout_s=60) == 2
    Scheduler(tmp_path).run()
    jobs = {i: q.get(i) for i in ids}
    assert [j.state.status for j in jobs.values()] == ["done", "done"], [j.state.reason for j in jobs.values()]
    nodes = [j.state.node["node_id"] for j in jobs.values()]
    assert len(set(nodes)) == 2 and set(nodes) <= set(_workers(cluster)), nodes  # one job per worker, none on the head
    recs = {r.job_id: r for r in ResultStore(tmp_path).load().records}
    for i in ids:
        rec = recs[i]
        assert rec.source["node"]["node_id"] == jobs[i].state.node["node_id"] and rec.source["node"]["ip"] == "127.0.0.1"
        assert rec.source["node"]["cluster"] == cluster.address and rec.source["node"]["gpus"] == []
        tokens = load_tokens(ResultStore(tmp_path).root, rec.id)  # the per-token dump came back
        assert tokens is not None and len(tokens.chunks) == 16
        assert rec.chunk_kld and rec.chunk_kld["kind"] == "exact"
    assert recs[ids[1]].stats["kld_mean"] > recs[ids[0]].stats["kld_mean"] > 0  # Q2_K further from the base than Q8_0


def _slow_job_running(cluster, llama_tools, tiny_model, corpus, tmp_path):  # type: ignore[no-untyped-def]
    """A slow base job on the cluster, writing into a shared folder, run by a scheduler in the
    background: returned once it runs on a node and its output streams back."""
    q = JobQueue(tmp_path)
    out = tmp_path / "shared" / "base.kld"
    out.parent.mkdir()
    job = q.add(_slow_base_spec(llama_tools, tiny_model, corpus, out, cluster.address))
    t = _background(tmp_path)
    wait_until(lambda: _running_on_node(q, job.id) and job.stdout_path.stat().st_size > 0, timeout=60,
               what="the base job running on a node with its output streaming back")
    return q, job, out, t, _running_on_node(q, job.id)


def test_cancel_stops_the_remote_child(cluster, llama_tools, tiny_model, corpus, tmp_path) -> None:
    q, job, out, t, node = _slow_job_running(cluster, llama_tools, tiny_model, corpus, tmp_path)
    assert node is not None and psutil.pid_exists(node["pid"])
    # while it runs, the scheduler surveys the cluster into the data dir for the app's GPU panel
    wait_until(lambda: read_survey(survey_path(tmp_path)) is not None, timeout=30, what="the scheduler's cluster survey")
    survey = read_survey(survey_path(tmp_path))
    assert survey is not None and survey.address == cluster.address
    assert len(survey.nodes) == 3 and all(n.alive and n.ip == "127.0.0.1" for n in survey.nodes), survey.nodes
    assert node["node_id"] in {n.node_id for n in survey.nodes}
    q.cancel(job.id)
    wait_until(lambda: q.get(job.id).state.status != "running", timeout=30, what="the cancelled job to end")
    got = q.get(job.id)
    assert got.state.status == "cancelled" and got.state.reason == "cancelled by the user", got.state.reason
    wait_until(lambda: not _alive(node["pid"]), timeout=10, what="the remote llama-perplexity to be gone")
    assert not Path(str(out) + ".partial").exists() and not out.exists()
    t.join(timeout=30)
    assert not t.is_alive()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_dead_node_fails_its_job_and_retry_runs_on_the_other(cluster, llama_tools, tiny_model, corpus, tmp_path) -> None:
    q, job, out, t, node = _slow_job_running(cluster, llama_tools, tiny_model, corpus, tmp_path)
    assert node is not None
    size = job.stdout_path.stat().st_size
    wait_until(lambda: job.stdout_path.stat().st_size > size, timeout=30, what="more output streamed while it runs")
    assert q.get(job.id).state.status == "running"  # progress came back before the job ended
    victim = _workers(cluster)[node["node_id"]]
    cluster.remove_node(victim)
    wait_until(lambda: q.get(job.id).state.status != "running", timeout=60, what="the job on the dead node to end")
    failed = q.get(job.id)
    assert failed.state.status == "failed"
    assert f"the Ray node 127.0.0.1 (id {node['node_id'][:12]}) died" in (failed.state.reason or "")
    t.join(timeout=30)
    assert not t.is_alive()

    assert q.retry(job.id).ok
    Scheduler(tmp_path).run()
    again = q.get(job.id)
    assert again.state.status == "done", again.state.reason
    assert again.state.node["node_id"] != node["node_id"] and again.state.node["node_id"] in _workers(cluster)
    assert out.exists()  # the base file, made on the other node into the shared folder
    rec = next(r for r in ResultStore(tmp_path).load().records if r.job_id == job.id and r.status == "done")
    assert rec.source["node"]["node_id"] == again.state.node["node_id"]
    cluster.add_node(num_cpus=1, resources={SLOT_RESOURCE: 1}, node_ip_address="127.0.0.1")  # two workers again
    cluster.wait_for_nodes()


def test_qtui_run_cluster_from_the_command_line_and_the_config(cluster, llama_tools, tiny_model, tiny_ladder, corpus,
                                                                tmp_path) -> None:
    """`qtui run --cluster ADDRESS` (the detached scheduler joins the cluster; the base file is
    made here, the KLD jobs run on the workers), then `cluster` and a shared `cluster_base_dir`
    in the config (the base job too runs on a worker, into the shared folder)."""
    from tests.helpers import run_qtui

    common = ["--corpus", str(corpus), "-c", str(CTX), "--chunks", "8", "--llama-bin", str(llama_tools.bin_dir)]
    out = run_qtui("run", "--base", str(tiny_model), *common, "--cluster", cluster.address, str(tiny_ladder["Q8_0"]),
                   "--", "-t", "1", tmp=tmp_path, timeout=240, path=os.environ["PATH"])
    assert out.returncode == 0, out.stdout + out.stderr
    q = JobQueue(tmp_path / "d")
    jobs = {j.spec.kind: j for j in q.jobs()}
    assert jobs["base"].spec.cluster is None and jobs["base"].state.node is None  # made here, in the cache
    kld = jobs["kld"]
    assert kld.spec.cluster == cluster.address and kld.spec.base_argv == jobs["base"].spec.argv
    assert kld.state.status == "done" and kld.state.node["node_id"] in _workers(cluster)

    shared = tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "c").mkdir(exist_ok=True)
    (tmp_path / "c" / "config.toml").write_text(f'cluster = "{cluster.address}"\ncluster_base_dir = "{shared}"\n')
    out = run_qtui("run", "--base", str(tiny_model), *common, str(tiny_ladder["Q2_K"]), "--", "-t", "1",
                   tmp=tmp_path, timeout=240, path=os.environ["PATH"])
    assert out.returncode == 0, out.stdout + out.stderr
    new = [j for j in q.jobs() if j.id not in {jobs["base"].id, kld.id}]
    assert sorted(j.spec.kind for j in new) == ["base", "kld"]
    for j in new:
        assert j.spec.cluster == cluster.address and j.state.status == "done" and j.state.node["node_id"] in _workers(cluster)
    base = next(j for j in new if j.spec.kind == "base")
    assert Path(base.spec.output).parent == shared and Path(base.spec.output).is_file()
    recs = [r for r in ResultStore(tmp_path / "d").load().records if r.kind == "kld"]
    assert len(recs) == 2 and all(r.source["node"]["ip"] == "127.0.0.1" for r in recs)
    listing = run_qtui("jobs", tmp=tmp_path, columns="250")
    header = next(line for line in listing.stdout.splitlines() if line.lstrip().startswith("id"))
    assert "node" in header.split()
    rows = [line for line in listing.stdout.splitlines() if "done" in line]
    assert sum(socket.gethostname() in line for line in rows) == 3, listing.stdout  # the base made here has none


def test_a_node_without_the_base_file_makes_it_first(cluster, llama_tools, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    """No shared folder: the KLD job carries the base command; the node finds no base file at the
    path the job names, makes it there (once), then runs the job."""
    q = JobQueue(tmp_path)
    base = tmp_path / "node-bases" / "base.kld"
    base.parent.mkdir()
    make = base_argv(llama_tools, tiny_model, corpus, CTX, 8, Path(str(base) + ".partial"), ["-t", "1"])
    job = q.add(JobSpec(kind="kld", argv=kld_argv(llama_tools, tiny_ladder["Q4_0"], base, CTX, ["-t", "1"]),
                        env=child_env(llama_tools, base_env={}), model={"label": "Q4_0"}, ctx=CTX, label="Q4_0",
                        cluster=cluster.address, base_argv=make))
    Scheduler(tmp_path).run()
    got = q.get(job.id)
    assert got.state.status == "done", got.state.reason
    assert base.is_file() and not Path(str(base) + ".partial").exists()
    log = (tmp_path / "jobs" / "scheduler.log").read_text()
    assert f"the base file is not on this node: making {base} here first (once per node)" in log
    rec = next(r for r in ResultStore(tmp_path).load().records if r.job_id == job.id)
    assert rec.chunks == 8 and rec.stats["kld_mean"] > 0


def test_a_killed_scheduler_takes_its_cluster_job_with_it_and_the_next_one_says_so(cluster, llama_tools, tiny_model,
                                                                                  corpus, tmp_path) -> None:
    import signal

    from qtui.core.jobs.scheduler import ensure_scheduler

    q = JobQueue(tmp_path)
    out = tmp_path / "shared" / "base.kld"
    out.parent.mkdir()
    job = q.add(_slow_base_spec(llama_tools, tiny_model, corpus, out, cluster.address))
    ensure_scheduler(tmp_path)  # detached, as qtui starts it: its own process, its own Ray driver
    wait_until(lambda: _running_on_node(q, job.id) is not None, timeout=60, what="the base job running on a node")
    node = _running_on_node(q, job.id)
    sched = [p for p in psutil.Process().children() if "qtui.core.jobs.scheduler" in " ".join(p.cmdline())
             and str(tmp_path) in p.cmdline()]
    assert len(sched) == 1
    os.kill(sched[0].pid, signal.SIGKILL)
    sched[0].wait(timeout=10)
    wait_until(lambda: not _alive(node["pid"]), timeout=60, what="the remote child to end with its driver")
    Scheduler(tmp_path).run()  # the next scheduler: must not wait for a task that is gone
    got = q.get(job.id)
    assert got.state.status == "failed"
    assert got.state.reason.startswith("the qtui scheduler that ran it on the Ray cluster stopped"), got.state.reason
    assert not Path(str(out) + ".partial").exists()


def test_the_cluster_is_joined_and_warmed_while_the_base_runs_here(cluster, llama_tools, tiny_model, tiny_ladder,
                                                                   corpus, tmp_path) -> None:
    """A run's base job runs on this machine first; its cluster jobs wait for it. Joining the
    cluster and starting its workers happens meanwhile, not after the base is done."""
    from qtui.core.jobs.remote import ClusterSeats

    q = JobQueue(tmp_path)
    out = tmp_path / "base.kld"
    base = q.add(_slow_base_spec(llama_tools, tiny_model, corpus, out, None, chunks=6 * SLOW_CHUNKS))  # ~9 s here
    kld = q.add(JobSpec(kind="kld", argv=kld_argv(llama_tools, tiny_ladder["Q8_0"], out, CTX, ["-t", "1"]),
                        env=child_env(llama_tools, base_env={}), model={"label": "Q8_0"}, ctx=CTX, label="Q8_0",
                        cluster=cluster.address, depends_on=base.id))
    warmed_at: list[float] = []
    real_tell = ClusterSeats._tell

    def tell(self: ClusterSeats, text: str) -> None:  # when the note is written, not the log's whole seconds
        warmed_at.append(time.time())
        real_tell(self, text)

    ClusterSeats._tell = tell  # type: ignore[method-assign]
    try:
        Scheduler(tmp_path).run()
    finally:
        ClusterSeats._tell = real_tell  # type: ignore[method-assign]
    done = {j.id: j for j in q.jobs()}
    assert done[base.id].state.status == "done" and done[kld.id].state.status == "done", done[kld.id].state.reason
    log = (tmp_path / "jobs" / "scheduler.log").read_text()
    line = next((ln for ln in log.splitlines() if f"joined the Ray cluster at {cluster.address} and warmed" in ln), None)
    assert line is not None, log
    warmed = int(line.split(" and warmed ")[1].split()[0])
    assert warmed >= 1, line  # the cluster has 2 seats: at least one worker started before it was needed
    assert warmed_at and warmed_at[0] < done[base.id].state.ended_at, (warmed_at, done[base.id].state.ended_at)
    assert done[kld.id].state.node["node_id"] in _workers(cluster)
