"""Header scan speed: qtui's reader vs gguf.GGUFReader on a 262,144-token vocabulary.

Writes (once, cached) a GGUF with 262,144 tokenizer strings + scores + token types, like
Gemma 3, and a llama-like set of small tensors. Times read_header() and model_info()
(best of --repeat) against gguf.GGUFReader (best of --reader-runs; it takes seconds per run).
Exits 1 when model_info is less than --min-ratio (default 50) times faster.

    .venv/bin/python bench/bench_scan.py [--repeat 5] [--reader-runs 1] [--file X.gguf]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

N_VOCAB = 262_144
BENCH_VERSION = 1


def _tokens(n: int) -> list[str]:
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789▁éüßжест中文字"
    toks = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{i:02X}>" for i in range(256)]
    seen = set(toks)
    while len(toks) < n:
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        if t not in seen:
            seen.add(t)
            toks.append(t)
    return toks


def make_file(path: Path) -> Path:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    n_embd, n_ff, n_layers = 64, 256, 18
    w = GGUFWriter(tmp, "gemma3")
    w.add_name("bench 262k vocab")
    w.add_context_length(32768)
    w.add_block_count(n_layers)
    w.add_file_type(15)
    w.add_tokenizer_model("llama")
    toks = _tokens(N_VOCAB)
    w.add_token_list(toks)
    w.add_token_scores([-float(i) for i in range(N_VOCAB)])
    w.add_token_types([1] * N_VOCAB)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}" * 50)

    def q8(rows: int, cols: int) -> np.ndarray:  # cols = ne0
        return np.zeros((rows, cols // 32 * 34), dtype=np.uint8)

    w.add_tensor("token_embd.weight", q8(N_VOCAB, n_embd), raw_dtype=GGMLQuantizationType.Q8_0)
    for i in range(n_layers):
        p = f"blk.{i}."
        for name in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm",
                     "attn_q_norm", "attn_k_norm"):
            w.add_tensor(p + name + ".weight", np.ones(n_embd, dtype=np.float32))
        for name, rows, cols in (("attn_q", n_embd, n_embd), ("attn_k", n_embd, n_embd),
                                 ("attn_v", n_embd, n_embd), ("attn_output", n_embd, n_embd),
                                 ("ffn_gate", n_ff, n_embd), ("ffn_up", n_ff, n_embd),
                                 ("ffn_down", n_embd, n_ff)):
            w.add_tensor(p + name + ".weight", q8(rows, cols), raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gguf import GGUFReader

    from qtui.core.gguf.model_info import model_info
    from qtui.core.gguf.reader import read_header
    from qtui.core.paths import cache_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="benchmark this GGUF instead of the generated one")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--reader-runs", type=int, default=1)
    ap.add_argument("--min-ratio", type=float, default=50.0)
    args = ap.parse_args(argv)

    path = args.file or cache_dir() / "bench" / f"vocab262k-v{BENCH_VERSION}.gguf"
    if not path.is_file():
        print(f"writing {path} ...", flush=True)
        make_file(path)
    h = read_header(path)
    n_vocab = h.metadata["tokenizer.ggml.tokens"].count  # type: ignore[union-attr]
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB, header {h.data_offset / 1e6:.2f} MB, "
          f"{len(h.tensors)} tensors, {n_vocab} tokens)")

    t_header = best_of(args.repeat, lambda: read_header(path))
    t_info = best_of(args.repeat, lambda: model_info(path))
    t_reader = best_of(args.reader_runs, lambda: GGUFReader(path))
    r_header, r_info = t_reader / t_header, t_reader / t_info
    print(f"qtui read_header   : {t_header * 1e3:9.1f} ms (best of {args.repeat})")
    print(f"qtui model_info    : {t_info * 1e3:9.1f} ms (best of {args.repeat})")
    print(f"gguf.GGUFReader    : {t_reader * 1e3:9.1f} ms (best of {args.reader_runs})")
    print(f"ratio read_header  : {r_header:.0f}x")
    print(f"ratio model_info   : {r_info:.0f}x (target >= {args.min_ratio:.0f}x)")
    if r_info < args.min_ratio:
        print("FAIL: below target")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
