"""Where the cache lives (config cache_dir, QTUI_CACHE_DIR winning) and `qtui paths` saying how
big the base files are and how many there are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qtui.core import paths
from qtui.core.config import Config, load_config, save_config
from qtui.core.fsutil import human_bytes
from tests.helpers import ROOT, write_synthetic_base_file


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QTUI_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("QTUI_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_the_config_sets_the_cache_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = paths.cache_dir()
    assert default == paths.default_cache_dir() and default.is_relative_to(tmp_path / "xdg")
    save_config(Config(cache_dir=str(tmp_path / "big")))
    assert load_config()[0].cache_dir == str(tmp_path / "big")
    assert paths.cache_dir() == tmp_path / "big"
    # every cache function follows: base files, llama builds, models
    assert paths.bases_dir() == tmp_path / "big" / "bases"
    assert paths.llama_cache_dir() == tmp_path / "big" / "llama"
    assert paths.models_cache_dir() == tmp_path / "big" / "models"
    monkeypatch.setenv("QTUI_CACHE_DIR", str(tmp_path / "env"))
    assert paths.bases_dir() == tmp_path / "env" / "bases"
    monkeypatch.delenv("QTUI_CACHE_DIR")
    save_config(Config(cache_dir="~/c"))
    assert paths.cache_dir() == Path("~/c").expanduser()
    save_config(Config())  # unset: back to the platform's
    assert paths.cache_dir() == default


def test_a_broken_config_leaves_the_default_cache(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.toml").write_text("cache_dir = [unclosed\n")
    assert paths.cache_dir() == paths.default_cache_dir()
    (cfg / "config.toml").write_text("cache_dir = 3\n")  # load_config reports it; the cache stays put
    assert paths.cache_dir() == paths.default_cache_dir()
    assert any("cache_dir must be a string" in p for p in load_config()[1])


def base_file(folder: Path, name: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.c16.n2.k.kld"
    write_synthetic_base_file(path, 16, 8, 2)
    meta = Path(str(path) + ".json")
    meta.write_text(json.dumps({"base": {"path": f"/m/{name}.gguf"}, "ctx": 16, "n_chunk": 2}))
    return path.stat().st_size + meta.stat().st_size


def qtui_paths(tmp: Path, **env: str) -> list[str]:
    base_env = {"PATH": "/usr/bin:/bin", "QTUI_DATA_DIR": str(tmp / "d"), "QTUI_CONFIG_DIR": str(tmp / "cfg"),
                "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / "xdg"), "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    out = subprocess.run([sys.executable, "-m", "qtui.cli", "paths"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, env={**base_env, **env})
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout.splitlines()


def test_qtui_paths_shows_the_configured_cache_with_its_base_files(tmp_path: Path) -> None:
    big = tmp_path / "big"
    size = base_file(big / "bases", "a-BF16") + base_file(big / "bases", "b-BF16")
    save_config(Config(cache_dir=str(big)))
    lines = qtui_paths(tmp_path)
    assert f"       cache: {big}" in lines, lines
    assert f"  base files: {big / 'bases'} ({human_bytes(size)} in 2 base files)" in lines, lines
    # QTUI_CACHE_DIR wins over the config; one file is "1 base file"
    env_cache = tmp_path / "env"
    one = base_file(env_cache / "bases", "c-F16")
    lines = qtui_paths(tmp_path, QTUI_CACHE_DIR=str(env_cache))
    assert f"  base files: {env_cache / 'bases'} ({human_bytes(one)} in 1 base file)" in lines, lines
