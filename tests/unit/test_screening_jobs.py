"""Adaptive screening through the REAL scheduler, with the fake llama-perplexity writing per-token
dumps (tests/fakes): stage advance, one summary per variant, idempotent hooks, failures in words."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

from qtui.core.jobs import screening
from qtui.core.jobs.procs import log_path
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.results.leaderboard import board_records, build_rows
from qtui.core.results.screening import ScreenPolicy
from qtui.core.results.store import ResultStore

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ik"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_perplexity.py"
N_CHUNK = 40
# (name, mean KLD, per-token noise): A far from the rest, B and C close to each other.
VARIANTS = (("A.gguf", 0.05, 0.2), ("B.gguf", 0.30, 1.5), ("C.gguf", 0.31, 1.5))


def base_spec(tmp: Path) -> JobSpec:
    out = str(tmp / "base.kld")
    return JobSpec(kind="base", argv=[sys.executable, str(FAKE), "-m", "base.gguf", "--kl-divergence-base", out + ".partial"],
                   env={"FAKE_LLAMA_CASE": str(FIX / "ik-tiny-base"), "FAKE_LLAMA_BASE_CHUNKS": str(N_CHUNK)},
                   model={"label": "base"}, output=out, label="base")


def queue_batch(q: JobQueue, tmp: Path, depends_on: str | None) -> tuple[str, list[JobSpec]]:
    batch = "20261128-000000-feedbeef"
    policy = ScreenPolicy()
    specs = []
    for name, mean, noise in VARIANTS:
        template = JobSpec(
            kind="kld", argv=[sys.executable, str(FAKE), "-m", name, "--kl-divergence-base", str(tmp / "base.kld"),
                              "--kl-divergence", "-c", "128"],
            env={"FAKE_LLAMA_CASE": str(FIX / "ik-tiny-kld-q4_0"), "FAKE_LLAMA_TOKENS": f"{mean},{noise}"},
            model={"path": str(tmp / name), "label": name, "size_bytes": 1000, "mtime": 1.0},
            base={"file": str(tmp / "base.kld"), "label": "base", "key": "k"}, corpus={"sha256": "c"}, ctx=128,
            depends_on=depends_on, label=name)
        specs.append(screening.stage_spec(template, batch, 1, name, policy))
    with q.locked():
        screening.new_batch(q, batch, policy, specs)
        q.add_many_locked(specs)
    return batch, specs


def fake_chunk_mean(g: int, mean: float, noise: float) -> float:
    """The fake's chunk g, computed here from its documented formula (float32 like the dump)."""
    import struct

    rng = random.Random(f"{g}-{mean}")
    vals = [mean * (1 + 0.5 * math.sin(g)) * (1 + noise * (rng.random() - 0.5)) for _ in range(63)]
    vals = list(struct.unpack("<63f", struct.pack("<63f", *vals)))
    return math.fsum(vals) / 63


