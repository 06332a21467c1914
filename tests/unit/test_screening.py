"""Adaptive screening decisions (results/screening.py) on synthetic per-chunk data with a known
truth (a shared hard-chunk effect, a per-variant factor, per-chunk noise, fixed seeds) and on
REAL per-chunk data from recorded llama-perplexity transcripts."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from qtui.core.llama.parser import parse_transcript
from qtui.core.results.chunks import ChunkSeries
from qtui.core.results.paired import paired_diff
from qtui.core.results.screening import Decision, ScreenPolicy, decide, look_weights, windows

LLAMA = Path(__file__).resolve().parents[1] / "fixtures" / "llama"


# -- helpers ---------------------------------------------------------------------------------
def world(factors: Mapping[str, float], n: int, seed: int, noise: float = 0.05,
          hard_sd: float = 0.6) -> dict[str, list[float]]:
    """Per-chunk mean KLD of each variant over n chunks: chunk difficulty h_c shared by all
    (hard passages are hard for every quant), times the variant's factor, times its own noise."""
    rng = random.Random(seed)
    hard = [rng.lognormvariate(-3.0, hard_sd) for _ in range(n)]
    return {k: [h * f * (1.0 + rng.gauss(0.0, noise)) for h in hard] for k, f in sorted(factors.items())}


def series(values: Sequence[float], n: int) -> ChunkSeries:
    return ChunkSeries.from_exact(range(1, n + 1), values[:n])


def screen(truth: Mapping[str, list[float]], policy: ScreenPolicy,
           n_total: int) -> tuple[list[dict[str, Decision]], dict[str, int]]:
    """What the orchestration does: every variant runs window 1, then only the open ones run
    the next window. Returns the decisions after each look and the chunks each variant ran."""
    plan = windows(n_total, policy)
    ran = {k: 0 for k in truth}
    history: list[dict[str, Decision]] = []
    running = set(truth)
    for look, (_, end) in enumerate(plan, start=1):
        for k in running:
            ran[k] = end
        got = decide({k: series(v, ran[k]) for k, v in truth.items()}, look, len(plan), n_total, policy)
        history.append(got)
        running = {k for k, d in got.items() if d.state == "open"}
        if not running:
            break
    return history, ran


def transcript_series(name: str) -> ChunkSeries:
    case = LLAMA / "b0336" / name
    parsed = parse_transcript(case.with_suffix(".out").read_bytes(), case.with_suffix(".err").read_bytes(), 0)
    return ChunkSeries.from_running_means([(p.chunk, p.kld) for p in parsed.progress if p.kld is not None])


def head(s: ChunkSeries, n: int) -> ChunkSeries:
    return ChunkSeries(s.chunks[:n], s.means[:n], s.exact, s.step)


# -- windows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", [ScreenPolicy(), ScreenPolicy(first=4, growth=1.5), ScreenPolicy(first=1, growth=1.0),
                                    ScreenPolicy(first=10, growth=3.0)])
def test_windows_cover_every_chunk_once_and_grow(policy: ScreenPolicy) -> None:
    for n in range(1, 700):
        w = windows(n, policy)
        assert w[0][0] == 0 and w[-1][1] == n
        assert all(b == c for (_, b), (c, _) in zip(w, w[1:])), (n, w)
        sizes = [b - a for a, b in w]
        assert all(s > 0 for s in sizes)
        assert sizes == sorted(sizes), (n, w)  # never a shorter window after a longer one
        assert sizes[0] >= min(policy.first, n)
    assert windows(0, policy) == []


def test_windows_follow_the_planned_growth() -> None:
    # the default triples each window: few stages, since every stage loads the model again
    assert [b for _, b in windows(120, ScreenPolicy())] == [8, 32, 120]
    assert [b for _, b in windows(1000, ScreenPolicy())] == [8, 32, 104, 320, 1000]
    two = ScreenPolicy(growth=2.0)
    assert [b for _, b in windows(120, two)] == [8, 24, 56, 120]
    assert [b for _, b in windows(1000, two)] == [8, 24, 56, 120, 248, 504, 1000]
    # a short tail is merged into the window before, never a stage of its own
    assert windows(30, ScreenPolicy()) == [(0, 8), (8, 30)]
    with pytest.raises(ValueError):
        windows(10, ScreenPolicy(growth=0.5))
    with pytest.raises(ValueError):
        windows(10, ScreenPolicy(first=0))


