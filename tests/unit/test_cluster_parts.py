"""The parts of the Ray executor that need no cluster: addresses, what a task asks for, the
cluster's room, failures in words, the node side's streaming and base-file making (with the fake
llama-perplexity), a cluster job left by a dead scheduler, and that Ray stays unloaded when no
cluster is configured."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qtui.core.cluster.node import base_path_of, ensure_base, run_here, with_base_path
from qtui.core.cluster.placement import (
    SLOT_RESOURCE,
    capacity,
    died_words,
    gpus_for,
    lost_words,
    no_node_fits,
    seats,
    task_options,
)
from qtui.core.config import cluster_address_problem as check_address
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.remote import asked_gpus
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.llama.basefile import check_base_file
from qtui.core.llama.tokendump import DUMP_ENV
from qtui.core.results.store import ResultStore
from tests.helpers import wait_until

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ik"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_perplexity.py"


@pytest.mark.parametrize("value", ["", "auto", "ray://10.0.0.5:10001", "10.0.0.5:6379", "head.lan:6379", "ray://[::1]:10001", " auto "])
def test_addresses_accepted(value: str) -> None:
    assert check_address(value) is None


@pytest.mark.parametrize("value", ["head", "ray://head", "http://head:6379", "10.0.0.5:port", "a b:1"])
def test_addresses_refused(value: str) -> None:
    assert check_address(value) and "ray://HOST:PORT" in str(check_address(value))


def test_task_asks_for_gpus_and_the_slot_resource_only_when_the_cluster_has_it() -> None:
    plain = task_options(2, {"CPU": 8, "GPU": 4})
    assert plain["num_gpus"] == 2 and plain["max_retries"] == 0 and plain["num_returns"] == "streaming"
    assert "resources" not in plain
    assert task_options(0, {"CPU": 8, SLOT_RESOURCE: 2})["resources"] == {SLOT_RESOURCE: 1}


def test_gpus_default_to_one_on_a_gpu_cluster_and_none_on_a_cpu_one() -> None:
    assert gpus_for(None, {"CPU": 4, "GPU": 8}) == 1 and gpus_for(2, {"CPU": 4, "GPU": 8}) == 2
    assert gpus_for(None, {"CPU": 4}) == 0
    assert gpus_for(2, {"CPU": 4}) == 0  # a CPU cluster: llama.cpp runs on the CPU there


def test_a_job_no_node_can_hold_is_refused_in_words() -> None:
    nodes = [_node(CPU=8, GPU=4), _node(CPU=8, GPU=2), _node(False, CPU=8, GPU=8)]
    assert no_node_fits(nodes, 4) is None and no_node_fits(nodes, 0) is None
    assert no_node_fits(nodes, 8) == ("the job asks for 8 GPUs but no node of the Ray cluster has that many "
                                      "(the most on one node: 4)")


def _node(alive: bool = True, **res: float) -> dict:
    return {"Alive": alive, "Resources": res}


def test_capacity_counts_per_node_and_only_live_nodes() -> None:
    nodes = [_node(CPU=16, GPU=4), _node(CPU=16, GPU=3), _node(False, CPU=16, GPU=8)]
    assert capacity(nodes, 1) == 7
    assert capacity(nodes, 2) == 3  # 2 + 1: a task never spans nodes
    assert capacity([_node(CPU=2), _node(CPU=1)], 0) == 3
    # with the slot resource anywhere, only slotted nodes count, each up to its slots
    assert capacity([_node(CPU=0), _node(CPU=4, **{SLOT_RESOURCE: 1}), _node(CPU=4, **{SLOT_RESOURCE: 2})], 0) == 3
    assert capacity([_node(False, CPU=4)], 0) == 1  # never 0: Ray queues what does not fit


def test_seats_per_node_say_where_workers_are_warmed() -> None:
    nodes = [{**_node(CPU=16, GPU=4), "NodeID": "a"}, {**_node(CPU=2, GPU=4), "NodeID": "b"},
             {**_node(CPU=16, GPU=1), "NodeID": "c"}, {**_node(False, CPU=16, GPU=8), "NodeID": "dead"}]
    assert seats(nodes, 2) == {"a": 2, "b": 2, "c": 0}  # no worker on a node no job of 2 GPUs fits, none on the dead
    assert seats(nodes, 1) == {"a": 4, "b": 2, "c": 1}  # b: its 2 CPUs bound it (each job asks for one)
    slotted = [{**_node(CPU=8, **{SLOT_RESOURCE: 1}), "NodeID": "s"}, {**_node(CPU=8), "NodeID": "head"}]
    assert seats(slotted, 0) == {"s": 1, "head": 0}  # a head without the slot resource is left alone


def test_failure_words() -> None:
    node = {"ip": "10.1.2.3", "node_id": "5bacfd017d6a6e4236702f5f912edacf"}
    assert died_words(node).startswith("the Ray node 10.1.2.3 (id 5bacfd017d6a) died")
    assert "qtui retry" in died_words(node)
    words = lost_words(node, RuntimeError("worker crashed\nlong traceback"))
    assert words == "the Ray task on 10.1.2.3 (id 5bacfd017d6a) failed (RuntimeError: worker crashed)"


def test_base_path_rewrite() -> None:
    argv = ["llama-perplexity", "-m", "q.gguf", "--kl-divergence-base", "/a/b.kld", "--kl-divergence"]
    assert base_path_of(argv) == "/a/b.kld"
    assert base_path_of(argv + ["--kl-divergence-base", "/c.kld"]) == "/c.kld"
    assert base_path_of(["x", "--kl-divergence-base"]) is None
    assert with_base_path(argv, "/n/b.kld")[4] == "/n/b.kld" and argv[4] == "/a/b.kld"


def test_asked_gpus_reads_the_spec() -> None:
    def job(v: object):
        return type("J", (), {"spec": JobSpec(kind="kld", argv=["x"], gpus_per_run=v)})()  # type: ignore[arg-type]
    assert asked_gpus(job(2)) == 2 and asked_gpus(job("3")) == 3
    assert asked_gpus(job("auto")) is None and asked_gpus(job(None)) is None


def _fake_env(case: str, **extra: str) -> dict[str, str]:
    return {"FAKE_LLAMA_CASE": str(FIX / case), **extra}


def test_run_here_streams_output_and_the_dump(tmp_path: Path) -> None:
    base = tmp_path / "base.kld"
    subprocess.run([sys.executable, str(FAKE), "-m", "b.gguf", "--kl-divergence-base", str(base)],
                   env=_fake_env("ik-tiny-base"), check=True, capture_output=True)
    argv = [sys.executable, str(FAKE), "-m", "q.gguf", "--kl-divergence-base", str(base), "--kl-divergence"]
    events = list(run_here(argv, _fake_env("ik-tiny-kld-q4_0", FAKE_LLAMA_TOKENS="0.1", FAKE_LLAMA_DELAY="0.05",
                                           **{DUMP_ENV: "/elsewhere"}), dump=True, poll_s=0.05))
    kinds = [k for k, _ in events]
    assert kinds[0] == "started" and kinds[-1] == "end" and events[-1][1] == {"exit_code": 0}
    out = b"".join(p for k, p in events if k == "stdout")
    assert b"Final estimate" in out or b"KLD" in out
    assert kinds.count("stdout") > 1  # several pieces: sent while it ran, not once at the end
    assert b"".join(p for k, p in events if k == "dump").startswith(b"QTUIKLD\0")  # the job's dump, not /elsewhere


def test_run_here_reports_a_missing_binary_in_words() -> None:
    events = list(run_here(["/no/such/llama-perplexity", "-m", "x"], {}))
    assert events == [("end", {"error": "could not start /no/such/llama-perplexity on this node: No such file or directory"})]


def _base_argv(out: Path) -> list[str]:
    return [sys.executable, str(FAKE), "-m", "b.gguf", "--kl-divergence-base", str(out) + ".partial"]


def test_a_node_without_the_base_file_makes_it_once(tmp_path: Path) -> None:
    target = tmp_path / "bases" / "b.kld"
    target.parent.mkdir()
    kld = ["llama-perplexity", "-m", "q.gguf", "--kl-divergence-base", str(target), "--kl-divergence"]
    env = _fake_env("ik-tiny-base", FAKE_LLAMA_DELAY="0.02")
    results: list[list[str]] = []
    notes: list[str] = []

    def one() -> None:
        gen = ensure_base(kld, _base_argv(target), env, tmp_path)
        try:
            while True:
                notes.append(next(gen)[1])
        except StopIteration as stop:
            results.append(stop.value)

    threads = [threading.Thread(target=one) for _ in range(3)]  # three jobs land on the node at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [kld] * 3
    check_base_file(target)
    assert sum("making" in n for n in notes) == 1 and not Path(str(target) + ".partial").exists()
    # present now: nothing is made again
    gen = ensure_base(kld, _base_argv(target), env, tmp_path)
    with pytest.raises(StopIteration):
        next(gen)


def test_a_base_that_cannot_be_made_is_an_error_in_words(tmp_path: Path) -> None:
    target = tmp_path / "b.kld"
    kld = ["llama-perplexity", "--kl-divergence-base", str(target), "--kl-divergence"]
    events = list(run_here(kld, _fake_env("ik-tiny-base", FAKE_LLAMA_EXIT="3"), base_argv=_base_argv(target)))
    assert events[0][0] == "note" and events[-1][0] == "end"
    assert events[-1][1]["error"].startswith(f"could not make the base file {target} on this node (exit 3)")
    assert not target.exists() and not Path(str(target) + ".partial").exists()


def test_cluster_job_left_by_a_dead_scheduler_fails_in_words(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    job = q.add(JobSpec(kind="kld", argv=["llama-perplexity"], label="q4", cluster="127.0.0.1:6379"))
    q.update(job.id, status="running", node={"cluster": "127.0.0.1:6379", "ip": "10.0.0.7", "node_id": "ab" * 20})
    Scheduler(tmp_path).run()  # adopts it: must not wait for a task that died with its driver
    got = q.get(job.id)
    assert got is not None and got.state.status == "failed"
    assert got.state.reason and "Ray ends a task with the driver" in got.state.reason and "qtui retry" in got.state.reason
    rec = ResultStore(tmp_path).load().records[0]
    assert rec.status == "failed" and rec.source["node"]["ip"] == "10.0.0.7"


def test_a_local_run_never_imports_ray(tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler
q = JobQueue(Path({str(tmp_path)!r}))
argv = [sys.executable, {str(FAKE)!r}, "-m", "x.gguf", "--kl-divergence-base", {str(tmp_path / 'b.kld')!r}, "--kl-divergence"]
j = q.add(JobSpec(kind="kld", argv=argv, env={{"FAKE_LLAMA_CASE": {str(FIX / 'ik-tiny-kld-q4_0')!r}}}, label="q4"))
Scheduler(Path({str(tmp_path)!r})).run()
print(q.get(j.id).state.status, "ray" in sys.modules, any(m.startswith("qtui.core.cluster.ray") for m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["done", "False", "False"], out.stderr[-2000:]


@pytest.fixture
def unreachable_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ray_exec module as seen when nobody answers at the address."""
    from qtui.core.jobs import remote

    class Unreachable:
        class ClusterError(Exception):
            pass

        @staticmethod
        def connect(address: str) -> None:
            raise Unreachable.ClusterError(f"cannot join the Ray cluster at {address}: nobody answers")

    monkeypatch.setattr(remote, "_ray_exec", lambda address: Unreachable)


