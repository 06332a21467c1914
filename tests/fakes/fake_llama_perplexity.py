#!/usr/bin/env python3
"""A stand-in for llama-perplexity that replays a REAL recorded transcript, for UI and fault tests.

FAKE_LLAMA_CASE=/path/to/case  replays case.out / case.err the way the real run wrote them:
case.json's "chunks" ([stream, n_bytes, ms], in the order the recorder read them) give the
interleaving of stdout and stderr, the chunk boundaries and the times; the exit code is
case.json's exit_code, else 0. A case recorded without chunks (the ik_llama.cpp transcripts)
is replayed as stderr, then stdout line by line: its order is not known better than that.

Timing: by default nothing waits (the fastest replay, same order). FAKE_LLAMA_SPEED=x replays
the recorded times x times faster (1 = as recorded, 0.1 = ten times slower). FAKE_LLAMA_DELAY=s
instead stretches the whole replay to about 20*s seconds, whatever the recording's length (for
tests that need a run lasting a known time).

--version and --help replay the recorded version.* / help.* of FAKE_LLAMA_BUILD (a fixture
folder), else of the case's folder when it has them, else of tests/fixtures/llama/b0336.

FAKE_LLAMA_EXIT overrides the exit code; FAKE_LLAMA_ENV_LOG names a file that gets one line
per start (pid, CUDA_VISIBLE_DEVICES, time). In base mode (--kl-divergence-base without
--kl-divergence) it also writes a small but well-formed base file, as the real one would.

Per-token data: FAKE_LLAMA_BASE_CHUNKS=n makes the base file n chunks long (token j of the file
is j, so a window cut from it knows where it lies); in KLD mode, with QTUI_KLD_DUMP set (as the
scheduler sets it) and FAKE_LLAMA_TOKENS="mean[,noise]", it writes a per-token dump for every
chunk of its base file: chunk g's tokens have KLD mean * (1 + 0.5 sin g) (hard chunks are hard
for every variant) times (1 + noise * u), u uniform in [-0.5, 0.5) drawn per (g, mean).

Faults on demand: FAKE_LLAMA_NONFINITE=nan (or inf) prints the final PPL estimate and the mean
KLD as that value, as a broken model's run does; FAKE_LLAMA_IGNORE_TERM=1 ignores SIGTERM, as a
child stuck in a GPU call does.
"""
import json
import math
import os
import random
import re
import signal
import struct
import sys
import time
from pathlib import Path

DEFAULT_BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "llama" / "b0336"


def write_base(path: str, n_ctx: int = 128, n_vocab: int = 64, n_chunk: int = 2) -> None:
    n_chunk = int(os.environ.get("FAKE_LLAMA_BASE_CHUNKS") or n_chunk)
    nv = 2 * ((n_vocab + 1) // 2) + 4
    scored = n_ctx - 1 - n_ctx // 2
    with open(path, "wb") as fh:
        fh.write(b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, n_chunk))
        fh.write(struct.pack(f"<{n_chunk * n_ctx}i", *range(n_chunk * n_ctx)))
        fh.write(b"\0" * (2 * n_chunk * scored * nv))


def write_dump(base: str, dump: str, spec: str) -> None:
    """The per-token dump a patched build would write, over every chunk of `base` (see above)."""
    mean, _, noise = spec.partition(",")
    m, z = float(mean), float(noise or 0.0)
    with open(base, "rb") as fh:
        n_ctx, _, n_chunk = struct.unpack("<iii", fh.read(20)[8:20])
        tokens = fh.read(4 * n_ctx * n_chunk)
    per = n_ctx - 1 - n_ctx // 2
    parts = [b"QTUIKLD\0" + struct.pack("<4I", 1, n_ctx, per, n_chunk)]
    for c in range(n_chunk):
        g = struct.unpack_from("<i", tokens, 4 * c * n_ctx)[0] // n_ctx
        rng = random.Random(f"{g}-{m}")
        kld = [m * (1 + 0.5 * math.sin(g)) * (1 + z * (rng.random() - 0.5)) for _ in range(per)]
        parts.append(struct.pack("<3I", c, per, per) + struct.pack(f"<{per}f", *kld) + struct.pack(f"<{per}f", *[0.0] * per))
    with open(dump, "wb") as fh:
        fh.write(b"".join(parts))


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
    argv = sys.argv[1:]
    for flag, name in (("--version", "version"), ("--help", "help")):
        if flag in argv:
            return replay(build_dir() / name, [], probe=True)
    if not os.environ.get("FAKE_LLAMA_CASE"):
        sys.stderr.write("fake llama-perplexity: FAKE_LLAMA_CASE names no recorded case\n")
        return 2
    return replay(Path(os.environ["FAKE_LLAMA_CASE"]), argv)


