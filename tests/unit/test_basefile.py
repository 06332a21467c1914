"""Base log-prob file: size formula, header checks, truncation, cutting."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from qtui.core.llama import basefile as bf
from qtui.core.llama.basefile import BaseFileError


def _make(tmp_path: Path, name: str, n_ctx: int = 16, n_vocab: int = 33, n_chunk: int = 5, **kw) -> Path:
    path = tmp_path / name
    bf.write_synthetic_base_file(path, n_ctx, n_vocab, n_chunk, **kw)
    return path


def test_formula_matches_the_measured_gemma_file() -> None:
    # shared/reference/llama-perplexity.md: gemma-3-270m, -c 128, 24 chunks -> 792,747,860 bytes
    assert bf.expected_size(128, 262144, 24) == 792_747_860
    assert bf.estimate_size(128, 262144, 24) == 792_747_860


def test_formula_parts() -> None:
    assert bf.scored_per_chunk(512) == 255
    assert bf.record_values(2048) == 2052 and bf.record_values(2049) == 2054


def test_chunks_in_corpus() -> None:
    assert bf.chunks_in_corpus(5120, 128) == 40
    assert bf.chunks_in_corpus(5199, 128) == 40
    assert bf.chunks_in_corpus(255, 128) == 0  # llama-perplexity refuses below 2*n_ctx
    assert bf.chunks_in_corpus(256, 128) == 2


def test_read_header_of_synthetic_file(tmp_path: Path) -> None:
    path = _make(tmp_path, "ok.kld")
    head = bf.read_base_header(path)
    assert (head.n_ctx, head.n_vocab, head.n_chunk) == (16, 33, 5)
    assert head.file_size == path.stat().st_size == bf.expected_size(16, 33, 5)
    assert head.extra_bytes == 0 and head.scored_tokens == 5 * 7


def test_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "x.kld"
    path.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(BaseFileError, match="does not look like a llama-perplexity base file"):
        bf.read_base_header(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BaseFileError, match="no such base file"):
        bf.read_base_header(tmp_path / "nope.kld")
    with pytest.raises(BaseFileError, match="folder"):
        bf.read_base_header(tmp_path)


@pytest.mark.parametrize("cut", [12, 20, 20 + 4 * 80 - 1, None])
def test_truncated(tmp_path: Path, cut: int | None) -> None:
    full = bf.expected_size(16, 33, 5)
    size = full - 1 if cut is None else cut
    path = _make(tmp_path, "t.kld", truncate_to=size)
    assert path.stat().st_size == size
    with pytest.raises(BaseFileError, match="is truncated") as info:
        bf.read_base_header(path)
    assert "delete it and generate again" in str(info.value)
    if size >= 20:
        assert f"{size:,} bytes, expected {full:,}" in str(info.value)
    if cut is None:
        assert "only 4 complete chunks" in str(info.value)


@pytest.mark.parametrize("dims", [(0, 33, 5), (16, 0, 5), (16, 33, 0), (-16, 33, 5), (16, 1 << 30, 5)])
def test_nonsense_dims(tmp_path: Path, dims: tuple[int, int, int]) -> None:
    path = tmp_path / "n.kld"
    path.write_bytes(struct.pack("<8siii", b"_logits_", *dims) + bytes(64))
    with pytest.raises(BaseFileError, match="nonsense header"):
        bf.read_base_header(path)


def test_extra_bytes_are_reported_not_fatal(tmp_path: Path) -> None:
    path = _make(tmp_path, "e.kld")
    with open(path, "ab") as fh:
        fh.write(b"x" * 10)
    assert bf.read_base_header(path).extra_bytes == 10


def test_check_vocab_and_ctx(tmp_path: Path) -> None:
    path = _make(tmp_path, "v.kld")
    assert bf.check_base_file(path, n_vocab=33, n_ctx=16).n_chunk == 5
    with pytest.raises(BaseFileError, match="vocabulary of 33 tokens but this model has 32000"):
        bf.check_base_file(path, n_vocab=32000)
    with pytest.raises(BaseFileError, match="pass -c 16"):
        bf.check_base_file(path, n_ctx=32)


@pytest.mark.parametrize("n_vocab", [33, 34])  # odd vocab: records are padded
def test_cut_keeps_exactly_the_first_chunks(tmp_path: Path, n_vocab: int) -> None:
    src = _make(tmp_path, "src.kld", n_vocab=n_vocab, n_chunk=6)
    dst = tmp_path / "cut.kld"
    seen: list[tuple[int, int]] = []
    head = bf.cut_base_file(src, dst, 2, progress=lambda d, t: seen.append((d, t)))
    assert (head.n_ctx, head.n_vocab, head.n_chunk) == (16, n_vocab, 2)
    assert head.file_size == bf.expected_size(16, n_vocab, 2)
    assert seen and seen[-1][0] == seen[-1][1] == head.file_size
    s, d = src.read_bytes(), dst.read_bytes()
    tok_src, tok_dst = 4 * 6 * 16, 4 * 2 * 16
    assert d[:8] == b"_logits_" and struct.unpack("<iii", d[8:20]) == (16, n_vocab, 2)
    assert d[20:20 + tok_dst] == s[20:20 + tok_dst]
    rec = len(d) - 20 - tok_dst
    assert d[20 + tok_dst:] == s[20 + tok_src:20 + tok_src + rec]
    assert not (tmp_path / "cut.kld.partial").exists()


def test_cut_all_chunks_is_identical(tmp_path: Path) -> None:
    src = _make(tmp_path, "src.kld")
    dst = tmp_path / "same.kld"
    bf.cut_base_file(src, dst, 5)
    assert dst.read_bytes() == src.read_bytes()


def test_cut_refuses_bad_requests(tmp_path: Path) -> None:
    src = _make(tmp_path, "src.kld")
    with pytest.raises(BaseFileError, match="it has 5"):
        bf.cut_base_file(src, tmp_path / "o.kld", 6)
    with pytest.raises(BaseFileError, match="it has 5"):
        bf.cut_base_file(src, tmp_path / "o.kld", 0)
    with pytest.raises(BaseFileError, match="destination is the source"):
        bf.cut_base_file(src, src, 2)
    trunc = _make(tmp_path, "tr.kld", truncate_to=300)
    with pytest.raises(BaseFileError, match="truncated"):
        bf.cut_base_file(trunc, tmp_path / "o.kld", 1)
    assert not (tmp_path / "o.kld").exists() and not (tmp_path / "o.kld.partial").exists()


def test_cut_removes_partial_on_failure(tmp_path: Path) -> None:
    src = _make(tmp_path, "src.kld", n_chunk=6)
    dst = tmp_path / "cut.kld"

    def boom(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bf.cut_base_file(src, dst, 3, progress=boom)
    assert os.listdir(tmp_path) == ["src.kld"]


# ---- real base files written by llama-perplexity ------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Tiny model + a 3-chunk base file written by the real llama-perplexity (-c 128)."""
    import subprocess

    from qtui.core.llama import assets
    from qtui.core.llama.tools import LlamaNotFound, check_runnable, child_env, find_tools

    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    try:
        tools = find_tools(llama_bin=os.environ.get("QTUI_LLAMA_BIN") or None)
        check_runnable(tools)
    except LlamaNotFound as exc:
        pytest.skip(f"no llama.cpp build: {exc}")
    work = tmp_path_factory.mktemp("realbase")
    corpus = assets.stdlib_corpus(work / "corpus.txt")
    model = assets.tiny_model(work, corpus=corpus)
    env = child_env(tools)

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(tools.perplexity_argv() + ["-m", str(model), *args], cwd=work, env=env,
                              capture_output=True, timeout=120)

    proc = run("-f", str(corpus), "-c", "128", "--chunks", "3", "--kl-divergence-base", "base.kld")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work, run