def _local_fake_kld(tmp_path: Path, label: str) -> JobSpec:
    """A KLD job run here by the fake llama-perplexity (a recorded transcript)."""
    return JobSpec(kind="kld", argv=[sys.executable, str(FAKE), "-m", "x.gguf", "--kl-divergence-base",
                                     str(tmp_path / "b.kld"), "--kl-divergence"],
                   env={"FAKE_LLAMA_CASE": str(FIX / "ik-tiny-kld-q4_0")}, label=label)


def test_a_cluster_that_cannot_be_joined_fails_its_jobs_in_words(tmp_path: Path, unreachable_cluster: None) -> None:
    q = JobQueue(tmp_path)
    job = q.add(JobSpec(kind="kld", argv=["llama-perplexity"], label="q4", cluster="10.9.9.9:6379"))
    local = q.add(_local_fake_kld(tmp_path, "local"))
    Scheduler(tmp_path).run()
    got, other = q.get(job.id), q.get(local.id)
    assert got is not None and got.state.status == "failed"
    assert got.state.reason == "cannot join the Ray cluster at 10.9.9.9:6379: nobody answers"
    assert other is not None and other.state.status == "done"  # local work goes on meanwhile


def test_a_cluster_that_cannot_be_joined_while_its_jobs_wait_is_said_and_fails_them(tmp_path: Path,
                                                                                    unreachable_cluster: None) -> None:
    """The cluster is joined early, while its jobs wait for their base here: when that fails,
    the log says so, the base still runs, and the jobs then fail in words (none left waiting)."""
    q = JobQueue(tmp_path)
    base = q.add(_local_fake_kld(tmp_path, "first, here"))
    job = q.add(JobSpec(kind="kld", argv=["llama-perplexity"], label="q4", cluster="10.9.9.9:6379", depends_on=base.id))
    Scheduler(tmp_path).run()
    got, first = q.get(job.id), q.get(base.id)
    assert first is not None and first.state.status == "done"
    assert got is not None and got.state.status == "failed"
    assert got.state.reason == "cannot join the Ray cluster at 10.9.9.9:6379: nobody answers"
    said = ("could not prepare the Ray cluster at 10.9.9.9:6379 while its jobs wait: "
            "cannot join the Ray cluster at 10.9.9.9:6379: nobody answers")
    log = tmp_path / "jobs" / "scheduler.log"
    wait_until(lambda: log.is_file() and said in log.read_text(), timeout=10, what="the early join's failure in the log")


