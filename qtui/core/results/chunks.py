"""Per-chunk mean KLD of one run: the unit that paired comparisons work on.

Tokens of one chunk share their context and hard passages are hard for every quant, so the
chunk (not the token) is the independent unit. A series is either exact (from per-token data)
or derived from the running means llama-perplexity prints after each chunk. The printed means
are rounded (5 decimals), and the derivation `x_k = k*m_k - (k-1)*m_(k-1)` multiplies that
rounding: a derived chunk k is off by up to (2k-1) half-units of the last printed decimal,
about k * 1e-5. The series carries that bound, so that a comparison can say when the printed
precision, not the data, decides it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qtui.core.results.store import ResultRecord

__all__ = ["PRINTED_DECIMALS", "ChunkSeries", "chunk_series", "common_chunk_means", "running_means_field"]

PRINTED_DECIMALS = 5
"""llama-perplexity prints the running mean KLD with 5 decimals (`%10.5f`)."""


@dataclass(frozen=True)
class ChunkSeries:
    """Mean KLD of each chunk, by chunk number (1-based, as llama-perplexity counts rows)."""

    chunks: tuple[int, ...]
    means: tuple[float, ...]
    exact: bool
    step: float = 0.0
    """Half a unit of the last printed decimal of the running means (0 for exact data): the
    largest rounding error of one printed mean."""

    def __post_init__(self) -> None:
        if len(self.chunks) != len(self.means):
            raise ValueError("a chunk series needs one mean per chunk")

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def kind(self) -> str:
        """'exact' or 'derived' (from the printed running means): the app and exports say which."""
        return "exact" if self.exact else "derived"

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.chunks, self.means))

    def bound(self, chunk: int) -> float:
        """Largest error of one chunk's mean: (2k-1) * step for a derived chunk k, 0 when exact."""
        return 0.0 if self.exact else (2 * chunk - 1) * self.step

    def sum_bound(self, chunks: Iterable[int]) -> float:
        """Largest error of the SUM of the means over `chunks` (a subset of this series).

        Derived errors telescope: over consecutive chunks a..b the sum is b*m_b - (a-1)*m_(a-1),
        off by at most (b + a - 1) * step, far less than the per-chunk bounds added up (over a
        whole run 1..n it is just n * step: the error of the last printed mean, times n).
        """
        if self.exact:
            return 0.0
        total = 0.0
        run_start: int | None = None
        prev: int | None = None
        for c in sorted(set(chunks)):
            if prev is None or c != prev + 1:
                if run_start is not None and prev is not None:
                    total += (prev + run_start - 1) * self.step
                run_start = c
            prev = c
        if run_start is not None and prev is not None:
            total += (prev + run_start - 1) * self.step
        return total

    @classmethod
    def from_running_means(cls, rows: Iterable[tuple[int, float | None]],
                           decimals: int = PRINTED_DECIMALS) -> ChunkSeries:
        """Derive per-chunk means from (chunk, running mean) rows as printed.

        A chunk is derived only when the row before it is known (or it is chunk 1): a missing
        or non-finite row loses the chunk after it too, never guessed.
        """
        known: dict[int, float] = {}
        for chunk, mean in rows:
            if isinstance(mean, (int, float)) and not isinstance(mean, bool) and math.isfinite(mean):
                known[int(chunk)] = float(mean)
        chunks: list[int] = []
        means: list[float] = []
        for k in sorted(known):
            if k < 1:
                continue
            if k == 1:
                chunks.append(1)
                means.append(known[1])
            elif k - 1 in known:
                chunks.append(k)
                means.append(k * known[k] - (k - 1) * known[k - 1])
        return cls(tuple(chunks), tuple(means), exact=False, step=0.5 * 10.0**-decimals)

    @classmethod
    def from_exact(cls, chunks: Sequence[int], means: Sequence[float]) -> ChunkSeries:
        return cls(tuple(int(c) for c in chunks), tuple(float(m) for m in means), exact=True)


def running_means_field(progress: Iterable[Any]) -> dict[str, Any] | None:
    """What a result record stores of a run's printed rows: [[chunk, running mean KLD], ...].

    `progress` holds the parser's rows (objects with .chunk and .kld); None when no row has a
    KLD (a base or perplexity run, or a run that died before its first row).
    """
    rows = [[int(p.chunk), float(p.kld)] for p in progress
            if isinstance(getattr(p, "kld", None), float) and math.isfinite(p.kld)]
    if not rows:
        return None
    return {"kind": "running", "decimals": PRINTED_DECIMALS, "rows": rows}


def chunk_series(rec: ResultRecord) -> ChunkSeries | None:
    """The per-chunk means stored with a record, None when it has none (older records, imports)."""
    data = rec.chunk_kld
    if not isinstance(data, dict):
        return None
    rows = data.get("rows")
    if not isinstance(rows, list):
        return None
    pairs: list[tuple[int, float | None]] = []
    for item in rows:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], int) and not isinstance(item[0], bool):
            value = item[1]
            pairs.append((item[0], float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None))
    if data.get("kind") == "exact":
        exact = [(c, m) for c, m in pairs if m is not None and math.isfinite(m)]
        return ChunkSeries.from_exact([c for c, _ in exact], [m for _, m in exact]) if exact else None
    decimals = data.get("decimals")
    series = ChunkSeries.from_running_means(pairs, decimals if isinstance(decimals, int) else PRINTED_DECIMALS)
    return series if len(series) else None


def common_chunk_means(records: Sequence[ResultRecord]) -> list[float] | None:
    """Each record's mean KLD over the chunks every one of them ran, or None when one has no
    per-chunk data or they share no chunk.

    Screened variants of one setup ran different chunks (a variant stops once its place is
    settled), so their own means are not comparable: one stopped after 16 easy chunks would
    look better than one that ran all 120. Scored over the chunks they share (at least the
    first window), they are. Every chunk holds the same number of scored tokens, so the mean
    of chunk means is the token mean."""
    series = [chunk_series(r) for r in records]
    values = [s.as_dict() for s in series if s is not None]
    if not values or len(values) != len(records):
        return None
    common = set.intersection(*(set(v) for v in values))
    if not common:
        return None
    return [math.fsum(v[c] for c in common) / len(common) for v in values]