@pytest.mark.integration
def test_real_base_file_matches_the_formula(real_run) -> None:
    work, _ = real_run
    head = bf.check_base_file(work / "base.kld", n_vocab=2048, n_ctx=128)
    assert (head.n_ctx, head.n_chunk, head.extra_bytes) == (128, 3, 0)
    with pytest.raises(BaseFileError, match="truncated"):
        data = (work / "base.kld").read_bytes()
        (work / "short.kld").write_bytes(data[:-1000])
        bf.read_base_header(work / "short.kld")


@pytest.mark.integration
def test_cut_real_base_file_is_accepted_by_llama_perplexity(real_run) -> None:
    """KLD of the model against itself over the cut file: llama-perplexity reads it,
    runs exactly the kept chunks, and its first rows equal those over the full file."""
    from qtui.core.llama.parser import parse_transcript

    work, run = real_run
    bf.cut_base_file(work / "base.kld", work / "cut.kld", 2)
    results = {}
    for name in ("base.kld", "cut.kld"):
        # This build's logger thread can lose the output tail at exit (llama.cpp #22142,
        # #25504): a run that exits 0 without `Same top p:` is retried, as qtui does.
        for _ in range(4):
            proc = run("--kl-divergence-base", name, "--kl-divergence", "-c", "128", "-b", "128")
            results[name] = parse_transcript(proc.stdout, proc.stderr, proc.returncode)
            if not (proc.returncode == 0 and results[name].failed):
                break
    cut, full = results["cut.kld"], results["base.kld"]
    assert cut.failed is None and full.failed is None, (cut.failed, full.failed)
    assert cut.started.n_chunks == 2 and full.started.n_chunks == 3
    values = lambda r: [(p.chunk, p.ppl, p.ppl_err, p.ln_ratio, p.kld, p.same_top) for p in r.progress]  # noqa: E731
    assert values(cut) == values(full)[:2]
    assert cut.stats.kld_mean == pytest.approx(0, abs=1e-3)  # the model against itself


@pytest.mark.integration
def test_one_chunk_at_c128_scores_too_few_tokens(real_run) -> None:
    """63 scored tokens < 100: llama-perplexity prints rows but no final statistics,
    and the parser says why instead of calling it a crash."""
    from qtui.core.llama.parser import parse_transcript

    work, run = real_run
    bf.cut_base_file(work / "base.kld", work / "one.kld", 1)
    for _ in range(4):
        proc = run("--kl-divergence-base", "one.kld", "--kl-divergence", "-c", "128", "-b", "128")
        r = parse_transcript(proc.stdout, proc.stderr, proc.returncode)
        if r.progress and r.progress[-1].chunk == 1:
            break
    assert proc.returncode == 0 and r.stats is None and r.progress[-1].chunk == 1
    assert "only 63 tokens were scored" in r.failed.reason and "more chunks" in r.failed.reason
