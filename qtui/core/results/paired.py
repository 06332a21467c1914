"""Paired comparison of two variants measured on the same setup, clustered by chunk.

The errors of two quants on the same tokens are strongly correlated (a hard passage is hard for
every quant), so two independent ± bars neither test nor bound their difference. Per common
chunk c the difference d_c = x_Ac - x_Bc cancels what the chunk does to both; its mean with
t * sd(d) / sqrt(C) is the paired interval. A ranked list needs V-1 adjacent separations; Holm
holds the family error across them. Neighbours not separated are tied and share a rank range.

With per-chunk means derived from printed running means, the rounding of the printout can be
what decides a pair: every verdict is then checked against the worst case the printed
precision allows, and a pair that is separated only in the rounded figures is "limited by
printed precision", never "separated".

Plain Python (no scipy): the Student t distribution is computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from qtui.core.results.chunks import ChunkSeries

__all__ = ["LEVEL", "PairedDiff", "Separation", "Verdict", "adjacent_separations", "chunk_differences", "holm",
           "paired_diff", "rank_ranges", "rounding_slack", "t_cdf", "t_quantile"]

LEVEL = 0.95
Verdict = Literal["separated", "tie", "limited", "no data"]
VERDICT_WORDS: dict[str, str] = {
    "separated": "separated",
    "tie": "tie",
    "limited": "limited by printed precision",
    "no data": "no per-chunk data in common",
}


# -- Student t -------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on t_cdf: plenty fast for a few hundred pairs)."""
    if not 0.0 < p < 1.0:
        raise ValueError("a quantile needs 0 < p < 1")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _two_sided_p(t: float, df: float) -> float:
    return min(1.0, 2.0 * (1.0 - t_cdf(abs(t), df)))


# -- one pair --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedDiff:
    """Mean of x_A - x_B over the chunks both have, with its paired interval."""

    n: int
    """common chunks (the clusters)"""
    mean: float
    sd: float
    half_width: float
    """t * sd / sqrt(n) at `level`"""
    level: float
    p: float
    """two-sided p-value of mean = 0"""
    precision: float = 0.0
    """how much wider the interval can be in the worst case the printed rounding allows
    (0 with exact per-chunk data)"""
    p_worst: float = 0.0
    """the p-value in that worst case"""
    exact: bool = True

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def verdict(self, alpha: float | None = None) -> Verdict:
        """At `alpha` (default 1 - level), without any multiplicity correction."""
        a = 1.0 - self.level if alpha is None else alpha
        if self.p_worst < a:
            return "separated"
        return "limited" if self.p < a else "tie"

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"n_chunks": self.n, "mean": self.mean, "low": self.low, "high": self.high, "level": self.level,
                "p": self.p, "precision": self.precision, "exact": self.exact}


def chunk_differences(a: ChunkSeries, b: ChunkSeries,
                      last_chunk: int | None = None) -> tuple[list[int], float, float] | None:
    """The chunks A and B both have (up to `last_chunk`), and the mean and sd of A - B over
    them; None with fewer than 2 in common."""
    xa, xb = a.as_dict(), b.as_dict()
    common = sorted(c for c in set(xa) & set(xb) if last_chunk is None or c <= last_chunk)
    n = len(common)
    if n < 2:
        return None
    d = [xa[c] - xb[c] for c in common]
    mean = math.fsum(d) / n
    return common, mean, math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))


def rounding_slack(a: ChunkSeries, b: ChunkSeries, common: Sequence[int]) -> tuple[float, float]:
    """How far derived means may move A - B over `common`: the mean by the summed rounding
    bounds, the sd by the per-chunk bounds (see paired_diff)."""
    n = len(common)
    mean_slack = (a.sum_bound(common) + b.sum_bound(common)) / n
    return mean_slack, math.sqrt(math.fsum((a.bound(c) + b.bound(c)) ** 2 for c in common) / (n - 1))


