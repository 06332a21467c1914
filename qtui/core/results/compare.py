"""Two results side by side: where along the run they differ, and on which tokens.

The paired interval (paired.py) says whether two variants differ over the whole run; this
module shows how that verdict formed: the per-chunk difference, chunk by chunk, and the
cumulative mean difference with its paired interval as chunks accumulate (it narrows roughly
as 1/sqrt(chunks); a verdict that flips late was never solid). With per-token data it also
finds the tokens where the two differ most, and places each in its text: the token ids come
from the base file, their text from the base model's GGUF vocabulary.

Pure: reads files, never draws. Chunks are numbered from 1, as llama-perplexity's rows are.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qtui.core.gguf.reader import GGUFError, read_token_strings
from qtui.core.llama.basefile import HEADER_SIZE, BaseFileError, read_base_header
from qtui.core.llama.tokendump import TokenDump
from qtui.core.results.chunks import ChunkSeries, chunk_series
from qtui.core.results.paired import LEVEL, PairedDiff, paired_diff, t_quantile
from qtui.core.results.ranking import model_label, setup_key
from qtui.core.results.store import ResultRecord
from qtui.core.results.tokens import load_tokens

__all__ = ["CONTEXT_TOKENS", "Comparison", "CompareError", "CumulativeDiff", "TokenDiff", "chunk_differences",
           "compare_records", "cumulative_diffs", "predicted_position", "read_tokens", "token_text", "top_token_diffs"]

CONTEXT_TOKENS = 12
"""tokens of text shown before a token that differs"""


class CompareError(ValueError):
    """Two results that cannot be compared; the message says why in one sentence."""


@dataclass(frozen=True)
class CumulativeDiff:
    """Mean difference A - B over the first `n` common chunks (up to chunk `chunk`), with its
    paired interval at `level` (None with one chunk: no spread yet)."""

    n: int
    chunk: int
    mean: float
    low: float | None
    high: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class TokenDiff:
    """One scored token where A and B differ: KLD of each against the base at that token."""

    chunk: int
    """chunk number, from 1"""
    index: int
    """which scored token of the chunk (0 is the first, at position n_ctx/2)"""
    kld_a: float
    kld_b: float
    context: tuple[int, ...] = ()
    """token ids before the predicted token (filled from the base file)"""
    token: int | None = None
    """the predicted token's id (the one whose probability the two models disagree on)"""
    context_text: str = ""
    token_text: str = ""

    @property
    def diff(self) -> float:
        return self.kld_a - self.kld_b


