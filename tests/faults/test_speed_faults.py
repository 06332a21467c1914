"""Speed jobs (llama-bench) that fail: the real llama-bench exiting 1, a llama-bench killed
mid-run, and one killed together with its scheduler. Each ends failed with words, leaves a
failed speed record, and the jobs after it still run: the scheduler never strands one."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil

from qtui.core.jobs.queue import FINISHED, Job, JobQueue, JobSpec
from qtui.core.jobs.scheduler import ensure_scheduler, scheduler_running
from qtui.core.llama import assets
from qtui.core.llama.bench import speed_argv
from qtui.core.llama.tools import LlamaTools, child_env
from qtui.core.results.store import ResultStore
from tests.faults.conftest import kill9, scheduler_procs, status, wait_for

# A stand-in llama-bench that prints half of a test's JSON line and then hangs: something to kill.
HANG = ("import sys, time; sys.stdout.write('{\"n_prompt\": 512, \"n_gen\": 0, \"avg_'); sys.stdout.flush(); "
        "sys.stderr.write('loading\\n'); sys.stderr.flush(); time.sleep(120)")


def _real_speed(tools: LlamaTools, model: Path, label: str) -> JobSpec:
    argv, _ = speed_argv(tools, model, ["-t", "1"], ["-p", "16", "-n", "4", "-r", "1"])
    return JobSpec(kind="speed", argv=argv, env=child_env(tools, base_env={}), label=label,
                   model={"path": str(model), "label": label})


def _hanging(label: str) -> JobSpec:
    return JobSpec(kind="speed", argv=[sys.executable, "-c", HANG], label=label, model={"label": label})


def _child(q: JobQueue, job: Job) -> psutil.Process:
    def running() -> psutil.Process | None:
        got = q.get(job.id)
        return psutil.Process(got.state.pid) if got and got.state.status == "running" and got.state.pid else None
    proc: psutil.Process = wait_for(f"{job.spec.label} to run", running)
    wait_for(f"{job.spec.label}'s first output", lambda: job.stderr_path.exists() and job.stderr_path.stat().st_size > 0)
    return proc


def _record(data_dir: Path, job_id: str) -> dict[str, object]:
    got = JobQueue(data_dir).get(job_id)
    assert got is not None and got.state.result_id
    recs = {r.id: r for r in ResultStore(data_dir).load().records}
    rec = recs[got.state.result_id]
    return {"kind": rec.kind, "status": rec.status, "reason": (rec.failure or {}).get("reason"), "stats": rec.stats}


def test_llama_bench_exiting_1_fails_with_its_words_and_the_next_job_runs(
        data_dir: Path, llama_tools: LlamaTools, tmp_path: Path) -> None:
    tiny = assets.tiny_model(tmp_path / "tiny")
    q = JobQueue(data_dir)
    bad = q.add(_real_speed(llama_tools, tmp_path / "missing.gguf", "speed missing.gguf"))
    good = q.add(_real_speed(llama_tools, tiny, "speed tiny"))
    ensure_scheduler(data_dir)
    wait_for("both speed jobs to end", lambda: {status(q, bad.id), status(q, good.id)} <= set(FINISHED), timeout=60)
    got = q.get(bad.id)
    assert got is not None and got.state.status == "failed" and got.state.exit_code == 1
    assert got.state.reason == f"llama-bench exited with status 1: llama_bench: error: failed to load model '{tmp_path / 'missing.gguf'}'"
    assert _record(data_dir, bad.id) == {"kind": "speed", "status": "failed", "reason": got.state.reason, "stats": {}}
    ok = _record(data_dir, good.id)
    assert ok["status"] == "done" and isinstance(ok["stats"], dict)
    assert ok["stats"]["pp_ts"] > 0 and ok["stats"]["tg_ts"] > 0 and ok["stats"]["pp_tokens"] == 16


def test_llama_bench_killed_fails_the_job_and_the_next_one_runs(data_dir: Path) -> None:
    q = JobQueue(data_dir)
    hung = q.add(_hanging("speed hung"))
    later = q.add(_hanging("speed later"))
    ensure_scheduler(data_dir)
    kill9(_child(q, hung).pid)
    wait_for("the killed job to end", lambda: status(q, hung.id) in FINISHED)
    got = q.get(hung.id)
    assert got is not None and got.state.status == "failed" and got.state.exit_code == 137
    assert got.state.reason == "llama-bench was killed (signal 9) before it finished"
    assert _record(data_dir, hung.id)["status"] == "failed"
    kill9(_child(q, later).pid)  # the next one was taken: nothing stranded behind the failure
    wait_for("the second job to end", lambda: status(q, later.id) in FINISHED)


def test_llama_bench_and_its_scheduler_killed_is_judged_by_its_output(data_dir: Path) -> None:
    q = JobQueue(data_dir)
    hung = q.add(_hanging("speed hung"))
    ensure_scheduler(data_dir)
    child = _child(q, hung)
    found = wait_for("the scheduler process", lambda: scheduler_procs(data_dir))
    kill9(found[0].pid)
    kill9(child.pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir))
    assert status(q, hung.id) == "running"  # what a dead scheduler leaves behind
    ensure_scheduler(data_dir)  # the next one adopts it: its child is gone, its output is cut
    wait_for("the adopted job to end", lambda: status(q, hung.id) in FINISHED)
    got = q.get(hung.id)
    assert got is not None and got.state.status == "failed" and got.state.exit_code is None
    assert got.state.reason == "llama-bench's output ends in the middle of test 1 (line 1 is cut off)"
