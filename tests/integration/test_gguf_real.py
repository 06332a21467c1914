"""The header reader on real GGUF files, against gguf.GGUFReader as the oracle.

Files: the tiny F32 llama, what the real llama-quantize makes of it (the session ladder plus
types that fall back to other tensor types on its 128-wide rows, so mixed files appear),
and the real Gemma 3 270M Q4_K_M (262,144-token vocabulary) from the `qtui[demo]` extra.

GGUFReader needs ~25 s for Gemma's vocabulary on a small machine, so it runs once per
session in a child process started by the first Gemma test; the tiny-file tests in between
run while it works.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qtui.core.gguf.discovery import scan
from qtui.core.gguf.model_info import ModelInfo, model_info
from qtui.core.gguf.reader import MAX_KEPT_ARRAY, ArrayInfo, SkippedString, read_header
from qtui.core.llama import assets
from qtui.core.llama.tools import LlamaTools
from tests.helpers import require_module, unavailable

gguf = require_module("gguf")

REPO = Path(__file__).resolve().parents[2]
# On 128-wide rows llama-quantize falls back from K-/IQ-types to legacy ones: mixed files.
EXTRA_TYPES = ("F16", "BF16", "Q4_K_M", "IQ4_XS", "Q5_K_S", "MXFP4_MOE")
GEMMA_READER_TIMEOUT_S = 300


# -- the oracle: everything GGUFReader says that the header reader also claims to know ------
def reader_summary(path: str | Path) -> dict[str, Any]:
    """GGUFReader's view of a file, in JSON-safe form (also run in a child for Gemma)."""
    r = gguf.GGUFReader(path)
    VT = gguf.GGUFValueType
    meta: dict[str, Any] = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's pseudo-fields for version and counts
        t0 = f.types[0]
        if t0 == VT.ARRAY:
            etype = int(f.types[1])
            values = None
            if len(f.data) <= MAX_KEPT_ARRAY and f.types[1] != VT.ARRAY:
                values = [bytes(f.parts[i]).decode("utf-8", "replace") if f.types[1] == VT.STRING
                          else f.parts[i][0].item() for i in f.data]
            meta[key] = ["array", etype, len(f.data), values]
        elif t0 == VT.STRING:
            raw = bytes(f.parts[f.data[0]])
            meta[key] = ["str", raw.decode("utf-8", "replace"), len(raw)]
        else:
            meta[key] = ["scalar", f.parts[f.data[0]][0].item()]
    return {
        "data_offset": int(r.data_offset),
        "tensors": [[t.name, int(t.tensor_type), [int(x) for x in t.shape], int(t.data_offset),
                     int(t.n_bytes), int(t.n_elements)] for t in r.tensors],
        "meta": meta,
    }


def header_summary(path: Path) -> dict[str, Any]:
    """The same shape from qtui's reader, for one equality assertion with a readable diff."""
    h = read_header(path)
    meta: dict[str, Any] = {}
    for key, v in h.metadata.items():
        if isinstance(v, ArrayInfo):
            meta[key] = ["array", v.elem_type, v.count, list(v.values) if v.values is not None else None]
        elif isinstance(v, SkippedString):
            meta[key] = ["str", None, v.length]
        elif isinstance(v, str):
            meta[key] = ["str", v, len(v.encode())]
        else:
            meta[key] = ["scalar", v]
    return {
        "data_offset": h.data_offset,
        "tensors": [[t.name, t.type_id, list(t.dims), h.data_offset + t.offset, t.nbytes, t.n_elements]
                    for t in h.tensors],
        "meta": meta,
    }


def assert_agrees(path: Path, ref: dict[str, Any]) -> None:
    mine = header_summary(path)
    for key, v in mine["meta"].items():
        if v[0] == "str" and v[1] is None:  # skipped long string: only its length is known
            assert ref["meta"][key][2] == v[2], key
            mine["meta"][key] = ref["meta"][key]
    assert mine["data_offset"] == ref["data_offset"]
    assert mine["tensors"] == ref["tensors"]
    assert mine["meta"] == ref["meta"]


def assert_model_info_consistent(m: ModelInfo, ref: dict[str, Any]) -> None:
    tensors = ref["tensors"]
    total = sum(t[4] for t in tensors)
    meta = ref["meta"]
    assert m.n_params == sum(t[5] for t in tensors) > 0
    assert m.tensor_bytes == total
    assert m.bpw == pytest.approx(8.0 * total / m.n_params)
    assert m.n_vocab == meta["tokenizer.ggml.tokens"][2]
    assert m.arch == meta["general.architecture"][1]
    assert m.file_type == (meta["general.file_type"][1] if "general.file_type" in meta else None)
    # The mix: per type, the reader's own bytes/counts; per group, the same total again.
    by_type: dict[int, list[int]] = {}
    for _, tid, _, _, nbytes, nel in tensors:
        acc = by_type.setdefault(tid, [0, 0, 0])
        acc[0] += 1
        acc[1] += nbytes
        acc[2] += nel
    assert {s.type_id: [s.n_tensors, s.nbytes, s.n_elements] for s in m.mix_by_type} == by_type
    assert sum(s.nbytes for ss in m.mix_by_group.values() for s in ss) == total
    assert sum(s.n_tensors for ss in m.mix_by_group.values() for s in ss) == len(tensors)
    # The tensor data fills the file: the last tensor ends within one alignment of the end.
    end = max(off + nbytes for _, _, _, off, nbytes, _ in tensors)
    align = meta.get("general.alignment", ["scalar", 32])[1]
    assert 0 <= m.size_bytes - end < align


