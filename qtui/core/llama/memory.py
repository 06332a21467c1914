"""How much GPU memory one llama-perplexity run needs, estimated from the GGUF header alone.

Used by `gpus_per_run = "auto"`: the scheduler gives a run the fewest GPUs whose free memory
holds this estimate. It is an estimate with a margin, not a measurement; what it counts:

- weights: the bytes of every tensor llama.cpp puts on a GPU. With `-ngl N` the last N
  repeating layers go there (layers n_layer-N .. n_layer-1), and the output layer too once N
  exceeds n_layer; the token embeddings always stay in host memory. A model with tied
  embeddings (no output.weight) gets a copy of token_embd as its output layer.
- KV cache: 2 (K and V) * layers on GPU * n_ctx_total * n_embd_kv * bytes per element, where
  llama-perplexity evaluates n_seq = max(1, n_batch / n_ctx) chunks per pass, so that
  n_ctx_total = n_ctx * n_seq. No KV cache on the GPU with -nkvo.
- compute buffer, on each GPU of the group: the logits of one micro-batch
  (n_vocab * n_ubatch * 4 bytes) and the attention scores (n_head * n_ubatch * n_ctx_total * 4
  bytes, the worst case without flash attention), plus a fixed allowance for the CUDA context.
- a margin of 5% on weights and KV cache for what the header does not say (padding, graph).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qtui.core.gguf.model_info import shard_path, split_parts
from qtui.core.gguf.reader import ArrayInfo, GGUFError, GGUFHeader, TensorInfo, read_header

DEFAULT_BATCH = 2048
"""llama-perplexity's -b default"""
DEFAULT_UBATCH = 512
"""llama-perplexity's -ub default"""
DEFAULT_CTX = 512
PER_GPU_OVERHEAD = 512 << 20
"""the CUDA context and the allocator's slack, per GPU: NVML's free memory does not count them yet"""
MARGIN = 0.05

# bytes per element of the KV cache types llama.cpp accepts for -ctk/-ctv
_KV_BYTES: dict[str, float] = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
    "iq4_nl": 18 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32,
}


class MemoryEstimateError(ValueError):
    """The header lacks what the estimate needs; the message says what."""


