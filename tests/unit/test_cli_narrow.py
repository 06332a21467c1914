"""The headless views at 80 columns, as a user at a narrow terminal runs them (`python -m qtui.cli`
in a subprocess, COLUMNS=80): no state, KLD or header cut to `…`, `q` quits `qtui jobs --watch`
and typed keys are not echoed into the live table, `qtui scan --mix` gives each mix full-width
lines, and the "This run" table is ranked by KLD with failed runs apart (not in queue order)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import stat
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from qtui.core.gguf.discovery import scan
from qtui.core.jobs.queue import JobQueue
from qtui.core.jobs.scheduler import ensure_scheduler
from tests.unit.gguf_builders import F16, Q4_K, Q8_0, dense_tensors, write_model
from tests.unit.test_cli_inputs import FIXTURES, fake_job

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "fake_llama_perplexity.py"
N_VOCAB = 64  # what the fake's base file says
# Answers as llama-perplexity would for each file: the recorded Q8_0 / Q4_0 runs, or a real failure.
WRAPPER = '''#!{python}
import os, sys
args = sys.argv[1:]
fix = {fixtures!r}
model = os.path.basename(args[args.index("-m") + 1]) if "-m" in args else ""
if "--kl-divergence" not in args:
    case = "llama/b0336/base"
elif "TRUNC" in model:
    case = "llama/b0336/fail-truncated-base"
elif "Q8_0" in model:
    case = "llama/b0336/kld-q8_0"
else:
    case = "llama/b0336/kld-q4_0"
os.environ["FAKE_LLAMA_CASE"] = os.path.join(fix, case)
os.execv({python!r}, [{python!r}, {fake!r}, *args])
'''


def env_for(tmp: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "QTUI_DATA_DIR": str(tmp / "d"),
            "QTUI_CONFIG_DIR": str(tmp / "c"), "QTUI_CACHE_DIR": str(tmp / "k"), "HOME": str(tmp),
            "COLUMNS": "80", "LINES": "24", "PYTHONPATH": str(ROOT), "TERM": "xterm"}


def qtui(*args: str, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qtui.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env_for(tmp), cwd=tmp)


def ladder(folder: Path) -> dict[str, Path]:
    """A base and three variants with the long names real files have."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = "tiny-model-instruct-v2"
    out = {"base": write_model(folder / f"{stem}-F16.gguf", n_vocab=N_VOCAB, file_type=1,
                               tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16, embd_type=F16))}
    for quant, wt in (("Q4_K_M", Q4_K), ("TRUNC-Q4_K_M", Q4_K), ("Q8_0", Q8_0)):
        out[quant] = write_model(folder / f"{stem}-{quant}.gguf", n_vocab=N_VOCAB, file_type=15,
                                 tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=wt, embd_type=Q8_0))
    return out


