"""The noise floor: the base model measured against its own log-probs with another batch size.

The same model run twice can differ when the batch size changes the order in which the
floating-point sums are taken. The KLD of the base against itself under such a change is what
the measurement itself moves: a difference between two quants no larger than it is not
evidence, so such neighbours are tied (paired.adjacent_separations). Its record is a KLD
record marked model["floor"] = True: shown as a line on the scatter, never as a ranked row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from qtui.core.results.chunks import chunk_series
from qtui.core.results.ranking import SetupKey, number, setup_key
from qtui.core.results.store import ResultRecord

__all__ = ["floor_records", "floor_value", "floors_by_setup", "is_floor", "noise_floor"]


def is_floor(model: Mapping[str, Any]) -> bool:
    """A record or job of the noise floor (the base against itself), not a variant."""
    return model.get("floor") is True


def floor_records(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """Finished noise-floor runs with a mean KLD."""
    return [r for r in records if r.kind == "kld" and r.status == "done" and is_floor(r.model)
            and number(r.stats, "kld_mean") is not None]


def noise_floor(records: Iterable[ResultRecord]) -> float | None:
    """The floor among `records` (one setup's): its latest finished run's mean KLD."""
    found = floor_records(records)
    if not found:
        return None
    return floor_value(max(found, key=lambda r: r.ended_at or 0.0))


def floor_value(rec: ResultRecord) -> float | None:
    """A floor run's mean KLD: from its per-token data when it has them. The printed mean has 6
    decimals, and a floor is often below 5e-7: printed, it reads 0.000000, which would call no
    pair a tie; the per-chunk means from the tokens keep its real size."""
    series = chunk_series(rec)
    if series is not None and series.exact and len(series):
        return math.fsum(series.means) / len(series)
    return number(rec.stats, "kld_mean")


def floors_by_setup(records: Iterable[ResultRecord]) -> dict[SetupKey, float]:
    """The floor of each setup that has one."""
    groups: dict[SetupKey, list[ResultRecord]] = {}
    for r in floor_records(records):
        groups.setdefault(setup_key(r), []).append(r)
    out: dict[SetupKey, float] = {}
    for key, recs in groups.items():
        value = noise_floor(recs)
        if value is not None:
            out[key] = value
    return out
