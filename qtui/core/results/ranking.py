"""How results are read and ranked: figures from a record, the measurement setup, the efficiency
score and the Pareto front of one setup.

Plain Python on purpose, shared by the leaderboard rows (the app, `qtui results`) and the
results DataFrame (table.py, which applies these functions to each setup of a groupby): the
app ranks its rows on its first screen, where importing pandas would delay them by more than
the whole screen takes to draw.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qtui.core.results.store import ResultRecord

GIB = 1024**3

Point = tuple[float, float] | None
"""(size in GiB, mean KLD) of a finished run, or None when either is unknown."""


def number(d: dict[str, Any], key: str) -> float | None:
    """A finite number stored under `key`, else None: nan/inf (stored as text), bools and text are unknown."""
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def model_label(model: dict[str, Any]) -> str:
    return str(model.get("label") or model.get("name") or model.get("path") or "?")


def size_gib(model: dict[str, Any]) -> float | None:
    """GiB from the byte count; published figures give only the GiB they printed."""
    size = number(model, "size_bytes")
    return size / GIB if size is not None else number(model, "size_gib")


SetupKey = tuple[Any, ...]
"""What setup_key returns: equal keys, comparable figures."""


def chunk_count(rec: ResultRecord) -> int | None:
    """How many chunks the base file a KLD record was measured on holds, when the record says.

    llama-perplexity runs every chunk of the base file in KLD mode, so a finished run's chunk
    count is its base file's. A failed or cancelled run's count is how far it got (or what was
    asked for), not its base file's: unknown here, setups.setup_keys finds it from the finished
    runs on the same base file.
    """
    for value in (rec.base.get("n_chunk"), rec.chunks if rec.status == "done" else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def build_family(rec: ResultRecord) -> str | None:
    """llama.cpp or ik_llama.cpp: the fork, not the version (a rebuild of one fork measures the
    same thing; the two forks' kernels differ enough to move a KLD)."""
    fork = rec.llama.get("fork") if isinstance(rec.llama, dict) else None
    return str(fork) if fork else None


def setup_key(rec: ResultRecord) -> SetupKey:
    """What makes two KLD figures comparable: the same base, tokens, context, chunks, build
    family and source.

    KLD against one base means nothing next to KLD against another, and a 4-chunk figure is
    not a 30-chunk one: the efficiency score and the Pareto front are computed within each
    setup, never across them. A published sweep is one setup (its post's URL).
    """
    base = rec.base.get("label") or rec.base.get("path")
    return (base, rec.corpus.get("sha256"), rec.ctx, chunk_count(rec), build_family(rec), rec.source.get("url"))


@dataclass(frozen=True)
class Setup:
    """A setup in words, for a header or a `--setup` list."""

    key: SetupKey
    base: str | None
    corpus: str | None
    """the corpus file's sha256 (first 6 hex digits), else its name"""
    ctx: int | None
    chunks: int | None
    family: str | None
    url: str | None
    """the post a published sweep comes from"""

    @classmethod
    def of(cls, rec: ResultRecord, key: SetupKey | None = None) -> Setup:
        key = setup_key(rec) if key is None else key
        sha = rec.corpus.get("sha256")
        corpus = sha[:6] if isinstance(sha, str) and sha else rec.corpus.get("name")
        return cls(key, key[0], str(corpus) if corpus else None, key[2], key[3], key[4], key[5])

    @property
    def id(self) -> str:
        """Six hex digits of the key: stable across runs and machines, short enough to type."""
        return hashlib.sha256(json.dumps(list(self.key), default=str).encode()).hexdigest()[:6]

    @property
    def label(self) -> str:
        """e.g. "gemma-3-270m-F16 · corpus 1a2b3c · -c 512 · 30 chunks · llama.cpp"."""
        parts = [f"{self.base or '?'}", f"corpus {self.corpus or '?'}", f"-c {self.ctx or '?'}"]
        if self.url:  # published figures: chunks and build are the post's, rarely stated
            if self.chunks:
                parts.append(f"{self.chunks} chunks")
            parts.append("published: " + self.url.split("://", 1)[-1].removeprefix("www.").rstrip("/"))
        else:
            parts += [f"{self.chunks or '?'} chunks", self.family or "build ?"]
        return " · ".join(parts)


def efficiency(points: Sequence[Point]) -> list[float | None]:
    """score = sqrt(size_n² + kld_n²) with both axes min-max normalised over the known points.

    Relative to the set (as in the showdown post): adding a point can change every score.
    Unknown points get None. A constant axis normalises to 0. With fewer than two known points
    there is nothing to be relative to: no scores (a published sweep whose other rows have no
    size would otherwise show its one sized row at a perfect 0).
    """
    known = [p for p in points if p is not None]
    if len(known) < 2:
        return [None] * len(points)
    smin, smax = min(k[0] for k in known), max(k[0] for k in known)
    kmin, kmax = min(k[1] for k in known), max(k[1] for k in known)

    def norm(x: float, lo: float, hi: float) -> float:
        return 0.0 if hi == lo else (x - lo) / (hi - lo)

    return [None if p is None else math.hypot(norm(p[0], smin, smax), norm(p[1], kmin, kmax)) for p in points]


def pareto(points: Sequence[Point]) -> list[bool]:
    """True where no other point is at least as small AND at least as close, and better in one.

    All pairs: a setup holds tens of quants, so n² comparisons cost nothing.
    """
    flags: list[bool] = []
    for i, p in enumerate(points):
        if p is None:
            flags.append(False)
            continue
        dominated = any(
            q is not None and q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1])
            for j, q in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags
