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
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtui.core.fsutil import file_lock

MAGIC = b"_logits_"
HEADER_SIZE = 20
_HEADER = struct.Struct("<8siii")
# Sanity bounds: real n_vocab tops out around 260k, n_ctx at a few 100k.
# Anything past these is a file that merely starts with the magic.
_MAX_CTX = 1 << 22
_MAX_VOCAB = 1 << 24
_MAX_CHUNK = 1 << 24

PathLike = str | os.PathLike[str]


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



# -- windows: a base file made of some of another's chunks -----------------------------------
_COPY_BLOCK = 8 << 20


def window_path(full: PathLike, a: int, b: int) -> Path:
    """Where the window [a, b) (0-based chunks) of the base file `full` is kept: next to it, so
    it is found again, and deleted with it by hand."""
    p = Path(full)
    return p.with_name(f"{p.name}.w{a}-{b}.kld")


def _copy_range(fin: Any, fout: Any, n: int, done: int, total: int,
                progress: Callable[[int, int], None] | None) -> int:
    left = n
    while left:
        block = fin.read(min(_COPY_BLOCK, left))
        if not block:
            raise BaseFileError(f"{fin.name} ended while copying: it is truncated")
        fout.write(block)
        left -= len(block)
        done += len(block)
        if progress is not None:
            progress(done, total)
    return done


def cut_window(src: PathLike, dst: PathLike, a: int, b: int,
               progress: Callable[[int, int], None] | None = None) -> BaseFileHeader:
    """Write a valid base file holding chunks [a, b) (0-based) of `src`: the header with
    n_chunk = b - a, those chunks' tokens, then their log-prob records.

    A KLD run processes every chunk of its base file (llama-perplexity ignores --chunks in that
    mode), so a run on part of a corpus needs a base file of just that part. Runs on consecutive
    windows concatenate, token for token, into the run on their union. Written to
    `dst.partial` and renamed: `dst` is never a half-written file. progress(bytes_done,
    bytes_total) is called after each block. Raises BaseFileError (or OSError)."""
    src_p, dst_p = Path(src), Path(dst)
    head = read_base_header(src_p)
    if not 0 <= a < b <= head.n_chunk:
        raise BaseFileError(f"cannot cut chunks [{a}, {b}) from {src_p}: it has {head.n_chunk} "
                            f"(a window must lie within 0..{head.n_chunk} and hold at least one chunk)")
    if dst_p.exists() and dst_p.resolve() == src_p.resolve():
        raise BaseFileError(f"cannot cut a window: the destination is the source file {src_p}")
    n = b - a
    want = expected_size(head.n_ctx, head.n_vocab, n)
    per_chunk = chunk_records_bytes(head.n_ctx, head.n_vocab)
    tmp = dst_p.with_name(dst_p.name + ".partial")
    try:
        with open(src_p, "rb") as fin, open(tmp, "wb") as fout:
            fout.write(_HEADER.pack(MAGIC, head.n_ctx, head.n_vocab, n))
            fin.seek(HEADER_SIZE + tokens_bytes(head.n_ctx, a))
            done = _copy_range(fin, fout, tokens_bytes(head.n_ctx, n), HEADER_SIZE, want, progress)
            fin.seek(HEADER_SIZE + tokens_bytes(head.n_ctx, head.n_chunk) + a * per_chunk)
            _copy_range(fin, fout, n * per_chunk, done, want, progress)
        os.replace(tmp, dst_p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return read_base_header(dst_p)


def ensure_window(full: PathLike, a: int, b: int) -> Path:
    """The window [a, b) of the base file `full`, cut now unless a valid one is cached.

    A cached window counts only when its header matches (n_ctx, n_vocab of the full file,
    n_chunk = b - a, complete) and it is not older than the full file: a base file made again
    under the same name must not be measured through windows of the old one. A lock beside
    the window makes two jobs that want it at once cut it once."""
    full_p = Path(full)
    head = read_base_header(full_p)
    dst = window_path(full_p, a, b)
    with file_lock(dst.with_name(dst.name + ".lock")):
        try:
            have = read_base_header(dst)
            fresh = dst.stat().st_mtime >= full_p.stat().st_mtime
            if fresh and (have.n_ctx, have.n_vocab, have.n_chunk) == (head.n_ctx, head.n_vocab, b - a):
                return dst
        except (BaseFileError, OSError):
            pass
        cut_window(full_p, dst, a, b)
    return dst
