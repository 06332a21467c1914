"""The results table (a pandas DataFrame) and qtui.load_results, the notebook API."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qtui
from qtui.core.results.export import export
from qtui.core.results.leaderboard import build_rows
from qtui.core.results.store import ResultRecord, ResultStore
from qtui.core.results.table import FRAME_COLUMN_NAMES, OTHER_STATS, results_frame

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_results"


def rec(i: str, size_gib: float | None, kld: float | None, *, base: str = "B-BF16", status: str = "done",
        kind: str = "kld", **kw: object) -> ResultRecord:
    model: dict[str, object] = {"label": i, "quant": "Q4_K_M", "quantized_by": "someone"}
    if size_gib is not None:
        model["size_bytes"] = int(size_gib * 1024**3)
    stats = {"kld_mean": kld, "kld_mean_err": 0.001} if kld is not None else {}
    return ResultRecord(id=i, kind=kind, status=status, model=model, stats=stats, base={"label": base},  # type: ignore[arg-type]
                        corpus={"name": "wiki", "sha256": "ab" * 32}, ctx=512, chunks=10, **kw)  # type: ignore[arg-type]


def test_one_row_per_record_with_every_documented_column() -> None:
    records = [rec("a", 1, 0.1, started_at=1000.0, ended_at=1090.5), rec("b", None, None, status="failed"),
               rec("base", 2, None, kind="base")]
    df = results_frame(records)
    assert tuple(df.columns) == FRAME_COLUMN_NAMES
    assert list(df["id"]) == ["a", "b", "base"] and list(df["kind"]) == ["kld", "kld", "base"]
    a = df.iloc[0]
    assert a["size_bytes"] == 1024**3 and a["size_gib"] == 1.0 and a["kld_mean"] == 0.1 and a["ctx"] == 512
    assert a["duration_s"] == 90.5 and a["started_at"].year == 1970 and str(a["started_at"].tz) == "UTC"
    assert math.isnan(df.iloc[1]["kld_mean"]) and math.isnan(df.iloc[1]["size_gib"])
    assert str(df["size_bytes"].dtype) == "Int64" and str(df["kld_mean"].dtype) == "float64"


def test_empty_table_keeps_its_columns() -> None:
    df = results_frame([])
    assert df.empty and tuple(df.columns) == FRAME_COLUMN_NAMES


def test_nan_and_inf_stats_are_missing_not_numbers() -> None:
    r = rec("a", 1, None)
    r.stats = {"kld_mean": "nan", "kld_p99": "inf", "same_top": True}  # as stored by FinalStats.to_dict
    df = results_frame([r])
    assert df[["kld_mean", "kld_p99", "same_top"]].isna().all(axis=None)
    assert math.isnan(df.iloc[0]["score"]) and not df.iloc[0]["pareto"]


def test_ranking_is_per_setup_and_only_over_finished_kld_runs() -> None:
    records = [rec("a1", 1, 0.1), rec("a2", 2, 0.05), rec("a-failed", 0.5, 0.01, status="failed"),
               rec("b1", 10, 0.9, base="other-BF16"), rec("b2", 20, 0.5, base="other-BF16"),
               rec("a-base", 3, 0.0, kind="base")]
    df = results_frame(records).set_index("id")
    assert df.loc["a1", "setup"] == df.loc["a2", "setup"] != df.loc["b1", "setup"] == df.loc["b2", "setup"]
    # each setup scaled on its own: its smallest file and its closest file score 1 apart from 0
    assert df.loc[["a1", "a2", "b1", "b2"], "score"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert df.loc[["a1", "a2", "b1", "b2"], "pareto"].all()
    assert math.isnan(df.loc["a-failed", "score"]) and not df.loc["a-failed", "pareto"]
    assert math.isnan(df.loc["a-base", "score"]) and not df.loc["a-base", "pareto"]
    # a groupby on the setup column gives the same figures as ranking each setup alone
    apart = results_frame(records[3:5]).set_index("id")
    assert df.loc[["b1", "b2"], "score"].tolist() == apart["score"].tolist()


points = st.lists(st.tuples(st.sampled_from([1.0, 2.0, 3.5, 8.0]), st.sampled_from([0.01, 0.02, 0.05, 0.3])),
                  min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(points)
def test_score_and_front_match_their_definitions(pts: list[tuple[float, float]]) -> None:
    records = [rec(f"r{i}", s, k) for i, (s, k) in enumerate(pts)]
    df = results_frame(records)
    sizes = [r.model["size_bytes"] / 1024**3 for r in records]  # type: ignore[operator]
    klds = [k for _, k in pts]

    def scaled(x: float, xs: list[float]) -> float:
        return 0.0 if max(xs) == min(xs) else (x - min(xs)) / (max(xs) - min(xs))

    for i, row in df.iterrows():
        s, k = sizes[i], klds[i]  # type: ignore[index]
        if len(pts) < 2:  # a score is relative to the set: one point alone gets none
            assert math.isnan(row["score"])
        else:
            assert row["score"] == pytest.approx(math.hypot(scaled(s, sizes), scaled(k, klds)))
        dominated = any(s2 <= s and k2 <= k and (s2 < s or k2 < k) for s2, k2 in zip(sizes, klds))
        assert row["pareto"] == (not dominated)


def test_the_leaderboard_rows_rank_as_the_table() -> None:
    recs = [rec("a", 1, 0.2), rec("b", 2, 0.1), rec("c", 3, 0.15), rec("d", 1.5, None)]
    df = results_frame(recs).set_index("id")
    for row in build_rows(recs):
        want = df.loc[row.id, "score"]
        assert (row.score is None) if math.isnan(want) else row.score == want
        assert row.pareto == bool(df.loc[row.id, "pareto"])


# -- qtui.load_results ------------------------------------------------------------------
def test_load_results_reads_a_published_sample() -> None:
    df = qtui.load_results(SAMPLES / "qwen3.5-27b-q4-published.json")
    assert len(df) == 12 and set(df["source"]) == {"published"}
    assert df["kld_mean"].notna().all() and df["size_gib"].notna().all() and df["setup"].nunique() == 1
    best = df.sort_values("kld_mean").iloc[0]
    assert best["quantizer"] == "unsloth" and best["quant"] == "UD-Q4_K_XL"
    assert df["pareto"].any() and df["score"].between(0, math.sqrt(2)).all()


def test_load_results_reads_a_store_a_data_dir_and_an_export(tmp_path: Path) -> None:
    records = [rec("a", 1, 0.1), rec("b", 2, 0.05)]
    store = ResultStore(tmp_path / "data")
    for r in records:
        store.save(r)
    assert sorted(qtui.load_results(tmp_path / "data")["id"]) == ["a", "b"]  # a data dir
    assert sorted(qtui.load_results(store.root)["id"]) == ["a", "b"]  # its results folder
    exported = tmp_path / "board.json"
    exported.write_text(export("json", build_rows(records), records))
    df = qtui.load_results(str(exported))
    assert sorted(df["id"]) == ["a", "b"] and df.set_index("id").loc["b", "kld_mean"] == 0.05


def test_load_results_none_is_the_users_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QTUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("QTUI_DATA_DIR", str(tmp_path / "data"))
    empty = qtui.load_results()
    assert empty.empty and tuple(empty.columns) == FRAME_COLUMN_NAMES  # no run yet: a table, not an error
    ResultStore(tmp_path / "data").save(rec("mine", 1, 0.1))
    assert list(qtui.load_results()["id"]) == ["mine"]


def test_load_results_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        qtui.load_results(tmp_path / "nope.json")
    notes = tmp_path / "notes.json"
    notes.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="holds no qtui results"):
        qtui.load_results(notes)
    store = ResultStore(tmp_path / "data")
    store.save(rec("good", 1, 0.1))
    (store.root / "broken.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken.json"):
        df = qtui.load_results(tmp_path / "data")
    assert list(df["id"]) == ["good"]  # one damaged file does not hide the others


def test_importing_qtui_and_the_app_does_not_load_pandas() -> None:
    """pandas costs about as much as the whole first screen: neither `import qtui`, nor the app,
    nor ranking the leaderboard's rows loads it; only the DataFrame API does."""
    code = (
        "import sys, qtui, qtui.cli, qtui.ui.app\n"
        "from qtui.core.results.leaderboard import board_records, build_rows\n"
        "from qtui.core.results.store import load_records\n"
        "rows = build_rows(board_records(load_records(sys.argv[1]).records))\n"
        "assert len(rows) == 8 and any(r.pareto for r in rows)\n"
        "print('pandas' in sys.modules)\n"
        "qtui.load_results(sys.argv[1])\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "gemma-3-270m-qtui.json")], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]  # and the check can see pandas when it is there


def test_readme_documents_every_column() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    table = list(dict(re.findall(r"^\| `([a-z0-9_]+)` \| (.+) \|$", section, flags=re.M)))
    others = re.search(r"Between `ppl_ratio` and `score` come every other statistic[^:]*:(.+?)(?:\n\n|\Z)", section, flags=re.S)
    assert others is not None, "the README names the remaining statistics after its table"
    listed = re.findall(r"`([a-z0-9_]+)`", others.group(1))
    at = table.index("ppl_ratio") + 1
    assert table[:at] + listed + table[at:] == list(FRAME_COLUMN_NAMES)
    assert listed == list(OTHER_STATS)


def test_sample_files_load_without_problems() -> None:
    for f in sorted(SAMPLES.glob("*.json")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a skipped record would warn
            df = qtui.load_results(f)
        assert len(df) == len(json.loads(f.read_text())["records"]), f.name
