"""The llama-perplexity base log-probability file (`--kl-divergence-base`).

Layout (little-endian, no padding; llama.cpp and ik_llama.cpp write the same):
    "_logits_" | int32 n_ctx | int32 n_vocab | int32 n_chunk
    | int32 tokens[n_chunk*n_ctx]
    | per chunk, per scored position (n_ctx-1-n_ctx/2): nv uint16 values,
      nv = 2*((n_vocab+1)/2) + 4  (float32 scale, float32 min, n_vocab q's, padded)

These files are huge (GBs) and written by a run that can be killed, so the
header is checked against the size formula before any run uses one.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"_logits_"
HEADER_SIZE = 20
_HEADER = struct.Struct("<8siii")
# Sanity bounds: real n_vocab tops out around 260k, n_ctx at a few 100k.
# Anything past these is a file that merely starts with the magic.
_MAX_CTX = 1 << 22
_MAX_VOCAB = 1 << 24
_MAX_CHUNK = 1 << 24
_BLOCK = 8 << 20

PathLike = str | os.PathLike[str]
ProgressFn = Callable[[int, int], None]


class BaseFileError(Exception):
    """A base file that cannot be used; the message says why and what to do."""


def scored_per_chunk(n_ctx: int) -> int:
    """Positions n_ctx/2 .. n_ctx-2 of each chunk are scored."""
    return n_ctx - 1 - n_ctx // 2


def record_values(n_vocab: int) -> int:
    """uint16 values per scored token: 4 for the two float32s, vocab padded to even."""
    return 2 * ((n_vocab + 1) // 2) + 4


def tokens_bytes(n_ctx: int, n_chunk: int) -> int:
    return 4 * n_chunk * n_ctx


def chunk_records_bytes(n_ctx: int, n_vocab: int) -> int:
    return 2 * scored_per_chunk(n_ctx) * record_values(n_vocab)


def expected_size(n_ctx: int, n_vocab: int, n_chunk: int) -> int:
    return HEADER_SIZE + tokens_bytes(n_ctx, n_chunk) + n_chunk * chunk_records_bytes(n_ctx, n_vocab)


def estimate_size(n_ctx: int, n_vocab: int, n_chunk: int) -> int:
    """Disk needed to generate a base file (same formula: the file is exact)."""
    return expected_size(n_ctx, n_vocab, n_chunk)


def chunks_in_corpus(n_tokens: int, n_ctx: int) -> int:
    """Chunks llama-perplexity makes of a corpus of n_tokens: n_tokens // n_ctx,
    but none at all below 2*n_ctx tokens (it refuses to run)."""
    if n_ctx <= 0 or n_tokens < 2 * n_ctx:
        return 0
    return n_tokens // n_ctx


@dataclass(frozen=True)
class BaseFileHeader:
    n_ctx: int
    n_vocab: int
    n_chunk: int
    file_size: int

    @property
    def expected_size(self) -> int:
        return expected_size(self.n_ctx, self.n_vocab, self.n_chunk)

    @property
    def extra_bytes(self) -> int:
        """Bytes after the last record (llama-perplexity ignores them)."""
        return self.file_size - self.expected_size

    @property
    def scored_tokens(self) -> int:
        return self.n_chunk * scored_per_chunk(self.n_ctx)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({n:,} bytes)"
        size /= 1024
    return f"{n:,} bytes"  # pragma: no cover


def _read_dims(path: Path) -> tuple[int, int, int, int]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEADER_SIZE)
    except FileNotFoundError:
        raise BaseFileError(f"{path}: no such base file") from None
    except IsADirectoryError:
        raise BaseFileError(f"{path} is a folder, not a base file") from None
    except OSError as exc:
        raise BaseFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(head) < 8 or head[:8] != MAGIC:
        raise BaseFileError(
            f"{path} does not look like a llama-perplexity base file "
            "(it must start with \"_logits_\"; generate one with --kl-divergence-base)"
        )
    if len(head) < HEADER_SIZE:
        raise BaseFileError(
            f"{path} is truncated: {size} bytes, not even a full header -- it was probably cut "
            "short by a killed run; delete it and generate again"
        )
    _, n_ctx, n_vocab, n_chunk = _HEADER.unpack(head)
    return n_ctx, n_vocab, n_chunk, size


def read_base_header(path: PathLike) -> BaseFileHeader:
    """Read and check a base file's header against its size. Raises BaseFileError."""
    p = Path(path)
    n_ctx, n_vocab, n_chunk, size = _read_dims(p)
    if not (4 <= n_ctx <= _MAX_CTX and 1 <= n_vocab <= _MAX_VOCAB and 1 <= n_chunk <= _MAX_CHUNK):
        raise BaseFileError(
            f"{p} has a nonsense header (n_ctx={n_ctx}, n_vocab={n_vocab}, n_chunk={n_chunk}): "
            "it is damaged or not a base file; generate it again"
        )
    header = BaseFileHeader(n_ctx, n_vocab, n_chunk, size)
    want = header.expected_size
    if size < want:
        done = max(0, (size - HEADER_SIZE - tokens_bytes(n_ctx, n_chunk)) // chunk_records_bytes(n_ctx, n_vocab))
        raise BaseFileError(
            f"{p} is truncated: {size:,} bytes, expected {want:,} for {n_chunk} chunks at "
            f"n_ctx={n_ctx}, n_vocab={n_vocab} (only {done} complete chunks) -- it was probably cut "
            "short by a killed run; delete it and generate again"
        )
    return header


def check_base_file(path: PathLike, n_vocab: int | None = None,
                    n_ctx: int | None = None) -> BaseFileHeader:
    """read_base_header plus the checks against the model/run that will use it."""
    header = read_base_header(path)
    if n_vocab is not None and header.n_vocab != n_vocab:
        raise BaseFileError(
            f"{path} was made with a vocabulary of {header.n_vocab} tokens but this model has "
            f"{n_vocab}: it belongs to a different model (or tokenizer); use the base file of "
            "this model's own base"
        )
    if n_ctx is not None and header.n_ctx != n_ctx:
        raise BaseFileError(
            f"{path} was computed with n_ctx={header.n_ctx} but this run uses -c {n_ctx}: "
            f"pass -c {header.n_ctx}"
        )
    return header


def _copy(src, dst, n: int, done: int, total: int, progress: ProgressFn | None) -> int:
    left = n
    while left:
        block = src.read(min(_BLOCK, left))
        if not block:
            raise BaseFileError(f"{src.name} ended while copying: it is truncated")
        dst.write(block)
        left -= len(block)
        done += len(block)
        if progress is not None:
            progress(done, total)
    return done


def cut_base_file(src: PathLike, dst: PathLike, n_chunks: int,
                  progress: ProgressFn | None = None) -> BaseFileHeader:
    """Write a valid base file made of the first n_chunks chunks of src.

    A KLD run processes every chunk of its base file (--chunks is ignored in
    that mode), so a quick screening run needs a smaller file. Written to
    dst + ".partial" and renamed, so dst is never a half-written file.
    progress(bytes_done, bytes_total) is called after each block.
    """
    src_p, dst_p = Path(src), Path(dst)
    head = read_base_header(src_p)
    if not 1 <= n_chunks <= head.n_chunk:
        raise BaseFileError(f"cannot cut {n_chunks} chunks from {src_p}: it has {head.n_chunk} (1..{head.n_chunk})")
    if dst_p.exists() and dst_p.resolve() == src_p.resolve():
        raise BaseFileError(f"cut_base_file: the destination is the source file {src_p}")
    want = expected_size(head.n_ctx, head.n_vocab, n_chunks)
    free = shutil.disk_usage(dst_p.parent if str(dst_p.parent) else ".").free
    if free < want:
        raise BaseFileError(f"not enough disk space for {dst_p}: needs {_human(want)}, {_human(free)} free")
    tmp = dst_p.with_name(dst_p.name + ".partial")
    tok_keep = tokens_bytes(head.n_ctx, n_chunks)
    rec_keep = n_chunks * chunk_records_bytes(head.n_ctx, head.n_vocab)
    try:
        with open(src_p, "rb") as fin, open(tmp, "wb") as fout:
            fout.write(_HEADER.pack(MAGIC, head.n_ctx, head.n_vocab, n_chunks))
            fin.seek(HEADER_SIZE)
            done = _copy(fin, fout, tok_keep, HEADER_SIZE, want, progress)
            fin.seek(HEADER_SIZE + tokens_bytes(head.n_ctx, head.n_chunk))
            _copy(fin, fout, rec_keep, done, want, progress)
        os.replace(tmp, dst_p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return read_base_header(dst_p)


def write_synthetic_base_file(path: PathLike, n_ctx: int, n_vocab: int, n_chunk: int,
                              truncate_to: int | None = None) -> None:
    """A structurally valid base file with patterned contents (token i = i % n_vocab,
    record bytes = their position mod 251), for tests and benchmarks. Every byte is
    position-dependent so a cut that copies the wrong range is caught."""
    size = expected_size(n_ctx, n_vocab, n_chunk)
    limit = size if truncate_to is None else truncate_to
    with open(path, "wb") as fh:
        fh.write(_HEADER.pack(MAGIC, n_ctx, n_vocab, n_chunk)[:limit])
        tokens = struct.pack(f"<{n_chunk * n_ctx}i", *(i % n_vocab for i in range(n_chunk * n_ctx)))
        fh.write(tokens[: max(0, limit - HEADER_SIZE)])
        start = HEADER_SIZE + len(tokens)
        pattern = bytes(range(251)) * (_BLOCK // 251 + 1)
        pos = start
        while pos < limit:
            off = (pos - start) % 251
            n = min(_BLOCK, limit - pos)
            fh.write(pattern[off: off + n])
            pos += n
