"""Which leaderboard columns fit a terminal's width: the most useful ones, the others given up
least useful first.

One order for `qtui results` and the app's leaderboard, so both keep the same columns at the
same width: a readable table of the essentials beats every column cut to "0.…" or scrolled
out of sight (two IQ4_XS rows without their By column read the same).
"""

from __future__ import annotations

from collections.abc import Sequence

from qtui.core.results.leaderboard import COLUMNS, Column, Row, format_cell

PRIORITY: tuple[str, ...] = (
    "model", "quantizer", "quant", "kld", "published_score", "rank", "size_gib", "kld_err", "tg_ts", "pp_ts",
    "kld_p99", "bpw",
    "same_top", "ppl_ratio", "score", "pareto", "ppl_q", "kld_p999", "kld_max", "dp_rms", "duration_s",
)
"""Columns from the most to the least useful; a column not named here comes after them all."""

ESSENTIAL = PRIORITY[:3]
"""Shown at any width: which file a row is (Model, By, Quant)."""


def natural_width(column: Column, rows: Sequence[Row], title_spare: int = 0) -> int:
    """Cells the column takes unshortened: its title (with `title_spare` cells for a sort mark) or
    its widest value, and a space on each side."""
    return max([len(column.title) + title_spare] + [len(format_cell(column, r)) for r in rows]) + 2


def fit_columns(rows: Sequence[Row], width: int, *, columns: Sequence[Column] = COLUMNS,
                keep: Sequence[str] = ESSENTIAL, model_max: int | None = 44, title_spare: int = 0) -> list[Column]:
    """The columns of `columns` to show in `width` cells, in their given order: `keep` always,
    then by PRIORITY while the next one fits. Strictly by priority: once one does not fit, no
    narrower, less useful column slips in after it. `model_max` caps the Model column's width
    (a table that shortens long names)."""
    by_key = {c.key: c for c in columns}

    def cells(key: str) -> int:
        n = natural_width(by_key[key], rows, title_spare)
        return min(n, model_max) if key == "model" and model_max else n

    chosen = [k for k in keep if k in by_key]
    used = sum(cells(k) for k in chosen)
    for key in [*PRIORITY, *(c.key for c in columns if c.key not in PRIORITY)]:
        if key not in by_key or key in chosen:
            continue
        if used + cells(key) > width:
            break
        chosen.append(key)
        used += cells(key)
    return [c for c in columns if c.key in chosen]