@pytest.mark.parametrize("align", [1, 2, 4, 16])
def test_windows_start_and_end_on_pass_boundaries(align: int) -> None:
    """Every boundary but the run's end is a multiple of the chunks per pass: each of the
    window's passes then holds the chunks the full run's pass holds."""
    for first, growth in ((8, 2.0), (1, 1.0), (5, 1.5)):
        policy = ScreenPolicy(first=first, growth=growth, align=align)
        for n in range(1, 300):
            w = windows(n, policy)
            assert w[0][0] == 0 and w[-1][1] == n
            assert all(b == c for (_, b), (c, _) in zip(w, w[1:]))
            assert all(b % align == 0 for _, b in w[:-1]), (n, w)
            sizes = [b - a for a, b in w]
            assert sizes == sorted(sizes) and sizes[0] >= min(n, first)


def test_windows_in_passes_of_16() -> None:
    # -c 128 with the default -b 2048: 16 chunks per pass
    assert [b for _, b in windows(120, ScreenPolicy(align=16))] == [16, 64, 120]
    assert [b for _, b in windows(48, ScreenPolicy(align=16))] == [16, 48]
    assert [b for _, b in windows(400, ScreenPolicy(align=16))] == [16, 64, 208, 400]
    # -c 512: 4 per pass, and the first window of 8 is already whole passes
    assert [b for _, b in windows(580, ScreenPolicy(align=4))] == [8, 32, 104, 320, 580]
    with pytest.raises(ValueError):
        windows(10, ScreenPolicy(align=0))


def test_look_weights_spend_alpha_once() -> None:
    for looks in range(1, 12):
        w = look_weights(looks)
        assert len(w) == looks and sum(w) == pytest.approx(1.0)
        assert w[-1] >= max(w)  # lenient late


# -- decisions on synthetic data with a known truth -------------------------------------------
def test_well_separated_variants_settle_at_the_first_look() -> None:
    truth = world({"Q8_0": 1.0, "Q6_K": 1.5, "Q4_K_M": 3.0, "Q3_K_S": 6.0}, 120, seed=3)
    history, ran = screen(truth, ScreenPolicy(), 120)
    assert len(history) == 1 and all(d.state == "settled" for d in history[0].values())
    assert ran == {k: 8 for k in truth}
    assert [history[0][k].rank for k in ("Q8_0", "Q6_K", "Q4_K_M", "Q3_K_S")] == ["1", "2", "3", "4"]
    assert history[0]["Q6_K"].why == "separated from Q8_0 and Q4_K_M after 8 chunks"


def test_identical_variants_end_as_ties() -> None:
    truth = world({"A": 1.0, "B": 2.0}, 120, seed=5)
    truth["A copy"] = list(truth["A"])  # the same file twice: every chunk identical
    history, _ = screen(truth, ScreenPolicy(), 120)
    final = history[-1]
    assert final["A"].state == final["A copy"].state == "tie"
    assert final["A"].rank == final["A copy"].rank == "1-2"
    assert final["B"].state == "settled" and final["B"].rank == "3"
    # equal truth with independent noise: never separated, stopped as a tie by the end
    for seed in range(5):
        history, _ = screen(world({"A": 1.0, "B": 1.0}, 120, seed=seed), ScreenPolicy(), 120)
        assert all(d.state == "tie" for d in history[-1].values()), seed


def test_equal_variants_are_rarely_called_separated_over_all_looks() -> None:
    """The point of spending alpha over the looks: two EQUAL variants, many seeds, a separation
    called at any look is a false one. Testing each look at the full 5 % would call far more."""
    policy = ScreenPolicy()
    n_total, runs, false = 120, 600, 0
    naive = 0
    for seed in range(runs):
        rng = random.Random(1000 + seed)
        hard = [rng.lognormvariate(-3.0, 0.6) for _ in range(n_total)]
        truth = {k: [h * (1.0 + rng.gauss(0.0, 0.1)) for h in hard] for k in ("A", "B")}
        history, _ = screen(truth, policy, n_total)
        false += any(d.state == "settled" for looked in history for d in looked.values())
        # the same looks, each at an uncorrected 95 %: what spending protects against
        naive += any((pd := paired_diff(series(truth["A"], end), series(truth["B"], end))) is not None and pd.p < 0.05
                     for _, end in windows(n_total, policy))
    rate = false / runs
    assert rate <= (1.0 - policy.level) + 0.02, rate
    assert naive / runs > rate + 0.03  # the looks do inflate errors: this test can tell


