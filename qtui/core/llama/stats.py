"""The final statistics of a llama-perplexity --kl-divergence run.

One field per value of the three final blocks (Perplexity / KL divergence /
Token probability statistics), exactly as printed: Δp values and the
correlation are in percent, like the tool prints them. A value the build
did not print (e.g. the 95/90/0.1% KLD lines of pre-Oct-2025 builds) is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


def _to_json(value: float | None) -> Any:
    # JSON has no nan/inf; llama-perplexity prints them (e.g. `-nan` when a
    # model produces garbage), and a stored result must survive a round trip.
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _from_json(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("nan", "-nan", "+nan"):
            return math.nan
        if text in ("inf", "+inf", "infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
        return float(text)
    if isinstance(value, bool):  # bool is an int subclass: refuse it explicitly
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


@dataclass
class FinalStats:
    # ====== Perplexity statistics ======
    ppl_q: float | None = None
    ppl_q_err: float | None = None
    ppl_base: float | None = None
    ppl_base_err: float | None = None
    cor_ln_ppl: float | None = None  # percent
    ln_ratio: float | None = None
    ln_ratio_err: float | None = None
    ppl_ratio: float | None = None
    ppl_ratio_err: float | None = None
    ppl_diff: float | None = None
    ppl_diff_err: float | None = None
    # ====== KL divergence statistics ======
    kld_mean: float | None = None
    kld_mean_err: float | None = None
    kld_max: float | None = None
    kld_p999: float | None = None
    kld_p99: float | None = None
    kld_p95: float | None = None
    kld_p90: float | None = None
    kld_median: float | None = None
    kld_p10: float | None = None
    kld_p05: float | None = None
    kld_p01: float | None = None
    kld_p001: float | None = None
    kld_min: float | None = None
    # ====== Token probability statistics ====== (all percent)
    dp_mean: float | None = None
    dp_mean_err: float | None = None
    dp_max: float | None = None
    dp_p999: float | None = None
    dp_p99: float | None = None
    dp_p95: float | None = None
    dp_p90: float | None = None
    dp_p75: float | None = None
    dp_median: float | None = None
    dp_p25: float | None = None
    dp_p10: float | None = None
    dp_p05: float | None = None
    dp_p01: float | None = None
    dp_p001: float | None = None
    dp_min: float | None = None
    dp_rms: float | None = None
    dp_rms_err: float | None = None
    same_top: float | None = None
    same_top_err: float | None = None

    @property
    def is_complete(self) -> bool:
        """`Same top p:` is the last line llama-perplexity prints: its presence
        is the only reliable sign that stdout was not cut short."""
        return self.same_top is not None

    def field_names(self) -> list[str]:
        return [f.name for f in fields(self)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: nan/inf become the strings "nan"/"inf"/"-inf"."""
        return {f.name: _to_json(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinalStats:
        """Inverse of to_dict. Unknown keys are ignored (a newer qtui may store
        more), missing keys are None (an older one stored fewer)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: _from_json(v) for k, v in data.items() if k in known})

    def same_as(self, other: FinalStats) -> bool:
        """Field-wise equality where nan equals nan (dataclass == cannot do that)."""
        for name in self.field_names():
            a, b = getattr(self, name), getattr(other, name)
            if a is None or b is None:
                if a is not b:
                    return False
            elif not (a == b or (math.isnan(a) and math.isnan(b))):
                return False
        return True
