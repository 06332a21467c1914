"""Write small but valid GGUF files for tests, with the `gguf` package's GGUFWriter.

Shapes are given in GGUF order (ne0 first), the way llama.cpp prints them. Quantized tensors
get zero-filled blocks of the right byte size: the header reader never looks at the data, but
the file must be as long as a real one or the reader (rightly) calls it truncated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

from qtui.core.gguf.ggml_types import GGML_TYPES

TensorSpec = tuple[str, tuple[int, ...], int]  # name, dims (ne0 first), ggml type id

F32, F16, Q4_K, Q6_K, Q8_0, BF16 = 0, 1, 12, 14, 8, 30


def dense_tensors(n_layers: int = 2, n_embd: int = 256, n_ff: int = 512, n_vocab: int = 512,
                  weight_type: int = Q4_K, embd_type: int = Q6_K) -> list[TensorSpec]:
    """A llama-like dense model: embeddings, per-layer attention + SwiGLU FFN, norms, output."""
    t: list[TensorSpec] = [("token_embd.weight", (n_embd, n_vocab), embd_type)]
    for i in range(n_layers):
        p = f"blk.{i}."
        t += [
            (p + "attn_norm.weight", (n_embd,), F32),
            (p + "attn_q.weight", (n_embd, n_embd), weight_type),
            (p + "attn_k.weight", (n_embd, n_embd), weight_type),
            (p + "attn_v.weight", (n_embd, n_embd), weight_type),
            (p + "attn_output.weight", (n_embd, n_embd), weight_type),
            (p + "ffn_norm.weight", (n_embd,), F32),
            (p + "ffn_gate.weight", (n_embd, n_ff), weight_type),
            (p + "ffn_up.weight", (n_embd, n_ff), weight_type),
            (p + "ffn_down.weight", (n_ff, n_embd), weight_type),
        ]
    t += [("output_norm.weight", (n_embd,), F32), ("output.weight", (n_embd, n_vocab), embd_type)]
    return t


def moe_tensors(n_layers: int = 1, n_embd: int = 256, n_ff: int = 256, n_expert: int = 4,
                n_vocab: int = 256) -> list[TensorSpec]:
    """A MoE model with routed and shared experts, with different types per group."""
    t: list[TensorSpec] = [("token_embd.weight", (n_embd, n_vocab), Q8_0)]
    for i in range(n_layers):
        p = f"blk.{i}."
        t += [
            (p + "attn_norm.weight", (n_embd,), F32),
            (p + "attn_q.weight", (n_embd, n_embd), Q8_0),
            (p + "attn_output.weight", (n_embd, n_embd), Q8_0),
            (p + "ffn_gate_inp.weight", (n_embd, n_expert), F32),
            (p + "ffn_gate_exps.weight", (n_embd, n_ff, n_expert), Q4_K),
            (p + "ffn_up_exps.weight", (n_embd, n_ff, n_expert), Q4_K),
            (p + "ffn_down_exps.weight", (n_ff, n_embd, n_expert), Q6_K),
            (p + "ffn_gate_shexp.weight", (n_embd, n_ff), Q8_0),
            (p + "ffn_up_shexp.weight", (n_embd, n_ff), Q8_0),
            (p + "ffn_down_shexp.weight", (n_ff, n_embd), Q8_0),
        ]
    t += [("output_norm.weight", (n_embd,), F32), ("output.weight", (n_embd, n_vocab), Q6_K)]
    return t


def _tensor_array(dims: tuple[int, ...], type_id: int) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    np_shape = tuple(reversed(dims))
    if type_id == F32:
        return np.zeros(np_shape, dtype=np.float32), None
    if type_id == F16:
        return np.zeros(np_shape, dtype=np.float16), None
    t = GGML_TYPES[type_id]
    row_bytes = dims[0] // t.block_size * t.type_size
    byte_shape = (*np_shape[:-1], row_bytes)
    return np.zeros(byte_shape, dtype=np.uint8), GGMLQuantizationType(type_id)


def write_model(path: Path, *, arch: str = "llama", name: str = "Tiny Test",
                tensors: Sequence[TensorSpec] | None = None, n_vocab: int = 512,
                file_type: int | None = None, context_length: int = 2048,
                extra: dict[str, object] | None = None, split_max_tensors: int = 0,
                tokens: Iterable[str] | None = None, alignment: int | None = None) -> Path:
    """Write a model; returns the path llama.cpp would be given (the first shard if split)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    w.add_name(name)
    w.add_context_length(context_length)
    w.add_block_count(2)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_quantization_version(2)
    w.add_tokenizer_model("llama")
    toks = list(tokens) if tokens is not None else [f"tok{i}" for i in range(n_vocab)]
    w.add_token_list(toks)
    w.add_token_scores([float(-i) for i in range(len(toks))])
    w.add_token_types([1] * len(toks))
    for key, value in (extra or {}).items():
        _add(w, key, value)
    for tname, dims, type_id in tensors if tensors is not None else dense_tensors(n_vocab=n_vocab):
        arr, raw = _tensor_array(dims, type_id)
        w.add_tensor(tname, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return w.format_shard_names(path)[0]


def _add(w: GGUFWriter, key: str, value: object) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value) if value >= 0 else w.add_int32(key, value)
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], GGUFValueType):
        w.add_key_value(key, value[1], value[0])  # explicit type, e.g. (GGUFValueType.UINT64, 5)
    elif isinstance(value, list):
        w.add_array(key, value)
    else:
        raise TypeError(f"cannot write {key}={value!r}")


def tensor_info_offset(data: bytes, name: str) -> int:
    """Byte offset of a tensor's info record (its name length field) inside the header."""
    needle = struct.pack("<Q", len(name.encode())) + name.encode()
    at = data.find(needle)
    if at < 0:
        raise ValueError(f"tensor {name} not in file")
    return at


def patch_tensor_type(path: Path, name: str, new_type: int) -> None:
    """Rewrite one tensor's ggml type id in place (e.g. to a fork type the reader does not know)."""
    data = bytearray(path.read_bytes())
    at = tensor_info_offset(bytes(data), name) + 8 + len(name.encode())
    n_dims = struct.unpack_from("<I", data, at)[0]
    struct.pack_into("<I", data, at + 4 + 8 * n_dims, new_type)
    path.write_bytes(bytes(data))


def set_version(path: Path, version: int) -> None:
    """GGUF v2 and v3 share the layout for little-endian files, so a v2 file is a v3 file with
    the version field rewritten (this is also how llama.cpp reads both)."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, version)
    path.write_bytes(bytes(data))


def header_bytes(kvs: list[bytes], tensor_infos: list[bytes], version: int = 3) -> bytes:
    """Hand-built header for hostile-input tests (no tensors data appended)."""
    return (b"GGUF" + struct.pack("<IQQ", version, len(tensor_infos), len(kvs))
            + b"".join(kvs) + b"".join(tensor_infos))


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload
