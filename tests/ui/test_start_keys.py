"""N and P start the chosen showdown with more than the KLD runs: N also queues the noise floor
(as `qtui run --floor`: the base against its own log-probs with half the batch, after the base
job), P a llama-bench speed run per variant (as `qtui run --speed`)."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from qtui.core.llama.tools import LlamaTools
from qtui.ui.screens.details import InfoScreen
from qtui.ui.widgets.model_list import ModelList
from qtui.ui.widgets.queue import QueueView
from tests.ui.conftest import ready, screen_text, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bench" / "b0336"


async def choose_all_and_press(pilot, key: str) -> None:
    """Once the scan is done: choose every variant (a), then the start key."""
    await ready(pilot)
    ml = pilot.app.screen.query_one(ModelList)
    await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
    await pilot.press("a", key)


async def test_N_queues_the_noise_floor_with_the_showdown(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(120, 30)) as pilot:
        await choose_all_and_press(pilot, "N")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 4, what="the base, 2 variants and the floor queued")
        base = next(j for j in queue.jobs if j.spec.kind == "base")
        floors = [j for j in queue.jobs if j.spec.model.get("floor")]
        assert len(floors) == 1
        floor = floors[0]
        assert floor.spec.depends_on == base.id and floor.spec.label.startswith("noise floor")
        # the model measured is the base itself, with half the default batch and micro-batch
        assert floor.spec.model.get("path") == base.spec.model.get("path")
        argv = floor.spec.argv
        assert argv[argv.index("-b") + 1] == "1024" and argv[argv.index("-ub") + 1] == "256"


async def test_s_queues_no_floor(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(120, 30)) as pilot:
        await choose_all_and_press(pilot, "s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="the base and 2 variants queued")
        assert not any(j.spec.model.get("floor") for j in queue.jobs)


def with_bench(tools: LlamaTools, tmp_path: Path) -> LlamaTools:
    """The fake llama-perplexity, beside a llama-bench that answers --help as the real one did
    (recorded) and is never run here: the test looks at what is queued."""
    bench = tmp_path / "llama-bench"
    help_out = FIXTURES / "help.out"
    bench.write_text(f"#!/bin/sh\ncat '{help_out}'\n")
    bench.chmod(bench.stat().st_mode | stat.S_IXUSR)
    return replace(tools, bench=bench)


async def test_P_queues_a_speed_job_per_variant(app_factory, models_dir: Path, fake_tools: LlamaTools,
                                                tmp_path: Path) -> None:
    app = app_factory([models_dir], tools=with_bench(fake_tools, tmp_path))
    async with app.run_test(size=(120, 30)) as pilot:
        await choose_all_and_press(pilot, "P")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 5, what="the base, 2 variants and 2 speed runs queued")
        speed = [j for j in queue.jobs if j.spec.kind == "speed"]
        kld = [j for j in queue.jobs if j.spec.kind == "kld"]
        assert sorted(j.spec.model["path"] for j in speed) == sorted(j.spec.model["path"] for j in kld)
        assert all(j.spec.argv[0].endswith("llama-bench") and "jsonl" in j.spec.argv for j in speed)


async def test_P_without_llama_bench_says_why(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])  # the fake build has no llama-bench
    async with app.run_test(size=(120, 30)) as pilot:
        await choose_all_and_press(pilot, "P")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen) and "no llama-bench" in screen_text(app),
                       what="the refusal, saying why")
        assert not app.screen_stack[0].query_one(QueueView).jobs
