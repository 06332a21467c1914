"""How results are read and ranked: figures from a record, the measurement setup, the efficiency
score and the Pareto front of one setup.

Plain Python on purpose, shared by the leaderboard rows (the app, `qtui results`) and the
results DataFrame (table.py, which applies these functions to each setup of a groupby): the
app ranks its rows on its first screen, where importing pandas would delay them by more than
the whole screen takes to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def setup_key(rec: ResultRecord) -> tuple[Any, ...]:
    """What makes two KLD figures comparable: the same base, tokens, context and source.

    KLD against one base means nothing next to KLD against another, so the efficiency score
    and the Pareto front are computed within each setup, never across them.
    """
    base = rec.base.get("label") or rec.base.get("path")
    return (base, rec.corpus.get("sha256"), rec.ctx, rec.source.get("url"))


def efficiency(points: Sequence[Point]) -> list[float | None]:
    """score = sqrt(size_n² + kld_n²) with both axes min-max normalised over the known points.

    Relative to the set (as in the showdown post): adding a point can change every score.
    Unknown points get None. A constant axis normalises to 0.
    """
    known = [p for p in points if p is not None]
    if not known:
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
