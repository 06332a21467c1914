"""The corpus and tiny-model factory: determinism, valid tokenizer metadata, ladder caching.

Running the model in llama.cpp is covered by tests/integration; here only what Python can check.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from qtui.core.llama import assets
from qtui.core.llama.tools import LlamaTools
from tests.helpers import require_module


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QTUI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_corpus_is_deterministic_prose_of_the_requested_size():
    a = assets.corpus_text(60_000)
    b = assets.corpus_text(60_000)
    assert a == b
    assert 60_000 <= len(a.encode()) < 70_000
    assert a.startswith("Command-line parsing library")  # argparse comes first
    assert a.count("\n\n") > 50


def test_stdlib_corpus_is_cached_per_python_version(cache):
    p = assets.stdlib_corpus(target_bytes=20_000)
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    assert tag in p.name and p.is_relative_to(cache)
    mtime = p.stat().st_mtime_ns
    assert assets.stdlib_corpus(target_bytes=20_000) == p and p.stat().st_mtime_ns == mtime
    assert not list(p.parent.glob("*.partial"))


def test_stdlib_corpus_explicit_path(tmp_path):
    p = assets.stdlib_corpus(tmp_path / "c.txt", target_bytes=5_000)
    assert p == tmp_path / "c.txt" and p.read_text() == assets.corpus_text(5_000)


def test_tiny_model_has_the_metadata_llama_cpp_needs(cache):
    gguf = require_module("gguf")
    path = assets.tiny_model(vocab_size=512, seed=3)
    r = gguf.GGUFReader(str(path))

    def val(key):
        f = r.fields[key]
        return f.contents()

    assert val("general.architecture") == "llama"
    assert val("tokenizer.ggml.model") == "gpt2"
    assert val("tokenizer.ggml.pre") == "gpt-2"
    tokens = val("tokenizer.ggml.tokens")
    assert len(tokens) == 512 and tokens[0] == "<|endoftext|>"
    assert len(set(tokens)) == 512
    types = val("tokenizer.ggml.token_type")
    assert types[0] == 3 and set(types[1:]) == {1}
    merges = val("tokenizer.ggml.merges")
    # 256 byte symbols + 1 special token; every other token came from one merge.
    assert len(merges) == 512 - 257
    assert all(len(m.split(" ")) == 2 for m in merges)
    assert val("tokenizer.ggml.bos_token_id") == 0 and val("tokenizer.ggml.eos_token_id") == 0
    assert val("llama.block_count") == 4 and val("llama.embedding_length") == 128
    names = {t.name for t in r.tensors}
    assert len(names) == 3 + 9 * 4 and "blk.3.ffn_down.weight" in names
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert list(emb.shape) == [128, 512]  # ne0 = n_embd


def test_tiny_model_is_deterministic_and_cached(cache, tmp_path):
    a = assets.tiny_model(tmp_path / "a", vocab_size=300, seed=1)
    b = assets.tiny_model(tmp_path / "b", vocab_size=300, seed=1)
    c = assets.tiny_model(tmp_path / "c", vocab_size=300, seed=2)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert a.name == b.name and digest(a) == digest(b)
    assert digest(a) != digest(c)
    mtime = a.stat().st_mtime_ns
    assert assets.tiny_model(tmp_path / "a", vocab_size=300, seed=1) == a and a.stat().st_mtime_ns == mtime


def _fake_quantize(tmp_path: Path, fail_on: str = "") -> LlamaTools:
    q = tmp_path / "bin" / "llama-quantize"
    q.parent.mkdir(parents=True)
    # argv: --allow-requantize SRC DST TYPE
    q.write_text(f'#!/bin/sh\necho "$4" >> "{tmp_path}/calls"\n'
                 f'if [ "$4" = "{fail_on}" ]; then echo "unknown type $4" >&2; exit 1; fi\n'
                 'cp "$2" "$3"\n')
    q.chmod(0o755)
    return LlamaTools(q.parent / "llama-perplexity", q, None, q.parent, "test")


@pytest.mark.skipif(sys.platform == "win32", reason="fake tool is a shell script")
def test_ladder_skips_existing_outputs(tmp_path):
    tools = _fake_quantize(tmp_path)
    src = tmp_path / "tiny-F32.gguf"
    src.write_bytes(b"GGUF model")
    out = tmp_path / "out"
    first = assets.ladder(tools, src, ["Q8_0", "Q4_0"], out)
    assert [p.name for p in first] == ["tiny-Q8_0.gguf", "tiny-Q4_0.gguf"]
    second = assets.ladder(tools, src, ["Q8_0", "Q4_0", "Q2_K"], out)
    assert second[:2] == first
    assert (tmp_path / "calls").read_text().split() == ["Q8_0", "Q4_0", "Q2_K"]


@pytest.mark.skipif(sys.platform == "win32", reason="fake tool is a shell script")
def test_failed_quantize_leaves_nothing_behind(tmp_path):
    tools = _fake_quantize(tmp_path, fail_on="BOGUS")
    src = tmp_path / "tiny-F32.gguf"
    src.write_bytes(b"GGUF model")
    with pytest.raises(assets.AssetError, match="unknown type BOGUS"):
        assets.quantize(tools, src, tmp_path / "o" / "x.gguf", "BOGUS")
    assert list((tmp_path / "o").iterdir()) == []


def test_quantize_without_the_tool_is_explained(tmp_path):
    tools = LlamaTools(tmp_path / "llama-perplexity", None, None, tmp_path, "test")
    with pytest.raises(assets.AssetError, match="setup-llama"):
        assets.quantize(tools, tmp_path / "a", tmp_path / "b", "Q8_0")


def test_gemma_model_absent_names_the_extra(monkeypatch):
    monkeypatch.setattr(assets, "GEMMA_MODULE", "qtui_no_such_module_xyz")
    with pytest.raises(assets.AssetError, match=r"qtui\[demo\]"):
        assets.gemma_model()


def test_demo_ladder():
    assert assets.DEMO_LADDER[0] == "Q8_0" and "MXFP4_MOE" in assets.DEMO_LADDER
