"""The tensor-mix diff from the Leaderboard: m marks a row, d on another shows where the two rows'
model files differ (the same view as m/d on the Models tab); a row without a local file (a
published or imported result) says so in one sentence and opens nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtui.core.gguf.ggml_types import type_name
from qtui.core.results.store import ResultRecord, ResultStore
from qtui.ui.screens.details import InfoScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from tests.ui.conftest import N_VOCAB, notified, ready, rich_text, wait_for
from tests.unit.gguf_builders import F16, Q4_K, Q8_0, dense_tensors, write_model


def records(data_dir: Path, models: Path) -> dict[str, ResultRecord]:
    """Two measured local quants and one imported row without a model file, on one setup."""
    base_path = write_model(models / "tiny-F16.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16,
                                                                             embd_type=F16), n_vocab=N_VOCAB, file_type=1)
    q4 = write_model(models / "tiny-Q4_K_M.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q4_K),
                     n_vocab=N_VOCAB, file_type=15)
    q8 = write_model(models / "tiny-Q8_0.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q8_0,
                                                                       embd_type=Q8_0), n_vocab=N_VOCAB, file_type=7)
    base = {"label": "tiny-F16", "path": str(base_path), "file": "/cache/tiny.kld", "key": "k"}
    out = {}
    for name, path, kld in (("Q8_0", q8, 0.002), ("Q4_K_M", q4, 0.03), ("imported-IQ4_XS", None, 0.05)):
        model: dict[str, Any] = {"label": f"tiny-{name}", "quant": name.split("-")[-1]}
        if path is not None:
            model.update(path=str(path), size_bytes=path.stat().st_size)
        rec = ResultRecord(id=f"20260101-000000-{name}", kind="kld", status="done", model=model,
                           stats={"kld_mean": kld, "kld_mean_err": kld / 20}, base=base,
                           corpus={"sha256": "ab" * 32}, ctx=128, chunks=4, llama={"fork": "llama.cpp"})
        ResultStore(data_dir).save(rec)
        out[name] = rec
    return out


async def test_m_then_d_on_the_board_shows_the_tensor_mix_diff(app_factory, qtui_dirs, tmp_path: Path) -> None:
    recs = records(qtui_dirs["data"], tmp_path / "models")
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 3, what="the three results")
        board.table.focus()
        await pilot.press("d")  # nothing marked yet: says what to do, opens nothing
        await notified(pilot, "mark a result with m first, then move to another and press d")
        assert not isinstance(app.screen, InfoScreen)

        assert board.select(recs["Q4_K_M"].id)
        await pilot.press("m")
        await notified(pilot, "d to diff their tensor mix")
        await pilot.press("d")  # d on the marked row itself
        await notified(pilot, "move to another result than the marked one, then press d")

        assert board.select(recs["Q8_0"].id)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 5, "the diff")
        assert app.screen.title_text == "Tensor-mix diff: tiny-Q4_K_M.gguf vs tiny-Q8_0.gguf"  # A is the marked one
        words = " ".join(rich_text(app.screen.body, 200).split())
        assert f"{type_name(Q8_0)} only in B" in words and f"{type_name(Q4_K)} only in A" in words, words
        assert "3 groups differ" in words, words
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InfoScreen), 5, "the diff closed")

        # a row without a local model file: one sentence, no diff
        assert board.select(recs["imported-IQ4_XS"].id)
        await pilot.press("d")
        await notified(pilot, "tiny-imported-IQ4_XS has no local model file (a published or imported result): "
                              "the tensor-mix diff needs both files")
        assert not isinstance(app.screen, InfoScreen)

        # a model file gone since it was measured: says which and why
        Path(recs["Q8_0"].model["path"]).unlink()
        assert board.select(recs["Q8_0"].id)
        await pilot.press("d")
        await notified(pilot, "cannot read tiny-Q8_0's model file")
        assert not isinstance(app.screen, InfoScreen)
