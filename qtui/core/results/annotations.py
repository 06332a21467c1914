"""What a leaderboard row says beside its figures, the same words in every front end: its marks
(≈ the base's origin type, ≡ the same tensors as another row's file: measured.row_marks) and, for
a row of a published sweep, what the post said (its own score, its finding, date, url, and the
note on how to read its figures). The app (marks after the name, the caption, i) and `qtui
results` (table and --json) both take them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qtui.core.results.leaderboard import PUBLISHED_SCORE, Column, Row, published_score
from qtui.core.results.measured import RowMarks, row_marks
from qtui.core.results.store import ResultRecord

__all__ = ["RowMarks", "marks_legend", "published_fields", "published_note", "published_said", "row_annotations",
           "row_marks", "with_published_column"]


def published_said(rec: ResultRecord) -> dict[str, Any]:
    """What a published sweep said of this row, in the order shown: its score (a number), finding,
    date, url, then any other field the post gave. {} for a run measured here."""
    if rec.source.get("type") != "published":
        return {}
    published = rec.source.get("published")
    said: Mapping[str, Any] = published if isinstance(published, dict) else {}
    fields: list[tuple[str, Any]] = [
        ("score", published_score(rec)), ("finding", said.get("finding")),
        ("date", rec.source.get("date")), ("url", rec.source.get("url")),
    ]
    fields += [(str(k), v) for k, v in said.items() if k not in ("efficiency", "finding")]
    return {k: v for k, v in fields if v is not None and v != ""}


def published_fields(rec: ResultRecord) -> list[tuple[str, str]]:
    """published_said as (name, text) to show: the score says whose it is and which way is better."""
    return [(k, f"{v:.3f} (the post's, over all of its quants; lower is better)" if k == "score" else str(v))
            for k, v in published_said(rec).items()]


def published_note(rec: ResultRecord) -> str | None:
    """How to read a published sweep's figures (the same for every row of one post)."""
    note = rec.source.get("note") if rec.source.get("type") == "published" else None
    return str(note) if note else None


def with_published_column(columns: Sequence[Column], rows: Sequence[Row]) -> list[Column]:
    """The columns, with the published score beside the score computed here when a row has one."""
    cols = list(columns)
    if any(r.published_score is not None for r in rows) and PUBLISHED_SCORE not in cols:
        at = next((i + 1 for i, c in enumerate(cols) if c.key == "score"), len(cols))
        cols.insert(at, PUBLISHED_SCORE)
    return cols


def marks_legend(marks: Mapping[str, RowMarks], shown: Sequence[str] | set[str]) -> list[str]:
    """What the marks on the rows `shown` (ids) mean, one phrase per kind of mark shown."""
    out = []
    origin = [m.base_origin for rid, m in marks.items() if rid in shown and m.base_origin]
    if origin:
        out.append(f"≈ {origin[0]}: the base's origin type, near it by construction")
    if any(m.same_as for rid, m in marks.items() if rid in shown):
        out.append("≡ same tensors as another row")
    return out


def row_annotations(records: Sequence[ResultRecord]) -> dict[str, dict[str, Any]]:
    """By record id, for the records that have any: {"mark": "≈", "mark_notes": [...],
    "published": {name: text}, "published_note": "..."}: what --json adds to a row."""
    out: dict[str, dict[str, Any]] = {}
    for rid, m in row_marks(records).items():
        out.setdefault(rid, {}).update(mark=m.symbol, mark_notes=m.notes())
    for rec in records:
        said, note = published_said(rec), published_note(rec)
        if said:
            out.setdefault(rec.id, {})["published"] = said
        if note:
            out.setdefault(rec.id, {})["published_note"] = note
    return out
