"""Leaderboard maths: rows from records, the efficiency score, the Pareto front, sorting.

Shared by the TUI's DataTable, `qtui results` and every export, so that all of them rank
the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from qtui.core import formats
from qtui.core.results.store import ResultRecord

GIB = 1024**3


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    quantizer: str | None
    quant: str | None
    size_gib: float | None
    bpw: float | None
    ppl_q: float | None
    ppl_ratio: float | None
    kld: float | None
    kld_err: float | None
    kld_p99: float | None
    kld_p999: float | None
    kld_max: float | None
    dp_rms: float | None
    same_top: float | None
    duration_s: float | None
    status: str
    path: str | None = None
    score: float | None = None
    pareto: bool = False
    source: str = "qtui"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: Callable[[Any], str]
    help: str


def _num(digits: int) -> Callable[[Any], str]:
    return lambda v: "?" if v is None else f"{v:.{digits}f}"


def _text(v: Any) -> str:
    return "?" if v in (None, "") else str(v)


COLUMNS: tuple[Column, ...] = (
    Column("model", "Model", _text, "file or model name"),
    Column("quantizer", "By", _text, "who quantized it (general.quantized_by or folder)"),
    Column("quant", "Quant", _text, "file_type label from the header (a label, not the truth)"),
    Column("size_gib", "GiB", _num(3), "file size, all shards"),
    Column("bpw", "BPW", _num(2), "bits per weight over all tensors"),
    Column("ppl_q", "PPL(Q)", _num(4), "perplexity of the quant"),
    Column("ppl_ratio", "PPL ratio", _num(4), "PPL(Q)/PPL(base)"),
    Column("kld", "Mean KLD", _num(6), "mean KL divergence from the base (lower = closer)"),
    Column("kld_err", "±", _num(6), "uncertainty of the mean KLD"),
    Column("kld_p99", "KLD 99%", _num(5), "99th percentile KLD (tail)"),
    Column("kld_p999", "KLD 99.9%", _num(5), "99.9th percentile KLD"),
    Column("kld_max", "Max KLD", _num(4), "maximum KLD"),
    Column("dp_rms", "RMS Δp %", _num(3), "RMS of token probability change"),
    Column("same_top", "Same top %", _num(2), "how often the top token matches the base"),
    Column("score", "Eff.", _num(3), "efficiency: distance to (0 size, 0 KLD), min-max over shown rows; lower is better"),
    Column("pareto", "Pareto", lambda v: "★" if v else "", "on the size/KLD Pareto front"),
    Column("duration_s", "Time", formats.duration, "run duration"),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)


def _f(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def row_from_record(rec: ResultRecord) -> Row:
    m, s = rec.model, rec.stats
    size = m.get("size_bytes")
    ppl_ratio = _f(s, "ppl_ratio")
    return Row(
        id=rec.id,
        model=str(m.get("label") or m.get("name") or m.get("path") or "?"),
        quantizer=m.get("quantized_by"),
        quant=m.get("quant"),
        size_gib=(size / GIB) if isinstance(size, (int, float)) else _f(m, "size_gib"),
        bpw=_f(m, "bpw"),
        ppl_q=_f(s, "ppl_q"),
        ppl_ratio=ppl_ratio,
        kld=_f(s, "kld_mean"),
        kld_err=_f(s, "kld_mean_err"),
        kld_p99=_f(s, "kld_p99"),
        kld_p999=_f(s, "kld_p999"),
        kld_max=_f(s, "kld_max"),
        dp_rms=_f(s, "dp_rms"),
        same_top=_f(s, "same_top"),
        duration_s=rec.duration_s,
        status=rec.status,
        path=m.get("path"),
        source=str(rec.source.get("type", "qtui")),
    )


def efficiency_scores(rows: Sequence[Row]) -> list[float | None]:
    """score = sqrt(size_n² + kld_n²) with both axes min-max normalised over `rows`.

    Relative to the set on screen (as in the showdown post): adding a row can change every
    score. Rows missing size or KLD get None. A constant axis normalises to 0.
    """
    known = [(r.size_gib, r.kld) for r in rows if r.size_gib is not None and r.kld is not None]
    if not known:
        return [None] * len(rows)
    smin, smax = min(k[0] for k in known), max(k[0] for k in known)
    kmin, kmax = min(k[1] for k in known), max(k[1] for k in known)

    def norm(x: float, lo: float, hi: float) -> float:
        return 0.0 if hi == lo else (x - lo) / (hi - lo)

    out: list[float | None] = []
    for r in rows:
        if r.size_gib is None or r.kld is None:
            out.append(None)
        else:
            out.append(math.hypot(norm(r.size_gib, smin, smax), norm(r.kld, kmin, kmax)))
    return out


def pareto_front(rows: Sequence[Row]) -> list[bool]:
    """True where no other row is at least as small AND at least as close, and better in one."""
    pts = [(r.size_gib, r.kld) if r.size_gib is not None and r.kld is not None else None for r in rows]
    flags: list[bool] = []
    for i, p in enumerate(pts):
        if p is None:
            flags.append(False)
            continue
        dominated = any(
            q is not None and q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1])
            for j, q in enumerate(pts)
            if j != i
        )
        flags.append(not dominated)
    return flags


def setup_key(rec: ResultRecord) -> tuple[Any, ...]:
    """What makes two KLD figures comparable: the same base, tokens, context and source.

    KLD against one base means nothing next to KLD against another, so the efficiency score
    and the Pareto front are computed within each setup, never across them.
    """
    base = rec.base.get("label") or rec.base.get("path")
    return (base, rec.corpus.get("sha256"), rec.ctx, rec.source.get("url"))


def build_rows(records: Iterable[ResultRecord], include_failed: bool = False) -> list[Row]:
    """KLD rows; score and Pareto flag computed over the returned rows of the same setup."""
    kept = [r for r in records if r.kind == "kld" and (include_failed or r.status == "done")]
    rows = [row_from_record(r) for r in kept]
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for rec, row in zip(kept, rows):
        if row.status == "done":
            groups.setdefault(setup_key(rec), []).append(row)
    scores: dict[str, float | None] = {}
    front: dict[str, bool] = {}
    for ranked in groups.values():
        scores.update(zip((r.id for r in ranked), efficiency_scores(ranked)))
        front.update(zip((r.id for r in ranked), pareto_front(ranked)))
    return [replace(r, score=scores.get(r.id), pareto=front.get(r.id, False)) for r in rows]


def sort_rows(rows: Iterable[Row], key: str = "kld", reverse: bool = False) -> list[Row]:
    """Sort by any column; unknown values always last, whichever the direction."""
    if key not in COLUMN_KEYS and key != "status":
        raise ValueError(f"unknown column {key!r}; choose one of: {', '.join(COLUMN_KEYS)}")
    rows = list(rows)
    known = [r for r in rows if getattr(r, key) is not None]
    unknown = [r for r in rows if getattr(r, key) is None]

    def k(r: Row) -> Any:
        v = getattr(r, key)
        return v.lower() if isinstance(v, str) else v

    known.sort(key=k, reverse=reverse)
    return known + unknown


def format_cell(column: Column | str, row: Row) -> str:
    col = column if isinstance(column, Column) else next(c for c in COLUMNS if c.key == column)
    return col.fmt(getattr(row, col.key))
