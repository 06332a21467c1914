"""Same tensors under another name, the base's origin type, and which files are already measured."""

from __future__ import annotations

from pathlib import Path

from qtui.core.gguf.model_info import model_info
from qtui.core.gguf.sameness import has_experts, info_mix_key, is_base_origin, record_mix_key, same_tensors
from qtui.core.llama.assets import DEMO_LADDER, demo_notes
from qtui.core.results.measured import measured_files, row_marks
from qtui.core.results.store import ResultRecord
from tests.unit.gguf_builders import F16, Q4_K, Q8_0, dense_tensors, moe_tensors, write_model

MXFP4_MOE_FT, Q8_0_FT, Q4_K_M_FT = 38, 7, 15


def _model(tmp: Path, name: str, weight_type: int, file_type: int) -> Path:
    return write_model(tmp / f"{name}.gguf", name=name, tensors=dense_tensors(weight_type=weight_type, embd_type=Q8_0),
                       file_type=file_type)


def test_a_file_labelled_otherwise_with_the_same_tensors_is_a_twin(tmp_path):
    q8 = model_info(_model(tmp_path, "m-Q8_0", Q8_0, Q8_0_FT))
    mx = model_info(_model(tmp_path, "m-MXFP4_MOE", Q8_0, MXFP4_MOE_FT))
    q4 = model_info(_model(tmp_path, "m-Q4_K_M", Q4_K, Q4_K_M_FT))
    assert q8.quant != mx.quant and info_mix_key(q8) == info_mix_key(mx) != info_mix_key(q4)
    twins = same_tensors((m.path, str(m.path), m.path.name, info_mix_key(m)) for m in (q8, mx, q4))
    assert twins == {q8.path: ("m-MXFP4_MOE.gguf",), mx.path: ("m-Q8_0.gguf",)}
    assert not has_experts(q8)


def test_one_file_twice_is_not_its_own_twin_and_no_mix_is_no_twin():
    key = record_mix_key({"groups": {"attention": {"Q8_0": 100}, "other": {}}})
    assert key == record_mix_key({"groups": {"attention": {"Q8_0": 100}}})
    assert same_tensors([("a", "/m/x", "x", key), ("b", "/m/x", "x", key), ("c", "/m/p", "p", None)]) == {}
    assert record_mix_key({"quant": "Q4_K_M"}) is None  # a published row: nothing to compare
    # Same types, other sizes: not the same tensors.
    other = record_mix_key({"groups": {"attention": {"Q8_0": 101}}})
    assert same_tensors([("a", "/m/x", "x", key), ("b", "/m/y", "y", other)]) == {}


def test_moe_model_has_experts(tmp_path):
    info = model_info(write_model(tmp_path / "moe.gguf", tensors=moe_tensors(), file_type=Q8_0_FT))
    assert has_experts(info)


def test_upcast_origin_is_read_from_the_metadata(tmp_path):
    marked = model_info(write_model(tmp_path / "b-F16.gguf", tensors=dense_tensors(weight_type=F16, embd_type=F16),
                                    file_type=1, extra={"qtui.upcast_from": "Q4_K_M"}))
    plain = model_info(write_model(tmp_path / "p-F16.gguf", tensors=dense_tensors(weight_type=F16, embd_type=F16),
                                   file_type=1))
    assert marked.upcast_from == "Q4_K_M" and plain.upcast_from is None
    assert type(marked).from_dict(marked.to_dict()) == marked
    assert "upcast_from" not in plain.to_dict()  # stored records of plain files are unchanged
    assert is_base_origin("Q4_K_M", marked.upcast_from) and not is_base_origin("Q6_K", marked.upcast_from)
    assert not is_base_origin("Q4_K_M", None) and not is_base_origin(None, "Q4_K_M")