def test_close_pair_runs_on_and_separates_later() -> None:
    # 2 % apart with 5 % per-chunk noise: not decidable on 8 chunks, decidable on 120
    truth = world({"IQ4_NL": 1.0, "IQ4_XS": 1.03}, 120, seed=7)
    history, ran = screen(truth, ScreenPolicy(), 120)
    assert history[0]["IQ4_NL"].state == "open" and "open against IQ4_XS after 8 chunks" in history[0]["IQ4_NL"].why
    assert len(history) > 1 and history[-1]["IQ4_NL"].state == "settled" and ran["IQ4_NL"] > 8
    assert history[-1]["IQ4_NL"].rank == "1" and history[-1]["IQ4_XS"].rank == "2"


def test_a_hopeless_pair_ends_as_a_tie() -> None:
    # 0.3 % apart with 10 % noise: even 120 chunks are nowhere near enough
    for seed in range(10):
        truth = world({"Q5_K_M": 1.0, "Q5_0": 1.003}, 120, seed=seed, noise=0.1)
        history, _ = screen(truth, ScreenPolicy(), 120)
        assert all(d.state == "tie" for d in history[-1].values())
        why = history[-1]["Q5_0"].why
        assert why.startswith("tie with Q5_K_M: ")


def test_a_difference_bounded_near_zero_stops_before_the_end() -> None:
    # chunk by chunk the two differ by +-0.002 in turn: the mean difference is 0 on every even
    # number of chunks, so once enough chunks bound it, the full run cannot separate the pair
    rng = random.Random(4)
    a = [rng.lognormvariate(-3.0, 0.6) for _ in range(240)]
    truth = {"A": a, "B": [x + (0.002 if c % 2 else -0.002) for c, x in enumerate(a)]}
    policy = ScreenPolicy(growth=2.0)  # looks at 8, 24, 56, 120, 240 chunks
    history, ran = screen(truth, policy, 240)
    assert [b for _, b in windows(240, policy)] == [8, 24, 56, 120, 240]
    assert all(d.state == "open" for d in history[0].values())  # 8 chunks bound nothing
    assert all(d.state == "tie" for d in history[-1].values())
    assert ran == {"A": 120, "B": 120}
    assert history[-1]["A"].why.startswith("tie with B: ")


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "screening"


def test_an_early_zero_difference_on_real_data_is_no_tie() -> None:
    """The Gemma 3 270M IQ4_NL/IQ4_XS pair at -c 128: on screening's first window (8 chunks)
    their means agreed to 1e-5, and an earlier futility rule called them a tie; the full
    48-chunk runs separate them. The next windows are the full runs' chunks 9-48."""
    data = json.loads((FIXTURES / "gemma270m_iq4_pair.json").read_text())
    full, first = data["full"], data["window1"]
    whole = paired_diff(series(full["IQ4_NL"], 48), series(full["IQ4_XS"], 48))
    assert whole is not None and whole.p < 0.05 and whole.mean < 0  # the full runs separate them, IQ4_NL first
    early = {k: series(first[k], 8) for k in first}
    seen = paired_diff(early["IQ4_NL"], early["IQ4_XS"])
    assert seen is not None and abs(seen.mean) < 2e-5
    got = decide(early, 1, 3, 48, ScreenPolicy())
    assert got["IQ4_NL"].state == got["IQ4_XS"].state == "open", got
    truth = {k: first[k] + full[k][8:] for k in first}
    history, ran = screen(truth, ScreenPolicy(), 48)
    assert history[-1]["IQ4_NL"].state == history[-1]["IQ4_XS"].state == "settled"
    assert (history[-1]["IQ4_NL"].rank, history[-1]["IQ4_XS"].rank) == ("1", "2")
    assert ran["IQ4_NL"] > 8


