"""Which model files already have a result on a setup (so no one measures them again by
accident), and what a row must say about its file: near the base by construction, or the same
tensors as another row's file.

Cheap on purpose (the Models tab asks on every change of base): it reads only the records at
hand and the scanned headers, never the corpus or the base log-probs. A setup here is the base
file (same path, size and mtime), the context, and where they are set, the chunk count and corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtui.core.gguf.model_info import ModelInfo
from qtui.core.gguf.sameness import is_base_origin, record_mix_key, same_tensors
from qtui.core.results.store import ResultRecord


def _resolved(p: object) -> str | None:
    if not p:
        return None
    try:
        return str(Path(str(p)).resolve())
    except (OSError, RuntimeError):
        return str(p)


def _same_file(recorded: Mapping[str, Any], info: ModelInfo) -> bool:
    """The file the record measured is this file as it is now (not a re-quantized one)."""
    if _resolved(recorded.get("path")) != _resolved(info.path) or recorded.get("size_bytes") != info.size_bytes:
        return False
    mtime = recorded.get("mtime")
    return isinstance(mtime, (int, float)) and abs(mtime - info.mtime) < 1e-3


def measured_files(records: Iterable[ResultRecord], models: Iterable[ModelInfo], base: ModelInfo | None,
                   ctx: int | None, chunks: int | None = None, corpus: str | Path | None = None) -> set[Path]:
    """Paths of `models` with a finished KLD result against `base` at `ctx` (and `chunks`,
    `corpus` where given). No base chosen: no setup, nothing is marked."""
    if base is None or ctx is None:
        return set()
    want_corpus = _resolved(corpus) if corpus else None
    done: dict[tuple[str | None, object], list[object]] = {}  # (path, size) -> mtimes: one resolve per record
    for rec in records:
        if rec.kind != "kld" or rec.status != "done" or rec.model.get("floor") or rec.ctx != ctx:
            continue
        if chunks is not None and rec.chunks is not None and rec.chunks != chunks:
            continue
        if want_corpus and rec.corpus.get("path") and _resolved(rec.corpus.get("path")) != want_corpus:
            continue
        if not _same_file(rec.base, base):
            continue
        key = (_resolved(rec.model.get("path")), rec.model.get("size_bytes"))
        done.setdefault(key, []).append(rec.model.get("mtime"))
    out: set[Path] = set()
    for m in models:
        mtimes = done.get((_resolved(m.path), m.size_bytes), [])
        if any(isinstance(t, (int, float)) and abs(t - m.mtime) < 1e-3 for t in mtimes):
            out.add(m.path)
    return out


@dataclass(frozen=True)
class RowMarks:
    """What a leaderboard row must say beside its figures: how its file relates to the others."""

    base_origin: str | None = None
    """the type the base was upcast from, on a row of that very type: near the base by construction"""
    same_as: tuple[str, ...] = ()
    """the other rows' files with exactly this file's tensor types and sizes"""

    @property
    def symbol(self) -> str:
        return ("≈" if self.base_origin else "") + ("≡" if self.same_as else "")

    def notes(self) -> list[str]:
        out = []
        if self.base_origin:
            out.append(f"≈ base origin: the base was upcast from a {self.base_origin} file, so this "
                       f"{self.base_origin} is nearly the base's own weights; its low KLD is not a finding")
        if self.same_as:
            out.append(f"≡ same tensors as {', '.join(self.same_as)}: same types, same sizes, so the same KLD")
        return out


def row_marks(records: Iterable[ResultRecord]) -> dict[str, RowMarks]:
    """Marks by record id, for the records that need one (the rows of one setup, as shown)."""
    records = [r for r in records if r.kind == "kld" and not r.model.get("floor")]
    twins = same_tensors((r.id, str(r.model.get("path") or r.id), str(r.model.get("label") or r.id),
                          record_mix_key(r.model)) for r in records)
    out: dict[str, RowMarks] = {}
    for r in records:
        origin = r.base.get("upcast_from")
        marks = RowMarks(str(origin) if is_base_origin(r.model.get("quant"), origin) else None, twins.get(r.id, ()))
        if marks.symbol:
            out[r.id] = marks
    return out
