"""Adaptive screening: after each window of chunks, which variants still need the next one.

A full KLD run processes every chunk, even when a variant's place in the ranking is settled
after a tenth of them. Screening runs every variant on a first window of chunks, then, after
each window (a "look"), sends on only the variants whose order against their neighbours (or,
with a top N, whose membership in the top N) is not yet decided. This module is the pure
decision logic: given the per-chunk means each variant has so far, it says for each variant
"open" (run the next window), "settled" (its place is decided) or "tie" (stopped as a tie that
even the full run would very likely not separate).

Honesty over repeated looks. Testing a pair after every window and stopping as soon as its
interval excludes 0 would make false separations far more frequent than 1 - level. The error
is therefore spent over the planned looks: look j gets a share w_j of alpha (the shares sum to
1), and a pair counts as separated at the first look where its p-value is below alpha * w_j.
By the union bound the chance that two equal variants are ever called separated stays below
alpha, whatever the looks see. The shares follow the spirit of O'Brien-Fleming / Haybittle-Peto
(strict early, lenient late): half of alpha is kept for the last look, so that a run that
goes to the end loses little against a plain full run, and the earlier looks share the other
half equally (on a few chunks only clear separations pass anyway). Across the pairs of one
ranking Holm holds the family error, on each pair's look-adjusted p-value min_j p_j / w_j.

Futility. With mean paired difference d, paired sd s after n chunks and N chunks in the full
run, the chunks needed to separate the pair are about (z*s/d)^2 (z of a plain test at the
chosen level: the question is whether the full run would separate the pair). After a few chunks
d is itself noisy, and an early d near 0 says little: on the Gemma 3 270M ladder at -c 128,
IQ4_NL and IQ4_XS agreed to 1e-5 over the first 8 chunks, yet the full 48-chunk runs separate
them (3.6 % apart). So a pair stops as a tie only when even an optimistic difference cannot
be separated: the conditional power of the full run (the chunks seen, plus the chunks to come
drifting at d_hi, with sd s) is below FUTILITY at d_hi, the one-sided FUTILITY_CONFIDENCE
upper bound of |d| (|d| + t * s/sqrt(n)). Early, s/sqrt(n) is large and no pair stops; a tie
is called only once the chunks seen bound the difference below what the full run could
detect. On simulated close ladders (tests/unit/test_screening.py) this called a wrong early
tie (one the full run separates) for about 0.4 % of such pairs, against 5 % for the earlier
rule (predictive power at the observed d), which stopped any pair whose d was near 0 after
8 of 48 chunks; in exchange, equal variants measured with independent noise run to the end
nearly always (about 5 % stop one look early). Exact copies (every chunk the same: s = 0)
stop at once. An early tie that the full run would have separated is a wrong call, so the
rule leans towards running on.

Which pairs: for the whole order, each variant against its neighbours (V-1 pairs; a variant is
settled when separated from both); for a top N, each variant against the nearest one on the
other side of the boundary (again V-1 pairs), so variants far from the boundary settle early
even when they are close to each other. With a noise floor the test asks whether |difference|
exceeds the floor, not 0. With per-chunk means derived from printed running means, a pair
separated only in the rounded figures stays open (it may settle on more chunks) and is a tie
at the last look. What to expect: on a ladder whose neighbours are so close that the full run
itself barely separates them, the whole order needs nearly every chunk; a top N saves far more.

Chunks are numbered 1-based in the series (as llama-perplexity counts rows); windows are
0-based half-open ranges of chunk indices, as the window base files are cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from statistics import NormalDist
from typing import Literal

from qtui.core.results.chunks import ChunkSeries
from qtui.core.results.paired import chunk_differences, holm, rounding_slack, t_cdf, t_quantile

__all__ = ["FUTILITY", "FUTILITY_CONFIDENCE", "Decision", "ScreenPolicy", "State", "decide", "look_weights", "paired_order", "windows"]

FUTILITY = 0.2
"""A pair stops as a tie when the full run's chance to separate it, even at an optimistic
difference (FUTILITY_CONFIDENCE), is below this."""

FUTILITY_CONFIDENCE = 0.95
"""The optimistic difference futility assumes: this one-sided upper confidence bound of |d|."""

LAST_LOOK_SHARE = 0.5
"""The share of alpha kept for the last look (the rest is split equally over the others)."""

State = Literal["open", "settled", "tie"]
_NORMAL = NormalDist()


@dataclass(frozen=True)
class ScreenPolicy:
    level: float = 0.95
    """family confidence for the final ranking decisions"""
    top: int | None = None
    """settle only membership of the top N (None: the whole order)"""
    floor: float = 0.0
    """noise floor: a |mean difference| not above it is a tie, never a separation"""
    first: int = 8
    """chunks in the first window"""
    growth: float = 3.0
    """each next window is `growth` times the one before (windows 8, 24, 72 ... -> cumulative
    8, 32, 104, ...). Every stage starts a process per open variant, and its model load is a
    fixed cost (seconds on a CPU, up to a minute for a big model on GPUs), so fewer, larger
    stages cost less than many small ones; on the Gemma 3 270M hard ladder at 400 chunks,
    growth 3 ran 480 chunks in 10 jobs where growth 2 ran 608 in 14, with the same decisions."""
    align: int = 1
    """chunks llama-perplexity evaluates in one pass (max(1, batch // ctx)). Windows start and
    end on the full run's pass boundaries, so every pass holds the same chunks as in the full
    run and a window's per-token values are the full run's, bit for bit (with several chunks
    per pass, which chunks share a pass changes the arithmetic: values move by a few %)."""


@dataclass(frozen=True)
class Decision:
    key: str
    """the variant's key as given"""
    state: State
    """open: run the next window; settled: its place (or top-N membership) is decided; tie:
    stopped as a tie with a neighbour that even the full run is unlikely to separate"""
    why: str
    """one short sentence for the UI"""
    rank: str
    """rank or range so far, e.g. "2" or "3-5\""""


# -- windows ---------------------------------------------------------------------------------
def windows(n_chunks: int, policy: ScreenPolicy) -> list[tuple[int, int]]:
    """Consecutive 0-based chunk windows [a, b) covering [0, n_chunks) exactly.

    Each window is `growth` times the one before, rounded up to whole passes (policy.align
    chunks); the last is cut at n_chunks, and merged into the one before when it would come
    out smaller than that one (a short last look costs a whole stage for few chunks).
    """
    if n_chunks <= 0:
        return []
    if policy.first < 1:
        raise ValueError("the first screening window needs at least one chunk")
    if not policy.growth >= 1.0:
        raise ValueError("screening windows cannot shrink: growth must be at least 1")
    if policy.align < 1:
        raise ValueError("screening windows need at least one chunk per pass")

    def whole_passes(size: float) -> int:
        return max(1, math.ceil(size / policy.align)) * policy.align

    out: list[tuple[int, int]] = []
    start, size = 0, whole_passes(policy.first)
    while start < n_chunks:
        end = min(n_chunks, start + size)
        if out and end - start < out[-1][1] - out[-1][0]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
        start = end
        size = max(size, whole_passes(size * policy.growth))
    return out


def look_weights(looks: int) -> list[float]:
    """The share of alpha each of `looks` looks may spend (they sum to 1)."""
    if looks <= 1:
        return [1.0]
    early = (1.0 - LAST_LOOK_SHARE) / (looks - 1)
    return [early] * (looks - 1) + [LAST_LOOK_SHARE]


def _look_ends(looks: int, n_total: int, policy: ScreenPolicy) -> list[int]:
    """The last chunk (1-based) each look sees: the plan's windows, or an even split when the
    caller plans a different number of looks."""
    plan = windows(n_total, policy)
    if len(plan) == looks:
        return [b for _, b in plan]
    return [max(1, round(n_total * j / looks)) for j in range(1, looks + 1)]


# -- one pair --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pair:
    """Worse minus better over their common chunks (positive when the order holds)."""

    n: int
    mean: float
    sd: float
    p: float
    """two-sided p of |difference| <= floor, with the figures as computed"""
    p_worst: float
    """the same in the worst case the printed precision allows (equal to p with exact data)"""


def _p(gap: float, se: float, df: int) -> float:
    if se <= 0.0:
        return 1.0 if gap <= 0.0 else 0.0
    return min(1.0, 2.0 * (1.0 - t_cdf(max(0.0, gap) / se, df)))


def _pair(a: ChunkSeries, b: ChunkSeries, last_chunk: int | None, floor: float) -> _Pair | None:
    """b - a over the chunks both have (up to `last_chunk`); None with fewer than 2.

    The same figures as paired.paired_diff, with the test shifted by the noise floor: the
    pair is separated only when |mean| is significantly above the floor. For derived series
    the worst case moves the mean towards the floor by the summed rounding bounds and widens
    the sd by the per-chunk bounds, as paired_diff does.
    """
    got = chunk_differences(b, a, last_chunk)
    if got is None:
        return None
    common, mean, sd = got
    n = len(common)
    gap = abs(mean) - floor
    p = _p(gap, sd / math.sqrt(n), n - 1)
    if a.exact and b.exact:
        return _Pair(n, mean, sd, p, p)
    mean_slack, sd_slack = rounding_slack(a, b, common)
    p_worst = _p(gap - mean_slack, (sd + sd_slack) / math.sqrt(n), n - 1)
    return _Pair(n, mean, sd, p, max(p, p_worst))


@dataclass(frozen=True)
class _Verdict:
    kind: Literal["separated", "open", "limited", "tie", "no data"]
    n: int
    needed: float | None = None
    """chunks the pair would need at the observed difference (None: not computed)"""
    reason: Literal["", "floor", "futile", "end", "precision"] = ""
    """why a tie: within the noise floor, hopeless at the full run's length, no chunks left,
    or decided only by the rounding of printed figures"""


def _needed(pair: _Pair, floor: float, z: float) -> float:
    gap = abs(pair.mean) - floor
    if gap <= 0.0:
        return math.inf
    return (z * pair.sd / gap) ** 2


def _futile(pair: _Pair, floor: float, z: float, n_total: int) -> bool:
    """Even at an optimistic difference, the full run is unlikely to separate the pair: its
    conditional power at the FUTILITY_CONFIDENCE upper bound of |d| is below FUTILITY."""
    gap = abs(pair.mean) - floor
    if pair.sd <= 0.0:
        return gap <= 0.0  # every chunk differs by the same amount: exactly known
    remaining = n_total - pair.n
    if remaining <= 0:
        return True  # no more chunks to come: what is not separated now never will be
    # The full run's sum of differences must reach z*sd*sqrt(N). The n chunks seen contribute
    # n*gap; the N-n to come drift at the upper bound gap_hi with spread sd*sqrt(N-n). A gap
    # near 0 after few chunks has a wide bound, so it does not stop the pair.
    gap_hi = max(0.0, gap) + t_quantile(FUTILITY_CONFIDENCE, pair.n - 1) * pair.sd / math.sqrt(pair.n)
    drift = pair.n * gap + remaining * gap_hi - z * pair.sd * math.sqrt(n_total)
    return _NORMAL.cdf(drift / (pair.sd * math.sqrt(remaining))) < FUTILITY


# -- the ranking -----------------------------------------------------------------------------
def paired_order(series: Mapping[str, ChunkSeries]) -> list[str]:
    """Best (lowest KLD) first. Two variants are compared on the chunks both have, so that one
    stopped after 8 chunks is not ranked against another's mean over 120 harder or easier ones;
    their own means (then the key) break what the common chunks cannot."""
    own = {k: (math.fsum(s.means) / len(s) if len(s) else math.inf) for k, s in series.items()}

    def cmp(x: str, y: str) -> int:
        xs, ys = series[x].as_dict(), series[y].as_dict()
        common = set(xs) & set(ys)
        diff = math.fsum(xs[c] - ys[c] for c in common) if common else own[x] - own[y]
        if diff == 0.0:
            diff = own[x] - own[y]
        if diff == 0.0:
            return (x > y) - (x < y)
        return -1 if diff < 0 else 1

    first = sorted(series, key=lambda k: (own[k], k))
    return sorted(first, key=cmp_to_key(cmp))


def _fmt_chunks(n: float) -> str:
    if math.isinf(n):
        return "no number of chunks would do"
    return f"~{n:,.0f} chunks needed" if n >= 10 else f"~{n:.1f} chunks needed"


def decide(series: Mapping[str, ChunkSeries], look: int, looks: int, n_total: int,
           policy: ScreenPolicy) -> dict[str, Decision]:
    """After `look` of `looks` planned looks (1-based), each variant's state, given its per-chunk
    means over the chunks it has run so far (variants may have run different numbers of chunks:
    neighbours are compared on their common chunks). n_total: chunks the full run would have."""
    if not series:
        return {}
    looks = max(1, looks)
    look = min(max(1, look), looks)
    last = look == looks
    alpha = 1.0 - policy.level
    if not 0.0 < policy.level < 1.0:
        raise ValueError("the screening confidence must lie between 0 and 1")
    if policy.top is not None and policy.top < 1:
        raise ValueError("a top N for screening needs N of at least 1")
    order = paired_order(series)
    v = len(order)
    if policy.top is not None and policy.top >= v:
        # every variant is in a top N of at least all of them: nothing to measure
        everyone = "1" if v == 1 else f"1-{v}"
        return {k: Decision(k, "settled", f"in the top {policy.top}: only {v} variant{'s' if v > 1 else ''}", everyone) for k in order}
    top = policy.top

    # the pairs whose separation decides: neighbours, or each variant against the other side of the top-N boundary
    if top is None:
        pairs = [(i, i + 1) for i in range(v - 1)]
    else:
        pairs = [(i, top) for i in range(top)] + [(top - 1, j) for j in range(top + 1, v)]

    weights = look_weights(looks)
    ends = _look_ends(looks, n_total, policy)
    z_full = _NORMAL.inv_cdf(1.0 - alpha / 2.0)  # the full run's own test, for futility

    stats: list[_Pair | None] = []
    adj_naive: list[float | None] = []
    adj_worst: list[float | None] = []
    for i, j in pairs:
        a, b = series[order[i]], series[order[j]]
        now = _pair(a, b, None, policy.floor)
        stats.append(now)
        if now is None:
            adj_naive.append(None)
            adj_worst.append(None)
            continue
        # replay the earlier looks on the chunks they had: a pair separated once stays separated
        best_naive, best_worst = now.p / weights[look - 1], now.p_worst / weights[look - 1]
        for k in range(look - 1):
            then = _pair(a, b, ends[k], policy.floor)
            if then is not None:
                best_naive = min(best_naive, then.p / weights[k])
                best_worst = min(best_worst, then.p_worst / weights[k])
        adj_naive.append(min(1.0, best_naive))
        adj_worst.append(min(1.0, best_worst))
    sep_naive = holm(adj_naive, alpha)
    sep_worst = holm(adj_worst, alpha)

    verdicts: list[_Verdict] = []
    for pair, naive, worst in zip(stats, sep_naive, sep_worst):
        if pair is None:
            verdicts.append(_Verdict("tie", 0, None, "end") if last else _Verdict("no data", 0))
            continue
        needed = _needed(pair, policy.floor, z_full)
        if worst:
            verdicts.append(_Verdict("separated", pair.n, needed))
        elif naive:
            # separated only in the rounded figures: more chunks may still decide it
            verdicts.append(_Verdict("tie", pair.n, needed, "precision") if last else
                            _Verdict("limited", pair.n, needed))
        elif policy.floor > 0.0 and abs(pair.mean) <= policy.floor:
            verdicts.append(_Verdict("tie", pair.n, needed, "floor"))
        elif _futile(pair, policy.floor, z_full, n_total):
            verdicts.append(_Verdict("tie", pair.n, needed, "futile"))
        elif last:
            verdicts.append(_Verdict("tie", pair.n, needed, "end"))
        else:
            verdicts.append(_Verdict("open", pair.n, needed))

    involved: dict[int, list[tuple[int, _Verdict]]] = {i: [] for i in range(v)}
    for (i, j), verdict in zip(pairs, verdicts):
        involved[i].append((j, verdict))
        involved[j].append((i, verdict))

    ranks = _ranks(pairs, verdicts, v, top)
    out: dict[str, Decision] = {}
    for i, key in enumerate(order):
        mine = involved[i]
        if top is not None:
            # top-N membership: settled once separated from the other side of the boundary
            # (the variants either side of it are compared with the whole other side)
            if mine and all(vd.kind == "separated" for _, vd in mine):
                side = f"in the top {top}" if i < top else f"outside the top {top}"
                out[key] = Decision(key, "settled", f"{side}: {_separated_words(order, mine)}", ranks[i])
                continue
        elif mine and all(vd.kind == "separated" for _, vd in mine):
            out[key] = Decision(key, "settled", _separated_words(order, mine), ranks[i])
            continue
        if not mine:
            out[key] = Decision(key, "settled", "the only variant", ranks[i])
            continue
        pending = [(j, vd) for j, vd in mine if vd.kind != "separated"]
        if all(vd.kind == "tie" for _, vd in pending):
            out[key] = Decision(key, "tie", _tie_words(order, pending, n_total), ranks[i])
        else:
            out[key] = Decision(key, "open", _open_words(order, pending), ranks[i])
    return out


def _names(order: Sequence[str], mine: Sequence[tuple[int, _Verdict]]) -> str:
    names = [order[j] for j, _ in sorted(mine, key=lambda m: m[0])]
    if len(names) > 3:
        return f"{names[0]}, {names[1]} and {len(names) - 2} more"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _separated_words(order: Sequence[str], mine: Sequence[tuple[int, _Verdict]]) -> str:
    n = max(vd.n for _, vd in mine)
    return f"separated from {_names(order, mine)} after {n} chunks"


def _tie_words(order: Sequence[str], ties: Sequence[tuple[int, _Verdict]], n_total: int) -> str:
    j, vd = ties[0]
    other = _names(order, ties)
    if vd.n == 0:
        return f"tie with {other}: no chunks in common"
    if vd.reason == "floor":
        return f"tie with {other}: difference within the noise floor"
    if vd.reason == "precision":
        return f"tie with {other}: limited by printed precision after {vd.n} chunks"
    if vd.needed is not None and vd.needed > n_total:
        return f"tie with {other}: {_fmt_chunks(vd.needed)}, {n_total} available"
    return f"tie with {other}: not separated after {vd.n} chunks"


def _open_words(order: Sequence[str], pending: Sequence[tuple[int, _Verdict]]) -> str:
    open_ = [(j, vd) for j, vd in pending if vd.kind != "tie"]
    j, vd = open_[0]
    if vd.kind == "no data":
        return f"open against {order[j]}: no chunks in common yet"
    if vd.kind == "limited":
        return f"open against {order[j]}: limited by printed precision after {vd.n} chunks"
    needed = f" ({_fmt_chunks(vd.needed)})" if vd.needed is not None and not math.isinf(vd.needed) else ""
    return f"open against {order[j]} after {vd.n} chunks{needed}"


def _ranks(pairs: Sequence[tuple[int, int]], verdicts: Sequence[_Verdict], v: int, top: int | None) -> list[str]:
    """Rank or range of each position: neighbours not separated share a range; with a top N,
    settled members share 1-N, settled outsiders N+1-V, and the undecided ones around the
    boundary share the range they span."""
    def span(lo: int, hi: int) -> str:
        return str(lo) if lo == hi else f"{lo}-{hi}"

    if top is None:
        out: list[str] = []
        first = 0
        for i in range(v):
            if i < v - 1 and verdicts[i].kind != "separated":
                continue
            out += [span(first + 1, i + 1)] * (i - first + 1)
            first = i + 1
        return out
    undecided: set[int] = set()
    for (i, j), vd in zip(pairs, verdicts):
        if vd.kind != "separated":
            undecided |= {i, j}
    lo, hi = (min(undecided), max(undecided)) if undecided else (top, top - 1)
    out = []
    for i in range(v):
        if i in undecided or lo <= i <= hi:
            out.append(span(lo + 1, hi + 1))
        elif i < top:
            out.append(span(1, top))
        else:
            out.append(span(top + 1, v))
    return out