def test_close_ladders_get_almost_no_wrong_early_ties() -> None:
    """Simulated close ladders (2-6 % apart, like IQ4_NL/IQ4_XS): a tie called before the last
    look on a pair that the full run separates at 95 % is a wrong call. The earlier rule
    (predictive power at the observed difference) called 15 of about 300 here."""
    wrong = separated = 0
    for factors, noise in (({"A": 1.0, "B": 1.036}, 0.05), ({"A": 1.0, "B": 1.02}, 0.05),
                           ({"A": 1.0, "B": 1.03, "C": 1.06}, 0.05), ({"A": 1.0, "B": 1.05}, 0.1)):
        for seed in range(60):
            truth = world(factors, 48, seed, noise=noise)
            history, ran = screen(truth, ScreenPolicy(), 48)
            final, keys = history[-1], sorted(factors, key=factors.__getitem__)
            for a, b in zip(keys, keys[1:]):
                whole = paired_diff(series(truth[a], 48), series(truth[b], 48))
                if whole is None or whole.p >= 0.05:
                    continue
                separated += 1
                wrong += final[a].state == final[b].state == "tie" and min(ran[a], ran[b]) < 48
    assert separated > 100
    assert wrong <= 0.01 * separated, (wrong, separated)


def test_the_last_look_leaves_nothing_open() -> None:
    truth = world({"A": 1.0, "B": 1.01, "C": 1.02}, 40, seed=2, noise=0.1)
    got = decide({k: series(v, 40) for k, v in truth.items()}, 3, 3, 40, ScreenPolicy())
    assert {d.state for d in got.values()} <= {"settled", "tie"}
    got = decide({k: series(v, 8) for k, v in truth.items()}, 1, 3, 40, ScreenPolicy())
    assert "open" in {d.state for d in got.values()}


def test_top_n_stops_variants_far_from_the_boundary() -> None:
    # two close pairs at the top and at the bottom, a close pair across the top-3 boundary
    factors = {"a": 1.0, "b": 1.01, "c": 2.0, "d": 2.02, "e": 4.0, "f": 4.04}
    truth = world(factors, 120, seed=11)
    first = {k: series(v, 8) for k, v in truth.items()}
    whole = decide(first, 1, 4, 120, ScreenPolicy())
    top3 = decide(first, 1, 4, 120, ScreenPolicy(top=3))
    assert whole["a"].state == whole["b"].state == whole["e"].state == whole["f"].state == "open"
    assert {k: top3[k].state for k in "abef"} == {k: "settled" for k in "abef"}
    assert top3["c"].state == top3["d"].state == "open"
    assert top3["a"].rank == "1-3" and top3["f"].rank == "4-6" and top3["c"].rank == "3-4"
    assert top3["a"].why.startswith("in the top 3: separated from ")
    assert top3["e"].why.startswith("outside the top 3: separated from ")


def test_the_noise_floor_turns_a_tiny_real_difference_into_a_tie() -> None:
    # 1 % apart with 1 % noise: clearly real, and the mean difference is about 5e-4
    truth = world({"A": 1.0, "B": 1.01}, 120, seed=4, noise=0.01, hard_sd=0.1)
    history, _ = screen(truth, ScreenPolicy(), 120)
    assert history[-1]["A"].state == "settled"
    history, _ = screen(truth, ScreenPolicy(floor=1e-3), 120)
    assert history[-1]["A"].state == history[-1]["B"].state == "tie"
    assert "noise floor" in history[-1]["A"].why


def test_neighbours_are_compared_on_their_common_chunks() -> None:
    # chunks get harder along the file: the better variant, with more (harder) chunks, has
    # the larger mean over its own chunks; on the chunks both have it is still the better one
    hard = [0.01 * (1 + 0.2 * c) for c in range(56)]
    worse = [3.0 * h for h in hard[:8]]
    better = [1.0 * h * (1 + 0.01 * (c % 3)) for c, h in enumerate(hard)]
    assert sum(better) / 56 > sum(worse) / 8
    got = decide({"worse": series(worse, 8), "better": series(better, 56)}, 3, 4, 120, ScreenPolicy())
    assert got["better"].rank == "1" and got["worse"].rank == "2"


def test_a_separation_once_called_holds_at_later_looks() -> None:
    truth = world({"A": 1.0, "B": 1.5, "C": 1.52}, 120, seed=8)
    # A and B stopped after window 1; C ran on; B's pair with C is what keeps C open
    now = {"A": series(truth["A"], 8), "B": series(truth["B"], 8), "C": series(truth["C"], 56)}
    assert decide(now, 1, 4, 120, ScreenPolicy())["A"].state == "settled"
    assert decide(now, 3, 4, 120, ScreenPolicy())["A"].state == "settled"


