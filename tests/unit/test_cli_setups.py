"""`qtui results` and `qtui export` rank one setup at a time and never hide the others silently."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import pytest

from qtui.core.results.setups import group_setups
from qtui.core.results.store import ResultRecord, ResultStore
from tests.helpers import run_qtui

SHA = "1a2b3c" + "0" * 58


def qtui(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return run_qtui(*args, tmp=tmp, columns="200")


def run(name: str, kld: float, *, chunks: int = 30, fork: str = "llama.cpp", status: str = "done",
        base_file: str = "f16.n30.kld") -> ResultRecord:
    return ResultRecord(
        id=f"20260101-000000-{name}", kind="kld", status=status,  # type: ignore[arg-type]
        model={"path": f"/m/{name}.gguf", "label": name, "quant": name.split("-")[0], "size_bytes": int(kld * 1e10)},
        stats={"kld_mean": kld} if status == "done" else {},
        base={"label": "m-F16", "file": base_file, "key": base_file}, corpus={"sha256": SHA}, ctx=512, chunks=chunks,
        llama={"fork": fork, "version": "b1"}, ended_at=1.0,
        failure=None if status == "done" else {"reason": "cancelled by the user"})


@pytest.fixture
def store(tmp_path: Path) -> list[ResultRecord]:
    records = [run("Q8_0-full", 0.01), run("Q6_K-full", 0.02), run("Q4_K_M-full", 0.05),
               run("Q2_K-full", 0.0, chunks=7, status="cancelled"),
               run("Q4_0-short", 0.03, chunks=4, base_file="f16.n4.kld"),
               run("IQ4_XS-ik", 0.04, fork="ik_llama.cpp")]
    s = ResultStore(tmp_path / "d")
    for r in records:
        s.save(r)
    return records


def test_results_shows_the_default_setup_and_where_the_others_are(tmp_path: Path, store: list[ResultRecord]) -> None:
    out = qtui("results", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Setup 1 of 3: m-F16 · corpus 1a2b3c · -c 512 · 30 chunks · llama.cpp" in text
    assert all(name in text for name in ("Q8_0-full", "Q6_K-full", "Q4_K_M-full"))
    assert "Q4_0-short" not in text and "IQ4_XS-ik" not in text and "Q2_K-full" not in text
    assert "1 failed or cancelled run on this setup, not ranked (--failed lists them)" in text
    assert "2 results in 2 other setups: qtui results --setup all" in text


def test_failed_lists_cancelled_runs_apart_and_unranked(tmp_path: Path, store: list[ResultRecord]) -> None:
    out = qtui("results", "--failed", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    ranking, apart = out.stdout.split("Not ranked: failed or cancelled")
    assert "Q2_K-full" not in ranking and "Q2_K-full" in apart
    assert "cancelled by the user" in apart
    numbered = [line.split()[0] for line in ranking.splitlines() if "-full" in line]
    assert numbered == ["1", "2", "3"]


def test_setup_by_number_id_and_all(tmp_path: Path, store: list[ResultRecord]) -> None:
    groups = group_setups(store)
    ik = next(g for g in groups if g.setup.family == "ik_llama.cpp")
    by_id = qtui("results", "--setup", ik.id[:4], tmp=tmp_path)
    assert by_id.returncode == 0 and "IQ4_XS-ik" in by_id.stdout and "Q8_0-full" not in by_id.stdout, by_id.stderr
    assert f"Setup {ik.number} of 3:" in by_id.stdout and "ik_llama.cpp" in by_id.stdout
    by_number = qtui("results", "--setup", str(ik.number), tmp=tmp_path)
    assert by_number.stdout == by_id.stdout
    every = qtui("results", "--setup", "all", tmp=tmp_path)
    assert every.returncode == 0, every.stderr
    heads = [line for line in every.stdout.splitlines() if line.startswith("Setup ")]
    assert [h.split(":")[0] for h in heads] == ["Setup 1 of 3", "Setup 2 of 3", "Setup 3 of 3"]
    assert "other setup" not in every.stdout
    # each name under its own setup's heading, once
    blocks = every.stdout.split("Setup ")[1:]
    for name in ("Q8_0-full", "Q4_0-short", "IQ4_XS-ik"):
        assert sum(name in b for b in blocks) == 1


def test_an_unknown_setup_is_one_line(tmp_path: Path, store: list[ResultRecord]) -> None:
    out = qtui("results", "--setup", "9", tmp=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == "error: there is no setup 9: the results hold 3 setups (--setup all lists them)"


def test_export_holds_one_setup_with_its_cancelled_runs(tmp_path: Path, store: list[ResultRecord]) -> None:
    out = qtui("export", "-f", "csv", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["model"], r["kld_status"]) for r in rows] == [
        ("Q8_0-full", "done"), ("Q6_K-full", "done"), ("Q4_K_M-full", "done"), ("Q2_K-full", "cancelled")]
    assert rows[-1]["score"] == "" and rows[-1]["pareto"] == "False"
    assert "2 results in 2 other setups: qtui export --setup all" in out.stderr
    short = qtui("export", "-f", "csv", "--setup", "m-F16 · corpus 1a2b3c · -c 512 · 4", tmp=tmp_path)
    assert [r["model"] for r in csv.DictReader(io.StringIO(short.stdout))] == ["Q4_0-short"], short.stderr


def test_export_all_is_markdown_one_table_per_setup(tmp_path: Path, store: list[ResultRecord]) -> None:
    refused = qtui("export", "-f", "csv", "--setup", "all", tmp=tmp_path)
    assert refused.returncode == 2 and "only Markdown holds" in refused.stderr and refused.stdout == ""
    md = qtui("export", "-f", "md", "--setup", "all", tmp=tmp_path)
    assert md.returncode == 0, md.stderr
    titles = [line for line in md.stdout.splitlines() if line.startswith("### ")]
    assert len(titles) == 3 and all("setup" in t for t in titles)
    assert "4 chunks" in md.stdout and "ik_llama.cpp" in md.stdout
    # the cancelled run is not a row of a Markdown ranking, and that is said
    assert "Q2_K-full" not in md.stdout and "1 failed or cancelled run of setup 1 not in the md table" in md.stderr
