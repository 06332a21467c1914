"""Base log-prob file: size formula, header checks, truncation, and the tests' own cutter
(tests/helpers.py). What the real llama-perplexity writes and reads: tests/integration/test_basefile_real.py."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from qtui.core.llama import basefile as bf
from qtui.core.llama.basefile import BaseFileError
from tests.helpers import cut_base_file, write_synthetic_base_file


def _make(tmp_path: Path, name: str, n_ctx: int = 16, n_vocab: int = 33, n_chunk: int = 5, **kw) -> Path:
    path = tmp_path / name
    write_synthetic_base_file(path, n_ctx, n_vocab, n_chunk, **kw)
    return path


def test_formula_matches_the_measured_gemma_file() -> None:
    # the base file llama-perplexity wrote for gemma-3-270m at -c 128 over 24 chunks: 792,747,860 bytes
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
    head = cut_base_file(src, dst, 2, progress=lambda d, t: seen.append((d, t)))
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
    cut_base_file(src, dst, 5)
    assert dst.read_bytes() == src.read_bytes()


def test_cut_refuses_bad_requests(tmp_path: Path) -> None:
    src = _make(tmp_path, "src.kld")
    with pytest.raises(BaseFileError, match="it has 5"):
        cut_base_file(src, tmp_path / "o.kld", 6)
    with pytest.raises(BaseFileError, match="it has 5"):
        cut_base_file(src, tmp_path / "o.kld", 0)
    with pytest.raises(BaseFileError, match="destination is the source"):
        cut_base_file(src, src, 2)
    trunc = _make(tmp_path, "tr.kld", truncate_to=300)
    with pytest.raises(BaseFileError, match="truncated"):
        cut_base_file(trunc, tmp_path / "o.kld", 1)
    assert not (tmp_path / "o.kld").exists() and not (tmp_path / "o.kld.partial").exists()


def test_cut_removes_partial_on_failure(tmp_path: Path) -> None:
    src = _make(tmp_path, "src.kld", n_chunk=6)
    dst = tmp_path / "cut.kld"

    def boom(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cut_base_file(src, dst, 3, progress=boom)
    assert os.listdir(tmp_path) == ["src.kld"]
