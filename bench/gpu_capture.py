"""Capture what qtui's GPU panel shows while a real run is on the GPU (for the closing note).

Opens the real app (make_app) headless on DATA_DIR, samples for SECONDS, and writes every
panel text capture plus SVG screenshots of the Runs and Leaderboard tabs into OUT.

    python bench/gpu_capture.py MODELS_DIR DATA_DIR OUT [SECONDS] [RUNNING]

The Runs tab screenshot is taken once RUNNING jobs (default 1) run at once, 6 s in.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.ui.app import make_app
from qtui.ui.widgets.gpu_panel import GpuPanel


async def capture(models: Path, data: Path, out: Path, seconds: float, want: int) -> None:
    app = make_app(dirs=[models], data_dir=data)
    texts: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")  # the Runs tab: queue, live run panel
        t0 = time.time()
        shot = False
        while time.time() - t0 < seconds:
            await pilot.pause(1.0)
            running = [j for j in JobQueue(data).jobs() if j.state.status == "running"]
            panel = app.query_one(GpuPanel)
            label = ", ".join(f"{j.spec.label} (GPUs {','.join(map(str, j.state.gpus or [])) or '-'})" for j in running) or "(no job running)"
            texts.append(f"--- t={time.time() - t0:5.1f}s  job: {label}\n{panel.as_text(compact=False)}")
            if len(running) >= want and not shot and time.time() - t0 > 6:
                app.save_screenshot(filename="runs-tab.svg", path=str(out))
                shot = True
            jobs = JobQueue(data).jobs()
            if jobs and not running and all(j.state.status in ("done", "failed", "cancelled") for j in jobs):
                break
        await pilot.press("3")
        await pilot.pause(1.5)
        app.save_screenshot(filename="leaderboard-tab.svg", path=str(out))
    (out / "gpu_panel.txt").write_text("\n".join(texts) + "\n")
    print("\n".join(texts[-3:]))


if __name__ == "__main__":
    models, data, out = map(Path, sys.argv[1:4])
    out.mkdir(parents=True, exist_ok=True)
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 120
    asyncio.run(capture(models, data, out, seconds, int(sys.argv[5]) if len(sys.argv) > 5 else 1))
