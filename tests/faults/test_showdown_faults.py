"""`qtui run` and the readers of the queue as separate processes, with the REAL detached
scheduler and a fake llama-perplexity (a wrapper in a bin folder given with --llama-bin, that
replays recorded llama.cpp runs):

- B2: two `qtui run --detach` started at the same moment with the same base queue ONE base
  job; both sets of KLD jobs finish, a variant both asked for is measured once;
- B3: a scheduler killed with SIGKILL mid-run is started again by the next `qtui jobs`,
  `qtui jobs --watch` or `qtui results`, and the jobs finish;
- B7: a data dir that is a file, read-only or full: one line, exit 2, no job, no scheduler.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qtui.core.jobs.queue import FINISHED, JobQueue
from qtui.core.jobs.scheduler import scheduler_running
from qtui.core.results.store import ResultStore
from tests.faults.conftest import IS_ROOT, ROOT, fill_disk, kill9, scheduler_procs, wait_for
from tests.unit.gguf_builders import F16, Q4_K, Q6_K, Q8_0, dense_tensors, write_model

N_VOCAB = 64  # what the fake's base file says, so a finished base file is reusable
FIXTURES = ROOT / "tests" / "fixtures" / "llama" / "b0336"
FAKE = ROOT / "tests" / "fakes" / "fake_llama_perplexity.py"

WRAPPER = """#!{python}
import os, sys
args = sys.argv[1:]
model = os.path.basename(args[args.index("-m") + 1]) if "-m" in args else ""
case = "base" if "--kl-divergence" not in args else "kld-q8_0" if "Q8_0" in model else "kld-q4_0"
os.environ["FAKE_LLAMA_CASE"] = os.path.join({fixtures!r}, case)
os.execv({python!r}, [{python!r}, {fake!r}, *args])
"""


@pytest.fixture
def llama_bin(tmp_path: Path) -> Path:
    """A folder holding `llama-perplexity`: the fake, choosing a recorded run by the model name."""
    d = tmp_path / "llama-bin"
    d.mkdir()
    exe = d / "llama-perplexity"
    exe.write_text(WRAPPER.format(python=sys.executable, fixtures=str(FIXTURES), fake=str(FAKE)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return d


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "models"
    out = {"base": write_model(d / "m-F16.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16, embd_type=F16),
                               n_vocab=N_VOCAB, file_type=1)}
    for name, wtype, ftype in (("Q8_0", Q8_0, 7), ("Q6_K", Q6_K, 18), ("Q4_K_M", Q4_K, 15)):
        out[name] = write_model(d / f"m-{name}.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=wtype),
                                n_vocab=N_VOCAB, file_type=ftype)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 400)
    out["corpus"] = corpus
    return out


def cli_env(tmp_path: Path, data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QTUI_", "FAKE_LLAMA_"))}
    env.update(QTUI_DATA_DIR=str(data), QTUI_CACHE_DIR=str(tmp_path / "cache"), QTUI_CONFIG_DIR=str(tmp_path / "config"),
               HOME=str(tmp_path), COLUMNS="400", NO_COLOR="1", **extra)
    return env


def run_argv(models: dict[str, Path], llama_bin: Path, *variants: str) -> list[str]:
    return [sys.executable, "-m", "qtui.cli", "run", "--base", str(models["base"]), "--corpus", str(models["corpus"]),
            "-c", "128", "--chunks", "4", "--detach", "--llama-bin", str(llama_bin), *[str(models[v]) for v in variants]]


def qtui(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qtui.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)


def all_finished(q: JobQueue) -> bool:
    jobs = q.jobs()
    return bool(jobs) and all(j.state.status in FINISHED for j in jobs)


# -- B2 ------------------------------------------------------------------------------------
def test_two_runs_at_once_share_one_base_job(tmp_path: Path, data_dir: Path, models, llama_bin: Path) -> None:
    env = cli_env(tmp_path, data_dir)
    # Both plan at the same time (neither sees a base job then); the decision is taken under
    # the queue lock. The variant both name is measured once.
    procs = [subprocess.Popen(run_argv(models, llama_bin, *vs), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, stdin=subprocess.DEVNULL, cwd=ROOT)
             for vs in (("Q8_0", "Q4_K_M"), ("Q4_K_M", "Q6_K"))]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    said = " ".join(" ".join(o + e for o, e in outs).split())
    assert "skipped m-Q4_K_M.gguf: already" in said, said
    q = JobQueue(data_dir)
    wait_for("every job to finish", lambda: all_finished(q), timeout=120)
    jobs = q.jobs()
    bases = [j for j in jobs if j.spec.kind == "base"]
    assert len(bases) == 1, [j.spec.label for j in jobs]
    kld = [j for j in jobs if j.spec.kind == "kld"]
    assert sorted(j.spec.label for j in kld) == ["m-Q4_K_M.gguf", "m-Q6_K.gguf", "m-Q8_0.gguf"]
    assert all(j.spec.depends_on == bases[0].id for j in kld)
    assert [j.state.status for j in jobs] == ["done"] * 4, [(j.spec.label, j.state.status, j.state.reason) for j in jobs]
    assert sorted(r.model["label"] for r in ResultStore(data_dir).load().records if r.kind == "kld" and r.status == "done") \
        == ["m-Q4_K_M", "m-Q6_K", "m-Q8_0"]
    # The same sweep again measures nothing twice.
    again = subprocess.run(run_argv(models, llama_bin, "Q8_0", "Q6_K"), env=env, capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
    text = " ".join(again.stdout.split())
    assert again.returncode == 0 and "nothing to run" in text, again.stdout + again.stderr
    assert "skipped m-Q8_0.gguf: already measured on this setup (qtui results); --again measures it again" in text
    assert len(q.jobs()) == 4


# -- B3 ------------------------------------------------------------------------------------
def queue_and_kill_the_scheduler(tmp_path: Path, data_dir: Path, models, llama_bin: Path) -> tuple[dict[str, str], JobQueue]:
    """`qtui run --detach` a base and two variants (each run lasts about 20 * 0.15 = 3 s), then
    kill -9 the scheduler while the base runs: work is left that nobody runs."""
    env = cli_env(tmp_path, data_dir, FAKE_LLAMA_DELAY="0.15")
    res = subprocess.run(run_argv(models, llama_bin, "Q8_0", "Q4_K_M"), env=env, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    q = JobQueue(data_dir)
    wait_for("the base job to run", lambda: any(j.state.status == "running" and j.state.pid for j in q.jobs()))
    (sched,) = wait_for("the scheduler", lambda: scheduler_procs(data_dir))
    kill9(sched.pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir), timeout=10)
    assert any(j.state.status == "queued" for j in q.jobs())
    return env, q


@pytest.mark.parametrize("reader", [("jobs",), ("jobs", "--watch"), ("results",)], ids=" ".join)
def test_a_reader_restarts_a_scheduler_killed_mid_run(tmp_path: Path, data_dir: Path, models, llama_bin: Path,
                                                      reader: tuple[str, ...]) -> None:
    env, q = queue_and_kill_the_scheduler(tmp_path, data_dir, models, llama_bin)
    out = qtui(env, *reader, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the scheduler had stopped with work pending: started it again" in " ".join(out.stderr.split())
    wait_for("every job to finish", lambda: all_finished(q), timeout=120)
    assert [j.state.status for j in q.jobs()] == ["done"] * 3, [(j.spec.label, j.state.status, j.state.reason) for j in q.jobs()]


def test_a_watcher_restarts_a_scheduler_killed_while_it_watches(tmp_path: Path, data_dir: Path, models,
                                                               llama_bin: Path) -> None:
    env, q = queue_and_kill_the_scheduler(tmp_path, data_dir, models, llama_bin)
    watcher = subprocess.Popen([sys.executable, "-m", "qtui.cli", "jobs", "--watch"], env=env, cwd=ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # The watcher restarts it as it opens, then watches; kill that one too: now only the
        # watcher's periodic check can bring a scheduler back.
        (second,) = wait_for("the scheduler the watcher started", lambda: scheduler_procs(data_dir))
        assert any(j.state.status in ("queued", "running") for j in q.jobs())
        kill9(second.pid)
        out, _ = watcher.communicate(timeout=180)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, out
    assert [j.state.status for j in q.jobs()] == ["done"] * 3, [(j.spec.label, j.state.status, j.state.reason) for j in q.jobs()]


# -- B7 ------------------------------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


@contextlib.contextmanager
def bad_data_dir(kind: str, tmp_path: Path) -> Iterator[Path]:
    if kind == "a file":
        path = tmp_path / "data"
        path.write_text("not a folder\n")
        yield path
        return
    if not IS_ROOT:
        pytest.skip("mounting a read-only or tiny tmpfs needs root")
    if kind == "read-only":
        with tmpfs(tmp_path / "ro", "ro,size=1m") as d:
            yield d
        return
    with tmpfs(tmp_path / "full", "size=256k") as d:
        fill_disk(d)
        yield d


@pytest.mark.parametrize("kind,reason", [("a file", "Not a directory"), ("read-only", "Read-only file system"),
                                         ("full", "No space left on device")])
def test_an_unusable_data_dir_is_one_line_and_no_job(tmp_path: Path, models, llama_bin: Path, kind: str, reason: str) -> None:
    with bad_data_dir(kind, tmp_path) as data:
        before = sorted(p.name for p in data.rglob("*")) if data.is_dir() else None
        res = subprocess.run(run_argv(models, llama_bin, "Q8_0"), env=cli_env(tmp_path, data), capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
        assert res.returncode == 2, res.stdout + res.stderr
        assert res.stderr.strip() == f"error: cannot write to the data dir {data}: {reason}", res.stderr
        assert "Traceback" not in res.stdout + res.stderr
        after = sorted(p.name for p in data.rglob("*")) if data.is_dir() else None
        assert after == before  # not even an empty jobs folder
        assert not scheduler_procs(data)


def test_cancel_of_a_run_whose_scheduler_died_is_recorded(tmp_path: Path, data_dir: Path, models, llama_bin: Path) -> None:
    env = cli_env(tmp_path, data_dir, FAKE_LLAMA_DELAY="0.5")  # a base run of about 10 s
    res = subprocess.run(run_argv(models, llama_bin, "Q8_0"), env=env, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    q = JobQueue(data_dir)
    base = wait_for("the base job to run", lambda: next((j for j in q.jobs() if j.state.status == "running" and j.state.pid), None))
    (sched,) = wait_for("the scheduler", lambda: scheduler_procs(data_dir))
    kill9(sched.pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir), timeout=10)
    out = qtui(env, "cancel", base.id)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for("the cancel to be recorded", lambda: all_finished(q), timeout=60)
    states = {j.spec.kind: j.state.status for j in q.jobs()}
    assert states == {"base": "cancelled", "kld": "failed"}, [(j.spec.label, j.state.status, j.state.reason) for j in q.jobs()]


# -- B6 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags,words", [(("-c", "0"), "-c 0 is too small"), (("--chunks", "0"), "--chunks 0 is not a number of chunks"),
                                         (("--chunks", "-1"), "--chunks -1 is not a number of chunks")])
def test_qtui_run_refuses_a_zero_context_and_bad_chunks(tmp_path: Path, data_dir: Path, models, llama_bin: Path,
                                                        flags: tuple[str, str], words: str) -> None:
    argv = [a for a in run_argv(models, llama_bin, "Q8_0") if a not in ("-c", "128", "--chunks", "4")]
    res = subprocess.run([*argv[:4], *flags, *argv[4:]], env=cli_env(tmp_path, data_dir), capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert res.returncode == 2, res.stdout + res.stderr
    assert words in " ".join(res.stderr.split()) and "Traceback" not in res.stderr
    assert JobQueue(data_dir).jobs() == []
