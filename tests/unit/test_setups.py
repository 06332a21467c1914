"""One setup per ranking: what makes two KLD figures comparable, and how results are grouped."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtui.core.results.leaderboard import build_rows
from qtui.core.results.ranking import Setup, setup_key
from qtui.core.results.setups import SetupNotFound, find_setup, group_setups, setup_keys
from qtui.core.results.store import ResultRecord, load_records

ROOT = Path(__file__).resolve().parents[2]
SHA = "1a2b3c" + "0" * 58


def run(i: str, *, chunks: int | None = 30, fork: str = "llama.cpp", status: str = "done", kld: float = 0.1,
        size: float = 1.0, base_file: str = "f16.c512.n30.kld", ctx: int = 512, version: str = "b1",
        ended: float = 0.0, base_label: str = "m-F16") -> ResultRecord:
    return ResultRecord(
        id=i, kind="kld", status=status, model={"path": f"{i}.gguf", "label": i, "size_bytes": int(size * 1024**3)},  # type: ignore[arg-type]
        stats={"kld_mean": kld} if status == "done" else {},
        base={"label": base_label, "file": base_file, "key": base_file}, corpus={"sha256": SHA, "name": "wiki"},
        ctx=ctx, chunks=chunks, llama={"fork": fork, "version": version}, ended_at=ended)


def test_chunks_and_build_family_split_setups() -> None:
    four = run("a", chunks=4, base_file="n4.kld")
    thirty = run("b", chunks=30)
    ik = run("c", chunks=30, fork="ik_llama.cpp")
    assert len({setup_key(four), setup_key(thirty), setup_key(ik)}) == 3
    assert len(group_setups([four, thirty, ik])) == 3


def test_same_base_corpus_ctx_chunks_and_family_is_one_setup() -> None:
    # another version of the same fork, another path of the same base file: still one setup
    a = run("a", version="b1", base_file="one/f16.kld")
    b = run("b", version="b2", base_file="two/f16.kld")
    assert setup_key(a) == setup_key(b)
    (group,) = group_setups([a, b])
    assert [r.id for r in group.records] == ["a", "b"] and group.ranked == 2


def test_a_cancelled_run_joins_the_setup_of_its_base_file() -> None:
    # cancelled after 7 of 30 chunks: its record says 7, its base file holds 30
    done = run("done", chunks=30)
    cancelled = run("stopped", chunks=7, status="cancelled")
    assert setup_key(cancelled)[3] is None  # alone, a cancelled record's chunk count is unknown
    assert setup_keys([done, cancelled])[1] == setup_key(done)
    (group,) = group_setups([done, cancelled])
    assert (group.ranked, group.unranked) == (1, 1)


def test_the_base_files_chunk_count_wins_when_recorded() -> None:
    rec = run("x", chunks=7, status="failed")
    rec.base["n_chunk"] = 30
    assert setup_key(rec) == setup_key(run("y", chunks=30))


def test_scores_and_pareto_are_computed_within_a_setup() -> None:
    # the 4-chunk run would dominate the 30-chunk one if they were ranked together
    four = run("four", chunks=4, base_file="n4.kld", size=0.5, kld=0.01)
    thirty = run("thirty", chunks=30, size=1.0, kld=0.1)
    rows = {r.id: r for r in build_rows([four, thirty])}
    assert rows["four"].pareto and rows["thirty"].pareto
    # each alone in its setup: no distance-to-ideal (a score needs a second row to be relative to);
    # ranked together, "four" would be the ideal (0.0) and "thirty" the farthest (1.41)
    assert rows["four"].score is None and rows["thirty"].score is None


def test_default_is_the_setup_with_the_most_results_then_the_latest() -> None:
    recs = [run("a", chunks=4, base_file="n4.kld", ended=9), run("b"), run("c"), run("d", status="failed", chunks=None)]
    groups = group_setups(recs)
    assert [g.number for g in groups] == [1, 2]
    assert groups[0].setup.chunks == 30 and (groups[0].ranked, groups[0].unranked) == (2, 1)
    tie = group_setups([run("old", ended=1), run("new", chunks=4, base_file="n4.kld", ended=2)])
    assert tie[0].setup.chunks == 4


def test_label_says_everything_that_makes_the_setup() -> None:
    label = Setup.of(run("a")).label
    assert label == "m-F16 · corpus 1a2b3c · -c 512 · 30 chunks · llama.cpp"
    assert len(Setup.of(run("a")).id) == 6


def test_each_published_sweep_is_one_setup() -> None:
    for f in sorted((ROOT / "sample_results").glob("*.json")):
        records = load_records(f).records
        groups = group_setups(records)
        assert len(groups) == 1 and len(groups[0].records) == len(records), f.name
    everything = [r for f in sorted((ROOT / "sample_results").glob("*.json")) for r in load_records(f).records]
    groups = group_setups(everything)
    assert len(groups) == 3
    published = [g for g in groups if g.setup.url]
    assert len(published) == 2 and all("published: reddit.com/r/LocalLLaMA" in g.label for g in published)


def test_find_setup_by_number_id_or_label_prefix() -> None:
    groups = group_setups([run("a", chunks=4, base_file="n4.kld"), run("b"), run("c"), run("d", base_label="other")])
    assert find_setup(groups, "2") is groups[1]
    assert find_setup(groups, groups[2].id[:4].upper()) is groups[2]
    assert find_setup(groups, "OTHER") is next(g for g in groups if g.setup.base == "other")
    with pytest.raises(SetupNotFound, match="no setup 9: the results hold 3 setups"):
        find_setup(groups, "9")
    with pytest.raises(SetupNotFound, match="matches 2 setups"):
        find_setup(groups, "m-F16")
    with pytest.raises(SetupNotFound, match="no setup matches 'zzz'"):
        find_setup(groups, "zzz")


def test_the_results_table_numbers_setups_the_same_way() -> None:
    from qtui.core.results.table import results_frame

    frame = results_frame([run("done"), run("stopped", chunks=7, status="cancelled"),
                           run("short", chunks=4, base_file="n4.kld"), run("ik", fork="ik_llama.cpp")])
    assert frame["setup"].tolist() == [0, 0, 1, 2]
