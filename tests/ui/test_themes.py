"""Theme files: the shipped ones load and apply; bad files give a message naming the file and
the problem, never an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.color import Color

from qtui.core import paths
from qtui.core.results.store import load_records
from qtui.ui.themes import COLOUR_KEYS, SHIPPED_THEMES_DIR, load_theme_file, load_themes, theme_dirs
from qtui.ui.widgets.gpu_panel import GpuPanel
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.scatter import Scatter

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("qtui-amber", "qtui-mono", "qtui-paper")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_themes_load_cleanly() -> None:
    themes, problems = load_themes([SHIPPED_THEMES_DIR])
    assert problems == []
    assert sorted(t.name for t in themes) == list(SHIPPED)
    for t in themes:
        for key in COLOUR_KEYS:
            value = getattr(t, key)
            if value is not None:
                Color.parse(value)
    assert {t.name: t.dark for t in themes} == {"qtui-amber": True, "qtui-mono": True, "qtui-paper": False}


def test_top_level_themes_folder_is_the_shipped_one() -> None:
    # themes/ at the top of the repository is what people browse; the package carries the files
    top = ROOT / "themes"
    assert sorted(p.name for p in top.glob("*.toml")) == sorted(p.name for p in SHIPPED_THEMES_DIR.glob("*.toml"))
    assert top.resolve() == SHIPPED_THEMES_DIR.resolve()


def test_theme_dirs_are_shipped_then_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QTUI_CONFIG_DIR", str(tmp_path / "cfg"))
    assert theme_dirs() == [SHIPPED_THEMES_DIR, tmp_path / "cfg" / "themes"]
    assert theme_dirs()[1] == paths.user_themes_dir()
    # the user's folder usually does not exist: that is not a problem
    themes, problems = load_themes(theme_dirs())
    assert problems == [] and len(themes) == len(SHIPPED)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "broken.toml", 'name = "x"\nprimary = \n')
    themes, problems = load_themes([tmp_path])
    assert themes == []
    assert len(problems) == 1 and str(bad) in problems[0] and "not valid TOML" in problems[0]


def test_missing_required_keys(tmp_path: Path) -> None:
    write(tmp_path, "noprimary.toml", 'name = "x"\nbackground = "#000000"\n')
    write(tmp_path, "noname.toml", 'primary = "#000000"\n')
    themes, problems = load_themes([tmp_path])
    assert themes == []
    assert any("noprimary.toml" in p and "missing required key primary" in p for p in problems)
    assert any("noname.toml" in p and "missing required key name" in p for p in problems)


def test_bad_primary_skips_bad_other_colour_is_dropped(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'name = "a"\nprimary = "blu"\n')
    write(tmp_path, "b.toml", 'name = "b"\nprimary = "#123456"\naccent = "not-a-colour"\nwarning = 7\n')
    themes, problems = load_themes([tmp_path])
    assert [t.name for t in themes] == ["b"]
    assert themes[0].accent is None and themes[0].warning is None
    assert any("a.toml" in p and "primary 'blu' is not a colour" in p and "skipped" in p for p in problems)
    assert any("b.toml" in p and "accent 'not-a-colour' is not a colour; ignored" in p for p in problems)
    assert any("b.toml" in p and "warning 7 is not a colour" in p for p in problems)


def test_unknown_keys_wrong_types_and_variables(tmp_path: Path) -> None:
    text = ('name = "c"\nprimary = "#112233"\ndark = "yes"\nbackgound = "#111111"\nluminosity_spread = 3\n'
            '[variables]\nfooter-key-foreground = "nope"\nblock-cursor-text-style = "bold"\n'
            'input-selection-background = "#81a1c1 35%"\nfooter-background = 3\n')
    write(tmp_path, "c.toml", text)
    (theme,), problems = load_themes([tmp_path])
    assert theme.name == "c" and theme.dark is True  # the default, since "yes" was refused
    assert theme.variables == {"block-cursor-text-style": "bold", "input-selection-background": "#81a1c1 35%"}
    joined = "\n".join(problems)
    assert all("c.toml" in p for p in problems)
    assert "unknown key 'backgound' ignored" in joined
    assert "luminosity_spread must be a number from 0 to 1" in joined
    assert "dark must be true or false" in joined
    assert "variable 'footer-key-foreground' = 'nope' is not a colour" in joined
    assert "variable 'footer-background' must be a string" in joined


def test_later_folder_overrides_and_duplicates_are_reported(tmp_path: Path) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    write(shipped, "x.toml", 'name = "x"\nprimary = "#111111"\n')
    write(user, "mine.toml", 'name = "x"\nprimary = "#222222"\n')
    write(user, "other.toml", 'name = "y"\nprimary = "#333333"\n')
    write(user, "other2.toml", 'name = "y"\nprimary = "#444444"\n')
    themes, problems = load_themes([shipped, user, tmp_path / "missing"])
    by = {t.name: t for t in themes}
    assert by["x"].primary == "#222222"  # the user's copy of a theme wins, silently
    assert by["y"].primary == "#444444"
    assert len(problems) == 1 and "other2.toml" in problems[0] and "also used by other.toml" in problems[0]


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00name")
    theme, problems = load_theme_file(p)
    assert theme is None and problems == [f"{p}: not UTF-8 text"]
    folder_named_toml = tmp_path / "dir.toml"
    folder_named_toml.mkdir()
    theme, problems = load_theme_file(folder_named_toml)
    assert theme is None and "unreadable" in problems[0]


class ThemedApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Leaderboard()
        yield Scatter()
        yield GpuPanel()


async def test_each_shipped_theme_applies_to_the_widgets() -> None:
    themes, _ = load_themes([SHIPPED_THEMES_DIR])
    recs = load_records(ROOT / "sample_results" / "qwen3.5-27b-q4-published.json").records
    app = ThemedApp()
    async with app.run_test(size=(80, 24)) as pilot:
        for t in themes:
            app.register_theme(t)
        board = app.query_one(Leaderboard)
        board.set_records(recs)
        app.query_one(Scatter).set_rows(board.rows, board.rows[0].id)
        await pilot.pause()
        for t in themes:
            app.theme = t.name
            await pilot.pause()
            assert app.theme == t.name
            assert app.current_theme.primary == t.primary
            app.export_screenshot()  # renders every widget with the theme's colours
