"""`qtui results` shows what the app shows beside the figures: ≈ on a row of the type its base
was upcast from, ≡ on files with another row's tensors (with what each means), and for a
published sweep the post's own score, finding and note (table and --json)."""

from __future__ import annotations

import json
from pathlib import Path

from qtui.core.results.store import ResultRecord, ResultStore, load_records
from tests.helpers import ROOT, run_qtui

SAMPLE = ROOT / "sample_results" / "qwen3.5-35b-a3b-q4-published.json"


def rec(quant: str, kld: float, mix: dict[str, int]) -> ResultRecord:
    return ResultRecord(id=f"r-{quant}", kind="kld", status="done",
                        model={"path": f"/m/g-{quant}.gguf", "label": f"g-{quant}", "quant": quant,
                               "size_bytes": sum(mix.values()) * 1000, "groups": {"ffn_dense": mix}},
                        stats={"kld_mean": kld, "kld_mean_err": kld / 30}, ctx=128, chunks=8,
                        base={"path": "/m/g-F16.gguf", "file": "/c/g.kld", "upcast_from": "Q4_K_M"},
                        corpus={"sha256": "ab" * 32}, llama={"fork": "llama.cpp"})


def demo_like(data: Path) -> None:
    store = ResultStore(data)
    for r in (rec("Q4_K_M", 0.0059, {"Q4_K": 50}), rec("Q6_K", 0.0089, {"Q6_K": 70}),
              rec("Q8_0", 0.0032, {"Q8_0": 100}), rec("MXFP4_MOE", 0.0032, {"Q8_0": 100})):
        store.save(r)


def test_results_table_marks_the_base_origin_and_twins_and_says_why(tmp_path: Path) -> None:
    demo_like(tmp_path / "d")
    out = run_qtui("results", tmp=tmp_path, data=tmp_path / "d", columns="160")
    assert out.returncode == 0, out.stderr
    names = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].isdigit() and parts[1].startswith("g-"):
            names[parts[1]] = parts[2] if parts[2] in ("≈", "≡", "≈≡") else ""
    assert names == {"g-Q8_0": "≡", "g-MXFP4_MOE": "≡", "g-Q4_K_M": "≈", "g-Q6_K": ""}, out.stdout
    text = out.stdout
    assert "≈ Q4_K_M: the base's origin type, near it by construction · ≡ same tensors as another row" in text
    assert ("g-Q4_K_M: ≈ base origin: the base was upcast from a Q4_K_M file, so this Q4_K_M is nearly the base's "
            "own weights; its low KLD is not a finding") in text
    assert "g-MXFP4_MOE: ≡ same tensors as g-Q8_0: same types, same sizes, so the same KLD" in text
    assert "g-Q8_0: ≡ same tensors as g-MXFP4_MOE" in text


def test_results_json_carries_the_marks(tmp_path: Path) -> None:
    demo_like(tmp_path / "d")
    out = run_qtui("results", "--json", tmp=tmp_path, data=tmp_path / "d")
    assert out.returncode == 0, out.stderr
    rows = {r["model"]: r for r in json.loads(out.stdout)["setups"][0]["rows"]}
    assert rows["g-Q4_K_M"]["mark"] == "≈" and "not a finding" in rows["g-Q4_K_M"]["mark_notes"][0]
    assert rows["g-Q8_0"]["mark"] == "≡" and rows["g-MXFP4_MOE"]["mark"] == "≡"
    assert "mark" not in rows["g-Q6_K"] and "published" not in rows["g-Q6_K"]


def test_results_show_what_a_published_sweep_said(tmp_path: Path) -> None:
    sample = {r.id: r for r in load_records(SAMPLE).records}
    said = {r.id: r.source.get("published") or {} for r in sample.values()}
    scored = [rid for rid, s in said.items() if "efficiency" in s]
    with_finding = [rid for rid, s in said.items() if s.get("finding")]
    assert scored and with_finding  # the sample has both: the test reads them from it
    note = next(iter(sample.values())).source["note"]

    out = run_qtui("results", "--from", str(SAMPLE), tmp=tmp_path, columns="400")
    assert out.returncode == 0, out.stderr
    head = next(ln for ln in out.stdout.splitlines() if ln.lstrip().startswith("#"))
    assert "Published" in head
    for rid in scored:
        r = sample[rid]
        row = next(ln for ln in out.stdout.splitlines()
                   if r.model["label"] in ln and r.model["quantized_by"] in ln and ln.lstrip()[0].isdigit())
        end = head.index("Published") + len("Published")  # a number column: right-aligned under its title
        assert row[end - 9:end].strip() == f"{said[rid]['efficiency']:.3f}", (head, row)
    for rid in with_finding:
        assert f"finding {said[rid]['finding']}" in out.stdout, out.stdout
    assert out.stdout.count(note) == 1  # once for the post, not on every row
    assert f"published {sample[scored[0]].source['url']} ({sample[scored[0]].source['date']}): " in out.stdout

    out = run_qtui("results", "--json", "--from", str(SAMPLE), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)["setups"][0]["rows"]}
    assert set(rows) == set(sample)
    for rid, row in rows.items():
        assert row["published_note"] == note
        assert row["published"].get("score") == said[rid].get("efficiency")
        assert row["published"].get("finding") == said[rid].get("finding")
        assert row["published"]["url"] == sample[rid].source["url"]
