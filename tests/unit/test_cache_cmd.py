"""`qtui cache`: list the cached base log-prob files, remove them by name or by age, and never
one a queued or running job needs. Run as a user runs it (`python -m qtui.cli` in a
subprocess) on real, structurally valid base files."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.llama.basefile import window_path
from tests.helpers import one_line_error, run_qtui, write_synthetic_base_file

DAY = 86400.0


def qtui(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return run_qtui(*args, tmp=tmp, columns="400", path=os.environ.get("PATH", "/usr/bin:/bin"), cwd=tmp)


def make_base(tmp: Path, model: str, ctx: int, chunks: int, key: str, used_days_ago: float,
              windows: int = 0) -> Path:
    """A base file as a finished run leaves it: the file, its metadata, maybe windows."""
    folder = tmp / "k" / "bases"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}.c{ctx}.n{chunks}.{key}.kld"
    write_synthetic_base_file(path, ctx, 8, chunks)
    meta = {"base": {"path": f"/models/{model}.gguf", "label": model, "file": str(path)},
            "corpus": {"path": "/corpora/wiki.test.raw", "bytes": 1000, "sha256": key * 4},
            "ctx": ctx, "n_vocab": 8, "n_chunk": chunks, "job_id": "j"}
    Path(str(path) + ".json").write_text(json.dumps(meta))
    files = [path, Path(str(path) + ".json")]
    for i in range(windows):
        w = window_path(path, i, i + 1)
        write_synthetic_base_file(w, ctx, 8, 1)
        files.append(w)
    when = time.time() - used_days_ago * DAY
    for f in files:
        os.utime(f, (when, when))
    return path


def sizes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_listing_shows_each_base_with_its_windows_and_the_total(tmp_path: Path) -> None:
    a = make_base(tmp_path, "Qwen3-8B-BF16", 32, 3, "aaaa1111", used_days_ago=3, windows=2)
    b = make_base(tmp_path, "gemma-3-270m", 16, 4, "bbbb2222", used_days_ago=0)
    out = qtui("cache", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == a.name and lines[2] == b.name  # windows are not bases of their own
    assert len(lines) == 5, out.stdout
    assert "model Qwen3-8B-BF16.gguf" in lines[1] and "corpus wiki.test.raw (aaaa1111)" in lines[1]
    assert "ctx 32" in lines[1] and "3 chunks" in lines[1] and "(3 d ago)" in lines[1] and "2 windows" in lines[1]
    assert "ctx 16" in lines[3] and "4 chunks" in lines[3] and "(today)" in lines[3]
    from qtui.core.fsutil import human_bytes
    assert human_bytes(sizes(a)) in lines[1] and human_bytes(sizes(b)) in lines[3]
    assert lines[4].startswith(f"total: {human_bytes(sizes(a) + sizes(b))} in 2 base files")
    paths_out = qtui("paths", tmp=tmp_path)
    line = next(x for x in paths_out.stdout.splitlines() if "base files:" in x)
    assert line.endswith(f"({human_bytes(sizes(a) + sizes(b))} in 2 base files)"), line


def test_rm_by_prefix_removes_the_file_its_metadata_and_windows(tmp_path: Path) -> None:
    a1 = make_base(tmp_path, "Qwen3-8B-BF16", 32, 3, "aaaa1111", used_days_ago=1, windows=1)
    a2 = make_base(tmp_path, "Qwen3-8B-BF16", 16, 2, "cccc3333", used_days_ago=1)
    b = make_base(tmp_path, "gemma-3-270m", 16, 4, "bbbb2222", used_days_ago=1)
    out = qtui("cache", "rm", "Qwen3-8B", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"removed {a1.name}" in out.stdout and f"removed {a2.name}" in out.stdout
    left = sorted(p.name for p in b.parent.iterdir())
    assert left == [b.name, b.name + ".json"], left
    # a name that matches nothing: one line, exit 2, and nothing removed even beside a good one
    line = one_line_error(qtui("cache", "rm", b.name, "no-such-base", tmp=tmp_path))
    assert "no base file" in line and "'no-such-base'" in line, line
    assert b.exists()
    line = one_line_error(qtui("cache", "prune", "--older-than", "-1", tmp=tmp_path))
    assert "--older-than -1" in line, line


def test_prune_removes_only_bases_unused_for_that_long(tmp_path: Path) -> None:
    old = make_base(tmp_path, "old-model", 16, 2, "aaaa1111", used_days_ago=40)
    # an old file whose window was read yesterday was used yesterday
    win = make_base(tmp_path, "windowed", 16, 3, "bbbb2222", used_days_ago=40, windows=1)
    w = window_path(win, 0, 1)
    os.utime(w, (time.time() - DAY, time.time() - 40 * DAY))
    fresh = make_base(tmp_path, "fresh-model", 16, 2, "cccc3333", used_days_ago=2)
    out = qtui("cache", "prune", "--older-than", "30", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"removed {old.name}" in out.stdout, out.stdout
    assert not old.exists() and not Path(str(old) + ".json").exists()
    assert win.exists() and w.exists() and fresh.exists()
    out = qtui("cache", "prune", "--older-than", "1.5", tmp=tmp_path)
    assert out.returncode == 0 and f"removed {fresh.name}" in out.stdout, out.stdout
    assert win.exists() and not fresh.exists()


def test_a_base_a_queued_or_running_job_needs_is_kept(tmp_path: Path) -> None:
    used = make_base(tmp_path, "busy", 16, 2, "aaaa1111", used_days_ago=50, windows=1)
    running = make_base(tmp_path, "busy-too", 16, 2, "cccc3333", used_days_ago=50)
    free = make_base(tmp_path, "idle", 16, 2, "bbbb2222", used_days_ago=50)
    q = JobQueue(tmp_path / "d")
    # a queued screening job reads only a window of `used`; it names the window in its argv
    q.add(JobSpec(kind="kld", argv=["llama-perplexity", "--kl-divergence-base", str(window_path(used, 0, 1))]))
    job = q.add(JobSpec(kind="kld", argv=["llama-perplexity"], base={"file": str(running)}))
    q.update(job.id, status="running")
    done = q.add(JobSpec(kind="kld", argv=["llama-perplexity", "--kl-divergence-base", str(free)]))
    q.update(done.id, status="done")  # a finished job needs nothing
    out = qtui("cache", "rm", "busy", tmp=tmp_path)
    assert out.returncode == 1, (out.stdout, out.stderr)
    errs = out.stderr.strip().splitlines()
    assert sorted(errs) == sorted(f"kept {p.name}: a queued or running job needs it" for p in (used, running)), errs
    assert used.exists() and window_path(used, 0, 1).exists() and running.exists()
    out = qtui("cache", "prune", "--older-than", "10", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"removed {free.name}" in out.stdout and not free.exists()
    assert used.exists() and running.exists() and len(out.stderr.strip().splitlines()) == 2
