"""Per-chunk means (chunks.py) and the paired comparison (paired.py), against independent oracles:
printed t tables, a brute-force computation, a bootstrap over chunks, Holm by adjusted p-values,
and REAL recorded llama-perplexity transcripts."""

from __future__ import annotations

import itertools
import random
import statistics
import sys
from pathlib import Path

import pytest

from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.llama.parser import parse_transcript
from qtui.core.results.chunks import ChunkSeries, chunk_series, running_means_field
from qtui.core.results.leaderboard import build_rows, sort_rows
from qtui.core.results.paired import Separation, adjacent_separations, holm, paired_diff, rank_ranges, t_quantile
from qtui.core.results.store import ResultRecord, ResultStore

LLAMA = Path(__file__).resolve().parents[1] / "fixtures" / "llama"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_perplexity.py"
KLD_CASES = sorted(p.with_suffix("") for p in LLAMA.glob("*/kld-*.out"))


def transcript_series(case: Path) -> tuple[ChunkSeries, list[tuple[int, float]], object]:
    parsed = parse_transcript(case.with_suffix(".out").read_bytes(), case.with_suffix(".err").read_bytes(), 0)
    rows = [(p.chunk, p.kld) for p in parsed.progress if p.kld is not None]
    return ChunkSeries.from_running_means(rows), rows, parsed.stats


