"""The live-run tracker: what a view of a running job knows, read from the job's real files
(recorded llama-perplexity transcripts), and the ETA every front end shows."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from qtui.core import formats
from qtui.core.jobs.live import LiveRun, LiveTracker
from qtui.core.jobs.queue import Job, JobSpec, JobState
from qtui.core.llama.events import Progress, Started
from qtui.core.llama.parser import StreamParser
from qtui.watch import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama" / "b0336"


def make_job(tmp: Path, status: str = "running", started_at: float | None = 1000.0) -> Job:
    spec = JobSpec(kind="kld", argv=["llama-perplexity"], label="tiny-Q4_0.gguf", id="job-q4")
    tmp.mkdir(parents=True, exist_ok=True)
    return Job(spec, JobState(status=status, started_at=started_at), tmp)  # type: ignore[arg-type]


def recorded(case: str) -> tuple[bytes, bytes]:
    return (FIXTURES / f"{case}.out").read_bytes(), (FIXTURES / f"{case}.err").read_bytes()


def parsed_progress(case: str) -> list[Progress]:
    out, err = recorded(case)
    p = StreamParser()
    events = p.feed("err", err) + p.feed("out", out)
    return [e for e in events if isinstance(e, Progress)]


def test_snapshot_follows_the_files_as_they_grow(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    out, err = recorded("kld-q4_0")
    expected = parsed_progress("kld-q4_0")
    job.stderr_path.write_bytes(err)
    job.stdout_path.write_bytes(out[: len(out) // 2])
    with LiveTracker(job) as tracker:
        assert tracker.feed()
        half = tracker.snapshot()
        assert half.job_id == job.id and half.started is not None and half.n_chunks == 40
        assert 0 < half.done < 40
        assert [p.chunk for p in half.history] == [p.chunk for p in expected[: half.done]]
        assert half.fraction == half.done / 40
        assert (half.kld, half.kld_err) == (expected[half.done - 1].kld, expected[half.done - 1].kld_err)
        assert half.started_at == 1000.0
        assert not tracker.feed()  # nothing new on disk: nothing changed
        with job.stdout_path.open("ab") as fh:
            fh.write(out[len(out) // 2:])
        assert tracker.feed()
        full = tracker.snapshot()
    assert [p.chunk for p in full.history] == [p.chunk for p in expected] == list(range(1, 41))
    assert full.fraction == 1.0 and full.latest == expected[-1]
    assert half.done < full.done  # an earlier snapshot is a copy: it did not move on


def test_history_is_bounded_to_the_latest_rows(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    out, err = recorded("kld-q4_0")
    job.stderr_path.write_bytes(err)
    job.stdout_path.write_bytes(out)
    with LiveTracker(job, history_limit=3) as tracker:
        tracker.feed()
        snap = tracker.snapshot()
    assert [p.chunk for p in snap.history] == [38, 39, 40]
    assert snap.latest is not None and snap.latest.chunk == 40


def test_a_rerun_starts_the_history_over(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    out, err = recorded("kld-q4_0")
    job.stderr_path.write_bytes(err)
    job.stdout_path.write_bytes(out)
    with LiveTracker(job) as tracker:
        tracker.feed()
        for p in (job.stdout_path, job.stderr_path):  # what the scheduler does before a re-run
            p.unlink()
        job.stderr_path.write_bytes(err)
        job.stdout_path.write_bytes(out[: len(out) // 3])
        assert tracker.feed()
        snap = tracker.snapshot()
    chunks = [p.chunk for p in snap.history]
    assert chunks == list(range(1, len(chunks) + 1)) and 0 < len(chunks) < 40  # no leftovers of the first run


def test_warnings_and_stderr_tail_reach_the_snapshot(tmp_path: Path) -> None:
    job = make_job(tmp_path, status="failed")
    out, err = recorded("fail-ctx-mismatch")
    job.stderr_path.write_bytes(err)
    job.stdout_path.write_bytes(out)
    with LiveTracker(job) as tracker:
        assert tracker.feed()
        snap = tracker.snapshot()
    assert any("chunks per pass capped" in w for w in snap.warnings)
    assert snap.stderr_tail and snap.stderr_tail.splitlines()[-1] in err.decode()


def test_a_job_without_files_yet_is_an_empty_snapshot(tmp_path: Path) -> None:
    with LiveTracker(make_job(tmp_path)) as tracker:
        assert not tracker.feed()
        snap = tracker.snapshot()
    assert snap.latest is None and snap.history == () and snap.fraction is None and snap.eta_s(2000.0) is None


def test_eta_prefers_the_tools_own_estimate() -> None:
    live = LiveRun("j", Started("kld", 40), Progress(10, 40, eta_s=75.0), started_at=1000.0)
    assert live.eta_s(now=5000.0) == 75.0


def test_eta_extrapolates_the_pace_when_the_tool_prints_none() -> None:
    # 10 of 40 chunks in 50 s: 30 more at 5 s each.
    live = LiveRun("j", Started("kld", 40), Progress(10, 40), started_at=1000.0)
    assert live.eta_s(now=1050.0) == 150.0
    assert LiveRun("j", Started("kld", 40), Progress(10, 40)).eta_s(1050.0) is None  # start unknown
    assert LiveRun("j", Started("kld", None), Progress(10, None), started_at=1000.0).eta_s(1050.0) is None


def test_watch_shows_the_same_eta_as_the_app() -> None:
    """`qtui run` and `qtui jobs --watch` used to show only the tool's own ETA (none on KLD runs)."""
    job = Job(JobSpec(kind="kld", argv=["x"], label="tiny-Q4_0.gguf", id="j"), JobState(status="running", started_at=1000.0),
              Path("/nonexistent"))
    live = LiveRun("j", Started("kld", 40), Progress(10, 40, kld=0.0812, kld_err=0.0011), started_at=1000.0)
    console = Console(width=200, record=True, color_system=None)
    console.print(render([(job, live)], now=1050.0))
    text = console.export_text()
    assert formats.duration(150.0) == "2m30s" and "2m30s" in text
    assert formats.kld(0.0812, 0.0011) in text and "10/40" in text
    assert formats.progress_bar(0.25, 16) in text
