"""--base-args: the base run's own llama arguments (a BF16 base rarely fits where its quants
do, so it needs its own -ngl/-ot/-ncmoe), from the config, `qtui run` and the request.

The base job uses them INSTEAD of the llama args; the KLD jobs and the noise floor keep the
llama args; context, batch and chunks stay those of the KLD runs (carried over, or refused
when the base args set them otherwise); the base file's key does not move.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qtui.core.config import Config, load_config, save_config
from qtui.core.gguf.model_info import model_info
from qtui.core.jobs.queue import FINISHED, JobQueue
from qtui.core.results.store import ResultRecord
from qtui.core.showdown.plan import RunRefused, base_key, base_run_args, cached_base_path, file_sha256
from qtui.core.showdown.request import full_run_request
from qtui.core.showdown.service import Showdown
from tests.helpers import flag, run_qtui, wait_until
from tests.unit.test_cli_narrow import fake_bin, ladder
from tests.unit.test_showdown_service import env, request  # noqa: F401 (env is a fixture)


# -- config ----------------------------------------------------------------------------------
def test_config_base_args_as_a_command_line_or_a_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QTUI_CONFIG_DIR", str(tmp_path / "cfg"))
    p = tmp_path / "config.toml"
    p.write_text('llama_args = "-ngl 99"\nbase_args = "-ngl 20 -ot exps=CPU"\n')
    cfg, problems = load_config(p)
    assert problems == [] and cfg.base_args == ["-ngl", "20", "-ot", "exps=CPU"] and cfg.llama_args == ["-ngl", "99"]
    p.write_text('base_args = ["-ngl", 20]\n')
    assert load_config(p)[0].base_args == ["-ngl", "20"]
    # the same checks as llama_args: a bad value falls back to none, with the line
    p.write_text('ctx = 256\nbase_args = {a = 1}\n')
    cfg, problems = load_config(p)
    assert cfg.base_args == [] and cfg.ctx == 256
    assert problems == ["config.toml line 2: base_args must be a list of strings or one string of arguments, using []"]
    save_config(Config(base_args=["-ngl", "0"]))
    assert load_config()[0].base_args == ["-ngl", "0"]


# -- the plan's rule -------------------------------------------------------------------------
def test_base_run_args_carry_context_and_batch_over_and_refuse_others() -> None:
    # placement only: the KLD runs' -b and -ub are carried over, nothing else of theirs
    assert base_run_args(["-ngl", "20"], ["-ngl", "99", "-b", "512", "-fa", "on"], 512, None) == \
        ["-ngl", "20", "-b", "512"]
    # the same values, given again: fine, nothing added
    assert base_run_args(["-ngl", "0", "-c", "256", "-b", "2048"], [], 256, 4) == ["-ngl", "0", "-c", "256", "-b", "2048"]
    with pytest.raises(RunRefused) as exc:
        base_run_args(["-ngl", "20", "-c", "1024", "-ub", "256"], ["-b", "1024"], 512, None)
    assert len(exc.value.problems) == 1
    said = exc.value.problems[0]
    assert "-c 1024 where the KLD runs use -c 512" in said and "-ub 256 where the KLD runs use -ub 512" in said
    assert said.startswith("the base args set") and said.endswith(".") and said.count(". ") == 0
    with pytest.raises(RunRefused, match="--chunks 10 where the run uses every chunk"):
        base_run_args(["--chunks", "10"], [], 512, None)
    with pytest.raises(RunRefused, match="-b 512 where the KLD runs use -b 2048"):
        base_run_args(["--batch-size", "512"], [], 512, None)


# -- the service: what is queued ---------------------------------------------------------------
def test_the_base_job_runs_with_base_args_and_the_kld_jobs_without(env) -> None:  # noqa: F811
    req = request(env, "q8", "q4", llama_args=["-ngl", "99", "-b", "512"], base_args=["-ngl", "20", "-ot", "exps=CPU"],
                  floor=True)
    queued = Showdown(env["data"]).start(req, env["tools"])
    base = queued.base_job
    assert base is not None
    argv = base.spec.argv
    assert flag(argv, "-ngl") == "20" and flag(argv, "-ot") == "exps=CPU" and flag(argv, "-b") == "512"
    assert "99" not in argv
    assert len(queued.kld_jobs) == 3  # the floor and two variants
    for job in queued.kld_jobs:
        assert flag(job.spec.argv, "-ngl") == "99" and "-ot" not in job.spec.argv, job.spec.argv
    # the base file is the one a run without base args makes and reuses: offload is not identity
    info = model_info(env["base"])
    key = base_key(info, file_sha256(env["corpus"]), 128, 4)
    assert base.spec.output == str(cached_base_path(info, key, 128, 4)) and base.spec.base["key"] == key


def test_base_args_that_change_the_context_are_refused_with_nothing_queued(env) -> None:  # noqa: F811
    req = request(env, "q8", base_args=["-ngl", "20", "-c", "512"])  # the run is -c 128
    with pytest.raises(RunRefused) as exc:
        Showdown(env["data"]).start(req, env["tools"])
    assert any("-c 512 where the KLD runs use -c 128" in p for p in exc.value.problems)
    assert JobQueue(env["data"]).jobs() == []


def test_a_full_run_request_passes_the_base_args_on() -> None:
    rec = ResultRecord(id="r", kind="kld", status="done", model={"path": "/m/x-Q4_K_M.gguf"},
                       base={"path": "/m/x-F16.gguf", "file": "/cache/b.kld"}, ctx=256)
    req = full_run_request(rec, ("-ngl", "99"), ("-ngl", "10"))
    assert req.llama_args == ("-ngl", "99") and req.base_args == ("-ngl", "10")


# -- qtui run --base-args ----------------------------------------------------------------------
def queued_argvs(data: Path) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for job in JobQueue(data).jobs():
        out.setdefault(job.spec.kind, []).append(list(job.spec.argv))
    return out


def all_finished(data: Path) -> bool:
    return all(j.state.status in FINISHED for j in JobQueue(data).jobs())


def test_cli_base_args_reach_the_base_job_only(tmp_path: Path) -> None:
    files = ladder(tmp_path / "models")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    data = tmp_path / "d"
    out = run_qtui("run", "--detach", "--base", str(files["base"]), str(files["Q4_K_M"]), str(files["Q8_0"]),
                   "--corpus", str(corpus), "-c", "128", "--llama-bin", str(fake_bin(tmp_path)),
                   "--base-args", "-ngl 20 -ot exps=CPU", "--", "-ngl", "99", tmp=tmp_path, data=data, columns="200",
                   path=os.environ.get("PATH", "/usr/bin:/bin"), cwd=tmp_path)
    assert out.returncode == 0, (out.stdout, out.stderr)
    try:
        argvs = queued_argvs(data)
        [base] = argvs["base"]
        assert flag(base, "-ngl") == "20" and flag(base, "-ot") == "exps=CPU" and "99" not in base
        assert len(argvs["kld"]) == 2
        for kld in argvs["kld"]:
            assert flag(kld, "-ngl") == "99" and "-ot" not in kld and "exps=CPU" not in kld
    finally:  # the detached scheduler runs the fake's jobs; let it finish before tmp goes
        wait_until(lambda: all_finished(data), 60, "the queued jobs to finish")


def test_cli_base_args_from_the_config_and_a_refusal(tmp_path: Path) -> None:
    files = ladder(tmp_path / "models")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.toml").write_text('base_args = "-ngl 5 -b 256"\n')
    data = tmp_path / "d"
    common = ("run", "--detach", "--base", str(files["base"]), str(files["Q4_K_M"]), "--corpus", str(corpus),
              "-c", "128", "--llama-bin", str(fake_bin(tmp_path)))
    kw = {"tmp": tmp_path, "data": data, "columns": "300", "path": os.environ.get("PATH", "/usr/bin:/bin"), "cwd": tmp_path}
    out = run_qtui(*common, **kw)  # type: ignore[arg-type]
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.stdout, out.stderr)
    assert "the base args set -b 256 where the KLD runs use -b 2048" in out.stderr, out.stderr
    assert JobQueue(data).jobs() == []
    # '' on the command line: the base runs with the llama args, as the variants do
    out = run_qtui(*common, "--base-args", "", "--", "-ngl", "7", **kw)  # type: ignore[arg-type]
    assert out.returncode == 0, (out.stdout, out.stderr)
    try:
        [base] = queued_argvs(data)["base"]
        assert flag(base, "-ngl") == "7" and "-b" not in base
    finally:
        wait_until(lambda: all_finished(data), 60, "the queued jobs to finish")
    # a --base-args that is not a command line: one line, exit 2
    out = run_qtui(*common, "--base-args", "-ngl 'x", **kw)  # type: ignore[arg-type]
    assert out.returncode == 2 and "--base-args" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
