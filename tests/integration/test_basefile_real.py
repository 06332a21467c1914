"""Base log-prob files written and read by the real llama-perplexity: the size formula holds,
a cut file is accepted and gives the same first rows, and a too-short file is explained."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from qtui.core.llama import basefile as bf
from qtui.core.llama.basefile import BaseFileError
from qtui.core.llama.parser import ParseResult, parse_transcript
from qtui.core.llama.tools import LlamaTools, child_env
from tests.helpers import cut_base_file

Run = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture(scope="module")
def real_run(llama_tools: LlamaTools, tiny_model: Path, corpus: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """A 3-chunk base file written by the real llama-perplexity (-c 128), and a way to run it again."""
    work = tmp_path_factory.mktemp("realbase")
    env = child_env(llama_tools)

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(llama_tools.perplexity_argv() + ["-m", str(tiny_model), *args], cwd=work, env=env,
                              capture_output=True, timeout=120)

    proc = run("-f", str(corpus), "-c", "128", "--chunks", "3", "--kl-divergence-base", "base.kld")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work, run


def kld_run(run: Run, base: str, done: Callable[[ParseResult, int], bool]) -> tuple[ParseResult, int]:
    """A KLD run over `base`, parsed. This build's logger thread can lose the output tail at
    exit, so a run that exits 0 without what `done` looks for is run again, as qtui does."""
    for _ in range(4):
        proc = run("--kl-divergence-base", base, "--kl-divergence", "-c", "128", "-b", "128")
        parsed = parse_transcript(proc.stdout, proc.stderr, proc.returncode)
        if done(parsed, proc.returncode):
            break
    return parsed, proc.returncode


def test_real_base_file_matches_the_formula(real_run: tuple[Path, Run]) -> None:
    work, _ = real_run
    head = bf.check_base_file(work / "base.kld", n_vocab=2048, n_ctx=128)
    assert (head.n_ctx, head.n_chunk, head.extra_bytes) == (128, 3, 0)
    data = (work / "base.kld").read_bytes()
    (work / "short.kld").write_bytes(data[:-1000])
    with pytest.raises(BaseFileError, match="truncated"):
        bf.read_base_header(work / "short.kld")


def test_cut_real_base_file_is_accepted_by_llama_perplexity(real_run: tuple[Path, Run]) -> None:
    """KLD of the model against itself over the cut file: llama-perplexity reads it,
    runs exactly the kept chunks, and its first rows equal those over the full file."""
    work, run = real_run
    cut_base_file(work / "base.kld", work / "cut.kld", 2)
    complete = lambda r, rc: not (rc == 0 and r.failed)  # noqa: E731
    cut, _ = kld_run(run, "cut.kld", complete)
    full, _ = kld_run(run, "base.kld", complete)
    assert cut.failed is None and full.failed is None, (cut.failed, full.failed)
    assert cut.started is not None and full.started is not None
    assert cut.started.n_chunks == 2 and full.started.n_chunks == 3
    values = lambda r: [(p.chunk, p.ppl, p.ppl_err, p.ln_ratio, p.kld, p.same_top) for p in r.progress]  # noqa: E731
    assert values(cut) == values(full)[:2]
    assert cut.stats is not None and cut.stats.kld_mean == pytest.approx(0, abs=1e-3)  # the model against itself


def test_one_chunk_at_c128_scores_too_few_tokens(real_run: tuple[Path, Run]) -> None:
    """63 scored tokens < 100: llama-perplexity prints rows but no final statistics,
    and the parser says why instead of calling it a crash."""
    work, run = real_run
    cut_base_file(work / "base.kld", work / "one.kld", 1)
    r, rc = kld_run(run, "one.kld", lambda r, rc: bool(r.progress) and r.progress[-1].chunk == 1)
    assert rc == 0 and r.stats is None and r.progress[-1].chunk == 1
    assert r.failed is not None
    assert "only 63 tokens were scored" in r.failed.reason and "more chunks" in r.failed.reason
