"""Parser cost while a job streams: per-row cost, linearity, and share of a row's interval.

Builds long streams from a REAL recorded KLD transcript (rows renumbered, 2 x N rows) and a
real base-generation `[i]x,` stream, feeds them in the sizes a pipe reader sees (64 KiB,
one row per read, 7-byte dribbles), and prints:
  - microseconds per row / per `[i]` item;
  - growth: cost per row over 4N rows / cost per row over N rows -- ~1 means O(new bytes)
    per feed (a parser that re-scanned its buffer would show ~4);
  - CPU share: parse cost of one row / the fastest real interval between rows
    (--row-interval-ms, default 20 ms: a small model on a fast GPU; big models take 100s of ms).
Exits 1 when growth > 1.5 or the CPU share exceeds 1 %. Times are CPU time of this
process (best of 3), so other load on the machine matters less.

    .venv/bin/python bench/bench_parser.py [--rows 3000] [--row-interval-ms 20]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qtui.core.llama.parser import StreamParser  # noqa: E402

FIX = ROOT / "tests" / "fixtures"


def _real_kld() -> tuple[bytes, bytes, bytes]:
    """(head up to the first row, one row template, the tail from the final blocks)."""
    cands = sorted(FIX.glob("llama/*/kld-q4_0.out")) + sorted(FIX.glob("ik/ik-tiny-kld-q4_0.out"))
    data = cands[0].read_bytes()
    rows = list(re.finditer(rb"(?m)^ +\d+ +\d.*\n", data))
    return data[: rows[0].start()], rows[-1].group(0), data[rows[-1].end():]


def _kld_stream(n: int) -> bytes:
    head, row, tail = _real_kld()
    body = b"".join(re.sub(rb"^ +\d+", b"%4d" % i, row) for i in range(1, n + 1))
    return head + body + tail


def _base_stream(n: int) -> bytes:
    src = sorted(FIX.glob("llama/*/base.out")) + [FIX / "ik" / "ik-tiny-base.out"]
    values = re.findall(rb"\[\d+\]([\d.]+),", src[0].read_bytes())
    return b"".join(b"[%d]%s," % (i, values[i % len(values)]) for i in range(1, n + 1)) + b"\n"


def _time_feed(data: bytes, size: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        p = StreamParser()
        t0 = time.process_time()
        for i in range(0, len(data), size):
            p.feed("out", data[i:i + size])
        p.close(0)
        best = min(best, time.process_time() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--row-interval-ms", type=float, default=20.0)
    a = ap.parse_args()

    n = a.rows
    small, big = _kld_stream(n), _kld_stream(4 * n)
    row_len = len(_real_kld()[1])
    ok = True
    print(f"KLD rows: {n} and {4 * n} rows ({len(big) / 1e6:.1f} MB), real row of {row_len} bytes")
    for label, size in (("64 KiB reads", 65536), ("one row per read", row_len), ("7-byte reads", 7)):
        per_small, per_big = _time_feed(small, size) / n, _time_feed(big, size) / (4 * n)
        share = per_big / (a.row_interval_ms / 1000)
        growth = per_big / per_small
        ok &= growth <= 1.5 and share <= 0.01
        print(f"  {label:18s} {per_big * 1e6:7.1f} us/row  growth {growth:4.2f}  "
              f"CPU share at {a.row_interval_ms:g} ms/row {share * 100:6.3f} %")
    m = 5 * n
    base1, base2 = _base_stream(m), _base_stream(4 * m)
    for label, size in (("64 KiB reads", 65536), ("7-byte reads", 7)):
        per_small, per_big = _time_feed(base1, size) / m, _time_feed(base2, size) / (4 * m)
        growth = per_big / per_small
        ok &= growth <= 1.5
        print(f"  [i] items, {label:12s} {per_big * 1e6:5.2f} us/item  growth {growth:4.2f}")
    print("OK" if ok else "FAIL: parser cost grows with the stream or is too high")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
