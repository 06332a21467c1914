"""The showdown service: what it queues, what it reuses, what it skips, what it refuses.

The queue and the store are the real ones on disk; starting the detached scheduler is
recorded instead of done (the process-level tests in tests/faults run the real one).
"""

from __future__ import annotations

import fcntl
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from qtui.core.fsutil import atomic_write_json
from qtui.core.gguf.model_info import model_info
from qtui.core.jobs.queue import JobQueue
from qtui.core.jobs.screening import read_state
from qtui.core.llama.tools import LlamaTools
from qtui.core.results.store import ResultRecord, ResultStore, new_id
from qtui.core.showdown.plan import base_key, cached_base_path, file_sha256
from qtui.core.showdown.service import DataDirError, RunRefused, Showdown, ShowdownRequest
from tests.fakes.fake_llama_perplexity import write_base
from tests.unit.gguf_builders import F16, Q4_K, Q8_0, dense_tensors, write_model

N_VOCAB = 64  # what write_base writes into a base file's header


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("QTUI_CACHE_DIR", str(tmp_path / "cache"))
    models = tmp_path / "models"
    base = write_model(models / "m-F16.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16, embd_type=F16),
                       n_vocab=N_VOCAB, file_type=1)
    q8 = write_model(models / "m-Q8_0.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q8_0, embd_type=Q8_0),
                     n_vocab=N_VOCAB, file_type=7)
    q4 = write_model(models / "m-Q4_K.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q4_K),
                     n_vocab=N_VOCAB, file_type=15)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    tools = LlamaTools(perplexity=Path(sys.executable), quantize=None, bench=None, bin_dir=tmp_path, source="test")
    spawned: list[Path] = []
    # Record, do not start, the detached scheduler.
    monkeypatch.setattr("qtui.core.jobs.scheduler.ensure_scheduler", lambda data_dir, slots=1: spawned.append(Path(data_dir)))
    return {"base": base, "q8": q8, "q4": q4, "corpus": corpus, "tools": tools, "data": tmp_path / "data", "spawned": spawned}


def request(env: dict[str, object], *variants: str, **kw: object) -> ShowdownRequest:
    return ShowdownRequest(base=env["base"], variants=[env[v] for v in variants], corpus=env["corpus"],  # type: ignore[arg-type]
                           ctx=128, chunks=4, **kw)  # type: ignore[arg-type]


def start(env: dict[str, object], req: ShowdownRequest):  # type: ignore[no-untyped-def]
    return Showdown(env["data"]).start(req, env["tools"])  # type: ignore[arg-type]


def finish(data: Path, with_meta: bool = True) -> None:
    """What the scheduler does when every queued job succeeds: base file (and metadata) in
    place, jobs done, a done record for each KLD job."""
    q = JobQueue(data)
    for job in q.jobs():
        if job.spec.kind == "base":
            assert job.spec.output
            Path(job.spec.output).parent.mkdir(parents=True, exist_ok=True)
            write_base(job.spec.output, n_ctx=128, n_vocab=N_VOCAB)
            if with_meta:
                atomic_write_json(Path(job.spec.output + ".json"), {"base": job.spec.base, "ctx": 128})
        else:
            ResultStore(data).save(ResultRecord(id=new_id(), kind="kld", status="done", model=job.spec.model,
                                                stats={"kld_mean": 0.01}, base=job.spec.base, corpus=job.spec.corpus,
                                                ctx=job.spec.ctx, job_id=job.id))
        q.update(job.id, status="done")


def test_queues_base_then_variants_and_starts_a_scheduler(env) -> None:
    queued = start(env, request(env, "q8", "q4"))
    assert [j.spec.kind for j in queued.jobs] == ["base", "kld", "kld"]
    base = queued.base_job
    assert base is not None and all(j.spec.depends_on == base.id for j in queued.kld_jobs)
    assert any("generating base log-probs" in n for n in queued.notes)
    assert [j.id for j in JobQueue(env["data"]).jobs()] == [j.id for j in queued.jobs]
    assert env["spawned"] == [env["data"]]


def test_variants_queue_largest_first_and_ties_keep_the_users_order(env, tmp_path: Path) -> None:
    # on several GPUs the run then ends on short jobs: no GPU idles behind the last big one
    twin = tmp_path / "models" / "twin-Q4_K.gguf"
    twin.write_bytes(Path(env["q4"]).read_bytes())  # type: ignore[arg-type]
    assert Path(env["q8"]).stat().st_size > twin.stat().st_size  # type: ignore[arg-type]
    env["twin"] = twin
    queued = start(env, request(env, "q4", "q8", "twin"))
    assert [j.spec.label for j in queued.kld_jobs] == ["m-Q8_0.gguf", "m-Q4_K.gguf", "twin-Q4_K.gguf"]
    assert [j.spec.label for j in JobQueue(env["data"]).jobs()] == [  # type: ignore[arg-type]
        queued.jobs[0].spec.label, "m-Q8_0.gguf", "m-Q4_K.gguf", "twin-Q4_K.gguf"]