def test_a_wrong_cluster_address_is_one_sentence(tmp_path: Path) -> None:
    from tests.helpers import one_line_error, run_qtui

    out = run_qtui("run", "--base", "b.gguf", "--cluster", "headnode", "q.gguf", tmp=tmp_path)
    assert one_line_error(out) == ("error: --cluster 'headnode' must be \"auto\", \"ray://HOST:PORT\" or \"HOST:PORT\" "
                                   "(or \"\" to run on this machine)")


def test_cluster_settings_in_the_config(tmp_path: Path) -> None:
    from qtui.core.config import load_config

    p = tmp_path / "config.toml"
    p.write_text('cluster = "ray://head.lan:10001"\ncluster_base_dir = "/mnt/shared/bases"\n')
    cfg, problems = load_config(p)
    assert (cfg.cluster, cfg.cluster_base_dir, problems) == ("ray://head.lan:10001", "/mnt/shared/bases", [])
    p.write_text('ctx = 256\ncluster = "head.lan"\n')
    cfg, problems = load_config(p)
    assert cfg.cluster == "" and cfg.ctx == 256
    assert problems == ['config.toml line 2: cluster must be "auto", "ray://HOST:PORT" or "HOST:PORT" '
                        '(or "" to run on this machine), using ""']


def test_a_missing_base_file_without_a_way_to_make_it_is_an_error_in_words(tmp_path: Path) -> None:
    kld = ["llama-perplexity", "--kl-divergence-base", str(tmp_path / "gone.kld"), "--kl-divergence"]
    events = list(run_here(kld, {}))
    assert events == [("end", {"error": f"the base file {tmp_path / 'gone.kld'} is not on this node and qtui has no "
                                        "command to make it (a base file given without a corpus): copy it there, or "
                                        "name a shared cluster_base_dir"})]


def test_a_cluster_that_never_answers_fails_its_jobs_after_the_join_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qtui.core.jobs import remote

    hang = threading.Event()

    class Silent:  # ray.init towards an address where nothing answers: it does not return
        class ClusterError(Exception):
            pass

        @staticmethod
        def connect(address: str) -> None:
            hang.wait(30)

    monkeypatch.setattr(remote, "_ray_exec", lambda address: Silent)
    monkeypatch.setattr(remote, "JOIN_TIMEOUT_S", 0.5)
    q = JobQueue(tmp_path)
    job = q.add(JobSpec(kind="kld", argv=["llama-perplexity"], label="q4", cluster="10.9.9.9:6379"))
    try:
        Scheduler(tmp_path).run()
    finally:
        hang.set()
    got = q.get(job.id)
    assert got is not None and got.state.status == "failed"
    assert got.state.reason == ("cannot join the Ray cluster at 10.9.9.9:6379: no answer within 0.5 s "
                                "(is `ray start` running there, and the address right?)")