# -- Student t against printed tables ---------------------------------------------------------
@pytest.mark.parametrize(("df", "table"), [(1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (39, 2.0227),
                                           (100, 1.9840), (1000, 1.9623)])
def test_t_quantile_matches_the_printed_table(df: int, table: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(table, abs=1e-4)


# -- derived per-chunk means on real transcripts ----------------------------------------------
def test_real_transcripts_are_found() -> None:
    assert len(KLD_CASES) >= 10  # three builds, several KLD runs each: the tests below must see them


@pytest.mark.parametrize("case", KLD_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_derived_chunk_means_reproduce_the_printed_running_means(case: Path) -> None:
    series, rows, stats = transcript_series(case)
    assert len(series) == len(rows) > 0 and series.chunks == tuple(range(1, len(rows) + 1))
    # averaging the derived chunk means again gives back every printed running mean
    for k, printed in rows:
        assert statistics.fmean(series.means[:k]) == pytest.approx(printed, abs=1e-12)
    # and the run's final block: its mean KLD (6 decimals) within the last row's rounding
    assert stats is not None
    assert statistics.fmean(series.means) == pytest.approx(stats.kld_mean, abs=series.step + 5e-7)  # type: ignore[attr-defined]
    assert series.sum_bound(series.chunks) == pytest.approx(len(series) * series.step)
    # a chunk's mean lies between the run's smallest and largest token KLD, up to its rounding bound
    for c, m in zip(series.chunks, series.means):
        assert stats.kld_min - series.bound(c) <= m <= stats.kld_max + series.bound(c)  # type: ignore[attr-defined]


def test_rounding_bound_holds_for_any_chunks() -> None:
    rng = random.Random(11)
    true = [rng.lognormvariate(-3.0, 0.6) for _ in range(300)]
    running = [round(statistics.fmean(true[:k]), 5) for k in range(1, len(true) + 1)]
    series = ChunkSeries.from_running_means(list(zip(range(1, len(true) + 1), running)))
    assert series.bound(100) == pytest.approx(100e-5, rel=0.01)  # "about k * 1e-5"
    for c, m in zip(series.chunks, series.means):
        assert abs(m - true[c - 1]) <= series.bound(c) + 1e-12
    for _ in range(50):
        subset = sorted(rng.sample(range(1, len(true) + 1), rng.randint(1, 120)))
        err = abs(sum(series.as_dict()[c] for c in subset) - sum(true[c - 1] for c in subset))
        assert err <= series.sum_bound(subset) + 1e-12


def test_a_missing_row_loses_the_chunk_after_it() -> None:
    s = ChunkSeries.from_running_means([(1, 0.1), (2, 0.2), (4, 0.3), (5, float("nan")), (6, 0.3)])
    assert s.chunks == (1, 2) and s.means == pytest.approx((0.1, 0.3))


def test_record_field_round_trip() -> None:
    parsed = parse_transcript((LLAMA / "b0336" / "kld-q8_0.out").read_bytes(), None, 0)
    field = running_means_field(parsed.progress)
    assert field is not None and field["kind"] == "running" and len(field["rows"]) == 40
    rec = ResultRecord.from_dict(ResultRecord(id="x", kind="kld", status="done", model={}, chunk_kld=field).to_dict())
    series = chunk_series(rec)
    assert series is not None and series.kind == "derived" and len(series) == 40
    assert chunk_series(ResultRecord(id="y", kind="kld", status="done", model={})) is None  # an older record
    assert running_means_field([]) is None


# -- the paired interval against independent oracles ------------------------------------------
def correlated_pair(n: int, gap: float, seed: int) -> tuple[ChunkSeries, ChunkSeries]:
    """B = A + gap per chunk with small noise; chunk difficulty (shared) dominates both."""
    rng = random.Random(seed)
    hard = [rng.lognormvariate(-2.5, 0.5) for _ in range(n)]
    a = [h + rng.gauss(0, 0.002) for h in hard]
    b = [h * 1.05 + gap + rng.gauss(0, 0.002) for h in hard]
    return ChunkSeries.from_exact(range(1, n + 1), a), ChunkSeries.from_exact(range(1, n + 1), b)


def test_paired_interval_matches_brute_force() -> None:
    a, b = correlated_pair(40, 0.003, seed=3)
    got = paired_diff(b, a)
    assert got is not None
    d = [y - x for x, y in zip(a.means, b.means)]
    se = statistics.stdev(d) / len(d) ** 0.5
    assert got.n == 40 and got.mean == pytest.approx(statistics.fmean(d), rel=1e-12)
    assert got.low == pytest.approx(statistics.fmean(d) - 2.022691 * se, rel=1e-6)
    assert got.high == pytest.approx(statistics.fmean(d) + 2.022691 * se, rel=1e-6)
    # pairing is the point: the interval is far tighter than the two unpaired ± bars
    unpaired = 2.022691 * (statistics.stdev(a.means) ** 2 / 40 + statistics.stdev(b.means) ** 2 / 40) ** 0.5
    assert got.half_width < unpaired / 3


def test_paired_interval_agrees_with_a_bootstrap_over_chunks() -> None:
    a, b = correlated_pair(80, 0.001, seed=5)
    got = paired_diff(b, a)
    assert got is not None
    d = [y - x for x, y in zip(a.means, b.means)]
    rng = random.Random(2024)
    boots = sorted(statistics.fmean(rng.choices(d, k=len(d))) for _ in range(4000))
    lo, hi = boots[int(0.025 * 4000)], boots[int(0.975 * 4000) - 1]
    assert abs(lo - got.low) < 0.15 * got.half_width and abs(hi - got.high) < 0.15 * got.half_width


def test_only_common_chunks_are_paired() -> None:
    a = ChunkSeries.from_exact([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4])
    b = ChunkSeries.from_exact([3, 4, 5], [0.35, 0.42, 9.0])
    got = paired_diff(b, a)
    assert got is not None and got.n == 2 and got.mean == pytest.approx(0.035)
    assert paired_diff(a, ChunkSeries.from_exact([4, 9], [0.1, 0.2])) is None  # one chunk in common: no interval


def test_real_runs_q4_against_q8_are_separated_and_a_rerun_is_a_tie() -> None:
    q8, _, _ = transcript_series(LLAMA / "b0336" / "kld-q8_0")
    q4, _, _ = transcript_series(LLAMA / "b0336" / "kld-q4_0")
    q4_again, _, _ = transcript_series(LLAMA / "b0336" / "kld-q4_0-b128")  # the same file at another -b
    sep = paired_diff(q4, q8)
    assert sep is not None and sep.verdict() == "separated" and sep.low > 0 and not sep.exact
    same = paired_diff(q4_again, q4)
    assert same is not None and same.verdict() == "tie" and same.low < 0 < same.high


def test_printed_precision_can_be_what_limits_a_pair() -> None:
    # 500 chunks at KLD ~0.01: derived chunk k is off by up to ~k * 1e-5, larger than the
    # per-chunk spread of the difference; the exact data separate the pair
    rng = random.Random(8)
    n = 500
    hard = [rng.lognormvariate(-4.6, 0.3) for _ in range(n)]
    a = [h + rng.gauss(0, 0.0002) for h in hard]
    b = [h + 0.0003 + rng.gauss(0, 0.0002) for h in hard]
    exact = paired_diff(ChunkSeries.from_exact(range(1, n + 1), b), ChunkSeries.from_exact(range(1, n + 1), a))
    assert exact is not None and exact.verdict() == "separated"

    def derived(x: list[float]) -> ChunkSeries:
        return ChunkSeries.from_running_means([(k, round(statistics.fmean(x[:k]), 5)) for k in range(1, n + 1)])

    got = paired_diff(derived(b), derived(a))
    assert got is not None and got.p < 0.05 and got.verdict() == "limited"
    assert got.precision > got.half_width  # the rounding, not the data, sets the width


# -- Holm and the ranked list -----------------------------------------------------------------
def holm_oracle(ps: list[float | None], alpha: float) -> list[bool]:
    """By Holm-adjusted p-values: p_adj(i) = max over j <= i of (m - j + 1) * p(j) (sorted)."""
    tested = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m = len(tested)
    out = [False] * len(ps)
    running = 0.0
    for j, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - j) * p))
        out[i] = running <= alpha
    return out