# -- files -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def gemma() -> Path:
    if importlib.util.find_spec(assets.GEMMA_MODULE) is None:
        unavailable(f"the `{assets.GEMMA_PACKAGE}` package is not installed (pip install 'qtui[demo]')")
    return assets.gemma_model()


@pytest.fixture(scope="session")
def gemma_reader(gemma: Path) -> Iterator[subprocess.Popen[str]]:
    """GGUFReader on Gemma in a child process (the other core), started as early as possible."""
    code = ("import json, sys; from tests.integration.test_gguf_real import reader_summary; "
            "json.dump(reader_summary(sys.argv[1]), sys.stdout)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(gemma)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="session")
def gemma_ref(gemma_reader: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = gemma_reader.communicate(timeout=GEMMA_READER_TIMEOUT_S)
    assert gemma_reader.returncode == 0, err[-3000:]
    return json.loads(out)


@pytest.fixture(scope="session")
def extra_ladder(llama_tools: LlamaTools, tiny_model: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ladder-extra")
    return dict(zip(EXTRA_TYPES, assets.ladder(llama_tools, tiny_model, EXTRA_TYPES, out)))


@pytest.fixture(scope="session")
def tiny_files(tiny_model: Path, tiny_ladder: dict[str, Path],
               extra_ladder: dict[str, Path]) -> dict[str, Path]:
    return {"F32": tiny_model, **tiny_ladder, **extra_ladder}


# -- Gemma first: starting its oracle early lets the tiny tests overlap with it ---------------
def test_gemma_header_facts(gemma: Path, gemma_reader: subprocess.Popen[str]) -> None:
    m = model_info(gemma)
    assert (m.arch, m.quant, m.file_type, m.n_vocab, m.context_length) == ("gemma3", "Q4_K_M", 15, 262144, 32768)
    assert m.n_params == 268_098_176
    assert sum(s.n_tensors for s in m.mix_by_type) == 236
    assert {s.type_name for s in m.mix_by_type} == {"q8_0", "q5_0", "q4_K", "q6_K", "f32"}
    assert not m.is_base_candidate
    # The 262k-entry arrays are counted, not kept: a scan must not hold the vocabulary.
    toks = read_header(gemma).metadata["tokenizer.ggml.tokens"]
    assert isinstance(toks, ArrayInfo) and toks.count == 262144 and toks.values is None


@pytest.mark.parametrize("qtype", ("F32", "Q8_0", "Q4_0", "Q2_K", *EXTRA_TYPES))
def test_tiny_files_agree_with_gguf_reader(tiny_files: dict[str, Path], qtype: str) -> None:
    path = tiny_files[qtype]
    ref = reader_summary(path)
    assert_agrees(path, ref)
    m = model_info(path)
    assert_model_info_consistent(m, ref)
    assert m.quant == ("F32" if qtype == "F32" else qtype)  # the label llama-quantize wrote
    assert m.n_vocab == 2048 and m.arch == "llama"
    assert m.is_base_candidate == (qtype in ("F32", "F16", "BF16"))


def test_fallback_types_show_in_the_mix(tiny_files: dict[str, Path]) -> None:
    """A Q4_K_M label on 128-wide rows holds no q4_K at all: the mix, not the label, is the truth."""
    m = model_info(tiny_files["Q4_K_M"])
    names = {s.type_name for s in m.mix_by_type}
    assert "q4_K" not in names and "f32" in names and len(names) >= 3
    assert 4.0 < m.bpw < 8.0


def test_scan_finds_the_real_files(tiny_files: dict[str, Path], gemma: Path) -> None:
    folders = sorted({p.parent for p in tiny_files.values()})
    result = scan([*folders, gemma])
    found = {m.path.resolve(): m for m in result.models}
    for p in [*tiny_files.values(), gemma]:
        assert p.resolve() in found, f"scan missed {p}"
        assert found[p.resolve()] == model_info(p)
    assert not result.skipped, result.skipped


def test_gemma_agrees_with_gguf_reader(gemma: Path, gemma_ref: dict[str, Any]) -> None:
    assert_agrees(gemma, gemma_ref)
    assert_model_info_consistent(model_info(gemma), gemma_ref)
