"""ModelInfo from real GGUFWriter files: params, bpw, tensor-type mix, groups, split sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gguf
import pytest

from qtui.core.gguf.ggml_types import GGML_TYPES
from qtui.core.gguf.model_info import GROUPS, ModelInfo, NotAModel, model_info, tensor_group
from qtui.core.gguf.reader import GGUFError
from tests.unit.gguf_builders import (
    BF16,
    F16,
    F32,
    Q4_K,
    Q6_K,
    Q8_0,
    dense_tensors,
    moe_tensors,
    patch_tensor_type,
    write_model,
)


def _expected_bytes(specs: list[tuple[str, tuple[int, ...], int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for _, dims, tid in specs:
        t = GGML_TYPES[tid]
        n = dims[0] // t.block_size * t.type_size
        for d in dims[1:]:
            n *= d
        out[tid] = out.get(tid, 0) + n
    return out


def test_dense_model_info(tmp_path: Path) -> None:
    specs = dense_tensors()
    p = write_model(tmp_path / "m.gguf", tensors=specs, file_type=15,
                    extra={"general.quantized_by": "me"})
    m = model_info(p)
    n_params = sum(_prod(d) for _, d, _ in specs)
    exp = _expected_bytes(specs)
    assert m.path == p and m.shards == (p,)
    assert m.size_bytes == p.stat().st_size
    assert (m.arch, m.name, m.quant, m.file_type) == ("llama", "Tiny Test", "Q4_K_M", 15)
    assert (m.n_vocab, m.context_length, m.quantized_by) == (512, 2048, "me")
    assert m.n_params == n_params
    assert m.bpw == pytest.approx(8 * sum(exp.values()) / n_params)
    assert [s.type_id for s in m.mix_by_type] == sorted(exp, key=lambda t: -exp[t])
    assert {s.type_id: s.nbytes for s in m.mix_by_type} == exp
    assert m.imatrix is None and not m.is_base_candidate
    assert tuple(m.mix_by_group) == GROUPS
    groups = {g: {s.type_name: s.n_tensors for s in ss} for g, ss in m.mix_by_group.items()}
    assert groups == {
        "attention": {"q4_K": 8, "f32": 2}, "ffn_dense": {"q4_K": 6},
        "ffn_expert_gate_up": {}, "ffn_expert_down": {}, "shared_expert": {},
        "embed_output": {"q6_K": 2}, "other": {"f32": 3},
    }
    # share of bytes in types of >= 6 bits per weight: exactly the q6_K embeddings and the f32
    big = exp[Q6_K] + exp[F32]
    assert m.share_at_least_bits(6.0) == pytest.approx(big / sum(exp.values()))
    assert m.share_at_least_bits(0) == 1.0 and m.share_at_least_bits(33) == 0.0


def _prod(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def test_moe_groups(tmp_path: Path) -> None:
    m = model_info(write_model(tmp_path / "moe.gguf", tensors=moe_tensors(n_layers=2)))
    g = {k: {s.type_name: s.n_tensors for s in v} for k, v in m.mix_by_group.items()}
    assert g["ffn_expert_gate_up"] == {"q4_K": 4}
    assert g["ffn_expert_down"] == {"q6_K": 2}
    assert g["shared_expert"] == {"q8_0": 6}
    assert g["attention"] == {"q8_0": 4, "f32": 2}
    assert g["other"] == {"f32": 3}  # two routers + output_norm
    assert m.quant == "?"  # no general.file_type in this file


@pytest.mark.parametrize(("name", "group"), [
    ("token_embd.weight", "embed_output"), ("output.weight", "embed_output"),
    ("per_layer_token_embd.weight", "embed_output"), ("output_norm.weight", "other"),
    ("blk.3.attn_qkv.weight", "attention"), ("blk.3.attn_k.bias", "attention"),
    ("blk.3.ffn_gate.weight", "ffn_dense"), ("blk.3.ffn_down.weight", "ffn_dense"),
    ("blk.3.ffn_gate_up_exps.weight", "ffn_expert_gate_up"),
    ("blk.3.ffn_up_exps.bias", "ffn_expert_gate_up"),
    ("blk.3.ffn_down_exps.weight", "ffn_expert_down"),
    ("blk.3.ffn_down_shexp.weight", "shared_expert"),
    ("blk.3.ffn_gate_inp.weight", "other"), ("blk.3.ffn_norm.weight", "other"),
    ("rope_freqs.weight", "other"),
])
def test_tensor_group(name: str, group: str) -> None:
    assert tensor_group(name) == group


@pytest.mark.parametrize(("weight", "file_type", "base"), [
    (F16, None, True), (BF16, 32, True), (F32, 0, True), (Q8_0, 7, False),
    (Q4_K, 1, True),  # file_type says F16: the label alone is enough to offer it as a base
])
def test_base_candidate(tmp_path: Path, weight: int, file_type: int | None, base: bool) -> None:
    specs = dense_tensors(n_layers=1, weight_type=weight, embd_type=weight)
    m = model_info(write_model(tmp_path / "b.gguf", tensors=specs, file_type=file_type))
    assert m.is_base_candidate is base


def test_imatrix_keys_accept_any_int_width(tmp_path: Path) -> None:
    extra = {"quantize.imatrix.file": "imatrix.dat",
             "quantize.imatrix.dataset": ["wiki.train.raw", "code.txt"],
             "quantize.imatrix.entries_count": -5 + 201,  # u32
             "quantize.imatrix.chunks_count": (gguf.GGUFValueType.INT64, 125)}
    m = model_info(write_model(tmp_path / "i.gguf", extra=extra, file_type=1024 | 18))
    assert m.imatrix == {"file": "imatrix.dat", "dataset": "wiki.train.raw, code.txt",
                         "entries_count": 196, "chunks_count": 125}
    assert m.quant == "Q6_K (guessed)"


def test_json_round_trip(tmp_path: Path) -> None:
    p = write_model(tmp_path / "r.gguf", tensors=moe_tensors(), file_type=17,
                    extra={"quantize.imatrix.file": "x.dat"})
    m = model_info(p)
    d = json.loads(json.dumps(m.to_dict()))
    back = ModelInfo.from_dict(d)
    assert back == m
    assert back.share_at_least_bits(5) == m.share_at_least_bits(5)
    assert m.identity() == {"path": str(p), "size": p.stat().st_size, "mtime": p.stat().st_mtime}


def test_unknown_types_in_mix(tmp_path: Path) -> None:
    p = write_model(tmp_path / "k.gguf")
    patch_tensor_type(p, "blk.1.ffn_down.weight", 139)
    m = model_info(p)
    ik = next(s for s in m.mix_by_type if s.type_id == 139)
    assert ik.type_name == "iq4_k" and ik.n_tensors == 1
    assert ik.bpw == pytest.approx(4.5)  # measured from bytes (it was written as q4_K)


def test_split_set(tmp_path: Path) -> None:
    specs = moe_tensors(n_layers=2)
    first = write_model(tmp_path / "big.gguf", tensors=specs, split_max_tensors=9, file_type=15)
    assert first.name == "big-00001-of-00003.gguf"
    m = model_info(first)
    assert [p.name for p in m.shards] == [f"big-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert m.size_bytes == sum(p.stat().st_size for p in m.shards)
    assert m.n_params == sum(_prod(d) for _, d, _ in specs)
    assert sum(s.n_tensors for s in m.mix_by_type) == len(specs)
    assert m.quant == "Q4_K_M" and m.n_vocab == 512
    with pytest.raises(GGUFError, match="shard 2 of 3.*big-00001-of-00003.gguf"):
        model_info(m.shards[1])
    os.unlink(m.shards[2])
    with pytest.raises(GGUFError, match="big-00003-of-00003.gguf is missing"):
        model_info(first)


def test_split_count_without_split_name(tmp_path: Path) -> None:
    first = write_model(tmp_path / "s.gguf", split_max_tensors=12)
    renamed = tmp_path / "renamed.gguf"
    first.rename(renamed)
    with pytest.raises(GGUFError, match="first of 2 split files"):
        model_info(renamed)


def test_not_a_model(tmp_path: Path) -> None:
    p = write_model(tmp_path / "imatrix.gguf", extra={"general.type": "imatrix"})
    with pytest.raises(NotAModel, match="imatrix"):
        model_info(p)
    p = write_model(tmp_path / "mmproj.gguf", arch="clip")
    with pytest.raises(NotAModel, match="projector"):
        model_info(p)
