"""The per-token dump that qtui's own llama.cpp builds write during a KLD run.

With the environment variable DUMP_ENV naming a file, the patched `kl_divergence()` (see
build.py) writes, little-endian and without padding:

    header   8 bytes "QTUIKLD\\0", uint32 version (1), uint32 n_ctx,
             uint32 scored tokens per chunk (n_ctx - 1 - n_ctx/2), uint32 n_chunk of the base file
    records  one per chunk, in the order computed, flushed after every pass:
             uint32 chunk index (0-based, in the base file), uint32 n, uint32 same-top count,
             float32 kld[n], float32 dp[n]   (dp = p_quant(next) - p_base(next), a fraction)

The values are the very floats llama-perplexity sorts for its percentiles, so statistics from
them reproduce its final block. A run killed mid-write leaves a partial last record: it is
dropped (the chunks before it are whole). A build without the patch writes nothing; a missing
file simply means "no per-token data".

The same layout, with the chunks sorted and the partial tail gone, is how a result's per-token
data is kept in the store (results/tokens.py): one format, one reader.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DUMP_ENV = "QTUI_KLD_DUMP"
JOB_FILE = "tokens.dump"
"""the dump's name in a job's folder"""
MAGIC = b"QTUIKLD\0"
VERSION = 1
HEADER = struct.Struct("<8s4I")
RECORD = struct.Struct("<3I")


class TokenDumpError(Exception):
    """The file is not a per-token dump, or its content contradicts itself."""


@dataclass(frozen=True)
class ChunkTokens:
    chunk: int
    kld: array[float]  # array('f'), one value per scored token
    dp: array[float]  # array('f'), same length
    same_top: int
    """how many of the chunk's scored tokens have the same most likely token in both models"""

    @property
    def n(self) -> int:
        return len(self.kld)


@dataclass
class TokenDump:
    n_ctx: int
    per_chunk: int
    n_chunk: int
    chunks: dict[int, ChunkTokens] = field(default_factory=dict)
    """chunk index -> its tokens, in ascending chunk order"""
    truncated: bool = False
    """a partial last record (a killed run) was dropped"""

    @property
    def n_tokens(self) -> int:
        return sum(c.n for c in self.chunks.values())

    def shifted(self, offset: int, n_chunk: int | None = None) -> TokenDump:
        """The same data with every chunk index moved by `offset`: a run on a window [a, b) of a
        base file numbers its chunks from 0; shifted(a, n_full) places them in the full file."""
        moved = {i + offset: ChunkTokens(i + offset, c.kld, c.dp, c.same_top) for i, c in self.chunks.items()}
        return TokenDump(self.n_ctx, self.per_chunk, self.n_chunk if n_chunk is None else n_chunk,
                         moved, self.truncated)


def _floats(data: bytes | memoryview) -> array[float]:
    values = array("f")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()  # the file is little-endian
    return values


def parse_dump(data: bytes) -> TokenDump:
    """Decode a dump (or a stored .tokens file). Raises TokenDumpError for a foreign or corrupt file."""
    if len(data) < HEADER.size:
        raise TokenDumpError(f"too short for a per-token dump ({len(data)} bytes)")
    magic, version, n_ctx, per_chunk, n_chunk = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise TokenDumpError("not a qtui per-token dump (wrong magic)")
    if version != VERSION:
        raise TokenDumpError(f"per-token dump version {version} is not supported (this qtui reads {VERSION})")
    if per_chunk != n_ctx - 1 - n_ctx // 2:
        raise TokenDumpError(f"header says {per_chunk} tokens per chunk, but n_ctx {n_ctx} scores "
                             f"{n_ctx - 1 - n_ctx // 2}")
    dump = TokenDump(n_ctx, per_chunk, n_chunk)
    view = memoryview(data)
    pos = HEADER.size
    found: dict[int, ChunkTokens] = {}
    while pos < len(data):
        if pos + RECORD.size > len(data):
            dump.truncated = True
            break
        chunk, n, same = RECORD.unpack_from(data, pos)
        if n != per_chunk or chunk >= n_chunk or same > n:
            raise TokenDumpError(f"corrupt record at byte {pos}: chunk {chunk}, {n} tokens, {same} same-top "
                                 f"(the header says {n_chunk} chunks of {per_chunk} tokens)")
        end = pos + RECORD.size + 8 * n
        if end > len(data):
            dump.truncated = True
            break
        body = pos + RECORD.size
        found[chunk] = ChunkTokens(chunk, _floats(view[body:body + 4 * n]), _floats(view[body + 4 * n:end]), same)
        pos = end
    dump.chunks = {i: found[i] for i in sorted(found)}
    return dump


def read_dump(path: Path) -> TokenDump | None:
    """The dump at `path`; None when there is none (a build without the patch) or it is empty
    (the run ended before its header was written). Raises TokenDumpError or OSError otherwise."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    if not data:
        return None
    return parse_dump(data)


def encode_dump(dump: TokenDump, chunks: Iterable[int] | None = None) -> bytes:
    """The dump's bytes, chunks in ascending order (only `chunks`, when given): parse_dump's inverse."""
    parts = [HEADER.pack(MAGIC, VERSION, dump.n_ctx, dump.per_chunk, dump.n_chunk)]
    wanted = sorted(dump.chunks if chunks is None else set(chunks) & set(dump.chunks))
    for i in wanted:
        c = dump.chunks[i]
        kld, dp = array("f", c.kld), array("f", c.dp)
        if sys.byteorder == "big":
            kld.byteswap()
            dp.byteswap()
        parts += [RECORD.pack(i, c.n, c.same_top), kld.tobytes(), dp.tobytes()]
    return b"".join(parts)
