"""The GPU memory estimate of a llama-perplexity run, on REAL GGUF headers, checked by hand."""

from __future__ import annotations

import pytest

from qtui.core.gguf.reader import read_header
from qtui.core.llama import assets
from qtui.core.llama.memory import PER_GPU_OVERHEAD, RunArgs, estimate, run_args, run_memory


def test_flags_are_read_as_llama_cpp_reads_them() -> None:
    a = run_args(["llama-perplexity", "-m", "x.gguf", "-c", "256", "-b", "1024", "-ub=128", "-ngl", "7",
                  "--cache-type-k", "q8_0", "-nkvo", "-c", "128"])
    assert (a.n_ctx, a.n_batch, a.n_ubatch, a.n_gpu_layers, a.cache_k, a.cache_v, a.kv_offload) == \
        (128, 1024, 128, 7, "q8_0", "f16", False)  # the last -c wins
    assert (a.n_seq, a.n_ctx_total) == (8, 1024)
    assert run_args(["-ngl", "all"]).n_gpu_layers is None and run_args(["-ngl", "99"]).n_gpu_layers == 99
    assert RunArgs(n_ctx=4096, n_batch=2048).n_seq == 1  # a batch smaller than the context: one sequence


def test_tiny_model_by_hand() -> None:
    path = assets.tiny_model()
    h = read_header(path)
    sizes = {t.name: t.nbytes for t in h.tensors}
    blk = sum(n for name, n in sizes.items() if name.startswith("blk."))
    m = run_memory(path, ["-c", "512"])
    # every layer on the GPU, and the output layer (with its norm); token_embd stays in host memory
    assert m.weights == blk + sizes["output.weight"] + sizes["output_norm.weight"]
    assert m.weights == sum(sizes.values()) - sizes["token_embd.weight"]
    # n_seq = 2048 // 512 = 4 chunks per pass: 2048 cells; 4 layers, 4 KV heads of 128/4 = 32 dims, f16
    assert m.kv_cache == 2 * 4 * 2048 * (4 * 32) * 2 == 4_194_304
    # logits of 512 tokens over 2048 tokens, and the scores of 4 heads over 2048 cells, f32
    assert m.compute == 4 * 512 * (2048 + 4 * 2048)
    assert m.total(2) - m.total(1) == m.compute + PER_GPU_OVERHEAD  # buffers are per GPU

    # half the layers: the last two; no output layer; KV for those two only
    half = run_memory(path, ["-c", "512", "-ngl", "2"])
    assert half.weights == sum(n for name, n in sizes.items() if name.startswith(("blk.2.", "blk.3.")))
    assert half.kv_cache == m.kv_cache // 2 and half.layers_on_gpu == 2
    # a bigger context with one sequence and a q8_0 K cache; -nkvo keeps the KV cache off the GPU
    q8 = run_memory(path, ["-c", "2048", "-ctk", "q8_0"])
    assert q8.kv_cache == int(2048 * 4 * (32 * 34 / 32 + 32 * 2)) * 4
    assert run_memory(path, ["-nkvo"]).kv_cache == 0
    assert run_memory(path, ["-ngl", "0"]).total(1) == PER_GPU_OVERHEAD  # nothing on the GPU


def test_gemma_tied_embeddings_and_one_kv_head() -> None:
    try:
        gemma = assets.gemma_model()
    except assets.AssetError as exc:
        pytest.skip(f"no Gemma 3 270M here: {exc}")
    h = read_header(gemma)
    sizes = {t.name: t.nbytes for t in h.tensors}
    assert "output.weight" not in sizes  # tied: llama.cpp puts a copy of token_embd on the GPU as output
    m = estimate([h], run_args(["-c", "512"]))
    assert m.weights == sum(sizes.values())
    # 18 layers, 1 KV head of 256 dims for K and for V, 2048 cells, f16
    assert m.kv_cache == 18 * 2048 * 1 * (256 * 2 + 256 * 2) == 37_748_736
    # a 262144-token vocabulary: the logits of one micro-batch are 512 MiB on their own
    assert m.compute == 4 * 512 * (262_144 + 4 * 2048)
    assert 700 << 20 < m.total(1) < 2 << 30
