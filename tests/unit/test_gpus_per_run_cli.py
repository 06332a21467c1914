"""`qtui run --gpus-per-run N|auto` and the config's gpus_per_run reach every queued job's spec
(a queued job keeps what it was asked for), and a wrong value is one sentence."""

from __future__ import annotations

import os
from pathlib import Path

from qtui.core.jobs.queue import FINISHED, JobQueue
from tests.helpers import one_line_error, run_qtui, wait_until
from tests.unit.test_cli_narrow import fake_bin, ladder


def all_finished(data: Path) -> bool:
    return all(j.state.status in FINISHED for j in JobQueue(data).jobs())


def queue_run(tmp_path: Path, data: Path, *extra: str, config: str | None = None) -> tuple[int, str]:
    files = ladder(tmp_path / "models")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    if config is not None:
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / "config.toml").write_text(config)
    out = run_qtui("run", "--detach", "--base", str(files["base"]), str(files["Q4_K_M"]), str(files["Q8_0"]),
                   "--corpus", str(corpus), "-c", "128", "--llama-bin", str(fake_bin(tmp_path)), *extra,
                   tmp=tmp_path, data=data, columns="300", path=os.environ.get("PATH", "/usr/bin:/bin"), cwd=tmp_path)
    return out.returncode, out.stdout + out.stderr


def test_the_flag_is_recorded_on_every_job(tmp_path: Path) -> None:
    data = tmp_path / "d"
    code, text = queue_run(tmp_path, data, "--gpus-per-run", "2", config='gpus_per_run = "auto"\n')
    assert code == 0, text
    try:
        jobs = JobQueue(data).jobs()
        assert sorted(j.spec.kind for j in jobs) == ["base", "kld", "kld"]
        assert {j.spec.gpus_per_run for j in jobs} == {2}  # the flag wins over the config
    finally:  # the detached scheduler runs the fake's jobs; let it finish before tmp goes
        wait_until(lambda: all_finished(data), 60, "the queued jobs to finish")


def test_the_config_value_and_a_wrong_flag(tmp_path: Path) -> None:
    data = tmp_path / "d"
    code, text = queue_run(tmp_path, data, config='gpus_per_run = "auto"\n')
    assert code == 0, text
    try:
        assert {j.spec.gpus_per_run for j in JobQueue(data).jobs()} == {"auto"}
    finally:
        wait_until(lambda: all_finished(data), 60, "the queued jobs to finish")
    files = ladder(tmp_path / "models")
    out = run_qtui("run", "--detach", "--base", str(files["base"]), str(files["Q8_0"]), "--gpus-per-run", "two",
                   tmp=tmp_path, data=tmp_path / "d2", columns="300")
    assert one_line_error(out).endswith("--gpus-per-run two is not a number of GPUs: give 1 to 64, or auto (the fewest "
                                        "GPUs whose free memory holds the run)")
    assert JobQueue(tmp_path / "d2").jobs() == []