def test_holm_cases() -> None:
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]  # 0.03 > 0.05/2 stops the steps
    assert holm([0.01, 0.02, 0.04], 0.05) == [True, True, True]
    assert holm([None, 0.04], 0.05) == [False, True]  # an untestable pair is not in the family
    assert holm([0.03, 0.03], 0.05) == [False, False]  # Bonferroni would say the same; unadjusted would not
    rng = random.Random(1)
    for _ in range(300):
        ps: list[float | None] = [None if rng.random() < 0.1 else rng.random() ** 3 for _ in range(rng.randint(1, 8))]
        assert holm(ps, 0.05) == holm_oracle(ps, 0.05)


def test_ties_are_grouped_into_rank_ranges() -> None:
    sep, tie = Separation(None, "separated"), Separation(None, "tie")
    assert rank_ranges([sep, tie, tie, sep]) == ["1", "2-4", "2-4", "2-4", "5"]
    assert rank_ranges([tie, tie]) == ["1-3"] * 3
    assert rank_ranges([]) == ["1"]
    limited, none = Separation(None, "limited"), Separation(None, "no data")
    assert rank_ranges([limited, sep, none]) == ["1-2", "1-2", "3-4", "3-4"]  # only "separated" splits


def test_adjacent_separations_of_a_ladder() -> None:
    rng = random.Random(4)
    n = 60
    hard = [rng.lognormvariate(-2.5, 0.5) for _ in range(n)]

    def variant(shift: float) -> ChunkSeries:
        return ChunkSeries.from_exact(range(1, n + 1), [h + shift + rng.gauss(0, 0.001) for h in hard])

    ladder = [variant(0.0), variant(0.01), variant(0.01), variant(0.03), None]  # the middle two: a true tie
    seps = adjacent_separations(ladder)
    assert [s.verdict for s in seps] == ["separated", "tie", "separated", "no data"]
    assert seps[0].diff is not None and seps[0].diff.mean == pytest.approx(0.01, abs=0.001)  # next minus this
    assert rank_ranges(seps) == ["1", "2-3", "2-3", "4-5", "4-5"]


def test_all_pairs_of_ranges_are_consistent() -> None:
    # every split of V-1 verdicts: rows share a range exactly when no separation lies between them
    for verdicts in itertools.product(["separated", "tie"], repeat=4):
        ranks = rank_ranges([Separation(None, v) for v in verdicts])  # type: ignore[arg-type]
        for i, j in itertools.combinations(range(5), 2):
            apart = any(v == "separated" for v in verdicts[i:j])
            assert (ranks[i] != ranks[j]) == apart


# -- the board: records finished by the real scheduler ----------------------------------------
def kld_job(case: str, tmp: Path) -> JobSpec:
    env = {"FAKE_LLAMA_CASE": str(LLAMA / "b0336" / case), "FAKE_LLAMA_DELAY": "0"}
    argv = [sys.executable, str(FAKE), "-m", f"{case}.gguf", "--kl-divergence-base", str(tmp / "base.kld"), "--kl-divergence"]
    return JobSpec(kind="kld", argv=argv, env=env, model={"label": case, "path": f"/m/{case}.gguf", "size_bytes": 1000},
                   label=case)


def test_finished_runs_carry_their_chunk_means_onto_the_board(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    for case in ("kld-q8_0", "kld-q4_0", "kld-q4_0-b128"):
        q.add(kld_job(case, tmp_path))
    Scheduler(tmp_path).run()
    records = ResultStore(tmp_path).load().records
    assert sorted(r.status for r in records) == ["done"] * 3
    parsed = parse_transcript((LLAMA / "b0336" / "kld-q4_0.out").read_bytes(), None, 0)
    q4 = next(r for r in records if r.model["label"] == "kld-q4_0")
    assert q4.chunk_kld is not None and q4.chunk_kld["rows"] == [[p.chunk, p.kld] for p in parsed.progress]
    rows = {r.model: r for r in build_rows(records)}
    assert rows["kld-q8_0"].rank == "1" and rows["kld-q8_0"].chunk_data == "derived"
    # the two Q4_0 runs (another -b) are not separated: one range, below Q8_0
    assert rows["kld-q4_0"].rank == rows["kld-q4_0-b128"].rank == "2-3"
    first = rows["kld-q8_0"]
    assert first.vs_next is not None and first.vs_next.verdict == "separated"
    assert first.next_id in (rows["kld-q4_0"].id, rows["kld-q4_0-b128"].id)
    last = max(rows.values(), key=lambda r: r.kld or 0.0)
    assert last.vs_next is None and last.next_id is None
    assert [r.rank for r in sort_rows(rows.values(), "rank")] == ["1", "2-3", "2-3"]