def paired_diff(a: ChunkSeries, b: ChunkSeries, level: float = LEVEL) -> PairedDiff | None:
    """The paired difference A - B over their common chunks; None with fewer than 2 in common.

    With derived means the true chunk means differ from the derived ones by at most the series'
    bounds, so the true mean difference is within (sum bounds A + sum bounds B)/n of the one
    computed, and the true sd(d) at most sqrt(sum (bA_c + bB_c)^2 / (n-1)) above it (triangle
    inequality). `p_worst` is the p-value with both taken against the difference.
    """
    got = chunk_differences(a, b)
    if got is None:
        return None
    common, mean, sd = got
    n = len(common)
    df = n - 1
    t = t_quantile(0.5 + level / 2.0, df)
    se = sd / math.sqrt(n)
    half = t * se
    p = _two_sided_p(mean / se, df) if se > 0 else (1.0 if mean == 0 else 0.0)
    exact = a.exact and b.exact
    if exact:
        return PairedDiff(n, mean, sd, half, level, p, 0.0, p, True)
    mean_slack, sd_slack = rounding_slack(a, b, common)
    se_worst = (sd + sd_slack) / math.sqrt(n)
    gap = max(0.0, abs(mean) - mean_slack)
    p_worst = _two_sided_p(gap / se_worst, df) if se_worst > 0 else (1.0 if gap == 0 else 0.0)
    precision = mean_slack + t * sd_slack / math.sqrt(n)
    return PairedDiff(n, mean, sd, half, level, p, precision, max(p, p_worst), False)


# -- a ranked list ---------------------------------------------------------------------------
def holm(p_values: Sequence[float | None], alpha: float) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected with family error `alpha`.

    None (untestable) is never rejected and does not count in the family.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    rejected = [False] * len(p_values)
    for j, (p, i) in enumerate(tested):
        if p > alpha / (m - j):
            break
        rejected[i] = True
    return rejected


@dataclass(frozen=True)
class Separation:
    """A row against the next one down the ranking: `diff` is the next row's KLD minus this one's."""

    diff: PairedDiff | None
    verdict: Verdict

    @property
    def words(self) -> str:
        return VERDICT_WORDS[self.verdict]


def adjacent_separations(ranked: Sequence[ChunkSeries | None], level: float = LEVEL,
                          floor: float | None = None) -> list[Separation]:
    """Each row of a ranked list (best first) against the next: V-1 separations, Holm at `level`.

    A pair is separated only when Holm rejects it in the worst case the printed precision
    allows; rejected only with the rounded figures, it is "limited". With a noise floor (the
    KLD of the base against itself under another batch size), a mean difference no larger
    than the floor is a tie whatever the test says: the measurement itself moves that much.
    """
    # next minus this: positive when the data agree with the order
    diffs = [paired_diff(b, a, level) if a is not None and b is not None else None
             for a, b in zip(ranked, ranked[1:])]
    alpha = 1.0 - level
    naive = holm([d.p if d else None for d in diffs], alpha)
    worst = holm([d.p_worst if d else None for d in diffs], alpha)
    out: list[Separation] = []
    for d, sep, sep_worst in zip(diffs, naive, worst):
        if d is None:
            out.append(Separation(None, "no data"))
        elif floor is not None and abs(d.mean) <= floor:
            out.append(Separation(d, "tie"))
        else:
            out.append(Separation(d, "separated" if sep_worst else ("limited" if sep else "tie")))
    return out


def rank_ranges(separations: Sequence[Separation], start: int = 1) -> list[str]:
    """Ranks for V rows given their V-1 adjacent separations: tied neighbours share a range
    such as '3-5'; a group ends only where a pair is separated."""
    n = len(separations) + 1
    out: list[str] = []
    first = 0
    for i in range(n):
        if i < n - 1 and separations[i].verdict != "separated":
            continue  # tied with the next: the group goes on
        lo, hi = first + start, i + start
        out += [str(lo) if lo == hi else f"{lo}-{hi}"] * (i - first + 1)
        first = i + 1
    return out