@dataclass(frozen=True)
class RunArgs:
    """The llama-perplexity flags that decide its memory, read from its command line."""

    n_ctx: int = DEFAULT_CTX
    n_batch: int = DEFAULT_BATCH
    n_ubatch: int = DEFAULT_UBATCH
    n_gpu_layers: int | None = None
    """None: every layer (the newest builds' default, and what -ngl 99/all/auto mean)"""
    cache_k: str = "f16"
    cache_v: str = "f16"
    kv_offload: bool = True

    @property
    def n_seq(self) -> int:
        return max(1, self.n_batch // max(1, self.n_ctx))

    @property
    def n_ctx_total(self) -> int:
        return self.n_ctx * self.n_seq


_FLAGS = {
    "-c": "n_ctx", "--ctx-size": "n_ctx", "-b": "n_batch", "--batch-size": "n_batch",
    "-ub": "n_ubatch", "--ubatch-size": "n_ubatch", "-ngl": "n_gpu_layers", "--gpu-layers": "n_gpu_layers",
    "--n-gpu-layers": "n_gpu_layers", "-ctk": "cache_k", "--cache-type-k": "cache_k",
    "-ctv": "cache_v", "--cache-type-v": "cache_v",
}


def run_args(argv: Sequence[str]) -> RunArgs:
    """The memory-relevant flags of a llama-perplexity command line (the last one wins, as in
    llama.cpp); anything it cannot read keeps llama.cpp's default."""
    found: dict[str, object] = {}
    items = list(argv)
    for i, arg in enumerate(items):
        name, eq, inline = arg.partition("=")
        if arg in ("-nkvo", "--no-kv-offload"):
            found["kv_offload"] = False
            continue
        key = _FLAGS.get(name if eq else arg)
        if key is None:
            continue
        value = inline if eq else (items[i + 1] if i + 1 < len(items) else "")
        if key.startswith("cache_"):
            found[key] = value.lower()
        elif key == "n_gpu_layers" and value.strip().lower() in ("all", "auto", "-1"):
            found[key] = None
        else:
            try:
                found[key] = max(0, int(value))
            except ValueError:
                continue
    return RunArgs(**found)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunMemory:
    """A run's GPU memory, in bytes, by what it is for."""

    weights: int
    kv_cache: int
    compute: int
    """per GPU of the group"""
    layers_on_gpu: int
    n_layer: int

    def total(self, n_gpus: int = 1) -> int:
        """What a group of n_gpus must hold between them: the weights and KV cache are split
        over the group (llama.cpp splits by layer), the compute buffer and CUDA context are on
        each GPU."""
        n = max(1, n_gpus)
        return int((self.weights + self.kv_cache) * (1 + MARGIN)) + n * (self.compute + PER_GPU_OVERHEAD)


def _int(meta: dict[str, object], key: str) -> int | None:
    v = meta.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _per_layer(meta: dict[str, object], key: str, n_layer: int, fallback: int) -> list[int]:
    """A hyperparameter that is one number or one per layer (head_count_kv of models that mix
    attention types). A per-layer array too long to be kept by the reader counts as its
    fallback in every layer: too much rather than too little."""
    v = meta.get(key)
    if isinstance(v, int) and not isinstance(v, bool):
        return [v] * n_layer
    if isinstance(v, ArrayInfo) and v.values is not None and len(v.values) == n_layer:
        return [int(x) if isinstance(x, int) else fallback for x in v.values]
    return [fallback] * n_layer


def _layer_of(name: str) -> int | None:
    if not name.startswith("blk."):
        return None
    head = name[4:].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def read_headers(path: Path) -> list[GGUFHeader]:
    """The header of a model and of each shard of a split set (named by its first shard)."""
    first = read_header(path)
    parts = split_parts(path)
    if parts is None or parts[2] <= 1:
        return [first]
    prefix, _, count = parts
    return [first if no == parts[1] else read_header(shard_path(path.parent, prefix, no, count))
            for no in range(1, count + 1)]


def estimate(headers: Sequence[GGUFHeader], args: RunArgs) -> RunMemory:
    """The GPU memory of one run of this model with these flags (see the module's notes)."""
    meta = headers[0].metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise MemoryEstimateError("the header names no architecture (general.architecture)")
    n_layer = _int(meta, f"{arch}.block_count")
    n_embd = _int(meta, f"{arch}.embedding_length")
    n_head = _int(meta, f"{arch}.attention.head_count")
    if not n_layer or not n_embd or not n_head:
        raise MemoryEstimateError(f"the header lacks {arch}.block_count, embedding_length or attention.head_count")
    head_k = _int(meta, f"{arch}.attention.key_length") or n_embd // n_head
    head_v = _int(meta, f"{arch}.attention.value_length") or n_embd // n_head
    kv_heads = _per_layer(meta, f"{arch}.attention.head_count_kv", n_layer, n_head)
    toks = meta.get("tokenizer.ggml.tokens")
    n_vocab = _int(meta, f"{arch}.vocab_size") or (toks.count if isinstance(toks, ArrayInfo) else 0)

    ngl = n_layer + 1 if args.n_gpu_layers is None else args.n_gpu_layers
    first_gpu_layer = max(0, n_layer - ngl)
    output_on_gpu = ngl > n_layer
    tensors: list[TensorInfo] = [t for h in headers for t in h.tensors]
    names = {t.name for t in tensors}
    weights = 0
    for t in tensors:
        layer = _layer_of(t.name)
        if layer is not None:
            weights += t.nbytes if layer >= first_gpu_layer else 0
        elif t.name == "token_embd.weight":
            # stays in host memory; doubles as the output layer when the model ties them
            weights += t.nbytes if output_on_gpu and "output.weight" not in names else 0
        elif output_on_gpu:
            weights += t.nbytes  # output.weight, output_norm and the like
    layers_on_gpu = n_layer - first_gpu_layer
    kv = 0
    if args.kv_offload:
        per_elt_k = _KV_BYTES.get(args.cache_k, 2.0)
        per_elt_v = _KV_BYTES.get(args.cache_v, 2.0)
        for layer in range(first_gpu_layer, n_layer):
            kv += int(args.n_ctx_total * kv_heads[layer] * (head_k * per_elt_k + head_v * per_elt_v))
    ubatch = min(args.n_ubatch, args.n_batch, args.n_ctx_total)
    compute = 4 * ubatch * (n_vocab + n_head * args.n_ctx_total) if layers_on_gpu or output_on_gpu else 0
    return RunMemory(weights=weights, kv_cache=kv, compute=compute, layers_on_gpu=layers_on_gpu, n_layer=n_layer)


def run_memory(model: Path, argv: Sequence[str]) -> RunMemory:
    """estimate() for a model file and a llama-perplexity command line. Raises GGUFError or
    MemoryEstimateError, each with a message in words."""
    return estimate(read_headers(Path(model)), run_args(argv))


__all__ = ["GGUFError", "MemoryEstimateError", "RunArgs", "RunMemory", "estimate", "run_args", "run_memory"]
