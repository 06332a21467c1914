"""When two files are the same model in all but name, and when a base is not what it seems.

Two files can carry different labels and identical tensors: MXFP4_MOE on a dense model stores
every tensor as Q8_0 does, so the two measure the same KLD to the last digit. And a float base
made by upcasting a quantized file holds exactly that file's weights: re-quantizing it to the
same type gives nearly the weights back, so that row's tiny KLD says nothing about the type.
Both are told apart from the tensor-type mix and the base's metadata, never from names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from qtui.core.gguf.model_info import UPCAST_KEY, ModelInfo

__all__ = ["UPCAST_KEY", "MixKey", "has_experts", "info_mix_key", "is_base_origin", "record_mix_key", "same_tensors"]

MixKey = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
T = TypeVar("T")


def _key(groups: Mapping[str, Mapping[str, int]]) -> MixKey | None:
    key = tuple(sorted((g, tuple(sorted((str(t), int(b)) for t, b in types.items())))
                       for g, types in groups.items() if types))
    return key or None


def info_mix_key(info: ModelInfo) -> MixKey | None:
    """Bytes per tensor type in each tensor group: equal keys mean equal tensors types and sizes."""
    return _key({g: {s.type_name: s.nbytes for s in shares} for g, shares in info.mix_by_group.items()})


def record_mix_key(model: Mapping[str, Any]) -> MixKey | None:
    """The same key from a result record's model summary; None when it has no mix (a published row)."""
    groups = model.get("groups")
    if isinstance(groups, Mapping) and groups:
        return _key({str(g): t for g, t in groups.items() if isinstance(t, Mapping)})
    mix = model.get("mix")
    if isinstance(mix, Mapping) and mix:
        return _key({"all": mix})
    return None


def same_tensors(items: Iterable[tuple[T, str, str, MixKey | None]]) -> dict[T, tuple[str, ...]]:
    """For each (id, path, label, key), the labels of the OTHER files with exactly its tensors.

    Items of one path (two results of one file) are one file, not twins of each other."""
    items = list(items)
    by_key: dict[MixKey, dict[str, str]] = {}
    for _, path, label, key in items:
        if key is not None:
            by_key.setdefault(key, {}).setdefault(path, label)
    out: dict[T, tuple[str, ...]] = {}
    for ident, path, _, key in items:
        if key is None:
            continue
        others = tuple(label for p, label in by_key[key].items() if p != path)
        if others:
            out[ident] = others
    return out


def has_experts(info: ModelInfo) -> bool:
    """A mixture-of-experts model (MXFP4_MOE quantizes only expert tensors to MXFP4)."""
    return any(info.mix_by_group.get(g) for g in ("ffn_expert_gate_up", "ffn_expert_down", "shared_expert"))


def is_base_origin(quant: str | None, upcast_from: str | None) -> bool:
    """True for a variant of the very type its (upcast) base was made from."""
    return bool(quant) and bool(upcast_from) and str(quant).upper() == str(upcast_from).upper()
