"""The header reader against files written by GGUFWriter (checked against gguf.GGUFReader as
an oracle) and against hand-made hostile headers."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import gguf
import pytest

import qtui.core.gguf.reader as G
from qtui.core.gguf.ggml_types import GGML_TYPES, file_type_name, tensor_nbytes, type_name
from qtui.core.gguf.reader import ArrayInfo, GGUFError, SkippedString, read_header
from tests.unit.gguf_builders import (
    F16,
    Q4_K,
    dense_tensors,
    gstr,
    header_bytes,
    kv,
    moe_tensors,
    patch_tensor_type,
    set_version,
    tensor_info_offset,
    write_model,
)


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("d") / "dense.gguf", file_type=15,
                       extra={"general.quantized_by": "tester", "general.tags": ["a", "b"],
                              "test.ints": list(range(100)),
                              "test.u64": (gguf.GGUFValueType.UINT64, 1 << 40),
                              "test.f": 0.5, "test.flag": True, "test.neg": -3})


def _oracle_check(path: Path) -> None:
    h = read_header(path)
    r = gguf.GGUFReader(path)
    assert len(h.tensors) == len(r.tensors)
    for mine, ref in zip(h.tensors, r.tensors):
        assert mine.name == ref.name
        assert mine.dims == tuple(int(x) for x in ref.shape)
        assert mine.type_id == int(ref.tensor_type)
        assert h.data_offset + mine.offset == ref.data_offset
        assert mine.nbytes == ref.n_bytes
    assert h.data_offset == r.data_offset


def test_dense_matches_gguf_reader(dense: Path) -> None:
    _oracle_check(dense)


def test_moe_matches_gguf_reader(tmp_path: Path) -> None:
    _oracle_check(write_model(tmp_path / "moe.gguf", tensors=moe_tensors(), alignment=64))


def test_metadata_values(dense: Path) -> None:
    h = read_header(dense)
    m = h.metadata
    assert h.version == 3
    assert m["general.architecture"] == "llama"
    assert m["general.name"] == "Tiny Test"
    assert m["general.file_type"] == 15
    assert m["general.quantized_by"] == "tester"
    assert m["llama.context_length"] == 2048
    assert m["test.u64"] == 1 << 40
    assert m["test.f"] == 0.5 and m["test.flag"] is True and m["test.neg"] == -3
    toks = m["tokenizer.ggml.tokens"]
    assert toks == ArrayInfo(8, 512, None)  # long arrays: count only, no values
    assert m["tokenizer.ggml.scores"] == ArrayInfo(6, 512, None)
    assert m["general.tags"] == ArrayInfo(8, 2, ("a", "b"))  # short arrays keep values
    assert m["test.ints"].count == 100 and m["test.ints"].values is None
    assert h.file_size == dense.stat().st_size


def test_v2_is_read_like_v3(dense: Path, tmp_path: Path) -> None:
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(dense.read_bytes())
    set_version(v2, 2)
    a, b = read_header(dense), read_header(v2)
    assert b.version == 2
    assert (a.metadata, a.tensors, a.data_offset) == (b.metadata, b.tensors, b.data_offset)


@pytest.mark.parametrize(("version", "message"), [
    (1, "version 1 is too old"), (4, "unsupported GGUF version 4"),
    (0x03000000, "big-endian"),
])
def test_refused_versions(dense: Path, tmp_path: Path, version: int, message: str) -> None:
    p = tmp_path / "v.gguf"
    p.write_bytes(dense.read_bytes())
    set_version(p, version)
    with pytest.raises(GGUFError, match=message):
        read_header(p)


def test_not_gguf_and_empty(tmp_path: Path) -> None:
    (tmp_path / "e.gguf").write_bytes(b"")
    (tmp_path / "t.gguf").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(GGUFError, match="empty"):
        read_header(tmp_path / "e.gguf")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_header(tmp_path / "t.gguf")
    with pytest.raises(GGUFError, match="cannot read"):
        read_header(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="folder"):
        read_header(tmp_path)


@pytest.mark.parametrize("keep", [10, 30, 200, 5000, -1000, -1])
def test_truncated_files(dense: Path, tmp_path: Path, keep: int) -> None:
    data = dense.read_bytes()
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[:keep])
    with pytest.raises(GGUFError, match="truncated"):
        read_header(p)


def test_unknown_type_id_uses_offset_differences(dense: Path, tmp_path: Path) -> None:
    ref = {t.name: t for t in read_header(dense).tensors}
    p = tmp_path / "fork.gguf"
    p.write_bytes(dense.read_bytes())
    patch_tensor_type(p, "blk.0.ffn_up.weight", 139)  # ik_llama.cpp iq4_k
    patch_tensor_type(p, "output.weight", 250)  # nobody's type, and the last tensor
    h = read_header(p)
    by = {t.name: t for t in h.tensors}
    assert by["blk.0.ffn_up.weight"].type_id == 139
    assert by["blk.0.ffn_up.weight"].type_name == "iq4_k"
    assert by["output.weight"].type_name == "type 250"
    # Back-to-back layout: the difference of offsets is the real size (alignment is 32 and
    # every tensor here is a multiple of 32 bytes, so there is no padding).
    assert by["blk.0.ffn_up.weight"].nbytes == ref["blk.0.ffn_up.weight"].nbytes
    assert by["output.weight"].nbytes == ref["output.weight"].nbytes
    with pytest.raises(ValueError):
        gguf.GGUFReader(p)  # what the upstream reader does with the same file


def test_reads_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = dense_tensors(n_layers=4, n_embd=1024, n_ff=4096, weight_type=F16)
    p = write_model(tmp_path / "big.gguf", tensors=big)
    h0 = read_header(p)
    assert h0.file_size > 40 * h0.data_offset  # mostly tensor data
    monkeypatch.setattr(G, "_CHUNK", 4096)
    read_bytes = 0
    real_open = open

    class Counting:
        def __init__(self, f):  # type: ignore[no-untyped-def]
            self.f = f

        def read(self, n: int) -> bytes:
            nonlocal read_bytes
            b = self.f.read(n)
            read_bytes += len(b)
            return b

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.f, name)

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *a: object) -> None:
            self.f.close()

    monkeypatch.setattr(G, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    h = read_header(p)
    assert h.tensors == h0.tensors
    assert read_bytes < h.data_offset + 64 * 1024 + 4096


def test_string_walk_across_buffer_refills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toks = [("x" * (i % 37)) + str(i) for i in range(3000)]
    p = write_model(tmp_path / "t.gguf", tokens=toks, n_vocab=len(toks),
                    tensors=dense_tensors(n_vocab=3000), extra={"after.tokens": "still here"})
    ref = read_header(p)
    monkeypatch.setattr(G, "_CHUNK", 100)  # force refills mid-array
    h = read_header(p)
    assert h.metadata["tokenizer.ggml.tokens"].count == 3000
    assert h.metadata["after.tokens"] == "still here"
    assert h.tensors == ref.tensors


def test_long_string_is_skipped_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_model(tmp_path / "s.gguf", extra={"tokenizer.chat_template": "y" * 5000})
    monkeypatch.setattr(G, "MAX_KEPT_STRING", 1000)
    h = read_header(p)
    assert h.metadata["tokenizer.chat_template"] == SkippedString(5000)
    assert h.metadata["general.architecture"] == "llama"


# --- hostile headers: each must end in GGUFError quickly, without allocating much -------------

U64_MAX = (1 << 64) - 1


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "h.gguf"
    p.write_bytes(data + b"\0" * 64)
    return p


@pytest.mark.parametrize(("data", "message"), [
    (b"GGUF" + struct.pack("<IQQ", 3, U64_MAX, 0), "tensors, which cannot fit"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 40), "metadata entries, which cannot fit"),
    (header_bytes([struct.pack("<Q", U64_MAX)], []), "truncated"),
    (header_bytes([gstr("k") + struct.pack("<I", 13)], []), "unknown value type 13"),
    (header_bytes([kv("k", 8, struct.pack("<Q", 1 << 62))], []), "truncated"),
    (header_bytes([kv("k", 9, struct.pack("<IQ", 8, 1 << 61))], []), "truncated"),
    (header_bytes([kv("k", 9, struct.pack("<IQ", 4, U64_MAX))], []), "truncated"),
    (header_bytes([kv("k", 9, struct.pack("<IQ", 9, 1 << 59))], []), "truncated"),
    (header_bytes([kv("k", 9, struct.pack("<IQ", 77, 1))], []), "unknown array element type"),
    (header_bytes([kv("k", 9, struct.pack("<IQ", 9, 1) * 20)], []), "nested"),
    (header_bytes([kv("general.alignment", 4, struct.pack("<I", 0))], []), "power of two"),
    (header_bytes([kv("general.alignment", 4, struct.pack("<I", 48))], []), "power of two"),
    (header_bytes([], [gstr("t") + struct.pack("<I", 5)]), "5 dimensions"),
    (header_bytes([], [gstr("t") + struct.pack("<IQIQ", 1, 32, 0, 1 << 50)]), "truncated"),
    (header_bytes([], [gstr("t") + struct.pack("<IQQIQ", 2, 1 << 40, 1 << 40, 0, 0)]),
     "truncated"),
])
def test_hostile_headers(tmp_path: Path, data: bytes, message: str) -> None:
    p = _write(tmp_path, data)
    t0 = time.perf_counter()
    with pytest.raises(GGUFError, match=message):
        read_header(p)
    assert time.perf_counter() - t0 < 0.5  # generous: it is microseconds, not a hang


def test_hand_built_header_with_unknown_type_tensor(tmp_path: Path) -> None:
    infos = [gstr("a") + struct.pack("<IQIQ", 1, 64, 200, 0),
             gstr("b") + struct.pack("<IQIQ", 1, 64, 0, 96)]
    data = header_bytes([kv("general.architecture", 8, gstr("x"))], infos)
    pad = -len(data) % 32
    p = tmp_path / "u.gguf"
    p.write_bytes(data + b"\0" * pad + b"\0" * (96 + 256))
    h = read_header(p)
    assert h.data_offset == len(data) + pad
    assert [(t.name, t.nbytes) for t in h.tensors] == [("a", 96), ("b", 256)]


def test_tensor_offsets_past_end(dense: Path, tmp_path: Path) -> None:
    data = bytearray(dense.read_bytes())
    name = "output.weight"
    at = tensor_info_offset(bytes(data), name) + 8 + len(name) + 4 + 16 + 4
    struct.pack_into("<Q", data, at, 1 << 50)
    p = tmp_path / "off.gguf"
    p.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="output.weight"):
        read_header(p)


# --- ggml tables --------------------------------------------------------------------------------

def test_type_table_agrees_with_gguf_package() -> None:
    for qt, (block, size) in gguf.GGML_QUANT_SIZES.items():
        if int(qt) == 9:
            continue  # q8_1: gguf-py still says 40 bytes (two f32); ggml's block_q8_1 is 36
        t = GGML_TYPES[int(qt)]
        assert (t.block_size, t.type_size) == (block, size), t.name
    assert GGML_TYPES[12].bpw == 4.5 and GGML_TYPES[14].bpw == 6.5625
    assert {24, 25, 26, 27, 28} <= GGML_TYPES.keys()


def test_names() -> None:
    assert file_type_name(15) == "Q4_K_M"
    assert file_type_name(0) == "F32" and file_type_name(32) == "BF16"
    assert file_type_name(1024 | 15) == "Q4_K_M (guessed)"
    assert file_type_name(139) == "IQ3_K" and file_type_name(156) == "IQ1_KT"
    assert file_type_name(999) == "ftype 999" and file_type_name(None) == "?"
    assert type_name(12) == "q4_K" and type_name(137) == "iq2_k" and type_name(77) == "type 77"
    for ft in gguf.LlamaFileType:
        if ft != gguf.LlamaFileType.GUESSED:
            assert file_type_name(int(ft)) == ft.name.removeprefix("MOSTLY_").removeprefix("ALL_")


def test_tensor_nbytes_formula() -> None:
    assert tensor_nbytes(Q4_K, (4096, 11008)) == 4096 // 256 * 144 * 11008
    assert tensor_nbytes(Q4_K, (100, 2)) is None  # not whole blocks
    assert tensor_nbytes(250, (256,)) is None


def test_type_id_reused_with_other_layout(dense: Path, tmp_path: Path) -> None:
    """A fork type id that mainline also knows, with a smaller block layout: the block formula
    (q8_0 here) would overlap the next tensor, so the offset gap wins."""
    ref = {t.name: t for t in read_header(dense).tensors}
    p = tmp_path / "reuse.gguf"
    p.write_bytes(dense.read_bytes())
    patch_tensor_type(p, "blk.0.attn_q.weight", 8)  # really q4_K bytes, claims q8_0
    t = next(t for t in read_header(p).tensors if t.name == "blk.0.attn_q.weight")
    assert t.nbytes == ref["blk.0.attn_q.weight"].nbytes
