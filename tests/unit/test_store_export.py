import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from qtui.core.results.export import FORMATS, export, to_markdown
from qtui.core.results.leaderboard import build_rows, sort_rows
from qtui.core.results.log_import import import_log
from qtui.core.results.store import ResultRecord, ResultStore, load_records

IK = Path(__file__).resolve().parents[1] / "fixtures" / "ik"


def rec(i: str, size: float, kld: float | None, **kw: object) -> ResultRecord:
    stats = {"kld_mean": kld, "kld_mean_err": 0.001, "kld_p99": 0.5, "same_top": 90.0} if kld is not None else {}
    return ResultRecord(id=i, kind="kld", status="done", model={"label": f"m-{i}", "quant": "Q4_0", "size_bytes": int(size * 2**30)},
                        stats=stats, ctx=512, chunks=10, **kw)  # type: ignore[arg-type]


def test_store_round_trip_and_bad_files(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    a = rec("a", 1, 0.1)
    store.save(a)
    (store.root / "broken.json").write_text("{not json")
    (store.root / "other.json").write_text('{"hello": 1}')
    res = store.load()
    assert [r.id for r in res.records] == ["a"]
    assert res.records[0] == a
    assert len(res.problems) == 2 and any("broken.json" in p for p in res.problems)
    assert not list(store.root.glob("*.tmp"))


def test_load_records_accepts_exports_and_dirs(tmp_path: Path) -> None:
    records = [rec("a", 1, 0.1), rec("b", 2, 0.05)]
    rows = build_rows(records)
    f = tmp_path / "export.json"
    f.write_text(export("json", rows, records))
    assert {r.id for r in load_records(f).records} == {"a", "b"}
    ResultStore(tmp_path / "d").save(records[0])
    assert [r.id for r in load_records(tmp_path / "d").records] == ["a"]  # a data dir
    assert load_records(tmp_path / "nope").problems


def test_every_export_format_parses(tmp_path: Path) -> None:
    records = [rec("a", 1, 0.1), rec("b", 2, 0.05), rec("c", 3, None)]
    rows = sort_rows(build_rows(records), "kld")
    out = {fmt: export(fmt, rows, records) for fmt in FORMATS}
    table = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [r["model"] for r in table] == ["m-b", "m-a", "m-c"] and table[2]["kld"] == ""
    data = json.loads(out["json"])
    assert len(data["rows"]) == 3 and len(data["records"]) == 3
    md = out["md"].splitlines()
    assert md[2].startswith("| # | Model") and sum(1 for line in md if line.startswith("| ")) == 4
    assert "0.050000 ± 0.001000" in out["md"]
    ET.fromstring(out["svg"])  # well-formed
    assert out["svg"].count("<circle") == 2  # the unknown KLD is not plotted


def test_csv_columns_keep_their_order() -> None:
    r = rec("a", 1, 0.1)
    header, line = export("csv", build_rows([r]), [r]).splitlines()
    # the rank and the paired comparison with the next row were added at the end: older columns keep their place
    assert header == ("model,quantizer,quant,size_gib,bpw,ppl_q,ppl_ratio,kld,kld_err,kld_p99,kld_p999,kld_max,dp_rms,"
                      "same_top,score,pareto,duration_s,kld_status,path,source,"
                      "rank,next_id,next_diff,next_low,next_high,next_chunks,next_verdict,chunk_data,pp_ts,tg_ts")
    # one row alone has no score (nothing to be relative to): an empty cell; no speed run: empty too
    assert line == "m-a,,Q4_0,1.0,,,,0.1,0.001,0.5,,,,90.0,,True,,done,,qtui,1,,,,,,,,,"


def test_markdown_escapes_pipes_and_shows_unknown() -> None:
    r = rec("a", 1, None)
    r.model["label"] = "weird|name"
    text = to_markdown(build_rows([r]), [r])
    assert "weird\\|name" in text and "| ? |" in text


def test_unknown_format() -> None:
    with pytest.raises(ValueError):
        export("xls", [], [])


@pytest.mark.parametrize("case", ["ik-tiny-kld-q4_0", "ik-tiny-kld-q8_0"])
def test_import_real_ik_logs(tmp_path: Path, case: str) -> None:
    out = (IK / f"{case}.out").read_bytes()
    combined = tmp_path / "run.log"
    combined.write_bytes((IK / f"{case}.err").read_bytes() + out)  # as `2>&1` would give, roughly
    r = import_log(combined)
    printed = float(re.search(rb"Mean\s+KLD:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert r.status == "done" and r.kind == "kld"
    assert r.stats["kld_mean"] == pytest.approx(printed, abs=5e-7)
    assert r.model["quant"] == ("Q4_0" if "q4_0" in case else "Q8_0")
    assert r.model["bpw"] > 0 and r.source["type"] == "import"


def test_import_refuses_non_logs(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello world\n")
    with pytest.raises(ValueError, match="no llama-perplexity output"):
        import_log(f)
