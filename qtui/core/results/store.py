"""The results store: one JSON file per finished, failed or cancelled run.

One file per record (not one big database) because it is what survives best: a record is
written atomically the moment its run ends, a killed qtui can lose nothing already written,
and stores from several machines merge by copying files into one folder.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from qtui.core.fsutil import atomic_write_json, file_lock, read_json

SCHEMA = 1
Status = Literal["done", "failed", "cancelled"]


@dataclass
class ResultRecord:
    """Everything needed to trust, compare and reproduce one measurement."""

    id: str
    kind: Literal["kld", "base", "ppl", "speed"]
    """speed: llama-bench's tokens per second for the model (stats pp_ts, tg_ts...: llama/bench.py)"""
    status: Status
    model: dict[str, Any]
    """path, name, size_bytes, mtime, sha256 (on request), quant, quantized_by, bpw, n_params,
    n_vocab, mix (type name -> bytes), groups (group -> {type name -> bytes})"""
    stats: dict[str, Any] = field(default_factory=dict)
    """FinalStats.to_dict(): every field of the three final blocks"""
    base: dict[str, Any] = field(default_factory=dict)
    """base model identity and the base log-prob file (path, key, n_ctx, n_vocab, n_chunk)"""
    corpus: dict[str, Any] = field(default_factory=dict)
    ctx: int | None = None
    chunks: int | None = None
    llama: dict[str, Any] = field(default_factory=dict)
    """binary path, fork, version, commit"""
    argv: list[str] = field(default_factory=list)
    gpu: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    failure: dict[str, Any] | None = None
    """reason, exit_code, stderr_tail"""
    source: dict[str, Any] = field(default_factory=lambda: {"type": "qtui"})
    """where the figures come from: qtui run, imported log, or a published post (with its URL)"""
    job_id: str | None = None
    chunk_kld: dict[str, Any] | None = None
    """per-chunk KLD: {"kind": "running", "decimals": 5, "rows": [[chunk, running mean], ...]} as
    printed (see results/chunks.py), or {"kind": "exact", "rows": [[chunk, mean], ...]}"""
    screen: dict[str, Any] | None = None
    """a screened variant's summary (jobs/screening.py): {"batch", "stage", "state", "why",
    "rank", "chunks_run", "n_chunk"}; its statistics cover the chunks it ran"""
    schema: int = SCHEMA

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRecord:
        if not isinstance(d, dict) or "id" not in d or "model" not in d:
            raise ValueError("not a qtui result record (no id/model)")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def file_identity(model: dict[str, Any]) -> tuple[str, object, float] | None:
    """The model file a record measured: its path, size and mtime (None without a local file).
    A speed record belongs to the KLD rows of the same file."""
    path, mtime = model.get("path"), model.get("mtime")
    if not path:
        return None
    return str(path), model.get("size_bytes"), round(float(mtime), 3) if isinstance(mtime, (int, float)) else -1.0


def new_id() -> str:
    # Sortable by time, unique across machines: merging stores never collides.
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@dataclass
class LoadResult:
    records: list[ResultRecord]
    problems: list[str]


class ResultStore:
    """Records live in `<data_dir>/results/<id>.json`."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "results"
        self._content_of: dict[str, str | None] = {}
        """file name -> its record's source sha256, for the files already read (see save_new)"""

    def save(self, record: ResultRecord) -> Path:
        path = self.root / f"{record.id}.json"
        atomic_write_json(path, record.to_dict())
        return path

    def save_new(self, record: ResultRecord) -> ResultRecord | None:
        """Save `record` unless a stored one has the same content (source sha256, as an imported
        log has); return that one then, None when `record` was saved.

        The look and the write happen under one lock, so two imports of the same log at once
        still keep one record. A record without a content hash is always saved.
        """
        sha = record.source.get("sha256")
        if not isinstance(sha, str):
            self.save(record)
            return None
        with self._locked():
            name = self._content_index().get(sha)
            if name is not None:
                with contextlib.suppress(OSError, ValueError, TypeError):
                    return ResultRecord.from_dict(read_json(self.root / name))
            path = self.save(record)
            self._content_of[path.name] = sha
            return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.root / ".lock"):
            yield

    def _content_index(self) -> dict[str, str]:
        """source sha256 -> file name over the store; reads only the files it has not read before."""
        names = {p.name for p in self.root.glob("*.json") if not p.name.startswith(".")}
        for gone in set(self._content_of) - names:
            del self._content_of[gone]
        for name in names - set(self._content_of):
            try:
                data = read_json(self.root / name)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                data = None  # load() reports damaged files; here they simply match nothing
            source = data.get("source") if isinstance(data, dict) else None
            sha = source.get("sha256") if isinstance(source, dict) else None
            self._content_of[name] = sha if isinstance(sha, str) else None
        return {sha: name for name, sha in self._content_of.items() if sha}

    def delete(self, record_id: str) -> bool:
        path = self.root / f"{record_id}.json"
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def load(self) -> LoadResult:
        return load_records(self.root) if self.root.is_dir() else LoadResult([], [])


def load_records(path: Path) -> LoadResult:
    """Read records from a store folder, a data dir, a folder of exports, or one JSON export.

    Bad files are reported, not fatal: one damaged file must not hide a hundred good ones.
    """
    path = Path(path)
    if not path.exists():
        return LoadResult([], [f"{path}: no such file or folder"])
    if path.is_dir():
        if (path / "results").is_dir():
            path = path / "results"
        files: Iterable[Path] = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
    else:
        files = [path]
    records: list[ResultRecord] = []
    problems: list[str] = []
    seen: set[str] = set()
    for file in files:
        try:
            data = read_json(file)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{file.name}: unreadable ({exc})")
            continue
        items = data.get("records") if isinstance(data, dict) and "records" in data else data
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, dict):
                problems.append(f"{file.name}: not a result record ({type(item).__name__})")
                continue
            try:
                rec = ResultRecord.from_dict(item)
            except (TypeError, ValueError) as exc:
                problems.append(f"{file.name}: {exc}")
                continue
            if rec.id not in seen:
                seen.add(rec.id)
                records.append(rec)
    return LoadResult(records, problems)
