"""The marks that keep a newcomer from reading artefacts as findings, and from measuring twice:
≈ on a row of the type its (upcast) base was made from, ≡ on files with another file's tensors,
✓ in the Models tab on files already measured on the setup a run would use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtui.core.gguf.model_info import model_info
from qtui.core.results.store import ResultRecord, ResultStore
from qtui.ui.screens.details import InfoScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.model_list import ModelList
from tests.ui.conftest import N_VOCAB, notified, ready, rich_text, wait_for
from tests.ui.test_widgets import BoardApp
from tests.unit.gguf_builders import F16, Q8_0, dense_tensors, write_model

MXFP4_MOE_FT = 38


def _twin(models_dir: Path) -> Path:
    """A file labelled MXFP4_MOE holding exactly tiny-Q8_0's tensors (what MXFP4_MOE does to a dense model)."""
    return write_model(models_dir / "tiny-MXFP4_MOE.gguf",
                       tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q8_0, embd_type=Q8_0),
                       n_vocab=N_VOCAB, file_type=MXFP4_MOE_FT)


def done_cells(app: Any) -> dict[str, str]:
    table = app.screen.query_one(ModelList).table
    return {Path(str(k.value)).name: str(table.get_cell(k, "done")) for k in table.rows}


def _measured(model: Path, base: Path, corpus: Path) -> ResultRecord:
    m, b = model_info(model), model_info(base)
    return ResultRecord(id="r-q8", kind="kld", status="done",
                        model={"path": str(m.path), "label": m.path.stem, "quant": m.quant,
                               "size_bytes": m.size_bytes, "mtime": m.mtime},
                        stats={"kld_mean": 0.01}, ctx=128, corpus={"path": str(corpus)},
                        base={"path": str(b.path), "size_bytes": b.size_bytes, "mtime": b.mtime, "file": "/c/b.kld"})


async def test_models_tab_marks_measured_and_same_tensor_files(app_factory, models_dir: Path, corpus: Path,
                                                               qtui_dirs) -> None:
    _twin(models_dir)
    ResultStore(qtui_dirs["data"]).save(_measured(models_dir / "tiny-Q8_0.gguf", models_dir / "tiny-F16.gguf", corpus))
    app = app_factory([models_dir])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: done_cells(app).get("tiny-Q8_0.gguf") == "✓≡", what="the measured mark")
        cells = done_cells(app)
        assert cells["tiny-MXFP4_MOE.gguf"] == "≡" and cells["tiny-Q4_K_M.gguf"] == "" and cells["tiny-F16.gguf"] == ""
        ml = app.screen.query_one(ModelList)
        assert "1 measured (✓)" in str(ml.query_one("#models-status").render())
        # i on the twin: which file it equals, in words.
        ml.table.move_cursor(row=ml.table.get_row_index(str(models_dir / "tiny-MXFP4_MOE.gguf")))
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 5, "the model details")
        assert "same tensors as tiny-Q8_0.gguf" in rich_text(app.screen.body, 140)
        await pilot.press("escape")
        # Another base is another setup: nothing measured on it.
        await wait_for(pilot, lambda: not isinstance(app.screen, InfoScreen), 5, "the details to close")
        ml.table.move_cursor(row=ml.table.get_row_index(str(models_dir / "tiny-Q4_K_M.gguf")))
        await pilot.press("b")
        await wait_for(pilot, lambda: done_cells(app)["tiny-Q8_0.gguf"] == "≡", 5, "the mark to follow the base")


def _rec(rid: str, quant: str, mix: dict[str, int]) -> ResultRecord:
    return ResultRecord(id=rid, kind="kld", status="done",
                        model={"path": f"/m/g-{quant}.gguf", "label": f"g-{quant}", "quant": quant, "size_gib": 0.3,
                               "groups": {"ffn_dense": mix}},
                        stats={"kld_mean": {"Q4_K_M": 0.006, "Q6_K": 0.009}.get(quant, 0.002)},
                        base={"path": "/m/g-F16.gguf", "file": "/c/g.kld", "upcast_from": "Q4_K_M"})


def _model_cell(board: Leaderboard, rid: str) -> str:
    return str(board.table.get_cell(rid, "model"))


async def test_board_marks_the_base_origin_and_twins() -> None:
    app = BoardApp()
    records = [_rec("q4", "Q4_K_M", {"Q4_K": 50}), _rec("q6", "Q6_K", {"Q6_K": 70}), _rec("q8", "Q8_0", {"Q8_0": 100})]
    async with app.run_test(size=(200, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(records)
        await pilot.pause()
        assert _model_cell(board, "q4").endswith(" ≈") and _model_cell(board, "q6") == "g-Q6_K"
        assert _model_cell(board, "q8") == "g-Q8_0"
        caption = str(board.query_one(".leaderboard--caption").render())
        assert "≈ Q4_K_M: the base's origin type" in caption and "≡" not in caption
        # MXFP4_MOE finishes later: it and the Q8_0 row already shown get the mark.
        board.set_records([*records, _rec("mx", "MXFP4_MOE", {"Q8_0": 100})])
        await wait_for(pilot, lambda: _model_cell(board, "q8").endswith(" ≡"), 5, "the twin mark on Q8_0")
        assert _model_cell(board, "mx").endswith(" ≡")
        assert "≡ same tensors as another row" in str(board.query_one(".leaderboard--caption").render())
        assert board.marks["mx"].same_as == ("g-Q8_0",)


async def test_demo_autostart_says_how_the_demo_is_made(app_factory, tmp_path: Path) -> None:
    from qtui.ui.app import Autostart

    d = tmp_path / "demo"
    base = write_model(d / "g-F16.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16, embd_type=F16),
                       n_vocab=N_VOCAB, file_type=1, extra={"qtui.upcast_from": "Q4_K_M"})
    q8 = write_model(d / "g-Q8_0.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q8_0, embd_type=Q8_0),
                     n_vocab=N_VOCAB, file_type=7)
    auto = Autostart(base, [q8, _twin(d)], ctx=128, chunks=4, llama_args=("-b", "128"))
    app = app_factory([d], autostart=auto)
    async with app.run_test(size=(100, 30)) as pilot:
        await notified(pilot, "upcast from a Q4_K_M file", 20)
        text = next(str(n.message) for n in app._notifications if "upcast" in str(n.message))
        assert "not a finding" in text and "MXFP4_MOE on a dense model" in text
