"""Per-token data from the real, patched llama-perplexity: the dump reproduces the final block
it prints, and `qtui run` keeps it with the result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qtui.core.jobs.queue import JobQueue
from qtui.core.llama.build import TOKENS_PATCH
from qtui.core.llama.parser import parse_transcript
from qtui.core.llama.tokendump import DUMP_ENV, JOB_FILE, read_dump
from qtui.core.llama.tools import STAMP_NAME, child_env
from qtui.core.results.store import ResultStore
from qtui.core.results.tokens import PER_TOKEN, load_tokens, stats_over, tokens_path
from tests.helpers import unavailable

CTX = 128
CHUNKS = 8
PER_CHUNK = CTX - 1 - CTX // 2

# (field, printed decimals) of the KLD and Δp blocks, Δp in percent as FinalStats holds it
_PRINTED = [(f, 6) for f in ("kld_max", "kld_p999", "kld_p99", "kld_p95", "kld_p90", "kld_median", "kld_p10",
                             "kld_p05", "kld_p01", "kld_p001", "kld_min")]
_PRINTED += [(f, 3) for f in ("dp_max", "dp_p999", "dp_p99", "dp_p95", "dp_p90", "dp_p75", "dp_median", "dp_p25",
                              "dp_p10", "dp_p05", "dp_p01", "dp_p001", "dp_min", "dp_mean", "dp_rms", "same_top")]


def _patched(tools) -> None:
    import json

    stamp = tools.bin_dir.parent.parent / STAMP_NAME
    patches = json.loads(stamp.read_text()).get("patches", []) if stamp.is_file() else []
    if TOKENS_PATCH not in patches:
        unavailable(f"the llama.cpp tools in {tools.bin_dir} are not a qtui build with the per-token patch "
                    "(run `qtui setup-llama`)")


def _run(tools, *args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**child_env(tools), **(env_extra or {})}
    return subprocess.run(tools.perplexity_argv() + list(args), cwd=cwd, env=env, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def base_file(llama_tools, tiny_model, corpus, tmp_path_factory) -> Path:
    _patched(llama_tools)
    d = tmp_path_factory.mktemp("tokbase")
    proc = _run(llama_tools, "-m", str(tiny_model), "-f", str(corpus), "-c", str(CTX), "--chunks", str(CHUNKS),
                "--kl-divergence-base", "base.kld", cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d / "base.kld"


@pytest.mark.parametrize("batch", [256, 2048])  # 2 chunks per pass (4 passes); all chunks in one pass
def test_dump_reproduces_the_printed_final_block(llama_tools, tiny_ladder, base_file, tmp_path, batch):
    dump_path = tmp_path / "tokens.dump"
    proc = _run(llama_tools, "-m", str(tiny_ladder["Q2_K"]), "--kl-divergence-base", str(base_file),
                "--kl-divergence", "-c", str(CTX), "-b", str(batch), cwd=tmp_path, env_extra={DUMP_ENV: str(dump_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = parse_transcript(proc.stdout, proc.stderr, proc.returncode).stats
    assert printed is not None and printed.is_complete, proc.stdout[-2000:]
    dump = read_dump(dump_path)
    assert dump is not None and not dump.truncated
    assert (dump.n_ctx, dump.per_chunk, dump.n_chunk) == (CTX, PER_CHUNK, CHUNKS)
    assert list(dump.chunks) == list(range(CHUNKS)) and dump.n_tokens == CHUNKS * PER_CHUNK
    mine = stats_over(dump)
    assert mine is not None
    assert printed.kld_mean is not None and printed.kld_mean > 0.01  # a real difference to measure
    # relative 1e-5, or the printed rounding (6 decimals) where that is coarser
    assert mine.kld_mean == pytest.approx(printed.kld_mean, rel=1e-5, abs=5.01e-7)
    assert f"{mine.kld_mean:.6f}" == f"{printed.kld_mean:.6f}"
    assert mine.kld_mean_err == pytest.approx(printed.kld_mean_err, abs=5.01e-7)
    assert mine.dp_rms_err == pytest.approx(printed.dp_rms_err, abs=5.01e-4)
    assert mine.same_top_err == pytest.approx(printed.same_top_err, abs=5.01e-4)
    for name, digits in _PRINTED:
        want = getattr(printed, name)
        assert want is not None, name
        assert f"{getattr(mine, name):.{digits}f}" == f"{want:.{digits}f}", name


def test_without_the_variable_nothing_is_written(llama_tools, tiny_ladder, base_file, tmp_path):
    proc = _run(llama_tools, "-m", str(tiny_ladder["Q8_0"]), "--kl-divergence-base", str(base_file),
                "--kl-divergence", "-c", str(CTX), cwd=tmp_path)
    assert proc.returncode == 0 and b"Same top p" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_qtui_run_keeps_the_tokens_with_the_result(llama_tools, tiny_model, tiny_ladder, corpus, tmp_path):
    import os

    _patched(llama_tools)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    env.update(QTUI_DATA_DIR=str(tmp_path / "data"), QTUI_CACHE_DIR=str(tmp_path / "cache"),
               QTUI_CONFIG_DIR=str(tmp_path / "config"), QTUI_LLAMA_BIN=str(llama_tools.bin_dir),
               COLUMNS="200", NO_COLOR="1")
    res = subprocess.run([sys.executable, "-m", "qtui.cli", "run", "--base", str(tiny_model), "--corpus", str(corpus),
                          "--ctx", str(CTX), "--chunks", "6", str(tiny_ladder["Q4_0"])],
                         env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    data = tmp_path / "data"
    (job,) = [j for j in JobQueue(data).jobs() if j.spec.kind == "kld"]
    assert (job.dir / JOB_FILE).is_file()
    store = ResultStore(data)
    (rec,) = [r for r in store.load().records if r.kind == "kld"]
    assert rec.status == "done", rec.failure
    assert isinstance(rec.chunk_kld, dict) and rec.chunk_kld["kind"] == "exact"
    assert rec.chunk_kld["source"] == PER_TOKEN and [r[0] for r in rec.chunk_kld["rows"]] == [1, 2, 3, 4, 5, 6]
    assert tokens_path(store.root, rec.id).stat().st_size == 24 + 6 * (12 + 8 * PER_CHUNK)
    kept = load_tokens(store.root, rec.id)
    assert kept is not None
    mine = stats_over(kept)
    assert mine is not None and mine.kld_mean == pytest.approx(rec.stats["kld_mean"], rel=1e-5)
    assert f"{mine.kld_p99:.6f}" == f"{rec.stats['kld_p99']:.6f}"
    # the exact per-chunk means average to the run's mean (all chunks hold as many tokens)
    rows = rec.chunk_kld["rows"]
    assert sum(m for _, m in rows) / len(rows) == pytest.approx(rec.stats["kld_mean"], rel=1e-5)
