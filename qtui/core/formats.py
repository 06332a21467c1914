"""How qtui writes numbers for people: durations, progress bars, values with their ± error,
and which table columns read left to right.

The app, `qtui run`, `qtui jobs --watch`, `qtui results` and the exports all call these, so the
same run reads the same in every front end.
"""

from __future__ import annotations

import math
from typing import Literal

UNKNOWN = "?"

TEXT_COLUMNS = frozenset({"model", "quantizer", "quant"})
"""Leaderboard columns that hold words, not numbers."""

Align = Literal["left", "right"]


def duration(seconds: float | None) -> str:
    """'4m05s' under an hour, '1h02m' from one hour on; '?' when unknown (None, nan, negative).

    Rounded to the nearest second, so an ETA of 59.6 s reads 1m00s, not 0m59s.
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return UNKNOWN
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_bar(fraction: float | None, width: int) -> str:
    """A bar of whole cells, '█' done and '░' to go; all '░' while the total is unknown."""
    if width <= 0:
        return ""
    if fraction is None or not math.isfinite(fraction):
        return "░" * width
    # The epsilon keeps an exact share whole: 57/100 of 100 cells is 57, not 56.99999999999999.
    filled = min(width, max(0, int(width * fraction + 1e-9)))
    return "█" * filled + "░" * (width - filled)


def plus_minus(value: float | None, err: float | None, digits: int, unit: str = "", *,
               compact: bool = False) -> str:
    """'0.01234 ± 0.00056' (the error to the value's digits), '?' when the value is unknown.

    `compact` is for a narrow column: '0.01234 ±0.00056' with the error to 2 significant digits.
    """
    if value is None:
        return UNKNOWN
    text = f"{value:.{digits}f}"
    if err is not None:
        text += f" ±{err:.2g}" if compact else f" ± {err:.{digits}f}"
    return text + unit


def kld(value: float | None, err: float | None, *, compact: bool = False) -> str:
    """A mean KLD as every live view shows it: five decimals, with its ± error when known."""
    return plus_minus(value, err, 5, compact=compact)


def chunks(done: int, total: int | None) -> str:
    """'12/40' chunks; '12/?' while the total is unknown."""
    return f"{done}/{total or UNKNOWN}"


def align(column: str) -> Align:
    """Words read from the left, numbers line up on the right."""
    return "left" if column in TEXT_COLUMNS else "right"
