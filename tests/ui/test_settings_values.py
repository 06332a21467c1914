"""The settings dialog's checks, without the dialog."""

from __future__ import annotations

from pathlib import Path

from qtui.core.config import Config
from qtui.ui.screens.settings import config_values, parse_values


def test_settings_accept_builtin_and_refuse_a_missing_file(tmp_path: Path) -> None:
    values = config_values(Config())
    cfg, problems = parse_values(Config(), {**values, "corpus": "builtin"})
    assert problems == [] and cfg.corpus == "builtin"
    _, problems = parse_values(Config(), {**values, "corpus": str(tmp_path / "nope.txt")})
    assert problems == [f"corpus {tmp_path / 'nope.txt'} does not exist or is not a file"]