def test_demo_notes_say_both_artefacts_only_where_they_hold():
    notes = demo_notes("Q4_K_M", DEMO_LADDER, has_experts=False)
    assert len(notes) == 2
    assert "upcast from a Q4_K_M file" in notes[0] and "not a finding" in notes[0]
    assert "MXFP4_MOE" in notes[1] and "same tensors as Q8_0" in notes[1]
    assert demo_notes(None, ("Q8_0", "Q6_K", "Q4_K_M", "Q4_0", "Q2_K"), has_experts=False) == []  # the tiny F32 model is a real base
    assert demo_notes(None, DEMO_LADDER, has_experts=True) == []  # on a MoE model MXFP4_MOE is its own type


def _rec(rid: str, path: str, quant: str, mix: dict[str, int], *, base: dict[str, object], ctx: int = 128,
         status: str = "done", size: int = 10, mtime: float = 1.0, chunks: int | None = 24) -> ResultRecord:
    return ResultRecord(id=rid, kind="kld", status=status,  # type: ignore[arg-type]
                        model={"path": path, "label": Path(path).stem, "quant": quant, "size_bytes": size,
                               "mtime": mtime, "groups": {"ffn_dense": mix}},
                        base=base, ctx=ctx, chunks=chunks)


BASE = {"path": "/m/b-F16.gguf", "size_bytes": 99, "mtime": 5.0, "file": "/c/b.kld", "upcast_from": "Q4_K_M"}


def test_row_marks_name_the_base_origin_and_the_twins():
    recs = [_rec("q8", "/m/x-Q8_0.gguf", "Q8_0", {"Q8_0": 100}, base=BASE),
            _rec("mx", "/m/x-MXFP4_MOE.gguf", "MXFP4_MOE", {"Q8_0": 100}, base=BASE),
            _rec("q4", "/m/x-Q4_K_M.gguf", "Q4_K_M", {"Q4_K": 50}, base=BASE),
            _rec("q6", "/m/x-Q6_K.gguf", "Q6_K", {"Q6_K": 70}, base=BASE)]
    marks = row_marks(recs)
    assert set(marks) == {"q8", "mx", "q4"}
    assert marks["q4"].symbol == "≈" and "Q4_K_M" in marks["q4"].notes()[0]
    assert marks["mx"].symbol == "≡" and marks["mx"].same_as == ("x-Q8_0",)
    assert "same tensors as x-MXFP4_MOE" in marks["q8"].notes()[0]
    no_origin = {k: v for k, v in BASE.items() if k != "upcast_from"}
    assert row_marks([_rec("q4", "/m/x-Q4_K_M.gguf", "Q4_K_M", {"Q4_K": 50}, base=no_origin)]) == {}


def test_measured_files_on_the_chosen_base_and_setup_only(tmp_path):
    base = model_info(_model(tmp_path, "b-F16", F16, 1))
    a = model_info(_model(tmp_path, "a-Q8_0", Q8_0, Q8_0_FT))
    b = model_info(_model(tmp_path, "b-Q4_K_M", Q4_K, Q4_K_M_FT))
    base_id = {"path": str(base.path), "size_bytes": base.size_bytes, "mtime": base.mtime, "file": "/c/b.kld"}

    def rec(info, **kw):
        kw.setdefault("mtime", info.mtime)
        return _rec(info.path.stem, str(info.path), info.quant, {}, base=base_id, size=info.size_bytes, **kw)

    models = [base, a, b]
    assert measured_files([rec(a)], models, base, 128, 24) == {a.path}
    assert measured_files([rec(a)], models, None, 128) == set()  # no base: no setup
    assert measured_files([rec(a)], models, base, 512) == set()  # other context
    assert measured_files([rec(a)], models, base, 128, 8) == set()  # other chunk count
    assert measured_files([rec(a, status="failed")], models, base, 128) == set()
    assert measured_files([rec(a, mtime=a.mtime - 60)], models, base, 128) == set()  # the file changed since
    assert measured_files([rec(a), rec(b)], models, a, 128) == set()  # measured against another base
    assert measured_files([rec(a), rec(b)], models, base, 128, None) == {a.path, b.path}
