import math
from dataclasses import replace

import pytest

from qtui.core.results.leaderboard import COLUMN_KEYS, Row, board_records, build_rows, efficiency_scores, pareto_front, sort_rows
from qtui.core.results.store import ResultRecord


def rec(i: str, size_gib: float | None, kld: float | None, status: str = "done", **stats: float) -> ResultRecord:
    model = {"label": i, "quant": "Q4_K_M"}
    if size_gib is not None:
        model["size_bytes"] = int(size_gib * 1024**3)
    s = dict(stats)
    if kld is not None:
        s["kld_mean"] = kld
    return ResultRecord(id=i, kind="kld", status=status, model=model, stats=s)  # type: ignore[arg-type]


def test_efficiency_matches_the_published_score() -> None:
    # The published Qwen3.5-35B-A3B Q4 sweep (sample_results/qwen3.5-35b-a3b-q4-published.json):
    # AesSedai IQ4_XS is the smallest (size_n = 0) with KLD 0.0240 in a set whose KLD ranges
    # 0.0102..0.0524 -> published score 0.327.
    rows = build_rows([rec("iq4xs", 16.4, 0.0240), rec("q4km", 20.0, 0.0102), rec("udq4", 19.0, 0.0524)])
    by = {r.id: r for r in rows}
    assert by["iq4xs"].score == pytest.approx(0.327, abs=5e-4)
    assert by["q4km"].score == pytest.approx(1.0)  # largest file, lowest KLD


def test_score_is_relative_to_the_set() -> None:
    a = build_rows([rec("a", 1, 0.1), rec("b", 2, 0.2)])
    b = build_rows([rec("a", 1, 0.1), rec("b", 2, 0.2), rec("c", 3, 0.05)])
    assert {r.id: r.score for r in a}["b"] != {r.id: r.score for r in b}["b"]


def test_unknown_values_give_no_score_and_no_pareto() -> None:
    rows = build_rows([rec("a", None, 0.1), rec("b", 2, None), rec("c", 3, 0.05), rec("d", 4, 0.04)])
    by = {r.id: r for r in rows}
    assert by["a"].score is None and by["b"].score is None and not by["a"].pareto
    assert by["d"].score == 1.0 and by["c"].pareto and by["d"].pareto


def test_one_sized_row_alone_gets_no_score() -> None:
    # a score is relative to the set: one known point has nothing to be measured against
    rows = build_rows([rec("a", None, 0.1), rec("b", 2, None), rec("c", 3, 0.05)])
    assert all(r.score is None for r in rows)


def test_pareto_front() -> None:
    rows = build_rows([rec("small-bad", 1, 0.5), rec("mid", 2, 0.2), rec("dominated", 2.5, 0.3), rec("big-good", 4, 0.01)])
    assert {r.id for r in rows if r.pareto} == {"small-bad", "mid", "big-good"}


def test_ties_are_not_dominated() -> None:
    rows = build_rows([rec("a", 1, 0.1), rec("b", 1, 0.1)])
    assert all(r.pareto for r in rows)


def test_failed_runs_excluded_from_ranking_maths() -> None:
    rows = build_rows([rec("ok", 1, 0.1), rec("ok2", 2, 0.05), rec("bad", 0.5, 0.01, status="failed")], include_failed=True)
    by = {r.id: r for r in rows}
    # with "bad" counted, "ok" would not be the smallest file: its score would not be 1.0
    assert by["bad"].score is None and not by["bad"].pareto and by["ok"].score == 1.0


@pytest.mark.parametrize("reverse", [False, True])
def test_sort_puts_unknown_last_both_ways(reverse: bool) -> None:
    rows = build_rows([rec("a", 1, None), rec("b", 2, 0.3), rec("c", 3, 0.1)])
    out = [r.id for r in sort_rows(rows, "kld", reverse)]
    assert out[-1] == "a"
    assert out[:2] == (["b", "c"] if reverse else ["c", "b"])


def test_every_column_sorts() -> None:
    rows = build_rows([rec("a", 1, 0.2, kld_p99=0.5), rec("b", 2, 0.1)])
    for key in COLUMN_KEYS:
        assert len(sort_rows(rows, key)) == 2


def test_unknown_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown column"):
        sort_rows([], "nope")


def test_nan_stats_are_unknown() -> None:
    rows = build_rows([rec("a", 1, math.nan)])
    assert rows[0].kld is None


def test_efficiency_constant_axes() -> None:
    r = [Row(id="x", model="x", quantizer=None, quant=None, size_gib=1.0, bpw=None, ppl_q=None, ppl_ratio=None, kld=0.1,
             kld_err=None, kld_p99=None, kld_p999=None, kld_max=None, dp_rms=None, same_top=None, duration_s=None, status="done")]
    # one point: no score (nothing to be relative to), but it is on its own front
    assert efficiency_scores(r) == [None] and pareto_front(r) == [True]
    two = [r[0], replace(r[0], id="y")]  # constant size and KLD axes normalise to 0
    assert efficiency_scores(two) == [0.0, 0.0]


