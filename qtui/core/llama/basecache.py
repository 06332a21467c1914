"""The cache of base log-probability files: what is in it, and removing what is not needed.

Base files are huge (0.5-40 GB), so users need to see them and clear them. A cached base is
`<stem>.c<ctx>.n<chunks|all>.<key>.kld`, its metadata `<that>.json` (written when the run that
made it finished) and its windows `<that>.w{a}-{b}.kld` (a run on some chunks only): the three
belong together and go together.

Which files a queued or running job needs is the caller's to say (`refs`: the paths its jobs
name): this module knows files, not jobs.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtui.core.fsutil import human_bytes, read_json

_WINDOW = re.compile(r"^(?P<full>.+\.kld)\.w\d+-\d+\.kld$")
DAY = 86400.0


@dataclass(frozen=True)
class CachedBase:
    path: Path
    windows: tuple[Path, ...]
    model: str | None
    corpus: str | None
    corpus_sha: str | None
    ctx: int | None
    chunks: int | None
    size: int
    """bytes of the file, its metadata and its windows together"""
    last_used: float

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def meta_path(self) -> Path:
        return Path(str(self.path) + ".json")

    def files(self) -> list[Path]:
        return [self.path, self.meta_path, *self.windows]


def _stat(p: Path) -> os.stat_result | None:
    try:
        return p.stat()
    except OSError:
        return None


def _last_used(st: os.stat_result) -> float:
    # A file system mounted noatime never moves atime past the write: mtime is then the best
    # there is. Reading a base file (every KLD run does) moves atime where it is kept.
    return max(st.st_atime, st.st_mtime)


def _meta(path: Path) -> dict[str, Any]:
    try:
        meta = read_json(Path(str(path) + ".json"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _describe(path: Path, windows: Sequence[Path]) -> CachedBase | None:
    st = _stat(path)
    if st is None:
        return None
    size, used = st.st_size, _last_used(st)
    meta_st = _stat(Path(str(path) + ".json"))
    if meta_st is not None:
        size += meta_st.st_size
    kept: list[Path] = []
    for w in windows:
        wst = _stat(w)
        if wst is not None:
            kept.append(w)
            size += wst.st_size
            used = max(used, _last_used(wst))
    meta = _meta(path)
    base, corpus = meta.get("base"), meta.get("corpus")
    base = base if isinstance(base, dict) else {}
    corpus = corpus if isinstance(corpus, dict) else {}
    model = base.get("path") or base.get("label")
    cpath, csha = corpus.get("path"), corpus.get("sha256")
    return CachedBase(
        path=path, windows=tuple(kept),
        model=Path(model).name if isinstance(model, str) else None,
        corpus=Path(cpath).name if isinstance(cpath, str) else None,
        corpus_sha=csha[:8] if isinstance(csha, str) else None,
        ctx=_int(meta.get("ctx")), chunks=_int(meta.get("n_chunk")),
        size=size, last_used=used,
    )


def list_bases(folder: Path) -> list[CachedBase]:
    """Every base file in `folder`, windows folded into their full file (a window whose full
    file is gone is listed on its own, so that it can still be seen and removed)."""
    try:
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".kld") and p.is_file())
    except OSError:
        return []
    windows: dict[str, list[Path]] = {}
    fulls: list[str] = []
    for n in names:
        m = _WINDOW.match(n)
        if m and m.group("full") in names:
            windows.setdefault(m.group("full"), []).append(folder / n)
        else:
            fulls.append(n)
    out = [_describe(folder / n, windows.get(n, [])) for n in fulls]
    return [b for b in out if b is not None]


def total_size(folder: Path) -> int:
    """Bytes under `folder`, every file counted (unfinished `.partial` files included: they
    take the disk as much as finished ones)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            st = _stat(Path(root) / f)
            total += st.st_size if st is not None else 0
    return total


def summary(folder: Path) -> tuple[int, int]:
    """(bytes the folder takes, how many base files it holds): what `qtui paths` and the
    Settings screen show, so a user sees when `qtui cache` is due."""
    return total_size(folder), len(list_bases(folder))


def describe_summary(folder: Path) -> str:
    """'12.4 GB in 3 base files': the same words wherever the cache's size is shown."""
    size, n = summary(folder)
    return f"{human_bytes(size)} in {n} base file{'' if n == 1 else 's'}"


def select(entries: Sequence[CachedBase], wanted: str) -> list[CachedBase]:
    """The bases a user's word names: a full file name, or the start of one (several may
    match: `qtui cache rm Qwen3-8B` means all of that model's)."""
    word = Path(wanted).name if os.sep in wanted else wanted
    exact = [b for b in entries if b.name == word]
    return exact or [b for b in entries if word and b.name.startswith(word)]


def needed(entry: CachedBase, refs: Iterable[str]) -> bool:
    """Whether any of `refs` (paths named by queued or running jobs) is one of this base's files."""
    mine = {os.path.abspath(p) for p in (entry.path, *entry.windows)}
    for r in refs:
        a = os.path.abspath(r)
        if a in mine or a.removesuffix(".partial") in mine:
            return True
    return False


def unused_for(entries: Sequence[CachedBase], days: float, now: float | None = None) -> list[CachedBase]:
    cutoff = (time.time() if now is None else now) - days * DAY
    return [b for b in entries if b.last_used < cutoff]


def remove(entry: CachedBase) -> int:
    """Delete the base file, its metadata and windows; returns the bytes freed. The base file
    goes last: a half-removed base then still looks like one and can be removed again."""
    freed = 0
    for p in [*entry.windows, entry.meta_path, entry.path]:
        st = _stat(p)
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        freed += st.st_size if st is not None else 0
    return freed
