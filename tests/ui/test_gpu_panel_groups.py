"""The GPU panel and `qtui jobs` say which job holds which GPU (JobState.gpus)."""

from __future__ import annotations

from pathlib import Path

from qtui.core.gpu import GpuProcess
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.headless import gpu_cell
from qtui.ui.widgets.gpu_panel import GpuPanel
from tests.helpers import run_qtui
from tests.ui.test_widgets import GIB, PanelApp, gpu, panel_text, snapshot


async def test_each_gpu_names_the_job_that_holds_it() -> None:
    app = PanelApp(compact=False)
    async with app.run_test(size=(110, 30)) as pilot:
        panel = app.query_one(GpuPanel)
        snap = snapshot(*(gpu(i, "NVIDIA H200", 40.0, 140.0, procs=(GpuProcess(100 + i, 30 * GIB),)) for i in range(3)))
        panel.show(snap, {100, 101}, {0: "Q4_K_M.gguf", 1: "Q4_K_M.gguf", 2: "Q8_0.gguf"})
        await pilot.pause()
        lines = panel_text(panel).splitlines()
        assert "GPU 0 NVIDIA H200 · Q4_K_M.gguf" in lines[0] and "GPU 1 NVIDIA H200 · Q4_K_M.gguf" in lines[2]
        assert "GPU 2 NVIDIA H200 · Q8_0.gguf" in lines[4]
        panel.show(snap, set(), {})  # nothing held: no names
        await pilot.pause()
        assert "·" not in panel_text(panel)


async def test_compact_lines_show_the_holder_instead_of_the_card_name() -> None:
    app = PanelApp(compact=True)
    async with app.run_test(size=(100, 24)) as pilot:
        panel = app.query_one(GpuPanel)
        panel.show(snapshot(gpu(0, "NVIDIA H200", 40.0, 140.0), gpu(1, "NVIDIA H200", 1.0, 140.0)), set(), {0: "Q8_0.gguf"})
        await pilot.pause()
        first, second = panel_text(panel).splitlines()
        assert first.startswith("0 Q8_0.gguf ") and second.startswith("1 H200 ")


def test_qtui_jobs_lists_the_gpus_each_job_held(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "d")
    a = q.add(JobSpec(kind="kld", argv=["x"], label="Q4_K_M.gguf"))
    b = q.add(JobSpec(kind="kld", argv=["x"], label="Q8_0.gguf", gpus_per_run=2))
    q.update(a.id, status="done", gpus=[2, 3])
    q.update(b.id, status="cancelled")
    out = run_qtui("jobs", tmp=tmp_path, columns="120")
    assert out.returncode == 0, out.stderr
    header, row_a, row_b = out.stdout.splitlines()[:3]
    assert "GPUs" in header and "Q4_K_M.gguf" in row_a and "2,3" in row_a and "2,3" not in row_b
    queued = q.add(JobSpec(kind="kld", argv=["x"], gpus_per_run="auto"))
    assert gpu_cell(queued) == "wants auto" and gpu_cell(q.get(b.id)) == ""  # type: ignore[arg-type]


def test_qtui_jobs_without_gpus_has_no_gpu_column(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "d")
    a = q.add(JobSpec(kind="kld", argv=["x"], label="Q4_K_M.gguf", gpus_per_run=1))
    q.update(a.id, status="done")
    out = run_qtui("jobs", tmp=tmp_path, columns="120")
    assert out.returncode == 0 and "GPUs" not in out.stdout and "Q4_K_M.gguf" in out.stdout
