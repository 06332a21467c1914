"""The noise floor: the job planned (argv, marks, order), queued once per setup, kept off the
ranking, and used as the threshold below which neighbours are ties."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from qtui.core.jobs.queue import JobQueue
from qtui.core.results.chunks import ChunkSeries
from qtui.core.results.floor import floors_by_setup, is_floor, noise_floor
from qtui.core.results.leaderboard import board_records, build_rows
from qtui.core.results.paired import adjacent_separations, paired_diff
from qtui.core.results.store import ResultRecord
from qtui.core.showdown.plan import floor_args
from tests.unit.test_showdown_service import env, finish, request, start  # noqa: F401 - the fixture

__all__ = ["env"]


@pytest.mark.parametrize(("extra", "want"), [
    ((), ["-b", "1024", "-ub", "256"]),  # half of llama.cpp's defaults (2048, 512)
    (("-ngl", "99", "-b", "512"), ["-b", "256", "-ub", "256"]),
    (("--batch-size", "4096", "--ubatch-size", "1024"), ["-b", "2048", "-ub", "512"]),
    (("-b", "4096", "-b", "256"), ["-b", "128", "-ub", "128"]),  # the last one counts, as in llama.cpp
])
def test_floor_args_halve_the_batches_the_user_runs_with(extra: tuple[str, ...], want: list[str]) -> None:
    assert floor_args(extra) == want


def test_the_floor_job_measures_the_base_against_its_own_file_first(env) -> None:  # noqa: F811
    queued = start(env, request(env, "q8", "q4", floor=True, llama_args=("-t", "2")))
    kinds = [(j.spec.kind, is_floor(j.spec.model)) for j in queued.jobs]
    assert kinds == [("base", False), ("kld", True), ("kld", False), ("kld", False)]
    floor = queued.jobs[1].spec
    base = queued.base_job
    assert base is not None and floor.depends_on == base.id
    argv = floor.argv
    assert argv[argv.index("-m") + 1] == str(Path(env["base"]).absolute())
    assert argv[argv.index("--kl-divergence-base") + 1] == base.spec.output
    assert "--kl-divergence" in argv
    # the user's arguments first, then the floor's: llama.cpp takes the last -b it reads
    assert argv[-6:] == ["-t", "2", "-b", "1024", "-ub", "256"]
    assert floor.label.startswith("noise floor ") and floor.model["label"] == "m-F16"
    # the variants run with the user's arguments alone
    assert all("-ub" not in j.spec.argv for j in queued.jobs[2:])


def test_a_floor_is_measured_once_per_setup_and_is_not_the_base_as_a_variant(env) -> None:  # noqa: F811
    start(env, request(env, "q8", floor=True))
    finish(env["data"])
    # the base named as a variant (a sanity check) is not the floor: it is measured
    again = start(env, request(env, "base", floor=True))
    assert [(j.spec.kind, is_floor(j.spec.model)) for j in again.jobs] == [("kld", False)]
    assert [s.why for s in again.skipped] == ["measured"]  # the floor, already measured
    assert len([j for j in JobQueue(env["data"]).jobs() if is_floor(j.spec.model)]) == 1


def _rec(rid: str, kld: float, means: list[float] | None, floor: bool = False, ended: float = 1.0) -> ResultRecord:
    model = {"label": rid, "path": f"/m/{rid}.gguf", "size_bytes": 1 << 30}
    if floor:
        model["floor"] = True
    rec = ResultRecord(id=rid, kind="kld", status="done", model=model, stats={"kld_mean": kld}, ctx=128,
                       base={"label": "base", "file": "/b.kld", "n_chunk": 30}, corpus={"sha256": "ab"},
                       llama={"fork": "llama.cpp"}, ended_at=ended)
    if means is not None:
        rec.chunk_kld = {"kind": "exact", "rows": [[i + 1, m] for i, m in enumerate(means)]}
    return rec


def test_separations_below_the_floor_are_ties() -> None:
    rng = random.Random(5)
    hard = [rng.uniform(0.05, 0.5) for _ in range(30)]
    a = ChunkSeries.from_exact(range(1, 31), hard)
    b = ChunkSeries.from_exact(range(1, 31), [x + 0.002 + rng.gauss(0, 1e-4) for x in hard])
    d = paired_diff(b, a)
    assert d is not None and d.verdict() == "separated"  # clearly apart without a floor
    assert [s.verdict for s in adjacent_separations([a, b])] == ["separated"]
    assert [s.verdict for s in adjacent_separations([a, b], floor=d.mean / 2)] == ["separated"]
    tied = adjacent_separations([a, b], floor=d.mean * 1.01)
    assert [s.verdict for s in tied] == ["tie"] and tied[0].diff == d


def test_the_floor_is_no_row_and_ties_neighbours_closer_than_it() -> None:
    rng = random.Random(9)
    hard = [rng.uniform(0.05, 0.5) for _ in range(30)]
    q8 = _rec("q8", 0.1, hard)
    q6 = _rec("q6", 0.102, [x + 0.002 + rng.gauss(0, 1e-4) for x in hard])
    q4 = _rec("q4", 0.2, [x + 0.1 for x in hard])
    old_floor = _rec("base-floor-old", 0.0001, None, floor=True, ended=1.0)
    floor = _rec("base-floor", 0.005, None, floor=True, ended=2.0)
    records = [q8, q6, q4, old_floor, floor]
    assert noise_floor(records) == 0.005  # the latest floor run
    assert list(floors_by_setup(records).values()) == [0.005]
    rows = {r.id: r for r in build_rows(records)}
    assert set(rows) == {"q8", "q6", "q4"}
    assert (rows["q8"].rank, rows["q6"].rank, rows["q4"].rank) == ("1-2", "1-2", "3")
    without = {r.id: r.rank for r in build_rows([q8, q6, q4])}
    assert without == {"q8": "1", "q6": "2", "q4": "3"}
    # the base measured as a variant and its floor are two measurements, both kept
    base_variant = _rec("base-as-variant", 0.0, None)
    base_variant.model["path"] = floor.model["path"] = "/m/base.gguf"
    kept = board_records([base_variant, floor])
    assert {r.id for r in kept} == {"base-as-variant", "base-floor"}


def test_the_floor_comes_from_per_token_data_when_the_printed_mean_reads_zero() -> None:
    chunk_means = [3e-7, 5e-7, 4e-7, 4e-7]
    exact = _rec("floor", 0.0, chunk_means, floor=True)  # printed with 6 decimals: 0.000000
    assert noise_floor([exact]) == pytest.approx(4e-7, rel=1e-12)
    assert noise_floor([_rec("floor", 0.0, None, floor=True)]) == 0.0  # no per-token data: the printed figure


def test_the_results_frame_never_scores_the_floor() -> None:
    from qtui.core.results.table import results_frame

    q8, q4 = _rec("q8", 0.01, None), _rec("q4", 0.05, None)
    q4.model["size_bytes"] = 1 << 29
    floor = _rec("floor", 1e-7, None, floor=True)
    floor.model["size_bytes"] = 1 << 31
    frame = results_frame([q8, q4, floor]).set_index("id")
    assert not frame.loc["floor", "pareto"] and frame.loc["floor", "score"] != frame.loc["floor", "score"]  # NaN
    assert frame.loc["q8", "pareto"] and frame.loc["q4", "pareto"]  # the floor's KLD near 0 dominates no quant
    assert frame.loc["q8", "score"] == 1.0  # min-max over the two quants only: the largest, q8, is at size 1
