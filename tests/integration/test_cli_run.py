"""`qtui run` end to end on the real llama-perplexity: base generation, KLD runs, the stored
results, the printed leaderboard, base reuse, refusals, and a SIGHUP to the CLI mid-run."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtui.core.jobs.queue import JobQueue
from qtui.core.results.store import ResultStore
from tests.integration.conftest import qtui

MEAN_KLD = re.compile(rb"Mean\s+KLD:\s+([-\d.]+)")
SAME_TOP = re.compile(rb"Same top p:\s+([-\d.]+)")
PPL_Q = re.compile(rb"Mean PPL\(Q\)\s+:\s+([-\d.]+)")
KLD_99 = re.compile(rb"99\.0%\s+KLD:\s+([-\d.]+)")


def assert_board_matches_llama(printed: str, data: Path, ctx: int) -> None:
    """Each KLD job's stored and printed figures are the ones in llama-perplexity's own final block."""
    records = {r.job_id: r for r in ResultStore(data).load().records}
    kld_jobs = [j for j in JobQueue(data).jobs() if j.spec.kind == "kld"]
    assert kld_jobs
    for job in kld_jobs:
        raw = job.stdout_path.read_bytes()
        rec = records[job.id]
        assert rec.status == "done", rec.failure
        for rx, key, digits in ((MEAN_KLD, "kld_mean", 6), (SAME_TOP, "same_top", 2), (PPL_Q, "ppl_q", 4), (KLD_99, "kld_p99", 5)):
            m = rx.search(raw)
            assert m, f"{key} missing from llama-perplexity's output"
            value = float(m.group(1))
            assert rec.stats[key] == pytest.approx(value, abs=10 ** -(digits + 1)), key
            # the leaderboard shows the number llama-perplexity printed, at the table's precision
            assert f"{value:.{digits}f}" in printed, (key, value)
        assert rec.ctx == ctx and rec.model["quant"] in printed


def wait_idle(data_dir: Path, timeout: float = 120) -> None:
    q = JobQueue(data_dir)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(j.state.status in ("done", "failed", "cancelled") for j in q.jobs()):
            return
        time.sleep(0.2)
    raise AssertionError("jobs did not finish")


def test_run_prints_the_figures_llama_printed(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    variants = [str(p) for p in tiny_ladder.values()]
    res = qtui(env, "run", "--base", str(tiny_model), "--corpus", str(corpus), "--ctx", "128", "--chunks", "12", *variants)
    assert res.returncode == 0, res.stdout + res.stderr
    data = tmp_path / "data"
    jobs = JobQueue(data).jobs()
    assert [j.spec.kind for j in jobs] == ["base", "kld", "kld", "kld"]
    assert_board_matches_llama(res.stdout, data, ctx=128)
    # a second run of a measured variant on the same setup measures nothing twice...
    again = ("run", "--base", str(tiny_model), "--corpus", str(corpus), "--ctx", "128", "--chunks", "12", variants[0])
    skipped = qtui(env, *again)
    assert skipped.returncode == 0, skipped.stderr
    assert "reusing the base" in skipped.stdout and "already measured on this setup" in skipped.stdout
    assert "nothing to run" in skipped.stdout and len(JobQueue(data).jobs()) == 4
    # ... unless asked: then it reuses the cached base log-probs instead of regenerating them
    res2 = qtui(env, *again, "--again")
    assert res2.returncode == 0, res2.stderr
    assert "reusing the base" in res2.stdout
    assert [j.spec.kind for j in JobQueue(data).jobs()].count("base") == 1
    # results and exports read the same store; the variant measured again is one row, its latest run
    out = qtui(env, "export", "--format", "csv")
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 1 + 3, out.stdout
    latest = max((r for r in ResultStore(data).load().records if r.kind == "kld" and r.model.get("path") == str(variants[0])),
                 key=lambda r: r.ended_at or 0)
    (row,) = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["path"] == variants[0]]
    assert float(row["kld"]) == pytest.approx(latest.stats["kld_mean"])


def test_truncated_base_file_is_refused(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    base_file = tmp_path / "b.kld"
    ok = qtui(env, "run", "--base", str(tiny_model), "--corpus", str(corpus), "-c", "128", "--chunks", "4",
              "--base-file", str(base_file), str(tiny_ladder["Q8_0"]))
    assert ok.returncode == 0, ok.stderr
    data = base_file.read_bytes()
    base_file.write_bytes(data[: len(data) // 2])
    res = qtui(env, "run", "--base", str(tiny_model), "--base-file", str(base_file), str(tiny_ladder["Q8_0"]))
    assert res.returncode == 2
    assert "truncated" in res.stderr


def test_vocab_mismatch_and_bad_files_are_refused_with_reasons(env, tiny_model, corpus, tmp_path) -> None:
    from qtui.core.llama import assets

    other = assets.tiny_model(tmp_path / "other", vocab_size=1024, corpus=corpus)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    res = qtui(env, "run", "--base", str(tiny_model), "--corpus", str(corpus), str(other), str(junk), str(tmp_path / "missing.gguf"))
    assert res.returncode == 2
    assert "vocabulary" in res.stderr and "junk.gguf" in res.stderr and "missing.gguf" in res.stderr
    assert "Traceback" not in res.stderr


def test_sighup_to_the_cli_does_not_lose_the_run(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    data = tmp_path / "data"
    # no --chunks and one thread: the base run lasts long enough to hang up in the middle
    proc = subprocess.Popen([sys.executable, "-m", "qtui.cli", "run", "--base", str(tiny_model), "--corpus", str(corpus),
                             "-c", "128", str(tiny_ladder["Q4_0"]), "--", "-t", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        running = [j for j in JobQueue(data).jobs() if j.state.status == "running" and j.state.pid]
        if running and running[0].stdout_path.exists() and running[0].stdout_path.stat().st_size > 0:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run never started streaming")
    os.killpg(proc.pid, signal.SIGHUP)  # what a dropped SSH connection does to the session
    proc.wait(timeout=20)
    wait_idle(data, timeout=300)
    recs = [r for r in ResultStore(data).load().records if r.kind == "kld"]
    assert len(recs) == 1 and recs[0].status == "done", [r.failure for r in recs]
    assert recs[0].stats["kld_mean"] is not None


def test_relative_paths_work_from_the_jobs_folder(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    """Jobs run from their own folder, later: paths typed relative to the shell's cwd must still work."""
    rel = [os.path.relpath(p, tmp_path) for p in (tiny_model, corpus, tiny_ladder["Q8_0"])]
    res = subprocess.run([sys.executable, "-m", "qtui.cli", "run", "--base", rel[0], "--corpus", rel[1], "-c", "128",
                          "--chunks", "4", rel[2]], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    recs = [r for r in ResultStore(tmp_path / "data").load().records if r.kind == "kld"]
    assert len(recs) == 1 and recs[0].status == "done"


def test_builtin_corpus_needs_no_file(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    """`--corpus builtin` writes qtui's own text into the cache and measures on it."""
    from qtui.core.showdown.plan import file_sha256

    res = qtui(env, "run", "--base", str(tiny_model), "--corpus", "builtin", "-c", "128", "--chunks", "4",
               str(tiny_ladder["Q8_0"]), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rec = next(r for r in ResultStore(tmp_path / "data").load().records if r.kind == "kld")
    assert rec.status == "done" and rec.chunks == 4
    assert rec.corpus["path"].startswith(str(tmp_path / "cache"))
    assert rec.corpus["sha256"] == file_sha256(corpus)  # the same stdlib text the fixtures use
