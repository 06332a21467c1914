"""What a llama.cpp build said about itself, remembered across processes.

Learning a build's version and options means starting its binary, and a CUDA build loads the
CUDA libraries (hundreds of MB) at every start, even for `--version`. Asked before every `qtui
run`, those starts sat between the command and its first job. The answer only changes when the
files change, so it is kept on disk under a key made of the binary's and its shared libraries'
paths, sizes and modification times. A rebuilt or replaced build has a new key and is asked
again."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from qtui.core.fsutil import atomic_write_json

log = logging.getLogger(__name__)

FILE_NAME = "probes.json"
MAX_ENTRIES = 32  # one per build a user has pointed qtui at; the oldest drop off
_LIB_SUFFIXES = (".so", ".dylib", ".dll")


def _libraries(bin_dir: Path) -> list[Path]:
    """The shared libraries a build's tools load: beside them, or in ../lib (cmake's layout)."""
    found: list[Path] = []
    for d in (bin_dir, bin_dir.parent / "lib"):
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        found += [p for p in entries if p.name.startswith("lib") and any(s in p.name for s in _LIB_SUFFIXES)]
    return found


def key(binary: Path) -> str:
    """The files' identity. Raises OSError when the binary itself cannot be read."""
    st = binary.stat()
    parts = [f"{binary.resolve()}:{st.st_size}:{st.st_mtime_ns}"]
    for p in _libraries(binary.parent):
        try:
            st = p.stat()
        except OSError:
            continue  # a dangling library link: its absence is already in the key
        parts.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def load(path: Path, k: str) -> dict[str, Any] | None:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    entry = entries.get(k) if isinstance(entries, dict) else None
    return entry if isinstance(entry, dict) else None


def store(path: Path, k: str, value: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written only costs the next run its probe."""
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    entries[k] = {**value, "stored_at": time.time()}
    for old in sorted(entries, key=lambda e: _stored_at(entries[e]))[:-MAX_ENTRIES]:
        del entries[old]
    try:
        atomic_write_json(path, entries)
    except OSError as exc:
        log.debug("cannot keep the probe of %s: %s", path, exc)


def _stored_at(entry: Any) -> float:
    at = entry.get("stored_at") if isinstance(entry, dict) else None
    return float(at) if isinstance(at, (int, float)) else 0.0


def file_path(cache_dir: Path) -> Path:
    return cache_dir / FILE_NAME