# -- derived series: the printed precision --------------------------------------------------
def derived(values: Sequence[float]) -> ChunkSeries:
    running = [round(sum(values[:k]) / k, 5) for k in range(1, len(values) + 1)]
    return ChunkSeries.from_running_means(list(zip(range(1, len(values) + 1), running)))


def test_a_pair_decided_only_by_rounded_figures_stays_open_then_ties() -> None:
    # KLD near 1e-4, 20 % apart, no noise: exact data separates at once, the printed 5
    # decimals cannot: derived chunk k is uncertain by about k * 1e-5
    n = 40
    a = [1.0e-4 * (1 + 0.3 * ((c * 7) % 5)) for c in range(n)]
    b = [1.2 * x for x in a]
    exact = decide({"A": series(a, 8), "B": series(b, 8)}, 1, 3, n, ScreenPolicy())
    assert exact["A"].state == "settled"
    rounded = {"A": head(derived(a), 8), "B": head(derived(b), 8)}
    early = decide(rounded, 1, 3, n, ScreenPolicy())
    assert early["A"].state == "open" and "printed precision" in early["A"].why
    late = decide({"A": derived(a), "B": derived(b)}, 3, 3, n, ScreenPolicy())
    assert late["A"].state == late["B"].state == "tie" and "printed precision" in late["A"].why


# -- real per-chunk data from recorded transcripts --------------------------------------------
def test_real_q4_0_and_q8_0_separate_at_the_first_look() -> None:
    q4, q8 = transcript_series("kld-q4_0"), transcript_series("kld-q8_0")
    assert not q4.exact and len(q4) == len(q8) >= 24
    n_total = len(q4)
    plan = windows(n_total, ScreenPolicy())
    end = plan[0][1]
    got = decide({"Q4_0": head(q4, end), "Q8_0": head(q8, end)}, 1, len(plan), n_total, ScreenPolicy())
    assert got["Q8_0"] == Decision("Q8_0", "settled", f"separated from Q4_0 after {end} chunks", "1")
    assert got["Q4_0"].state == "settled" and got["Q4_0"].rank == "2"


# -- the error spent per look, and Holm across pairs ------------------------------------------
def with_p(p: float, n: int = 8) -> list[float]:
    """Per-chunk differences whose paired test gives exactly two-sided p (df n-1)."""
    from qtui.core.results.paired import t_quantile

    pattern = [(-1.0) ** c * (n - 1) ** 0.5 / n ** 0.5 for c in range(n)]  # mean 0 and sd 1 for even n
    return [t_quantile(1.0 - p / 2.0, n - 1) / n ** 0.5 + x for x in pattern]


def chain(*diffs: list[float], n: int = 8) -> dict[str, ChunkSeries]:
    """Variants A, B, C ... whose neighbours differ chunk by chunk by the given differences."""
    level = [0.5 + 0.1 * c for c in range(n)]
    out = {"A": series(level, n)}
    for name, d in zip("BCDEF", diffs):
        level = [x + 0.01 * y for x, y in zip(level, d)]
        out[name] = series(level, n)
    return out


def test_the_helpers_make_the_p_values_asked_for() -> None:
    s = chain(with_p(0.015))
    pd = paired_diff(s["B"], s["A"])
    assert pd is not None and pd.p == pytest.approx(0.015, rel=1e-6)


def test_each_look_spends_only_its_share_of_alpha() -> None:
    # 4 looks: 1/6 of alpha at each early look (p < 0.0083), half of it at the last (p < 0.025)
    assert look_weights(4) == pytest.approx([1 / 6, 1 / 6, 1 / 6, 0.5])
    s = chain(with_p(0.015))
    assert decide(s, 1, 4, 8, ScreenPolicy())["A"].state != "settled"
    assert decide(s, 4, 4, 8, ScreenPolicy())["A"].state == "settled"
    s = chain(with_p(0.005))
    assert decide(s, 1, 4, 8, ScreenPolicy())["A"].state == "settled"
    s = chain(with_p(0.03))
    assert decide(s, 4, 4, 8, ScreenPolicy())["A"].state == "tie"
    assert decide(s, 1, 1, 8, ScreenPolicy())["A"].state == "settled"  # one look: all of alpha


