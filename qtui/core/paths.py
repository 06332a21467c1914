"""Where qtui keeps things. One module so that every path can be overridden in one place.

Environment overrides (useful for tests, CI and shared boxes):
QTUI_CONFIG_DIR, QTUI_DATA_DIR (results, jobs), QTUI_CACHE_DIR (llama builds, models, base files).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

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


def cache_dir() -> Path:
    return _dir("QTUI_CACHE_DIR", platformdirs.user_cache_dir(APP))


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
