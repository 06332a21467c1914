"""Scores and the Pareto front of a screened setup: variants that ran different chunks are scored
over the chunks they all ran, in the app's rows and in the results frame alike."""

from __future__ import annotations

import math

import pytest

from qtui.core.results.chunks import common_chunk_means
from qtui.core.results.leaderboard import build_rows
from qtui.core.results.store import ResultRecord
from qtui.core.results.table import results_frame

GIB = 1024**3


def rec(rid: str, size: float, means: list[float], screened: bool = True) -> ResultRecord:
    return ResultRecord(
        id=rid, kind="kld", status="done",
        model={"label": rid, "quant": rid, "size_bytes": int(size * GIB), "path": f"/m/{rid}.gguf"},
        stats={"kld_mean": math.fsum(means) / len(means)}, base={"file": "/b/base.kld", "label": "base"},
        corpus={"sha256": "c"}, ctx=128, chunks=48,
        chunk_kld={"kind": "exact", "rows": [[i + 1, m] for i, m in enumerate(means)]},
        screen={"batch": "b", "state": "settled", "chunks_run": len(means), "n_chunk": 48} if screened else None)


def ladder(screened: bool = True) -> list[ResultRecord]:
    # chunks 1-16 are easy (0.01), 17-48 hard (0.05): "small" stopped after the easy window
    easy, hard = [0.01] * 16, [0.05] * 32
    return [rec("big", 2.0, [x * 1.0 for x in easy + hard], screened),
            rec("mid", 1.5, [x * 1.5 for x in easy + hard], screened),
            rec("small", 1.0, [x * 3.0 for x in easy], screened)]


def test_common_chunk_means_are_over_the_shared_chunks() -> None:
    got = common_chunk_means(ladder())
    assert got == pytest.approx([0.01, 0.015, 0.03])
    # a run without per-chunk data, or no chunk in common: nothing to compare on
    assert common_chunk_means([*ladder(), ResultRecord(id="x", kind="kld", status="done", model={})]) is None
    late = rec("late", 1.0, [0.02] * 20)
    late.chunk_kld = {"kind": "exact", "rows": [[i + 30, 0.02] for i in range(10)]}
    assert common_chunk_means([ladder()[2], late]) is None


def test_a_short_screened_run_is_not_scored_as_if_it_were_best() -> None:
    rows = {r.id: r for r in build_rows(ladder())}
    # its own mean over 16 easy chunks (0.03) is below mid's (0.0609) and big's (0.0406) ...
    assert rows["small"].kld == pytest.approx(0.03) and rows["small"].kld < rows["big"].kld
    # ... but over the chunks all three ran it is the worst, and its score says so: it sits at
    # the small end (size 0) and the far end of KLD (1), as far from the ideal as "big" is
    assert rows["small"].score == pytest.approx(1.0)
    assert rows["big"].score == pytest.approx(1.0)
    assert rows["mid"].score == pytest.approx(math.hypot(0.5, 0.25))
    assert all(r.pareto for r in rows.values())  # each is the best at its size


def test_the_frame_scores_as_the_board_does() -> None:
    rows = {r.id: r for r in build_rows(ladder())}
    frame = results_frame(ladder()).set_index("id")
    for rid, row in rows.items():
        assert frame.loc[rid, "score"] == pytest.approx(row.score)
        assert bool(frame.loc[rid, "pareto"]) == row.pareto
        assert frame.loc[rid, "kld_mean"] == pytest.approx(row.kld)  # the table shows its own mean


def test_full_runs_are_scored_by_their_own_means() -> None:
    rows = {r.id: r for r in build_rows(ladder(screened=False))}
    # not screened: "small" really is best on its own mean, and scores 0 on the KLD axis
    assert rows["small"].score == pytest.approx(0.0)