def test_holm_holds_the_family_across_the_pairs() -> None:
    # one look: p 0.04 alone separates; next to a pair at p 0.3, Holm asks 0.025 of it
    alone = chain(with_p(0.04))
    assert decide(alone, 1, 1, 8, ScreenPolicy())["A"].state == "settled"
    two = chain(with_p(0.04), with_p(0.3))
    got = decide(two, 1, 1, 8, ScreenPolicy())
    assert got["A"].state == "tie" and got["A"].rank == got["C"].rank == "1-3"
    # step-down: 0.02 passes 0.025, then 0.04 passes 0.05 (Bonferroni would stop at 0.025)
    got = decide(chain(with_p(0.04), with_p(0.02)), 1, 1, 8, ScreenPolicy())
    assert [got[k].rank for k in "ABC"] == ["1", "2", "3"]
    assert got["B"].why == "separated from A and C after 8 chunks"


def test_a_difference_above_the_floor_still_separates() -> None:
    truth = world({"A": 1.0, "B": 1.5}, 120, seed=4)
    mean_diff = sum(b - a for a, b in zip(truth["A"][:8], truth["B"][:8])) / 8
    got = decide({k: series(v, 8) for k, v in truth.items()}, 1, 4, 120, ScreenPolicy(floor=mean_diff / 4))
    assert got["A"].state == got["B"].state == "settled"
    got = decide({k: series(v, 8) for k, v in truth.items()}, 1, 4, 120, ScreenPolicy(floor=mean_diff * 1.01))
    assert got["A"].state == "tie" and got["A"].why == "tie with B: difference within the noise floor"


def test_small_fields_and_wrong_policies() -> None:
    one = {"Q8_0": series([0.1, 0.2], 2)}
    assert decide(one, 1, 3, 10, ScreenPolicy()) == {"Q8_0": Decision("Q8_0", "settled", "the only variant", "1")}
    assert decide({}, 1, 3, 10, ScreenPolicy()) == {}
    truth = world({"A": 1.0, "B": 1.0, "C": 1.0}, 8, seed=1)
    got = decide({k: series(v, 8) for k, v in truth.items()}, 1, 3, 40, ScreenPolicy(top=3))
    assert {d.state for d in got.values()} == {"settled"} and {d.rank for d in got.values()} == {"1-3"}
    with pytest.raises(ValueError):
        decide(one, 1, 3, 10, ScreenPolicy(level=1.0))
    with pytest.raises(ValueError):
        decide(one, 1, 3, 10, ScreenPolicy(top=0))


def test_why_names_at_most_a_few_variants() -> None:
    truth = world({f"v{i}": 2.0**i for i in range(6)}, 8, seed=9)
    got = decide({k: series(v, 8) for k, v in truth.items()}, 1, 3, 40, ScreenPolicy(top=1))
    assert got["v0"].why == "in the top 1: separated from v1, v2 and 3 more after 8 chunks"
    assert got["v5"].why == "outside the top 1: separated from v0 after 8 chunks"


def test_pair_figures_are_paired_diffs() -> None:
    """decide() tests pairs with its own fast copy of paired.paired_diff (shifted by the floor);
    with no floor its p-values are paired_diff's, on exact and on derived (rounded) series."""
    from qtui.core.results.screening import _pair

    q4, q8 = transcript_series("kld-q4_0"), transcript_series("kld-q8_0")
    truth = world({"A": 1.0, "B": 1.05}, 60, seed=12)
    cases = [(head(q8, 8), head(q4, 8)), (q8, q4), (series(truth["A"], 60), series(truth["B"], 45)),
             (derived(truth["A"][:30]), derived(truth["B"][:30]))]
    for a, b in cases:
        mine, theirs = _pair(a, b, None, 0.0), paired_diff(b, a)
        assert mine is not None and theirs is not None
        assert (mine.n, mine.mean, mine.sd) == pytest.approx((theirs.n, theirs.mean, theirs.sd), rel=1e-12)
        assert mine.p == pytest.approx(theirs.p, rel=1e-9, abs=1e-300)
        assert mine.p_worst == pytest.approx(theirs.p_worst, rel=1e-9, abs=1e-300)
    limited = _pair(head(q8, 24), head(q4, 24), 8, 0.0)
    assert limited is not None and limited.n == 8  # an earlier look sees only its chunks
