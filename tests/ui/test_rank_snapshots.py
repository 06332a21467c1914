"""Snapshots of the leaderboard's Rank column, at 120x16: ties shown as a shared range, and a
screened ladder whose rows say their state (settled, tie, open) and the chunks each ran. The
records are made in the test with seeded per-chunk data (no timing in the picture). Update
with --snapshot-update and look at the SVG."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from qtui.core.results.store import ResultRecord
from tests.ui.test_leaderboard_rank import BoardApp, ladder, rec


def screened() -> list[ResultRecord]:
    """Four variants screened on a 48-chunk run: two settled on the first window of 16 chunks,
    a pair still open after 32, and one called a tie with its neighbour at the end."""
    rng = random.Random(4)
    hard = [rng.lognormvariate(-2.5, 0.5) for _ in range(48)]
    out = []
    for rid, shift, ran, state in (("q8", 0.0, 16, "settled"), ("q6", 0.004, 48, "tie"), ("q6b", 0.0041, 48, "tie"),
                                   ("q5", 0.006, 32, "open"), ("q4", 0.03, 16, "settled")):
        r = rec(rid, [h + shift + rng.gauss(0, 0.001) for h in hard[:ran]])
        out.append(replace(r, screen={"batch": "b", "stage": 3, "state": state, "chunks_run": ran, "n_chunk": 48}))
    return out


async def _shown(pilot: Any, records: list[ResultRecord]) -> None:
    from qtui.ui.widgets.leaderboard import Leaderboard

    pilot.app.query_one(Leaderboard).set_records(records)
    await pilot.pause()


def test_ties_share_a_rank_range(snap_compare: Any) -> None:
    assert snap_compare(BoardApp(), run_before=lambda pilot: _shown(pilot, ladder()), terminal_size=(120, 12))


def test_screened_rows_say_state_and_chunks(snap_compare: Any) -> None:
    assert snap_compare(BoardApp(), run_before=lambda pilot: _shown(pilot, screened()), terminal_size=(120, 12))
