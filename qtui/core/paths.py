"""Where qtui keeps things. One module so that every path can be overridden in one place.

Environment overrides (useful for tests, CI and shared boxes):
QTUI_CONFIG_DIR, QTUI_DATA_DIR (results, jobs), QTUI_CACHE_DIR (llama builds, models, base files).
The cache's place can also be set in the config file (cache_dir); the environment wins.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

APP = "qtui"


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else Path(default)


def config_dir() -> Path:
    return _dir("QTUI_CONFIG_DIR", platformdirs.user_config_dir(APP))


def config_file() -> Path:
    return config_dir() / "config.toml"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def data_dir() -> Path:
    return _dir("QTUI_DATA_DIR", platformdirs.user_data_dir(APP))


def configured_cache_dir() -> Path | None:
    """The config file's cache_dir, or None. Read here rather than through config.py (which
    builds on this module) so that every process, the detached scheduler too, finds the cache
    where the user put it; a config that cannot be read is config.load_config's to report."""
    try:
        data = tomllib.loads(config_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("cache_dir")
    return Path(value).expanduser() if isinstance(value, str) and value.strip() else None


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


def cache_dir() -> Path:
    """QTUI_CACHE_DIR, else the config's cache_dir, else the platform's user cache dir."""
    if os.environ.get("QTUI_CACHE_DIR"):
        return _dir("QTUI_CACHE_DIR", "")
    return configured_cache_dir() or default_cache_dir()


def llama_cache_dir() -> Path:
    """Builds of llama.cpp made by `qtui setup-llama`, one folder per version and backend."""
    return cache_dir() / "llama"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def models_cache_dir() -> Path:
    """Models qtui makes itself: the tiny test model, the demo ladder."""
    return cache_dir() / "models"


def bases_dir() -> Path:
    """Cached base log-probability files (--kl-divergence-base), keyed by identity."""
    return cache_dir() / "bases"
