"""The speed job's llama-bench side: the jsonl parser on real recorded output, and the
translation of llama-perplexity's arguments into llama-bench's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtui.core.llama.bench import (
    BenchArgsError,
    BenchStyle,
    bench_style,
    parse_bench,
    speed_argv,
    split_speed_args,
    translate_args,
)
from qtui.core.llama.tools import LlamaTools

FIX = Path(__file__).resolve().parents[1] / "fixtures"
BENCH = FIX / "bench" / "b0336"
BUILDS = ("b0336", "b0336-cuda", "b0316")


def _case(folder: Path, name: str) -> tuple[bytes, bytes, int]:
    meta = json.loads((folder / f"{name}.json").read_text())
    return (folder / f"{name}.out").read_bytes(), (folder / f"{name}.err").read_bytes(), meta["exit_code"]


@pytest.mark.parametrize("build", BUILDS)
def test_pp_and_tg_from_three_real_builds(build: str) -> None:
    out, err, code = _case(FIX / "llama" / build, "bench-jsonl")
    lines = [json.loads(x) for x in out.decode().splitlines()]
    res = parse_bench(out, err, code)
    assert res.failed is None
    assert res.pp is not None and res.tg is not None
    assert (res.pp.n_prompt, res.pp.n_gen, res.tg.n_prompt, res.tg.n_gen) == (64, 0, 0, 16)
    assert res.pp.avg_ts == pytest.approx(lines[0]["avg_ts"]) and res.tg.stddev_ts == pytest.approx(lines[1]["stddev_ts"])
    assert res.pp.samples == 2 and res.pp.name == "pp64" and res.tg.name == "tg16"
    assert res.info["backends"] == lines[0]["backends"]
    stats = res.stats()
    assert stats["pp_ts"] == res.pp.avg_ts and stats["tg_ts"] == res.tg.avg_ts
    assert (stats["pp_tokens"], stats["tg_tokens"]) == (64, 16)
    assert [t["name"] for t in stats["tests"]] == ["pp64", "tg16"]


def test_recorded_one_thread_run() -> None:
    res = parse_bench(*_case(BENCH, "pp-tg-t1"))
    assert res.failed is None and res.info["n_threads"] == 1
    assert res.pp is not None and res.pp.n_prompt == 32 and res.tg is not None and res.tg.n_gen == 8
    assert res.pp.avg_ts > res.tg.avg_ts > 0  # a batch of prompt tokens is faster per token than generation


def test_combined_test_is_neither_pp_nor_tg() -> None:
    res = parse_bench(*_case(BENCH, "pg"))
    assert res.failed is None
    assert [t.name for t in res.tests] == ["pp16+tg4"]
    assert res.pp is None and res.tg is None and "pp_ts" not in res.stats()


def test_missing_model_is_one_sentence_with_llama_benchs_words() -> None:
    res = parse_bench(*_case(BENCH, "missing-model"))
    assert res.failed == "llama-bench exited with status 1: llama_bench: error: failed to load model 'models/missing.gguf'"


def test_unknown_option_names_it() -> None:
    res = parse_bench(*_case(BENCH, "bad-option"))
    assert res.failed is not None and "--kl-divergence" in res.failed and "\n" not in res.failed


def test_killed_and_empty_and_truncated_and_malformed() -> None:
    out, err, _ = _case(FIX / "llama" / "b0336", "bench-jsonl")
    assert parse_bench(out, err, 137).failed == "llama-bench was killed (signal 9) before it finished"
    assert parse_bench(b"", b"", 0).failed == "llama-bench printed no test results (no output at all)"
    cut = out[: len(out.splitlines()[0]) + 40]
    assert parse_bench(cut, b"", None).failed == "llama-bench's output ends in the middle of test 2 (line 2 is cut off)"
    junk = b"| model | size |\n" + out
    assert parse_bench(junk, b"", 0).failed == "llama-bench printed a line that is not JSON (line 1: '| model | size |')"
    first = json.loads(out.splitlines()[0])
    first["avg_ts"] = "fast"
    bad = json.dumps(first).encode() + b"\n"
    assert parse_bench(bad, b"", 0).failed == "llama-bench's test on line 1 is not usable: avg_ts is 'fast', not a speed"
    assert parse_bench(b"[1, 2]\n", b"", 0).failed == "llama-bench printed list on line 1, not a test result"


def test_fa_style_from_real_help_and_from_the_older_spelling() -> None:
    help_text = (BENCH / "help.out").read_text()
    assert bench_style(help_text) == BenchStyle(fa_words=True)
    # llama-bench before its -fa became on|off|auto (the b0316 build's era) listed 0|1
    assert bench_style("  -fa, --flash-attn <0|1>                  (default: 0)\n") == BenchStyle(fa_words=False)


def test_translation_keeps_speed_options_and_drops_kld_ones() -> None:
    tr = translate_args(["-c", "512", "--chunks", "20", "-b", "1024", "-ngl", "99", "-fa", "on", "-t", "8",
                         "--kl-divergence", "-ot", "exps=CPU,blk\\.0=CPU", "-ts", "3,1", "--no-kv-offload"])
    assert tr.args == ["-ngl", "99", "-fa", "on", "-t", "8", "-ot", "exps=CPU;blk\\.0=CPU", "-ts", "3/1", "-nkvo", "1"]
    assert tr.dropped == []


def test_translation_for_an_older_llama_bench() -> None:
    old = BenchStyle(fa_words=False)
    assert translate_args(["-fa", "on"], old).args == ["-fa", "1"]
    assert translate_args(["-fa", "off"], old).args == ["-fa", "0"]
    assert translate_args(["-fa", "auto"], old).args == []
    assert translate_args(["-fa", "-ngl", "all"], old).args == ["-fa", "1", "-ngl", "999"]  # a bare -fa: on


def test_translation_last_value_wins_and_unknown_options_are_reported() -> None:
    tr = translate_args(["-ngl", "10", "--n-gpu-layers=20", "--mlock", "--temp", "0.5", "-t", "-1", "-cmoe"])
    assert tr.args == ["-ngl", "20", "-ncmoe", "999"]  # "-t -1" is llama-perplexity's default: left to llama-bench
    assert tr.dropped == ["--mlock", "--temp 0.5"]
    assert translate_args(["-ngl", "auto"]).args == []


def _tools(tmp_path: Path) -> LlamaTools:
    return LlamaTools(tmp_path / "llama-perplexity", None, tmp_path / "llama-bench", tmp_path, "test")


def test_speed_argv_defaults_and_overrides(tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    argv, dropped = speed_argv(tools, Path("/m/x.gguf"), ["-ngl", "99", "-fa", "on", "-c", "512"])
    assert argv == [str(tmp_path / "llama-bench"), "-m", "/m/x.gguf", "-o", "jsonl", "-ngl", "99", "-fa", "on",
                    "-p", "512", "-n", "128"]
    assert dropped == []
    # --speed-args replace the defaults and any translated option of the same name: never passed twice
    argv, _ = speed_argv(tools, Path("/m/x.gguf"), ["-ngl", "99", "-t", "8"],
                         split_speed_args("--n-prompt 1024 -r 2 --threads 4"))
    assert argv[5:] == ["-ngl", "99", "-n", "128", "--n-prompt", "1024", "-r", "2", "--threads", "4"]


def test_speed_args_that_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(BenchArgsError, match=r"cannot set -o, -oe"):
        split_speed_args("-o csv -oe md -p 8")
    with pytest.raises(BenchArgsError, match="cannot be read"):
        split_speed_args("-p '512")
    assert split_speed_args(None) == [] and split_speed_args("-p 512 -n 0") == ["-p", "512", "-n", "0"]
