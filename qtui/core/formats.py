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


ERR_SIGNIFICANT = 2
"""An error is printed to at least this many significant digits, in fixed notation."""
_MAX_DECIMALS = 9


def decimals_for(err: float | None, digits: int) -> int:
    """Decimals that show `err` to ERR_SIGNIFICANT significant digits, and never fewer than
    `digits` (the value's own): 0.00016 at 5 stays 5, 8e-05 at 5 needs 6 (0.000080)."""
    if err is None or not math.isfinite(err) or err == 0:
        return digits
    need = ERR_SIGNIFICANT - 1 - math.floor(math.log10(abs(err)))
    return max(digits, min(need, _MAX_DECIMALS))


def error(err: float | None, digits: int) -> str:
    """An error alone (a ± column), by the rule of plus_minus; '?' when unknown."""
    if err is None:
        return UNKNOWN
    return f"{err:.{decimals_for(err, digits)}f}"


def plus_minus(value: float | None, err: float | None, digits: int, unit: str = "", *,
               compact: bool = False) -> str:
    """'0.01234 ± 0.00056', '?' when the value is unknown.

    One rule everywhere a ± is shown (the app, `qtui run`/`jobs --watch`, the exports): value
    and error to the same decimals, `digits` or more, enough for the error's first
    ERR_SIGNIFICANT significant digits, in fixed notation (never 8e-05): '0.003202 ± 0.000080'
    beside '0.00492 ± 0.00016'. `compact` (a narrow column) only drops the space after ±.
    """
    if value is None:
        return UNKNOWN
    places = decimals_for(err, digits)
    text = f"{value:.{places}f}"
    if err is not None:
        text += f" ±{err:.{places}f}" if compact else f" ± {err:.{places}f}"
    return text + unit


def kld(value: float | None, err: float | None, *, compact: bool = False) -> str:
    """A mean KLD as every live view shows it: five decimals, with its ± error when known."""
    return plus_minus(value, err, 5, compact=compact)


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` cells, cut in the middle ('gemma…0m-Q4_K_M.gguf'): a model's
    file name differs from its neighbours' at the end (the quant), so the end keeps two thirds;
    the start says which model."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:max(width, 0)]
    head = (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def chunks(done: int, total: int | None) -> str:
    """'12/40' chunks; '12/?' while the total is unknown."""
    return f"{done}/{total or UNKNOWN}"


def align(column: str) -> Align:
    """Words read from the left, numbers line up on the right."""
    return "left" if column in TEXT_COLUMNS else "right"