def test_stages_advance_and_one_summary_per_variant(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    base = q.add(base_spec(tmp_path))
    batch, _ = queue_batch(q, tmp_path, base.id)
    Scheduler(tmp_path).run()
    state = screening.read_state(q, batch)
    assert state is not None and state["finished"] and state["error"] is None, state
    jobs = [j for j in q.jobs() if j.spec.screen]
    assert all(j.state.status == "done" for j in jobs), [(j.spec.label, j.state.reason) for j in jobs]
    stages = {j.spec.screen["stage"] for j in jobs if j.spec.screen}
    assert max(stages) >= 2  # B and C are close: one window cannot settle them
    v = state["variants"]
    assert v["A.gguf"]["chunks_run"] == 8  # far from the others: settled on the first window
    assert v["A.gguf"]["state"] == "settled"
    assert v["B.gguf"]["chunks_run"] > 8 and v["C.gguf"]["chunks_run"] > 8
    # the window files were cut next to the full base file, one per window run
    wins = {tuple(j.spec.window or ()) for j in jobs}
    assert (0, 8) in wins and all((tmp_path / f"base.kld.w{a}-{b}.kld").exists() for a, b in wins if b - a < N_CHUNK)
    # the labels say the stage and the window
    assert any("screen 2 · chunks 9-" in j.spec.label for j in jobs)

    records = ResultStore(tmp_path).load().records
    shown = board_records(records)
    kld_rows = [r for r in build_rows(shown) if r.status == "done"]
    assert sorted(r.model for r in kld_rows) == ["A.gguf", "B.gguf", "C.gguf"]  # parts are not rows
    by_name = {r.model.get("label"): r for r in shown if r.kind == "kld"}
    for name, mean, noise in VARIANTS:
        rec = by_name[name]
        assert rec.screen is not None and rec.screen["chunks_run"] == v[name]["chunks_run"]
        assert rec.screen["state"] == v[name]["state"] and rec.base["n_chunk"] == N_CHUNK
        want = math.fsum(fake_chunk_mean(g, mean, noise) for g in range(rec.screen["chunks_run"])) / rec.screen["chunks_run"]
        assert rec.stats["kld_mean"] == pytest.approx(want, rel=1e-9)
        assert rec.chunk_kld and rec.chunk_kld["kind"] == "exact"
        assert [c for c, _ in rec.chunk_kld["rows"]] == list(range(1, rec.screen["chunks_run"] + 1))
    row_a = next(r for r in kld_rows if r.model == "A.gguf")
    assert row_a.screen == "settled · 8/40 chunks"


def test_hook_run_twice_queues_a_stage_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = JobQueue(tmp_path)
    base = q.add(base_spec(tmp_path))
    batch, _ = queue_batch(q, tmp_path, base.id)
    # A scheduler that dies between a job's end and its hook: stage 1 ends, nothing advances.
    monkeypatch.setattr("qtui.core.jobs.scheduler.after_job", lambda *a: False)
    monkeypatch.setattr("qtui.core.jobs.scheduler.resume", lambda *a: [])
    Scheduler(tmp_path).run()
    assert screening.read_state(q, batch)["stage"] == 1  # type: ignore[index]
    stage1 = [j for j in q.jobs() if j.spec.screen]
    assert len(stage1) == 3 and all(j.state.status == "done" for j in stage1)
    # The hook again and again, and a second scheduler's resume: one stage 2.
    assert screening.after_job(q, stage1[0].id) is True
    assert screening.after_job(q, stage1[1].id) is False
    assert screening.resume(q) == []
    stage2 = [j for j in q.jobs() if j.spec.screen and j.spec.screen["stage"] == 2]
    assert len(stage2) == 2 and {j.spec.screen["key"] for j in stage2 if j.spec.screen} == {"B.gguf", "C.gguf"}
    # The jobs of stage 2 are at the front of the queue, ahead of work queued before them.
    monkeypatch.undo()
    Scheduler(tmp_path).run()
    state = screening.read_state(q, batch)
    assert state is not None and state["finished"]
    keys = [(j.spec.screen["stage"], j.spec.screen["key"]) for j in q.jobs() if j.spec.screen]
    assert len(keys) == len(set(keys))  # never the same variant twice in one stage


def test_a_failing_decision_fails_the_batch_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = JobQueue(tmp_path)
    base = q.add(base_spec(tmp_path))
    batch, _ = queue_batch(q, tmp_path, base.id)

    def broken(*_: object) -> dict[str, object]:
        raise ValueError("the decision broke")

    monkeypatch.setattr(screening, "decide", broken)
    Scheduler(tmp_path).run()  # returns: nothing is left waiting
    state = screening.read_state(q, batch)
    assert state is not None and state["finished"]
    assert "could not decide the next screening stage" in state["error"] and "the decision broke" in state["error"]
    assert not [j for j in q.jobs() if j.state.status in ("queued", "running")]
    assert "the decision broke" in log_path(tmp_path).read_text()  # the traceback is logged


def test_window_that_cannot_be_cut_fails_its_job_and_the_batch_goes_on(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    base = q.add(base_spec(tmp_path))
    batch, specs = queue_batch(q, tmp_path, base.id)
    Scheduler(tmp_path).run()
    assert screening.read_state(q, batch)["finished"]  # type: ignore[index]
    # Now a batch whose base file is damaged: every window job fails with the reason.
    (tmp_path / "base.kld").write_bytes(b"_logits_" + b"\0" * 4)
    for p in tmp_path.glob("base.kld.w*"):
        p.unlink()
    batch2 = "20261128-000001-cafecafe"
    policy = ScreenPolicy()
    with q.locked():
        again = [screening.stage_spec(s, batch2, 1, str(s.screen["key"]), policy) for s in specs if s.screen]
        for s in again:
            s.window, s.depends_on = None, None
            s.screen["n_chunk"] = None  # type: ignore[index]
        screening.new_batch(q, batch2, policy, again)
        q.add_many_locked(again)
    Scheduler(tmp_path).run()
    jobs = [j for j in q.jobs() if j.spec.screen and j.spec.screen["batch"] == batch2]
    assert all(j.state.status == "failed" for j in jobs)
    assert all("truncated" in (j.state.reason or "") for j in jobs), [j.state.reason for j in jobs]
    state = screening.read_state(q, batch2)
    assert state is not None and state["finished"]
    assert all(v["state"] == "failed" for v in state["variants"].values()), state["variants"]
    # each variant gets one failed summary with the reason (a failed row, apart from any ranking)
    recs = [r for r in ResultStore(tmp_path).load().records if r.kind == "kld" and r.screen and r.screen["batch"] == batch2]
    assert sorted(r.model["label"] for r in recs) == ["A.gguf", "B.gguf", "C.gguf"]
    assert all(r.status == "failed" and "truncated" in (r.failure or {}).get("reason", "") for r in recs)
    assert json.dumps(state)  # plain JSON


def test_a_failed_base_ends_the_batch_with_its_reason(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    spec = base_spec(tmp_path)
    spec.env["FAKE_LLAMA_EXIT"] = "1"
    base = q.add(spec)
    batch, _ = queue_batch(q, tmp_path, base.id)
    Scheduler(tmp_path).run()
    state = screening.read_state(q, batch)
    assert state is not None and state["finished"], state  # not left waiting for a stage that never comes
    assert all(v["state"] == "failed" and "base generation" in v["why"] for v in state["variants"].values()), state
