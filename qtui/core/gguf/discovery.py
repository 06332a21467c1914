"""Find GGUF models under folders: recursive, symlink-safe, split sets folded into one model,
and every file that cannot be used reported with a reason a person understands."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qtui.core.gguf.model_info import ModelInfo, model_info, shard_path, split_parts
from qtui.core.gguf.reader import GGUFError


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class ScanResult:
    models: list[ModelInfo] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return exc.strerror or str(exc)


class _Walker:
    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[tuple[int, int]] = set()
        self.files: list[Path] = []
        self.skipped: list[Skipped] = []
        # Symlinked entries are visited after everything else so that a file reachable both
        # directly and through a link is listed under its real path.
        self.deferred: list[tuple[Path, int]] = []

    def add_file(self, path: Path) -> None:
        try:
            st = path.stat()  # follows symlinks: the same file via two links counts once
        except OSError as exc:
            reason = "broken symlink" if path.is_symlink() else _os_reason(exc)
            self.skipped.append(Skipped(path, reason))
            return
        key = (st.st_dev, st.st_ino)
        if key not in self.seen_files:
            self.seen_files.add(key)
            self.files.append(path)

    def run_deferred(self) -> None:
        while self.deferred:
            batch, self.deferred = self.deferred, []
            for p, depth in batch:
                if p.is_dir():
                    if depth < self.max_depth:
                        self.walk(p, depth + 1)
                elif p.name.lower().endswith(".gguf"):
                    self.add_file(p)

    def walk(self, folder: Path, depth: int) -> None:
        try:
            st = folder.stat()
        except OSError as exc:
            self.skipped.append(Skipped(folder, f"cannot open folder: {_os_reason(exc)}"))
            return
        key = (st.st_dev, st.st_ino)
        if key in self.seen_dirs:  # symlink loop or a folder reached twice
            return
        self.seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skipped.append(Skipped(folder, f"cannot open folder: {_os_reason(exc)}"))
            return
        for e in entries:
            p = Path(e.path)
            if e.is_symlink():
                self.deferred.append((p, depth))
                continue
            try:
                is_dir = e.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                if depth < self.max_depth:
                    self.walk(p, depth + 1)
            elif e.name.lower().endswith(".gguf"):
                self.add_file(p)


def scan(dirs: Iterable[Path], max_depth: int = 8,
         progress: Callable[[Path], None] | None = None) -> ScanResult:
    """Scan folders (or single .gguf files) for models. Never raises for a bad file."""
    w = _Walker(max_depth)
    for d in dirs:
        d = Path(d).expanduser()
        if d.is_dir():
            w.walk(d, 0)
        elif d.is_file():
            w.add_file(d)
        elif d.is_symlink():
            w.skipped.append(Skipped(d, "broken symlink"))
        else:
            w.skipped.append(Skipped(d, "does not exist"))
    w.run_deferred()

    result = ScanResult(skipped=w.skipped)
    present = {(p.parent, p.name.lower()) for p in w.files}
    for p in w.files:
        parts = split_parts(p)
        if parts is not None and parts[1] != 1:
            prefix, no, count = parts
            first = shard_path(p.parent, prefix, 1, count)
            if (first.parent, first.name.lower()) not in present and not first.exists():
                result.skipped.append(Skipped(p, f"shard {no} of {count}, but the first shard "
                                                 f"{first.name} is missing"))
            continue  # folded into the set read through its first shard
        if progress is not None:
            progress(p)
        try:
            result.models.append(model_info(p))
        except GGUFError as exc:
            result.skipped.append(Skipped(p, str(exc)))
        except OSError as exc:  # e.g. a shard vanished between stat and read
            result.skipped.append(Skipped(p, _os_reason(exc)))
    result.models.sort(key=lambda m: str(m.path))
    result.skipped.sort(key=lambda s: str(s.path))
    return result