def build_dir() -> Path:
    """The fixture folder whose recorded --version / --help this fake answers with."""
    if os.environ.get("FAKE_LLAMA_BUILD"):
        return Path(os.environ["FAKE_LLAMA_BUILD"])
    case = os.environ.get("FAKE_LLAMA_CASE")
    if case and (Path(case).parent / "version.json").is_file():
        return Path(case).parent
    return DEFAULT_BUILD


def read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def schedule(out: bytes, err: bytes, chunks: list[list[int]] | None) -> list[tuple[int, bytes, float]]:
    """(fd, bytes, seconds after start) in the recorded order. `out` may differ in length from
    the recording (a fault rewrites a number): the last stdout chunk takes the difference."""
    if not chunks:  # no record of the order: stderr first, then stdout a line at a time
        lines = out.splitlines(keepends=True)
        return [(2, err, 0.0)] * bool(err) + [(1, line, float(i + 1)) for i, line in enumerate(lines)]
    last_out = max((i for i, c in enumerate(chunks) if c[0] == 1), default=-1)
    pos = {1: 0, 2: 0}
    data = {1: out, 2: err}
    steps = []
    for i, (fd, n, ms) in enumerate(chunks):
        end = len(data[fd]) if fd == 1 and i == last_out else pos[fd] + n
        steps.append((fd, data[fd][pos[fd]:end], ms / 1000))
        pos[fd] = end
    for fd in (2, 1):  # bytes the chunk list does not cover (a capped record): after the rest
        if pos[fd] < len(data[fd]):
            steps.append((fd, data[fd][pos[fd]:], steps[-1][2] if steps else 0.0))
    return steps


def time_scale(steps: list[tuple[int, bytes, float]], recorded: bool) -> float:
    """Seconds of replay per step time unit (0: do not wait). Without recorded times the steps
    are numbered, which only FAKE_LLAMA_DELAY's fixed length can turn into seconds."""
    total = max((at for _, _, at in steps), default=0.0)
    if os.environ.get("FAKE_LLAMA_DELAY") and float(os.environ["FAKE_LLAMA_DELAY"]) > 0 and total > 0:
        return 20 * float(os.environ["FAKE_LLAMA_DELAY"]) / total
    if recorded and os.environ.get("FAKE_LLAMA_SPEED") and float(os.environ["FAKE_LLAMA_SPEED"]) > 0:
        return 1 / float(os.environ["FAKE_LLAMA_SPEED"])
    return 0.0


def replay(case: Path, argv: list[str], probe: bool = False) -> int:
    """Write the case's output as recorded and return its exit code. A probe (--version,
    --help) answers at once, untouched by the timing and fault settings meant for runs."""
    meta = json.loads(case.with_suffix(".json").read_text()) if case.with_suffix(".json").exists() else {}
    if probe:
        sys.stdout.buffer.write(read(case.with_suffix(".out")))
        sys.stderr.buffer.write(read(case.with_suffix(".err")))
        return int(meta.get("exit_code", 0))
    code = int(os.environ.get("FAKE_LLAMA_EXIT", meta.get("exit_code", 0)))
    if os.environ.get("FAKE_LLAMA_ENV_LOG"):  # which GPU the scheduler gave this run, and when
        with open(os.environ["FAKE_LLAMA_ENV_LOG"], "a") as fh:
            fh.write(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES')} {time.time()}\n")
    steps = schedule(nonfinite(read(case.with_suffix(".out"))), read(case.with_suffix(".err")), meta.get("chunks"))
    scale = time_scale(steps, recorded=bool(meta.get("chunks")))
    base = argv[argv.index("--kl-divergence-base") + 1] if "--kl-divergence-base" in argv else None
    make_base = base is not None and "--kl-divergence" not in argv and code == 0
    if base is not None and "--kl-divergence" in argv and os.environ.get("QTUI_KLD_DUMP") and os.environ.get("FAKE_LLAMA_TOKENS"):
        write_dump(base, os.environ["QTUI_KLD_DUMP"], os.environ["FAKE_LLAMA_TOKENS"])
    t0 = time.monotonic()
    for fd, data, at in steps:
        if scale:
            time.sleep(max(0.0, t0 + at * scale - time.monotonic()))
        if fd == 1 and make_base:  # the file is there by the time results appear, as with the real one
            write_base(base)  # type: ignore[arg-type]
            make_base = False
        stream = sys.stdout if fd == 1 else sys.stderr
        stream.buffer.write(data)
        stream.flush()
    if make_base:
        write_base(base)  # type: ignore[arg-type]
    return code


if __name__ == "__main__":
    raise SystemExit(main())
