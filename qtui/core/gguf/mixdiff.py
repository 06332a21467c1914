"""Why two files with the same label differ: their tensor-type mix, group by group.

Two "Q4_K_M" files can store attention, FFN or experts in different types (imatrix recipes,
--tensor-type overrides, newer llama-quantize rules). The diff lines the two mixes up per tensor
group, so the reader sees where the bytes went instead of two long lists to compare by eye.
"""

from __future__ import annotations

from dataclasses import dataclass

from qtui.core.fsutil import human_bytes
from qtui.core.gguf.model_info import GROUPS, ModelInfo, TypeShare

GROUP_LABELS: dict[str, str] = {
    "attention": "attention",
    "ffn_dense": "FFN",
    "ffn_expert_gate_up": "experts gate/up",
    "ffn_expert_down": "experts down",
    "shared_expert": "shared experts",
    "embed_output": "embeddings/output",
    "other": "other (norms, router)",
}


@dataclass(frozen=True)
class TypeDelta:
    """One tensor type inside one group: how many tensors and bytes each model stores in it."""

    type_name: str
    a_tensors: int
    a_bytes: int
    b_tensors: int
    b_bytes: int

    @property
    def differs(self) -> bool:
        return (self.a_tensors, self.a_bytes) != (self.b_tensors, self.b_bytes)


@dataclass(frozen=True)
class GroupDiff:
    group: str
    a: tuple[TypeShare, ...]
    b: tuple[TypeShare, ...]
    types: tuple[TypeDelta, ...]

    @property
    def label(self) -> str:
        return GROUP_LABELS.get(self.group, self.group)

    @property
    def a_bytes(self) -> int:
        return sum(s.nbytes for s in self.a)

    @property
    def b_bytes(self) -> int:
        return sum(s.nbytes for s in self.b)

    @property
    def differs(self) -> bool:
        return any(t.differs for t in self.types)


@dataclass(frozen=True)
class MixDiff:
    a: ModelInfo
    b: ModelInfo
    groups: tuple[GroupDiff, ...]

    @property
    def identical(self) -> bool:
        """Same types and bytes in every group (the files may still differ in their weights)."""
        return not any(g.differs for g in self.groups)

    @property
    def differing(self) -> tuple[GroupDiff, ...]:
        return tuple(g for g in self.groups if g.differs)

    def to_dict(self) -> dict[str, object]:
        def side(m: ModelInfo) -> dict[str, object]:
            return {"path": str(m.path), "quant": m.quant, "size_bytes": m.size_bytes,
                    "bpw": m.bpw, "tensor_bytes": m.tensor_bytes}

        return {
            "a": side(self.a), "b": side(self.b), "identical": self.identical,
            "groups": [{
                "group": g.group, "label": g.label, "differs": g.differs,
                "a_bytes": g.a_bytes, "b_bytes": g.b_bytes,
                "types": [{"type": t.type_name, "a_tensors": t.a_tensors, "a_bytes": t.a_bytes,
                           "b_tensors": t.b_tensors, "b_bytes": t.b_bytes, "differs": t.differs}
                          for t in g.types],
            } for g in self.groups],
        }


def _deltas(a: tuple[TypeShare, ...], b: tuple[TypeShare, ...]) -> tuple[TypeDelta, ...]:
    by_a = {s.type_name: s for s in a}
    by_b = {s.type_name: s for s in b}
    names = sorted(set(by_a) | set(by_b),
                   key=lambda n: (-max(getattr(by_a.get(n), "nbytes", 0), getattr(by_b.get(n), "nbytes", 0)), n))
    out = []
    for n in names:
        sa, sb = by_a.get(n), by_b.get(n)
        out.append(TypeDelta(n, sa.n_tensors if sa else 0, sa.nbytes if sa else 0,
                             sb.n_tensors if sb else 0, sb.nbytes if sb else 0))
    return tuple(out)


def mix_diff(a: ModelInfo, b: ModelInfo) -> MixDiff:
    """Both mixes per group, in GROUPS order; groups neither model has are left out."""
    groups = []
    for g in GROUPS:
        sa, sb = a.mix_by_group.get(g, ()), b.mix_by_group.get(g, ())
        if not sa and not sb:
            continue
        groups.append(GroupDiff(g, sa, sb, _deltas(sa, sb)))
    return MixDiff(a, b, tuple(groups))


def shares_text(shares: tuple[TypeShare, ...]) -> str:
    """'Q4_K 12.0 MiB ×7, Q6_K 3.1 MiB ×1': the types of one group, largest first."""
    if not shares:
        return "—"
    return ", ".join(f"{s.type_name} {human_bytes(s.nbytes)} ×{s.n_tensors}" for s in shares)


def delta_text(t: TypeDelta) -> str:
    """One type's change from A to B, in words: 'Q6_K only in B', 'Q4_K +1.2 MiB'."""
    if not t.a_tensors:
        return f"{t.type_name} only in B ({human_bytes(t.b_bytes)})"
    if not t.b_tensors:
        return f"{t.type_name} only in A ({human_bytes(t.a_bytes)})"
    diff = t.b_bytes - t.a_bytes
    sign = "+" if diff >= 0 else "-"
    count = f", {t.a_tensors}→{t.b_tensors} tensors" if t.a_tensors != t.b_tensors else ""
    return f"{t.type_name} {sign}{human_bytes(abs(diff))}{count}"


def group_summary(g: GroupDiff) -> str:
    """What differs in one group, or 'same'."""
    if not g.differs:
        return "same"
    return "; ".join(delta_text(t) for t in g.types if t.differs)