@dataclass(frozen=True)
class Comparison:
    a: ResultRecord
    b: ResultRecord
    diffs: tuple[tuple[int, float], ...]
    """(chunk, mean KLD of A minus that of B) over their common chunks"""
    cumulative: tuple[CumulativeDiff, ...]
    overall: PairedDiff | None
    exact: bool
    """both per-chunk series exact (per-token data); else derived from printed means"""
    tokens: tuple[TokenDiff, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    """why something is missing (no per-token data, no base file, no vocabulary)"""

    @property
    def label_a(self) -> str:
        return model_label(self.a.model)

    @property
    def label_b(self) -> str:
        return model_label(self.b.model)


def chunk_differences(a: ChunkSeries, b: ChunkSeries) -> list[tuple[int, float]]:
    """(chunk, x_A - x_B) for every chunk both series have, in chunk order."""
    xa, xb = a.as_dict(), b.as_dict()
    return [(c, xa[c] - xb[c]) for c in sorted(set(xa) & set(xb))]


def cumulative_diffs(diffs: Sequence[tuple[int, float]], level: float = LEVEL) -> list[CumulativeDiff]:
    """The mean difference and its paired interval after each chunk, as the run went.

    Running sums (Welford) keep it linear in the chunk count; the t quantile is computed once
    per distinct degrees of freedom."""
    out: list[CumulativeDiff] = []
    mean = m2 = 0.0
    for n, (chunk, d) in enumerate(diffs, 1):
        delta = d - mean
        mean += delta / n
        m2 += delta * (d - mean)
        if n < 2:
            out.append(CumulativeDiff(n, chunk, mean, None, None))
            continue
        half = t_quantile(0.5 + level / 2.0, n - 1) * math.sqrt(max(m2, 0.0) / (n - 1)) / math.sqrt(n)
        out.append(CumulativeDiff(n, chunk, mean, mean - half, mean + half))
    return out


def top_token_diffs(a: TokenDump, b: TokenDump, count: int = 10) -> list[TokenDiff]:
    """The `count` scored tokens where |KLD_A - KLD_B| is largest, over the chunks both have
    (largest first; ties in chunk and token order)."""
    if a.n_ctx != b.n_ctx:
        raise CompareError(f"per-token data at different contexts (-c {a.n_ctx} and -c {b.n_ctx}) cannot be paired")
    found: list[tuple[float, int, int, float, float]] = []
    for i in sorted(set(a.chunks) & set(b.chunks)):
        ka, kb = a.chunks[i].kld, b.chunks[i].kld
        for j, (x, y) in enumerate(zip(ka, kb)):
            found.append((-abs(x - y), i, j, x, y))
    found.sort()
    return [TokenDiff(i + 1, j, x, y) for _, i, j, x, y in found[:count]]


def read_tokens(path: Path, start: int, count: int) -> list[int]:
    """Token ids `start` .. `start + count - 1` of a base file (int32s right after its header;
    chunk k at -c n holds [k*n, (k+1)*n)); fewer when the range runs past them. Raises
    BaseFileError."""
    header = read_base_header(path)
    start = max(0, start)
    count = max(0, min(count, header.n_chunk * header.n_ctx - start))
    if count == 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(HEADER_SIZE + 4 * start)
            data = fh.read(4 * count)
    except OSError as exc:
        raise BaseFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    n = len(data) // 4
    return list(struct.unpack(f"<{n}i", data[: 4 * n]))


def predicted_position(n_ctx: int, chunk: int, index: int) -> int:
    """Where in the base file's token list the token that scored value `index` of `chunk`
    predicts lies: chunk c (from 1) starts at (c-1)*n_ctx; value i is the prediction, made
    at position n_ctx/2 + i, of the token right after it."""
    return (chunk - 1) * n_ctx + n_ctx // 2 + index + 1


def token_text(piece: str) -> str:
    """A vocabulary piece as text: SentencePiece's ▁ and byte-level BPE's Ġ are spaces, Ċ a
    newline; newlines and tabs are shown as ⏎ and ⇥ so that one token stays on one line."""
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        try:
            byte = int(piece[3:5], 16)
        except ValueError:
            return piece
        piece = chr(byte) if byte < 0x80 else piece
    text = piece.replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\n").replace("ĉ", "\t")
    return text.replace("\r", "").replace("\n", "⏎").replace("\t", "⇥")


def _with_context(tokens: Sequence[TokenDiff], base_file: Path, n_ctx: int,
                  vocab: Sequence[str] | None, width: int) -> list[TokenDiff]:
    out: list[TokenDiff] = []
    for t in tokens:
        pos = predicted_position(n_ctx, t.chunk, t.index)
        chunk_start = (t.chunk - 1) * n_ctx
        first = max(chunk_start, pos - width)  # the model saw nothing before its chunk
        ids = read_tokens(base_file, first, pos - first + 1)
        if len(ids) != pos - first + 1:
            out.append(t)
            continue
        context, token = tuple(ids[:-1]), ids[-1]
        if vocab is None:
            out.append(TokenDiff(t.chunk, t.index, t.kld_a, t.kld_b, context, token))
            continue

        def piece(i: int) -> str:
            return token_text(vocab[i]) if 0 <= i < len(vocab) else f"<{i}>"

        out.append(TokenDiff(t.chunk, t.index, t.kld_a, t.kld_b, context, token,
                             "".join(piece(i) for i in context), piece(token)))
    return out


def compare_records(store_root: Path, a: ResultRecord, b: ResultRecord, level: float = LEVEL,
                    top: int = 10, width: int = CONTEXT_TOKENS) -> Comparison:
    """Compare two finished KLD results of one setup. Raises CompareError when they cannot be
    compared (not the same setup, or no per-chunk data in common)."""
    if a.id == b.id:
        raise CompareError("a result compared with itself says nothing: choose two different rows")
    if setup_key(a) != setup_key(b):
        raise CompareError("the two results are from different setups (base, corpus, context, chunks or build): "
                           "their KLDs are not comparable")
    sa, sb = chunk_series(a), chunk_series(b)
    if sa is None or sb is None:
        missing = model_label((a if sa is None else b).model)
        raise CompareError(f"{missing} has no per-chunk data (an older or imported result), so there is nothing to pair")
    diffs = chunk_differences(sa, sb)
    if not diffs:
        raise CompareError("the two results have no chunk in common")
    notes: list[str] = []
    if not (sa.exact and sb.exact):
        notes.append("per-chunk means derived from the printed running means: chunk k is off by up to "
                     f"about {sa.step * 2:.0e} x k (per-token data makes them exact)")
    tokens: list[TokenDiff] = []
    da, db = load_tokens(store_root, a.id), load_tokens(store_root, b.id)
    if da is None or db is None:
        notes.append("no per-token data for " + " and ".join(model_label(r.model) for r, d in ((a, da), (b, db))
                                                              if d is None)
                     + ": the tokens where they differ need a run with qtui's own llama.cpp build")
    else:
        tokens = top_token_diffs(da, db, top)
        tokens = _context(tokens, a, da.n_ctx, width, notes)
    return Comparison(a, b, tuple(diffs), tuple(cumulative_diffs(diffs, level)), paired_diff(sa, sb, level),
                      sa.exact and sb.exact, tuple(tokens), tuple(notes))


def _context(tokens: list[TokenDiff], rec: ResultRecord, n_ctx: int, width: int, notes: list[str]) -> list[TokenDiff]:
    """The tokens with their text around them, as far as the base file and vocabulary allow."""
    if not tokens:
        return tokens
    base_file = rec.base.get("file")
    if not base_file or not Path(str(base_file)).is_file():
        notes.append("the base file is gone, so the tokens cannot be shown in their text")
        return tokens
    vocab: list[str] | None = None
    base_model = rec.base.get("path")
    try:
        vocab = read_token_strings(Path(str(base_model))) if base_model else None
    except GGUFError:
        vocab = None
    if vocab is None:
        notes.append("the base model's vocabulary cannot be read, so tokens are shown as ids")
    try:
        return _with_context(tokens, Path(str(base_file)), n_ctx, vocab, width)
    except BaseFileError as exc:
        notes.append(f"the base file cannot be read ({exc})")
        return tokens
