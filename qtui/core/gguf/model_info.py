"""What a GGUF model is, as far as its header says: size, params, tokenizer, tensor-type mix.

The file_type label ("Q4_K_M") is only a name; two files with the same label can differ in
every tensor. The tensor-type mix (overall and per group of tensors) is the truth, so it is
computed here once and kept in a JSON-safe form for the result store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtui.core.fsutil import file_sha256
from qtui.core.gguf.ggml_types import FLOAT_TYPE_IDS, GGML_TYPES, file_type_name, type_name
from qtui.core.gguf.reader import ArrayInfo, GGUFError, GGUFHeader, TensorInfo, read_header

GROUPS: tuple[str, ...] = (
    "attention", "ffn_dense", "ffn_expert_gate_up", "ffn_expert_down", "shared_expert",
    "embed_output", "other",
)
BASE_FILE_TYPES = frozenset({0, 1, 32})  # all F32, F16, BF16
SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_EMBED_OUTPUT = {"token_embd", "output", "per_layer_token_embd"}
UPCAST_KEY = "qtui.upcast_from"
"""GGUF metadata key qtui writes into a float file it made from a quantized one: the source's type."""


class NotAModel(GGUFError):
    """A valid GGUF file that is not a language model (imatrix data, vision projector)."""


@dataclass(frozen=True)
class TypeShare:
    type_id: int
    type_name: str
    n_tensors: int
    nbytes: int
    n_elements: int

    @property
    def bpw(self) -> float:
        """Bits per weight of this type: from the table, else measured from the bytes."""
        known = GGML_TYPES.get(self.type_id)
        if known is not None:
            return known.bpw
        return 8.0 * self.nbytes / self.n_elements if self.n_elements else 0.0


def tensor_group(name: str) -> str:
    """Which of GROUPS a tensor belongs to, from its llama.cpp name."""
    base = name.removesuffix(".weight").removesuffix(".bias")
    parts = base.split(".")
    if parts[0] == "blk" and len(parts) >= 3:
        part = parts[2]
    else:
        part = base
        if part in _EMBED_OUTPUT or part.endswith("token_embd"):
            return "embed_output"
    if part.endswith("_shexp"):
        return "shared_expert"
    if part.endswith("_exps"):
        return "ffn_expert_down" if part == "ffn_down_exps" else "ffn_expert_gate_up"
    if part in ("ffn_gate", "ffn_up", "ffn_down", "ffn_gate_up"):
        return "ffn_dense"
    if part.startswith("attn_"):
        return "attention"
    return "other"