def test_a_second_start_waits_for_the_base_already_queued(env) -> None:
    first = start(env, request(env, "q8"))
    second = start(env, request(env, "q4"))
    assert [j.spec.kind for j in second.jobs] == ["kld"]
    assert second.jobs[0].spec.depends_on == first.base_job.id
    assert any("waiting for the base log-probs already being made" in n for n in second.notes)
    assert not any("generating base" in n for n in second.notes)
    assert [j.spec.kind for j in JobQueue(env["data"]).jobs()].count("base") == 1


def test_a_base_finished_since_planning_is_reused_without_a_base_job(env) -> None:
    svc = Showdown(env["data"])
    plan = svc.plan(request(env, "q8"), env["tools"])
    assert plan.base_job is not None and plan.base_job.output
    write_base(plan.base_job.output, n_ctx=128, n_vocab=N_VOCAB)
    atomic_write_json(Path(plan.base_job.output + ".json"), {"base": plan.base_job.base})
    queued = svc._queue(plan, again=False)
    assert [j.spec.kind for j in queued.jobs] == ["kld"] and queued.jobs[0].spec.depends_on is None
    assert any("finished meanwhile" in n for n in queued.notes)


def test_a_cached_base_file_without_metadata_is_regenerated(env) -> None:
    start(env, request(env, "q8"))
    finish(env["data"], with_meta=False)
    queued = start(env, request(env, "q4"))
    assert [j.spec.kind for j in queued.jobs] == ["base", "kld"]
    assert any("regenerating the cached base file" in n and "metadata" in n for n in queued.notes)


def test_measured_variants_are_skipped_unless_again(env) -> None:
    start(env, request(env, "q8"))
    finish(env["data"])
    queued = start(env, request(env, "q8", "q4"))
    assert [j.spec.model["path"] for j in queued.jobs] == [str(env["q4"])]
    assert queued.jobs[0].spec.depends_on is None  # the finished base file is reused
    assert [(s.variant, s.why) for s in queued.skipped] == [(env["q8"], "measured")]
    assert queued.skipped[0].text == "skipped m-Q8_0.gguf: already measured on this setup"
    again = start(env, request(env, "q8", "q4", again=True))
    assert sorted(j.spec.label for j in again.jobs) == ["m-Q4_K.gguf", "m-Q8_0.gguf"] and not again.skipped


def test_a_rerun_of_a_measured_sweep_queues_nothing(env) -> None:
    start(env, request(env, "q8", "q4"))
    finish(env["data"])
    queued = start(env, request(env, "q8", "q4"))
    assert queued.jobs == [] and {s.why for s in queued.skipped} == {"measured"}
    assert len(JobQueue(env["data"]).jobs()) == 3


def test_queued_variants_are_skipped_and_no_base_job_is_added_for_nothing(env) -> None:
    start(env, request(env, "q8"))
    queued = start(env, request(env, "q8"))
    assert queued.jobs == [] and [s.why for s in queued.skipped] == ["queued"]
    assert len(JobQueue(env["data"]).jobs()) == 2
    q = JobQueue(env["data"])
    kld = next(j for j in q.jobs() if j.spec.kind == "kld")
    q.update(kld.id, status="running")
    assert [s.why for s in start(env, request(env, "q8")).skipped] == ["running"]


def test_another_setup_is_not_skipped(env) -> None:
    start(env, request(env, "q8"))
    finish(env["data"])
    other_ctx = start(env, replace(request(env, "q8"), ctx=256))
    assert [j.spec.kind for j in other_ctx.jobs] == ["base", "kld"] and not other_ctx.skipped
    env["q8"].touch()  # same path, new mtime: another file as far as qtui can tell
    assert [j.spec.label for j in start(env, request(env, "q8")).kld_jobs] == ["m-Q8_0.gguf"]


def test_a_variant_named_twice_is_queued_once(env) -> None:
    queued = start(env, request(env, "q8", "q8", again=True))
    assert len(queued.kld_jobs) == 1 and [s.why for s in queued.skipped] == ["repeated"]