def test_scores_never_mix_setups() -> None:
    """Two showdowns against different bases are ranked each in its own set."""
    a = [rec("a1", 1, 0.1), rec("a2", 2, 0.05)]
    b = [rec("b1", 10, 0.9), rec("b2", 20, 0.5)]
    for r in a:
        r.base = {"label": "model-A-BF16"}
    for r in b:
        r.base = {"label": "model-B-BF16"}
    together = {r.id: (r.score, r.pareto) for r in build_rows(a + b)}
    apart = {r.id: (r.score, r.pareto) for r in build_rows(a) + build_rows(b)}
    assert together == apart


def test_board_hides_failures_that_were_retried_with_success() -> None:
    def attempt(i: str, model: str, status: str, ended: float) -> ResultRecord:
        return ResultRecord(id=i, kind="kld", status=status, model={"path": model}, base={"file": "b.kld"},  # type: ignore[arg-type]
                            ended_at=ended)

    records = [attempt("1", "a.gguf", "cancelled", 1), attempt("2", "a.gguf", "done", 2), attempt("3", "b.gguf", "failed", 1),
               attempt("4", "b.gguf", "failed", 3), attempt("5", "c.gguf", "done", 1)]
    assert [r.id for r in board_records(records)] == ["2", "4", "5"]


def test_a_failure_against_another_base_stays_on_the_board() -> None:
    done = ResultRecord(id="ok", kind="kld", status="done", model={"path": "a.gguf"}, base={"file": "one.kld"})
    other = ResultRecord(id="bad", kind="kld", status="failed", model={"path": "a.gguf"}, base={"file": "two.kld"})
    assert [r.id for r in board_records([done, other])] == ["ok", "bad"]


def test_a_variant_measured_again_is_one_row_its_latest() -> None:
    def run(i: str, path: str, ended: float, kld: float, base: str = "one.kld") -> ResultRecord:
        return ResultRecord(id=i, kind="kld", status="done", model={"path": path, "size_bytes": 1, "mtime": 1.0},
                            base={"file": base}, ctx=512, ended_at=ended, stats={"kld_mean": kld})

    records = [run("old", "a.gguf", 1, 0.2), run("new", "a.gguf", 2, 0.1), run("b", "b.gguf", 1, 0.3),
               run("other-base", "a.gguf", 3, 0.4, base="two.kld")]
    assert [r.id for r in board_records(records)] == ["new", "b", "other-base"]


def test_published_rows_without_a_file_are_never_merged() -> None:
    a = ResultRecord(id="aes", kind="kld", status="done", model={"label": "IQ4_XS", "quantized_by": "AesSedai"})
    b = ResultRecord(id="ub", kind="kld", status="done", model={"label": "IQ4_XS", "quantized_by": "ubergarm"})
    assert [r.id for r in board_records([a, b])] == ["aes", "ub"]


def screened(i: str, means: list[float], state: str = "settled") -> ResultRecord:
    """A screened variant's summary: its mean over the chunks it ran (1..len(means))."""
    r = rec(i, 1.0, sum(means) / len(means))
    r.chunk_kld = {"kind": "exact", "rows": [[c, m] for c, m in enumerate(means, start=1)]}
    r.screen = {"batch": "b", "stage": 3, "state": state, "why": "", "rank": None, "chunks_run": len(means), "n_chunk": 48}
    return r


def test_screened_rows_rank_in_the_paired_order_not_by_their_own_means() -> None:
    # A stopped after 8 hard chunks; B and C ran all 48, whose later chunks are easier. On the
    # 8 chunks all three share, A < B < C, which is what screening decided; their own means
    # (A 0.30 over 8 chunks, B 0.14 and C 0.25 over 48) would put A last.
    wiggle = [0.01 * ((c * 7) % 5 - 2) for c in range(48)]
    a = screened("A", [0.30 + w for w in wiggle[:8]])
    b = screened("B", [0.33 + 1.1 * w for w in wiggle[:8]] + [0.10] * 40)
    c = screened("C", [0.50 + 0.9 * w for w in wiggle[:8]] + [0.20] * 40)
    rows = build_rows([b, c, a])
    assert [r.id for r in sorted(rows, key=lambda r: r.kld or 0.0)] == ["B", "C", "A"]  # own means
    ranked = sort_rows(rows, "kld")
    assert [r.id for r in ranked] == ["A", "B", "C"]
    assert [r.rank for r in ranked] == ["1", "2", "3"]
    assert [r.id for r in sort_rows(rows, "kld", reverse=True)] == ["C", "B", "A"]
    # other columns sort as before; a setup without screened rows keeps the plain KLD order
    assert [r.id for r in sort_rows(rows, "rank")] == ["A", "B", "C"]
    plain = build_rows([rec("x", 1, 0.2), rec("y", 1, 0.1)])
    assert all(r.position is None for r in plain) and [r.id for r in sort_rows(plain, "kld")] == ["y", "x"]
