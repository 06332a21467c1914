"""`qtui demo --headless --tiny` end to end on the real llama.cpp tools: the demo builds a typed
showdown request and runs it through the same service and live view as `qtui run`. A second
demo reuses the cached base log-probs and measures the ladder again (the demo is there to
show a live run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.core.results.store import ResultStore
from qtui.demo import TINY_LADDER


def demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qtui.cli", "demo", "--headless", "--tiny", "--chunks", "4"],
                          env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_headless_demo_runs_the_ladder_twice_on_one_base(llama_tools, tmp_path: Path) -> None:
    # QTUI_LLAMA_BIN names the build under test: the demo uses it rather than building its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    env.update(QTUI_DATA_DIR=str(tmp_path / "data"), QTUI_CACHE_DIR=str(tmp_path / "cache"),
               QTUI_CONFIG_DIR=str(tmp_path / "config"), QTUI_LLAMA_BIN=str(llama_tools.bin_dir),
               COLUMNS="250", NO_COLOR="1")
    first = demo(env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "generating base log-probs" in first.stdout and "This run" in first.stdout
    second = demo(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reusing the base log-probs" in second.stdout and "skipped" not in second.stdout
    jobs = JobQueue(tmp_path / "data").jobs()
    assert [j.spec.kind for j in jobs].count("base") == 1
    assert all(j.state.status == "done" for j in jobs), [(j.spec.label, j.state.reason) for j in jobs]
    kld = [r for r in ResultStore(tmp_path / "data").load().records if r.kind == "kld" and r.status == "done"]
    assert len(kld) == 2 * len(TINY_LADDER)
    assert all(r.ctx == 128 and r.argv[-2:] == ["-b", "512"] for r in kld)  # the demo's own settings reached the runs
