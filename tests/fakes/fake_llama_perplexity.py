#!/usr/bin/env python3
"""A stand-in for llama-perplexity that replays a REAL recorded transcript, for UI and fault tests.

FAKE_LLAMA_CASE=/path/to/case  replays case.out / case.err (and exits with case.json's
exit_code, else 0), writing stdout in slices with FAKE_LLAMA_DELAY seconds between them.
FAKE_LLAMA_EXIT overrides the exit code; FAKE_LLAMA_ENV_LOG names a file that gets one line
per start (pid, CUDA_VISIBLE_DEVICES, time). In base mode (--kl-divergence-base without
--kl-divergence) it also writes a small but well-formed base file, as the real one would.

Faults on demand: FAKE_LLAMA_NONFINITE=nan (or inf) prints the final PPL estimate and the mean
KLD as that value, as a broken model's run does; FAKE_LLAMA_IGNORE_TERM=1 ignores SIGTERM, as a
child stuck in a GPU call does.
"""

import json
import os
import re
import signal
import struct
import sys
import time
from pathlib import Path


def write_base(path: str, n_ctx: int = 128, n_vocab: int = 64, n_chunk: int = 2) -> None:
    nv = 2 * ((n_vocab + 1) // 2) + 4
    scored = n_ctx - 1 - n_ctx // 2
    with open(path, "wb") as fh:
        fh.write(b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, n_chunk))
        fh.write(b"\0" * (4 * n_chunk * n_ctx + 2 * n_chunk * scored * nv))


def nonfinite(out: bytes) -> bytes:
    value = os.environ.get("FAKE_LLAMA_NONFINITE", "").encode()
    if not value:
        return out
    num = rb"[-+]?[\d.]+"
    out = re.sub(rb"(Final estimate: PPL[^\n]*?= )" + num, rb"\g<1>" + value, out)
    return re.sub(rb"(Mean +KLD: +)" + num, rb"\g<1>" + value, out)


def main() -> int:
    if os.environ.get("FAKE_LLAMA_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    case = Path(os.environ["FAKE_LLAMA_CASE"])
    delay = float(os.environ.get("FAKE_LLAMA_DELAY", "0"))
    argv = sys.argv[1:]
    out = case.with_suffix(".out").read_bytes() if case.with_suffix(".out").exists() else b""
    out = nonfinite(out)
    err = case.with_suffix(".err").read_bytes() if case.with_suffix(".err").exists() else b""
    meta = json.loads(case.with_suffix(".json").read_text()) if case.with_suffix(".json").exists() else {}
    code = int(os.environ.get("FAKE_LLAMA_EXIT", meta.get("exit_code", 0)))
    if os.environ.get("FAKE_LLAMA_ENV_LOG"):  # which GPU the scheduler gave this run, and when
        with open(os.environ["FAKE_LLAMA_ENV_LOG"], "a") as fh:
            fh.write(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES')} {time.time()}\n")
    sys.stderr.buffer.write(err)
    sys.stderr.flush()
    if "--kl-divergence-base" in argv and "--kl-divergence" not in argv and code == 0:
        write_base(argv[argv.index("--kl-divergence-base") + 1])
    slices = max(1, int(os.environ.get("FAKE_LLAMA_SLICES", "20")))
    step = max(1, len(out) // slices)
    for i in range(0, len(out), step):
        sys.stdout.buffer.write(out[i:i + step])
        sys.stdout.flush()
        if delay:
            time.sleep(delay)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