def test_bad_context_and_chunks_are_refused_with_every_reason(env) -> None:
    for ctx, chunks, words in ((0, 4, ["-c 0 is too small"]), (128, 0, ["--chunks 0"]), (128, -1, ["--chunks -1"]),
                               (8, -5, ["-c 8 is too small", "--chunks -5"])):
        with pytest.raises(RunRefused) as exc:
            start(env, replace(request(env, "q8"), ctx=ctx, chunks=chunks))
        for w in words:
            assert any(w in p for p in exc.value.problems), (ctx, chunks, exc.value.problems)
    assert JobQueue(env["data"]).jobs() == []


def test_all_chunks_has_one_cache_key(env) -> None:
    info = model_info(env["base"])
    sha = file_sha256(env["corpus"])
    assert base_key(info, sha, 128, None) == base_key(info, sha, 128, 0)
    assert cached_base_path(info, "k", 128, None) == cached_base_path(info, "k", 128, 0)
    assert ".nall." in cached_base_path(info, "k", 128, None).name
    assert base_key(info, sha, 128, None) != base_key(info, sha, 128, 4)


def test_a_base_file_being_made_for_another_setup_is_refused(env, tmp_path: Path) -> None:
    target = tmp_path / "mine.kld"
    start(env, replace(request(env, "q8"), base_file=target))
    with pytest.raises(RunRefused) as exc:
        start(env, replace(request(env, "q4"), base_file=target, ctx=256))
    assert "being made for another" in exc.value.problems[0]


def test_a_data_dir_that_is_a_file_is_one_sentence_and_no_job(env, tmp_path: Path) -> None:
    data = tmp_path / "data-file"
    data.write_text("not a folder")
    with pytest.raises(DataDirError) as exc:
        Showdown(data).start(request(env, "q8"), env["tools"])  # type: ignore[arg-type]
    assert str(exc.value) == f"cannot write to the data dir {data}: Not a directory"
    assert data.read_text() == "not a folder"


def test_a_failed_add_leaves_no_job_behind(env, monkeypatch: pytest.MonkeyPatch) -> None:
    import qtui.core.jobs.queue as queue_module

    real = queue_module.atomic_write_json
    specs_written: list[Path] = []

    def disk_fills(path: Path, data: object, *a: object, **kw: object) -> None:
        if Path(path).name == "job.json":
            specs_written.append(Path(path))
            if len(specs_written) == 2:  # the disk fills while the second job is written
                raise OSError(28, "No space left on device")
        real(path, data, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(queue_module, "atomic_write_json", disk_fills)
    with pytest.raises(DataDirError) as exc:
        start(env, request(env, "q8", "q4"))
    assert len(specs_written) == 2 and "No space left on device" in str(exc.value)
    assert {p.name for p in (env["data"] / "jobs").iterdir()} <= {".lock"}
    assert JobQueue(env["data"]).jobs() == [] and env["spawned"] == []


def test_ensure_scheduler_only_when_work_waits_and_none_runs(env) -> None:
    svc = Showdown(env["data"])
    assert svc.ensure_scheduler() is False and env["spawned"] == []  # nothing queued
    start(env, request(env, "q8"))
    env["spawned"].clear()
    assert svc.ensure_scheduler() is True and env["spawned"] == [env["data"]]
    lock = env["data"] / "jobs" / ".scheduler.lock"
    with open(lock, "a+") as fh:  # a scheduler holds this lock while it runs
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert svc.ensure_scheduler() is False
        fcntl.flock(fh, fcntl.LOCK_UN)
    finish(env["data"])
    assert svc.ensure_scheduler() is False and len(env["spawned"]) == 1


def test_ensure_scheduler_never_raises_for_a_reader(env, tmp_path: Path) -> None:
    data = tmp_path / "file"
    data.write_text("x")
    assert Showdown(data).ensure_scheduler() is False


@pytest.mark.parametrize(("args", "per_pass"), [((), 16), (("-b", "512"), 4), (("-b", "4096", "-b", "128"), 1),
                                                (("--batch-size", "1000"), 7)])
def test_screening_windows_follow_the_runs_passes(env, args: tuple[str, ...], per_pass: int) -> None:
    """At -c 128, llama-perplexity puts batch // 128 chunks in a pass: the screening windows are
    cut in whole passes of that size, so their values are the full run's."""
    queued = start(env, request(env, "q8", "q4", screen=True, llama_args=args))
    (batch,) = {str(j.spec.screen["batch"]) for j in queued.kld_jobs if j.spec.screen}
    state = read_state(JobQueue(env["data"]), batch)  # type: ignore[arg-type]
    assert state is not None and state["policy"]["align"] == per_pass
