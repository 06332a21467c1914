"""`qtui results --json` and the exports carry the rank ranges and the paired intervals to the
neighbours, for runs finished by the real scheduler from REAL recorded transcripts."""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.llama.parser import parse_transcript
from tests.helpers import run_qtui

LLAMA = Path(__file__).resolve().parents[1] / "fixtures" / "llama" / "b0336"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_perplexity.py"
CASES = ("kld-q8_0", "kld-q4_0", "kld-q4_0-b128")


def qtui(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return run_qtui(*args, tmp=tmp, columns="200")


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    """Three KLD runs on one setup, finished and recorded by the real scheduler."""
    data = tmp_path / "d"
    q = JobQueue(data)
    for case in CASES:
        env = {"FAKE_LLAMA_CASE": str(LLAMA / case), "FAKE_LLAMA_DELAY": "0"}
        argv = [sys.executable, str(FAKE), "-m", f"{case}.gguf", "--kl-divergence-base", str(tmp_path / "base.kld"),
                "--kl-divergence"]
        q.add(JobSpec(kind="kld", argv=argv, env=env, label=case, ctx=128, chunks=40,
                      model={"label": case, "quant": case[4:].upper(), "path": f"/m/{case}.gguf", "size_bytes": 1000},
                      base={"label": "tiny-F32", "file": "base.kld"}, llama={"fork": "llama.cpp", "version": "b0336"}))
    Scheduler(data).run()
    return tmp_path


def chunk_means(case: str) -> list[float]:
    """Brute force, independent of qtui's code: chunk k = k*m_k - (k-1)*m_(k-1) from the printed rows."""
    parsed = parse_transcript((LLAMA / f"{case}.out").read_bytes(), None, 0)
    m = [0.0] + [p.kld for p in parsed.progress if p.kld is not None]
    return [k * m[k] - (k - 1) * m[k - 1] for k in range(1, len(m))]


def test_results_json_has_rank_ranges_and_paired_intervals(finished: Path) -> None:
    out = qtui("results", "--json", tmp=finished)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert len(payload["setups"]) == 1
    rows = {r["model"]: r for r in payload["setups"][0]["rows"]}
    assert [r["model"] for r in payload["setups"][0]["rows"]][0] == "kld-q8_0"  # sorted by KLD
    assert rows["kld-q8_0"]["rank"] == "1"
    assert rows["kld-q4_0"]["rank"] == rows["kld-q4_0-b128"]["rank"] == "2-3"  # one file at two -b: a tie
    assert all(r["chunk_data"] == "derived" for r in rows.values())

    top = rows["kld-q8_0"]
    assert top["vs_prev"] is None
    nxt = top["vs_next"]
    assert nxt["verdict"] == "separated" and nxt["n_chunks"] == 40 and nxt["data"] == "derived"
    second = next(r for r in rows.values() if r["id"] == nxt["next_id"])
    assert second["vs_prev"]["prev_id"] == top["id"] and second["vs_prev"]["diff"] == nxt["diff"]
    # the interval against a brute-force computation from the transcripts (t(0.975, 39) = 2.022691)
    d = [b - a for a, b in zip(chunk_means("kld-q8_0"), chunk_means(second["model"]))]
    half = 2.022691 * statistics.stdev(d) / len(d) ** 0.5
    assert nxt["diff"] == pytest.approx(statistics.fmean(d), rel=1e-9)
    assert (nxt["low"], nxt["high"]) == pytest.approx((statistics.fmean(d) - half, statistics.fmean(d) + half), rel=1e-6)
    tie = second["vs_next"]
    assert tie["verdict"] == "tie" and tie["low"] < 0 < tie["high"]
    last = next(r for r in rows.values() if r["id"] == tie["next_id"])
    assert last["vs_next"] is None


def test_exports_carry_the_rank_and_the_interval_to_the_next_row(finished: Path) -> None:
    out = qtui("export", "-f", "csv", tmp=finished)
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["rank"] for r in table] == ["1", "2-3", "2-3"]
    assert table[0]["next_verdict"] == "separated" and float(table[0]["next_low"]) > 0
    assert table[1]["next_verdict"] == "tie" and table[2]["next_verdict"] == ""

    md = qtui("export", "-f", "md", tmp=finished).stdout
    assert "| Rank |" in md and "vs next-ranked (95 %)" in md
    first_row = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert "| 1 |" in first_row[4:] and "separated, 40 chunks" in first_row

    exported = json.loads(qtui("export", "-f", "json", tmp=finished).stdout)
    assert [r["rank"] for r in exported["rows"]] == ["1", "2-3", "2-3"]
    assert exported["rows"][0]["vs_next"]["verdict"] == "separated"
    assert all(rec["chunk_kld"]["kind"] == "running" for rec in exported["records"])