def _mix(tensors: Iterable[TensorInfo]) -> tuple[TypeShare, ...]:
    acc: dict[int, list[int]] = {}
    for t in tensors:
        a = acc.setdefault(t.type_id, [0, 0, 0])
        a[0] += 1
        a[1] += t.nbytes
        a[2] += t.n_elements
    shares = [TypeShare(tid, type_name(tid), n, b, e) for tid, (n, b, e) in acc.items()]
    return tuple(sorted(shares, key=lambda s: (-s.nbytes, s.type_id)))


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, ArrayInfo) and v.values and all(isinstance(x, str) for x in v.values):
        return ", ".join(str(x) for x in v.values)  # newer llama-quantize lists datasets
    return None


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    shards: tuple[Path, ...]
    size_bytes: int
    mtime: float
    arch: str | None
    name: str | None
    quant: str
    file_type: int | None
    n_params: int
    bpw: float
    n_vocab: int | None
    context_length: int | None
    quantized_by: str | None
    imatrix: dict[str, object] | None = field(hash=False)
    mix_by_type: tuple[TypeShare, ...]
    mix_by_group: dict[str, tuple[TypeShare, ...]] = field(hash=False)
    is_base_candidate: bool
    upcast_from: str | None = None
    """The quantized type this float file was made from (metadata key qtui.upcast_from), if it says."""

    @property
    def tensor_bytes(self) -> int:
        return sum(s.nbytes for s in self.mix_by_type)

    def share_at_least_bits(self, bits: float) -> float:
        """Fraction of tensor bytes stored in types of at least `bits` bits per weight."""
        total = self.tensor_bytes
        if not total:
            return 0.0
        return sum(s.nbytes for s in self.mix_by_type if s.bpw >= bits) / total

    def identity(self) -> dict[str, object]:
        """What says "this is the same file as before" without hashing gigabytes."""
        return {"path": str(self.path), "size": self.size_bytes, "mtime": self.mtime}

    def to_dict(self) -> dict[str, object]:
        def shares(ss: tuple[TypeShare, ...]) -> list[dict[str, object]]:
            return [s.__dict__.copy() for s in ss]

        return {
            "path": str(self.path), "shards": [str(p) for p in self.shards],
            "size_bytes": self.size_bytes, "mtime": self.mtime, "arch": self.arch,
            "name": self.name, "quant": self.quant, "file_type": self.file_type,
            "n_params": self.n_params, "bpw": self.bpw, "n_vocab": self.n_vocab,
            "context_length": self.context_length, "quantized_by": self.quantized_by,
            "imatrix": dict(self.imatrix) if self.imatrix is not None else None,
            "mix_by_type": shares(self.mix_by_type),
            "mix_by_group": {g: shares(ss) for g, ss in self.mix_by_group.items()},
            "is_base_candidate": self.is_base_candidate,
            **({"upcast_from": self.upcast_from} if self.upcast_from else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        """The inverse of to_dict (a JSON round trip: lists where tuples were)."""

        def shares(items: Iterable[dict[str, Any]]) -> tuple[TypeShare, ...]:
            return tuple(TypeShare(**s) for s in items)

        return cls(
            path=Path(str(d["path"])), shards=tuple(Path(p) for p in d["shards"]),
            size_bytes=int(d["size_bytes"]), mtime=float(d["mtime"]),
            arch=d["arch"], name=d["name"], quant=str(d["quant"]),
            file_type=d["file_type"], n_params=int(d["n_params"]),
            bpw=float(d["bpw"]), n_vocab=d["n_vocab"],
            context_length=d["context_length"], quantized_by=d["quantized_by"],
            imatrix=d["imatrix"], mix_by_type=shares(d["mix_by_type"]),
            mix_by_group={g: shares(ss) for g, ss in d["mix_by_group"].items()},
            is_base_candidate=bool(d["is_base_candidate"]),
            upcast_from=d.get("upcast_from"),
        )


def split_parts(path: Path) -> tuple[str, int, int] | None:
    """(prefix, shard number 1-based, shard count) for NAME-0000k-of-0000N.gguf, else None."""
    m = SPLIT_RE.match(path.name)
    if not m:
        return None
    return m["prefix"], int(m["no"]), int(m["count"])


def shard_path(folder: Path, prefix: str, no: int, count: int) -> Path:
    return folder / f"{prefix}-{no:05d}-of-{count:05d}.gguf"


def _shards(path: Path, first: GGUFHeader) -> list[Path]:
    parts = split_parts(path)
    meta_count = _int(first.metadata.get("split.count"))
    if parts is None:
        if meta_count and meta_count > 1:
            raise GGUFError(f"{path.name} says it is the first of {meta_count} split files, but "
                            f"its name does not follow NAME-00001-of-{meta_count:05d}.gguf")
        return [path]
    prefix, no, count = parts
    if no != 1:
        raise GGUFError(f"{path.name} is shard {no} of {count}; open the first shard "
                        f"{shard_path(path.parent, prefix, 1, count).name}")
    # llama.cpp trusts split.count in the first shard, not the file name.
    count = meta_count or count
    return [shard_path(path.parent, prefix, i, count) for i in range(1, count + 1)]


def model_info(path: Path) -> ModelInfo:
    """Describe a model from its header(s). A split set is given by its first shard."""
    path = Path(path)
    first = read_header(path)
    meta = first.metadata
    gtype = meta.get("general.type")
    if gtype == "imatrix":
        raise NotAModel("an importance matrix (imatrix) file, not a model")
    if gtype == "mmproj" or meta.get("general.architecture") == "clip":
        raise NotAModel("a vision/audio projector (mmproj), not a language model")
    shard_paths = _shards(path, first)
    headers = [first]
    for p in shard_paths[1:]:
        if not p.exists():
            raise GGUFError(f"split model is incomplete: shard {p.name} is missing")
        try:
            headers.append(read_header(p))
        except GGUFError as exc:
            raise GGUFError(f"shard {p.name}: {exc}") from exc
    return _build(path, shard_paths, headers)


def _build(path: Path, shard_paths: list[Path], headers: list[GGUFHeader]) -> ModelInfo:
    meta = headers[0].metadata
    tensors = [t for h in headers for t in h.tensors]
    size = 0
    mtime = 0.0
    for p in shard_paths:
        st = p.stat()
        size += st.st_size
        mtime = max(mtime, st.st_mtime)
    arch = _str(meta.get("general.architecture"))
    ft = _int(meta.get("general.file_type"))
    n_params = sum(t.n_elements for t in tensors)
    tensor_bytes = sum(t.nbytes for t in tensors)
    toks = meta.get("tokenizer.ggml.tokens")
    by_group: dict[str, list[TensorInfo]] = {g: [] for g in GROUPS}
    for t in tensors:
        by_group[tensor_group(t.name)].append(t)
    big = [t for t in tensors if len(t.dims) >= 2]
    imatrix = {k: meta[f"quantize.imatrix.{k}"] for k in
               ("file", "dataset", "entries_count", "chunks_count")
               if f"quantize.imatrix.{k}" in meta}
    if imatrix:
        imatrix = {k: (_str(v) if k in ("file", "dataset") else _int(v)) for k, v in imatrix.items()}
    is_base = (bool(big) and all(t.type_id in FLOAT_TYPE_IDS for t in big)) or ft in BASE_FILE_TYPES
    return ModelInfo(
        path=path,
        shards=tuple(shard_paths),
        size_bytes=size,
        mtime=mtime,
        arch=arch,
        name=_str(meta.get("general.name")),
        quant=file_type_name(ft),
        file_type=ft,
        n_params=n_params,
        bpw=8.0 * tensor_bytes / n_params if n_params else 0.0,
        n_vocab=toks.count if isinstance(toks, ArrayInfo) else None,
        context_length=_int(meta.get(f"{arch}.context_length")) if arch else None,
        quantized_by=_str(meta.get("general.quantized_by")),
        imatrix=imatrix or None,
        mix_by_type=_mix(tensors),
        mix_by_group={g: _mix(ts) for g, ts in by_group.items()},
        is_base_candidate=is_base,
        # llama-quantize copies every key into the files it makes: on a quantized file the mark
        # is its base's, not its own.
        upcast_from=_str(meta.get(UPCAST_KEY)) if is_base else None,
    )


def model_summary(info: ModelInfo, sha256: bool = False) -> dict[str, Any]:
    """What a result record keeps about a model: identity, labels and the tensor mix.

    sha256 is opt-in: hashing a 200 GB model takes minutes, size + mtime is the default identity.
    """
    summary: dict[str, Any] = {
        "path": str(info.path),
        "label": info.path.name.removesuffix(".gguf"),
        "name": info.name,
        "arch": info.arch,
        "size_bytes": info.size_bytes,
        "mtime": info.mtime,
        "quant": info.quant,
        "quantized_by": info.quantized_by,
        "bpw": info.bpw,
        "n_params": info.n_params,
        "n_vocab": info.n_vocab,
        "shards": len(info.shards),
        "imatrix": info.imatrix,
        "mix": {t.type_name: t.nbytes for t in info.mix_by_type},
        "groups": {g: {t.type_name: t.nbytes for t in shares} for g, shares in info.mix_by_group.items()},
    }
    if info.upcast_from:
        summary["upcast_from"] = info.upcast_from
    if sha256:
        digests = [file_sha256(shard) for shard in info.shards]
        # a split set is identified by the hash of its shards' hashes, in order
        summary["sha256"] = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    return summary
