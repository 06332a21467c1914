"""Inputs to the headless commands: global options anywhere, job ids, and `qtui import`.

Every bad input is one line and a non-zero exit, never a traceback; the commands run as a user
runs them (`python -m qtui.cli` in a subprocess) against the real queue and scheduler, with the
fake llama-perplexity replaying REAL recorded transcripts where a job must run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qtui.cli import build_parser
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler, ensure_scheduler
from qtui.core.results.log_import import import_log
from qtui.core.results.store import ResultStore
from tests.helpers import one_line_error, run_qtui

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_perplexity.py"
BUILDS = ("b0336", "b0336-cuda", "b0316")
FAILURES = ("fail-not-a-model", "fail-missing-model", "fail-missing-base")


def qtui(*args: str, tmp: Path, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_qtui(*args, tmp=tmp, data=data, columns="400", path=os.environ.get("PATH", "/usr/bin:/bin"), cwd=tmp)


def wait_for(cond: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def fake_job(data: Path, case: Path, label: str, delay: float = 0.0) -> JobSpec:
    """A KLD job whose llama-perplexity is the fake replaying `case` (a recorded transcript)."""
    argv = [sys.executable, str(FAKE), "-m", "x.gguf", "--kl-divergence-base", str(data / "base.kld"), "--kl-divergence"]
    return JobSpec(kind="kld", argv=argv, env={"FAKE_LLAMA_CASE": str(case), "FAKE_LLAMA_DELAY": str(delay)},
                   model={"label": label}, label=label)


def combined_log(case: Path) -> bytes:
    """The run as `2>&1` would have logged it: stdout and stderr in the order they were read."""
    out, err = case.with_suffix(".out").read_bytes(), case.with_suffix(".err").read_bytes()
    pos = {1: 0, 2: 0}
    parts = []
    for stream, n, _ms in json.loads(case.with_suffix(".json").read_text())["chunks"]:
        src = out if stream == 1 else err
        parts.append(src[pos[stream]:pos[stream] + n])
        pos[stream] += n
    assert pos == {1: len(out), 2: len(err)}  # the recording accounts for every byte
    return b"".join(parts)


# -- global options before or after the subcommand -----------------------------------------
@pytest.mark.parametrize("option", ["--data-dir", "--llama-bin"])
@pytest.mark.parametrize("command", [["jobs"], ["cancel", "x"], ["import", "a.log"], ["results"], ["export"],
                                     ["scan"], ["demo"], ["paths"], ["run", "--base", "b.gguf", "v.gguf"]])
def test_global_option_before_after_or_both(option: str, command: list[str]) -> None:
    dest = option.lstrip("-").replace("-", "_")
    ap = build_parser()

    def value(argv: list[str]) -> object:
        got = getattr(ap.parse_args(argv), dest)
        return str(got) if got is not None else None

    assert value(command) is None
    assert value([option, "X", *command]) == "X"
    assert value([*command, option, "X"]) == "X"
    assert value([option, "X", *command, option, "Y"]) == "Y"  # the later one wins, as usual


def test_data_dir_before_or_after_the_subcommand_reaches_the_store(tmp_path: Path) -> None:
    env_store, chosen = tmp_path / "d", tmp_path / "chosen"
    for data, label in ((env_store, "job-in-the-default-store"), (chosen, "job-in-the-chosen-store")):
        q = JobQueue(data)
        q.cancel(q.add(fake_job(data, FIXTURES / "ik" / "ik-tiny-kld-q8_0", label)).id)  # finished: nothing to start
    for argv, expected in ((["jobs"], "default"), (["--data-dir", str(chosen), "jobs"], "chosen"),
                           (["jobs", "--data-dir", str(chosen)], "chosen"),
                           (["--data-dir", str(env_store), "jobs", "--data-dir", str(chosen)], "chosen"),
                           (["--data-dir", str(chosen), "jobs", "--data-dir", str(env_store)], "default")):
        out = qtui(*argv, tmp=tmp_path, data=env_store)
        assert out.returncode == 0, (argv, out.stderr)
        other = "chosen" if expected == "default" else "default"
        assert f"job-in-the-{expected}-store" in out.stdout and f"job-in-the-{other}-store" not in out.stdout, (argv, out.stdout)


@pytest.mark.parametrize("where", ["before", "after"])
def test_llama_bin_before_or_after_the_subcommand_is_the_one_searched(tmp_path: Path, where: str) -> None:
    missing = tmp_path / f"no-llama-{where}"
    run = ["run", "--base", "b.gguf", "v.gguf"]
    argv = ["--llama-bin", str(missing), *run] if where == "before" else [*run, "--llama-bin", str(missing)]
    out = qtui(*argv, tmp=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"--llama-bin: {missing} (does not exist" in out.stderr, out.stderr


# -- job ids: unknown, ambiguous, refused ------------------------------------------------------
def test_remove_of_a_running_job_is_refused_with_the_way_out(tmp_path: Path) -> None:
    data = tmp_path / "d"
    q = JobQueue(data)
    # ~10 s of replay: long enough to be caught running, cut short by the cancel below.
    job = q.add(fake_job(data, FIXTURES / "ik" / "ik-tiny-kld-q4_0", "slow-q4_0", delay=0.5))
    ensure_scheduler(data, 1)  # the real detached scheduler
    try:
        wait_for(lambda: (j := q.get(job.id)) is not None and j.state.status == "running" and j.state.pid, "the job to start")
        short = job.id.rsplit("-", 1)[-1]
        line = one_line_error(qtui("remove", short, tmp=tmp_path), code=1)
        assert line == f"error: cannot remove {short}: it is running; qtui cancel {short} first"
        assert q.get(job.id) is not None and job.dir.is_dir()  # nothing was touched
        out = qtui("cancel", short, tmp=tmp_path)
        assert out.returncode == 0 and "stopping slow-q4_0" in out.stdout, out.stderr
        wait_for(lambda: (j := q.get(job.id)) is not None and j.state.status == "cancelled", "the cancel to be recorded")
        out = qtui("remove", short, tmp=tmp_path)
        assert out.returncode == 0 and "removed slow-q4_0" in out.stdout, out.stderr
        assert q.get(job.id) is None and not job.dir.exists()
    finally:
        for j in q.jobs():
            q.cancel(j.id)


def test_unknown_or_ambiguous_job_ids_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "d"
    q = JobQueue(data)
    jobs = [q.add(fake_job(data, FIXTURES / "ik" / "ik-tiny-kld-q8_0", f"job-{i}")) for i in range(2)]
    for j in jobs:
        q.cancel(j.id)
    common = os.path.commonprefix([j.id for j in jobs])
    assert common  # ids start with the date: the two share a prefix
    for action in ("cancel", "retry", "remove"):
        line = one_line_error(qtui(action, "no-such-job", tmp=tmp_path))
        assert line == "error: no job matches 'no-such-job' (qtui jobs lists them)", line
        line = one_line_error(qtui(action, common, tmp=tmp_path))
        assert f"{common!r} is ambiguous: it matches 2 jobs" in line, line
        assert all(j.id.rsplit("-", 1)[-1] in line for j in jobs), line
    assert [j.state.status for j in q.jobs()] == ["cancelled", "cancelled"]  # none was acted on
    # a good id next to a bad one: the good one is acted on, the exit status still says 2
    out = qtui("remove", "no-such-job", jobs[0].id, tmp=tmp_path)
    assert out.returncode == 2 and "removed job-0" in out.stdout, out.stderr
    assert [j.id for j in q.jobs()] == [jobs[1].id]


def test_retry_of_a_finished_job_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    q = JobQueue(data)
    job = q.add(fake_job(data, FIXTURES / "ik" / "ik-tiny-kld-q8_0", "q8_0"))
    Scheduler(data).run()  # the real scheduler, in this process, until the queue is empty
    assert (j := q.get(job.id)) is not None and j.state.status == "done"
    line = one_line_error(qtui("retry", job.id, tmp=tmp_path), code=1)
    assert line == "error: q8_0 is done: only failed or cancelled jobs can be retried"


# -- import: one record per log content --------------------------------------------------------
def test_importing_the_same_log_twice_keeps_one_record(tmp_path: Path) -> None:
    log = tmp_path / "q4.log"
    log.write_bytes(combined_log(FIXTURES / "llama" / "b0336" / "kld-q4_0"))
    copy = tmp_path / "renamed.log"
    copy.write_bytes(log.read_bytes())
    out = qtui("import", str(log), tmp=tmp_path)
    assert out.returncode == 0 and "imported q4.log" in out.stdout, out.stderr
    out = qtui("import", str(log), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"already imported {log} (same content)"
    out = qtui("import", str(copy), tmp=tmp_path)
    assert out.returncode == 0 and f"already imported {copy} (same content as {log})" in out.stdout, out.stdout
    records = ResultStore(tmp_path / "d").load().records
    assert len(records) == 1 and records[0].source["file"] == str(log)
    board = qtui("export", "-f", "csv", tmp=tmp_path)
    assert board.returncode == 0 and len(board.stdout.strip().splitlines()) == 2, board.stdout  # header + one row


def test_concurrent_imports_of_one_log_keep_one_record(tmp_path: Path) -> None:
    ik = FIXTURES / "ik" / "ik-tiny-kld-q8_0"
    log = tmp_path / "q8.log"
    log.write_bytes(ik.with_suffix(".err").read_bytes() + ik.with_suffix(".out").read_bytes())
    env = {**os.environ, "QTUI_DATA_DIR": str(tmp_path / "d"), "QTUI_CONFIG_DIR": str(tmp_path / "c"), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "qtui.cli", "import", str(log)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert sum("already imported" in o for o, _ in outs) == 3, outs
    assert len(ResultStore(tmp_path / "d").load().records) == 1


def test_a_record_without_content_hash_is_always_saved(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    ik = FIXTURES / "ik" / "ik-tiny-kld-q4_0"
    log = tmp_path / "a.log"
    log.write_bytes(ik.with_suffix(".out").read_bytes())
    first, second = import_log(log), import_log(log)
    assert first.source["sha256"] == second.source["sha256"] and first.id != second.id
    assert store.save_new(first) is None
    earlier = store.save_new(second)
    assert earlier is not None and earlier.id == first.id
    # a run's own record (no content hash) is never taken for a duplicate
    first.source, second.source = {"type": "qtui"}, {"type": "qtui"}
    first.id, second.id = first.id + "x", second.id + "x"
    assert store.save_new(first) is None and store.save_new(second) is None
    assert len(store.load().records) == 3


# -- import: failures worded as a run words them -----------------------------------------------
@pytest.mark.parametrize("build", BUILDS)
def test_import_names_a_failed_run_as_the_scheduler_does(tmp_path: Path, build: str) -> None:
    """The same recorded failure, run by the real scheduler and imported as a log, gets the same reason."""
    data = tmp_path / "d"
    q = JobQueue(data)
    cases = {c: FIXTURES / "llama" / build / c for c in FAILURES}
    jobs = {c: q.add(fake_job(data, path, c)) for c, path in cases.items()}
    Scheduler(data).run()
    for case, path in cases.items():
        ran = q.get(jobs[case].id)
        assert ran is not None and ran.state.status == "failed" and ran.state.reason, (case, ran)
        log = tmp_path / f"{case}.log"
        log.write_bytes(combined_log(path))
        out = qtui("import", str(log), tmp=tmp_path, data=tmp_path / "imported")
        assert out.returncode == 0 and "Traceback" not in out.stderr, (case, out.stderr)
        assert f"failed: {ran.state.reason}" in out.stdout, (case, ran.state.reason, out.stdout)
        rec = import_log(log)
        assert rec.status == "failed" and rec.failure and rec.failure["reason"] == ran.state.reason
    words = {c: (q.get(j.id).state.reason or "") for c, j in jobs.items()}  # type: ignore[union-attr]
    assert "not a GGUF file" in words["fail-not-a-model"]
    assert "models/nope.gguf" in words["fail-missing-model"]
    assert "missing.kld" in words["fail-missing-base"]


def test_import_names_the_model_a_failed_log_could_not_load(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(combined_log(FIXTURES / "llama" / "b0336" / "fail-not-a-model"))
    rec = import_log(log)
    assert rec.model["path"] == "models/not-a-model.gguf" and rec.model["label"] == "not-a-model"


def test_import_of_a_log_whose_model_is_here_but_no_gguf_says_so(tmp_path: Path) -> None:
    # The log ran fine; the file it names is no GGUF model on this machine: kept, with a note
    # in the words `qtui run` uses for such a file.
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny-Q4_0.gguf").write_bytes(b"not a model at all, just text\n" * 4)
    ik = FIXTURES / "ik" / "ik-tiny-kld-q4_0"
    log = tmp_path / "q4.log"
    log.write_bytes(ik.with_suffix(".err").read_bytes() + ik.with_suffix(".out").read_bytes())
    out = qtui("import", str(log), tmp=tmp_path)  # cwd = tmp_path: the log's relative path resolves there
    assert out.returncode == 0, out.stderr
    assert ("note: tiny/tiny-Q4_0.gguf: not a GGUF file (starts with b'not ', expected b'GGUF'); "
            "the model facts come from the log") in out.stderr, out.stderr
    assert "imported q4.log: tiny-Q4_0, kld, mean KLD" in out.stdout
    rec = ResultStore(tmp_path / "d").load().records[0]
    assert rec.model["quant"] == "Q4_0" and rec.model["bpw"] > 0  # from the log's own lines


# -- import: bad files ---------------------------------------------------------------------------
def test_bad_import_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    sock_path = tmp_path / "sock"  # a path open() cannot read, even as root
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for path, words in ((tmp_path / "nope.log", f"{tmp_path / 'nope.log'}: no such file"),
                            (tmp_path, f"{tmp_path} is a folder, not a log file"),
                            (sock_path, f"{sock_path}: cannot read it ("),
                            (text, f"{text}: no llama-perplexity output found in this file"),
                            (model, f"{model} is a GGUF model, not a llama-perplexity log")):
            line = one_line_error(qtui("import", str(path), tmp=tmp_path))
            assert line.startswith(f"error: {words}"), (path, line)
    finally:
        sock.close()
    if os.geteuid() != 0:  # root reads anything: the socket above stands in for it there
        locked = tmp_path / "locked.log"
        locked.write_text("x")
        locked.chmod(0)
        assert "Permission denied" in one_line_error(qtui("import", str(locked), tmp=tmp_path))
    assert not (tmp_path / "d" / "results").exists() or not list((tmp_path / "d" / "results").glob("*.json"))


def test_bad_files_do_not_stop_the_good_ones(tmp_path: Path) -> None:
    ik = FIXTURES / "ik" / "ik-tiny-kld-q8_0"
    good = tmp_path / "good.log"
    good.write_bytes(ik.with_suffix(".err").read_bytes() + ik.with_suffix(".out").read_bytes())
    out = qtui("import", str(tmp_path / "missing.log"), str(good), tmp=tmp_path)
    assert out.returncode == 2 and "imported good.log" in out.stdout
    assert len(ResultStore(tmp_path / "d").load().records) == 1


def test_an_unwritable_store_is_one_line(tmp_path: Path) -> None:
    ik = FIXTURES / "ik" / "ik-tiny-kld-q8_0"
    good = tmp_path / "good.log"
    good.write_bytes(ik.with_suffix(".out").read_bytes())
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    line = one_line_error(qtui("import", str(good), tmp=tmp_path, data=not_a_dir))
    assert line.startswith(f"error: cannot write to the results store {not_a_dir / 'results'}"), line