def fake_bin(tmp: Path) -> Path:
    bin_dir = tmp / "llama-bin"
    bin_dir.mkdir()
    script = bin_dir / "llama-perplexity"
    script.write_text(WRAPPER.format(python=sys.executable, fixtures=str(FIXTURES), fake=str(FAKE)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_scan_mix_has_full_width_lines(tmp_path: Path) -> None:
    models = tmp_path / "models"
    ladder(models)
    out = qtui("scan", "--mix", str(models), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    table = out.stdout[:out.stdout.index("Tensor types")]
    for m in scan([models]).models:
        assert f" {m.path.name} " in table  # whole names: two files of one quant must not read the same
        total = sum(s.nbytes for s in m.mix_by_type)
        expected = ", ".join(f"{s.type_name} {100 * s.nbytes / total:.1f}%" for s in m.mix_by_type)
        assert len(m.mix_by_type) >= 2 and len(expected) < 76
        # the whole mix on one line, under the file's own line
        at = [i for i, ln in enumerate(lines) if ln.strip() == m.path.name]
        assert len(at) == 1 and lines[at[0] + 1].strip() == expected, out.stdout


def test_run_at_80_columns_ranks_this_run_and_cuts_nothing(tmp_path: Path) -> None:
    files = ladder(tmp_path / "models")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    # queue order: Q4_K_M, the failing one, Q8_0; Q8_0 is the closer to the base
    out = qtui("run", "--base", str(files["base"]), str(files["Q4_K_M"]), str(files["TRUNC-Q4_K_M"]),
               str(files["Q8_0"]), "--corpus", str(corpus), "-c", "128", "--llama-bin", str(fake_bin(tmp_path)),
               tmp=tmp_path)
    assert out.returncode == 1, (out.stdout, out.stderr)  # one run failed
    text = out.stdout
    live = text[:text.index("This run")]
    assert "…" not in live, live  # the live view: whole states, KLDs and headers
    assert "KLD ± err" in live and "failed" in live and "done" in live
    board = text[text.index("This run"):]
    ranked, _, apart = board.partition("Not ranked")
    rows = [ln.split() for ln in ranked.splitlines() if re.match(r"\s*\d+\s+tiny-", ln)]
    assert [r[:2] for r in rows] == [["1", "tiny-model-instruct-v2-Q8_0"], ["2", "tiny-model-instruct-v2-Q4_K_M"]], ranked
    assert "TRUNC" not in ranked and "TRUNC" in apart and "failed" in apart


def test_jobs_watch_quits_on_q_and_does_not_echo_keys(tmp_path: Path) -> None:
    data = tmp_path / "d"
    q = JobQueue(data)
    # ~10 s of replay each: still running when q is pressed
    jobs = [q.add(fake_job(data, FIXTURES / "ik" / "ik-tiny-kld-q4_0", f"tiny-model-instruct-v2-{n}-Q4_K_M.gguf",
                           delay=0.5)) for n in ("a", "b")]
    ensure_scheduler(data, 1)
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of 80x24 as a user's
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "qtui.cli", "jobs", "--watch"], env_for(tmp_path))
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        seen = bytearray()

        def read_until(cond, what: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {seen.decode(errors='replace')}"
                if select.select([fd], [], [], 0.1)[0]:
                    try:
                        seen.extend(os.read(fd, 65536))
                    except OSError:  # the child closed the terminal: what was waited for never came
                        assert cond(), f"qtui exited before {what}: {seen.decode(errors='replace')}"
                        return
        read_until(lambda: b"running" in seen and b"KLD" in seen, "the live table")
        os.write(fd, b"zzz")
        mark = len(seen)
        read_until(lambda: len(seen) > mark + 200, "the next refreshes")
        os.write(fd, b"q")
        read_until(lambda: b"Stopped watching" in seen, "q to stop the watch", timeout=10)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "qtui jobs --watch did not exit after q"
            time.sleep(0.05)
        pid = 0
        assert os.waitstatus_to_exitcode(done[1]) == 0
        # q stopped the watching, not the runs: they go on
        assert {q.get(j.id).state.status for j in jobs} <= {"running", "queued"}
        shown = seen.decode(errors="replace")
        assert "zzz" not in shown  # no echo: the keys do not land in (and scroll) the live table
        assert "runn…" not in shown and "KLD ± e…" not in shown and "running" in shown
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
        for j in q.jobs():
            q.cancel(j.id)


def test_markdown_footer_counts_only_the_runs_in_its_table(tmp_path: Path) -> None:
    """`qtui export -f md` on a setup with a cancelled run: the table has the finished runs and the
    footer's run count is theirs (it used to count the cancelled run too)."""
    from qtui.core.results.store import ResultRecord, ResultStore

    def run(name: str, kld: float, status: str = "done") -> ResultRecord:
        return ResultRecord(
            id=f"20260101-000000-{name}", kind="kld", status=status,  # type: ignore[arg-type]
            model={"path": f"/m/{name}.gguf", "label": name, "quant": name, "size_bytes": int(kld * 1e10)},
            stats={"kld_mean": kld} if status == "done" else {}, base={"label": "m-F16", "file": "b.kld", "key": "b.kld"},
            corpus={"sha256": "ab" * 32}, ctx=512, chunks=30, llama={"fork": "llama.cpp", "version": "b1"}, ended_at=1.0,
            failure=None if status == "done" else {"reason": "cancelled by the user"})

    store = ResultStore(tmp_path / "d")
    for rec in (run("Q8_0", 0.01), run("Q6_K", 0.02), run("Q2_K", 0.0, status="cancelled")):
        store.save(rec)
    out = qtui("export", "-f", "md", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    body = [ln for ln in out.stdout.splitlines() if re.match(r"\| \d+ \|", ln)]
    assert len(body) == 2 and "Q2_K" not in out.stdout
    footer = [ln for ln in out.stdout.splitlines() if "run(s):" in ln]
    assert [ln.split(" run(s)")[0] for ln in footer] == ["- 2"], footer
