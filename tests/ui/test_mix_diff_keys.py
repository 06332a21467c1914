"""The tensor-mix diff on the Models tab: m marks a model, d on another shows where they differ."""

from __future__ import annotations

from pathlib import Path

from qtui.core.gguf.ggml_types import type_name
from qtui.ui.screens.details import InfoScreen
from qtui.ui.widgets.model_list import ModelList
from tests.ui.conftest import notified, ready, rich_text, screen_text, wait_for
from tests.unit.gguf_builders import Q4_K, Q8_0


def _go_to(ml: ModelList, name: str) -> None:
    ml.table.move_cursor(row=next(i for i, m in enumerate(ml.visible_models()) if m.path.name == name))


async def test_m_then_d_shows_the_diff_of_two_models(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        ml = app.screen.query_one(ModelList)
        await wait_for(pilot, lambda: not ml.scanning and ml.table.row_count == 3, what="the model scan")
        await pilot.press("d")  # nothing marked yet: say what to do, open nothing
        await notified(pilot, "Mark a model with m first")
        assert not isinstance(app.screen, InfoScreen)

        _go_to(ml, "tiny-Q4_K_M.gguf")
        await pilot.press("m")
        await wait_for(pilot, lambda: "marked tiny-Q4_K_M.gguf" in screen_text(app), 5, "the mark in the status")
        await pilot.press("d")  # d on the marked model itself
        await notified(pilot, "press d on another one")

        _go_to(ml, "tiny-Q8_0.gguf")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 5, "the diff")
        assert "tiny-Q4_K_M.gguf vs tiny-Q8_0.gguf" in app.screen.title_text
        words = " ".join(rich_text(app.screen.body, 200).split())
        # every weight group moved from Q4_K to Q8_0; the norms did not
        assert f"{type_name(Q8_0)} only in B" in words and f"{type_name(Q4_K)} only in A" in words, words
        for group in ("attention", "FFN", "embeddings/output"):
            assert group in words
        assert "other (norms, router)" in words and "same" in words
        assert "3 groups differ" in words, words
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InfoScreen), 5, "the diff closed")

        _go_to(ml, "tiny-Q4_K_M.gguf")
        await pilot.press("m")  # m again on the marked model takes the mark away
        await wait_for(pilot, lambda: ml.diff_mark is None and "marked" not in screen_text(app), 5, "the mark gone")
