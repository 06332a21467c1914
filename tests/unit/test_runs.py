"""Where a corpus setting points: a file, nothing, or qtui's own built-in text."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtui.core.showdown.plan import BUILTIN_CORPUS, resolve_corpus


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QTUI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_builtin_is_written_once_into_the_cache(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = resolve_corpus(BUILTIN_CORPUS)
    assert path is not None and path.is_file() and path.is_relative_to(cache)
    text = path.read_text(encoding="utf-8")
    assert len(text.encode()) >= 200_000
    mtime = path.stat().st_mtime_ns
    assert resolve_corpus(" builtin ") == path and path.stat().st_mtime_ns == mtime  # reused, not rewritten


def test_a_file_named_builtin_wins(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "builtin").write_text("my own corpus\n")
    assert resolve_corpus("builtin") == Path("builtin")
    assert not cache.exists()


def test_paths_and_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_corpus(None) is None and resolve_corpus("") is None
    assert resolve_corpus("~/wiki.test.raw") == tmp_path / "wiki.test.raw"  # checked later, by the plan
