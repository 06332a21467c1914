"""`qtui run --speed` on the REAL llama-bench: a speed job after each KLD job, with the user's
llama-perplexity arguments translated, and its tokens per second in `qtui results --json`, a
CSV export and the printed board, exactly as llama-bench printed them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.core.results.store import ResultStore
from tests.integration.conftest import qtui


def _printed_tests(stdout: Path) -> dict[tuple[int, int], float]:
    """(n_prompt, n_gen) -> avg_ts, read straight from llama-bench's own jsonl."""
    tests = [json.loads(line) for line in stdout.read_text().splitlines() if line.strip()]
    return {(t["n_prompt"], t["n_gen"]): t["avg_ts"] for t in tests}


def test_run_speed_reaches_results_json_and_csv(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    variants = [str(tiny_ladder["Q8_0"]), str(tiny_ladder["Q4_0"])]
    run = ("run", "--base", str(tiny_model), "--corpus", str(corpus), "--ctx", "128", "--chunks", "4",
           "--speed", "--speed-args", "-p 16 -n 4 -r 2", *variants, "--", "-t", "1", "-fa", "off", "-b", "128")
    res = qtui(env, *run)
    assert res.returncode == 0, res.stdout + res.stderr
    data = tmp_path / "data"
    jobs = JobQueue(data).jobs()
    assert [j.spec.kind for j in jobs] == ["base", "kld", "speed", "kld", "speed"]
    speed_jobs = [j for j in jobs if j.spec.kind == "speed"]
    for job, variant in zip(speed_jobs, variants):
        assert job.state.status == "done", job.state.reason
        # translated for llama-bench: threads and flash attention kept, the KLD run's batch left out
        assert job.spec.argv[1:] == ["-m", variant, "-o", "jsonl", "-t", "1", "-fa", "off", "-p", "16", "-n", "4", "-r", "2"]
    records = {r.job_id: r for r in ResultStore(data).load().records}
    expected: dict[str, tuple[float, float]] = {}
    for job in speed_jobs:
        printed = _printed_tests(job.stdout_path)
        rec = records[job.id]
        assert rec.kind == "speed" and rec.status == "done"
        assert (rec.stats["pp_ts"], rec.stats["tg_ts"]) == (printed[(16, 0)], printed[(0, 4)])
        assert rec.llama["bench"]["n_threads"] == 1
        expected[str(job.spec.model["path"])] = (printed[(16, 0)], printed[(0, 4)])
    assert "pp t/s" in res.stdout and "tg t/s" in res.stdout  # the run's own board
    # the live view: a speed job has no chunks to count (never "0/?")
    speed_lines = [line for line in res.stdout.splitlines() if line.startswith("speed ")]
    assert speed_lines and not any("/?" in line for line in speed_lines)

    out = qtui(env, "results", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["setups"][0]["rows"]
    path_of = {r.id: r.model["path"] for r in records.values() if r.kind == "kld"}
    assert {path_of[row["id"]]: (row["pp_ts"], row["tg_ts"]) for row in rows} == expected

    csv_file = tmp_path / "board.csv"
    exp = qtui(env, "export", "-f", "csv", str(csv_file))
    assert exp.returncode == 0, exp.stderr
    table = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    assert {row["path"]: (float(row["pp_ts"]), float(row["tg_ts"])) for row in table} == expected

    # the same speed again is not measured twice; --again would
    again = qtui(env, *run)
    assert again.returncode == 0, again.stdout + again.stderr
    for v in variants:
        assert f"skipped the speed of {Path(v).name}: already measured with these llama-bench arguments" in again.stdout
    assert len(JobQueue(data).jobs()) == len(jobs)


def test_run_speed_args_that_cannot_work_are_refused_in_one_line(env, tiny_model, tiny_ladder, corpus) -> None:
    base = ("run", "--base", str(tiny_model), "--corpus", str(corpus), str(tiny_ladder["Q8_0"]))
    out = qtui(env, *base, "--speed", "--speed-args", "-o csv -p 8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: --speed-args cannot set -o: qtui names the model and reads jsonl itself"
    out = qtui(env, *base, "--speed-args", "-p 8 -n 2")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: --speed-args only works with --speed (they are llama-bench's options for the "
                                  "speed jobs)")
