"""Per-token data kept with a result, and exact statistics over any set of its chunks.

A KLD run made with qtui's own llama.cpp build leaves a per-token dump (llama/tokendump.py).
It is kept next to the record as `<store>/results/<record id>.tokens`, in the dump's own
layout (chunks sorted, a killed run's partial tail dropped): float32, because those are the
very values llama-perplexity sorts for its percentiles, so the statistics below reproduce its
final block to the printed digit. float16 would halve the file (about 0.6 MB instead of 1.2 MB
for 580 chunks at -c 512) but move a percentile near 0.5 by up to 2e-4, far beyond the six
printed decimals.

Chunks are numbered from 1 here, as llama-perplexity numbers its rows (and as the per-chunk
series of results/chunks.py does); the dump itself counts from 0.

The formulas follow llama-perplexity's: the error of a mean is sqrt((E[x^2] - E[x]^2)/(n-1))
(0 while n <= 10); a percentile interpolates linearly between sorted values at
fraction * (n - 1), computed in single precision as the tool does; the median of an even count
is the mean of the two middle values.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qtui.core.fsutil import atomic_write_bytes
from qtui.core.llama.stats import FinalStats
from qtui.core.llama.tokendump import TokenDump, TokenDumpError, encode_dump, parse_dump, read_dump

__all__ = ["DERIVED", "PER_TOKEN", "TOKENS_SUFFIX", "chunk_means", "exact_chunk_field", "load_tokens",
           "merge_dumps", "stats_over", "store_tokens", "tokens_path"]

TOKENS_SUFFIX = ".tokens"
PER_TOKEN = "per-token"
DERIVED = "derived from running means"

_F32 = struct.Struct("<f")

# (FinalStats field, fraction) for the percentiles llama-perplexity prints, besides median/min/max.
_KLD_PCTS = (("kld_p999", 0.999), ("kld_p99", 0.99), ("kld_p95", 0.95), ("kld_p90", 0.90),
             ("kld_p10", 0.10), ("kld_p05", 0.05), ("kld_p01", 0.01), ("kld_p001", 0.001))
_DP_PCTS = (("dp_p999", 0.999), ("dp_p99", 0.99), ("dp_p95", 0.95), ("dp_p90", 0.90), ("dp_p75", 0.75),
            ("dp_p25", 0.25), ("dp_p10", 0.10), ("dp_p05", 0.05), ("dp_p01", 0.01), ("dp_p001", 0.001))


def tokens_path(store_root: Path, record_id: str) -> Path:
    """Where a record's per-token data lives: next to `<record id>.json` in the store folder."""
    return Path(store_root) / f"{record_id}{TOKENS_SUFFIX}"


def store_tokens(store_root: Path, record_id: str, dump_path: Path, offset: int = 0,
                 n_chunk: int | None = None) -> TokenDump | None:
    """Keep the dump a run left at `dump_path` with record `record_id`; the data kept, or None
    when the run left none (a build without qtui's patch, or no chunk finished).

    `offset` (and the full file's `n_chunk`) place a run on a window of a base file among the
    chunks of the full file. Raises TokenDumpError for a corrupt dump, OSError when writing fails.
    """
    dump = read_dump(dump_path)
    if dump is None or not dump.chunks:
        return None
    if offset or n_chunk is not None:
        dump = dump.shifted(offset, n_chunk)
    atomic_write_bytes(tokens_path(store_root, record_id), encode_dump(dump))
    return dump


def load_tokens(store_root: Path, record_id: str) -> TokenDump | None:
    """The per-token data stored with a record; None when it has none or the file is damaged."""
    try:
        data = tokens_path(store_root, record_id).read_bytes()
    except OSError:
        return None
    with contextlib.suppress(TokenDumpError):
        return parse_dump(data)
    return None


def merge_dumps(dumps: Iterable[TokenDump]) -> TokenDump:
    """One dump holding the chunks of all (e.g. runs on consecutive windows, already shifted into
    the full file's numbering). A chunk present twice keeps the later dump's values."""
    items = list(dumps)
    if not items:
        raise ValueError("nothing to merge")
    first = items[0]
    if any(d.n_ctx != first.n_ctx for d in items):
        raise ValueError("cannot merge per-token data measured at different context sizes")
    chunks = {}
    for d in items:
        chunks.update(d.chunks)
    return TokenDump(first.n_ctx, first.per_chunk, max(d.n_chunk for d in items),
                     {i: chunks[i] for i in sorted(chunks)}, any(d.truncated for d in items))


def chunk_means(dump: TokenDump) -> dict[int, float]:
    """Mean KLD of each chunk, by chunk number (from 1)."""
    return {i + 1: math.fsum(c.kld) / c.n for i, c in dump.chunks.items() if c.n}


def exact_chunk_field(dump: TokenDump, record_id: str) -> dict[str, Any]:
    """The record's per-chunk series (results/chunks.py's "exact" kind) from per-token data, with
    what it was made of and where the tokens are kept."""
    return {"kind": "exact", "source": PER_TOKEN, "tokens": f"{record_id}{TOKENS_SUFFIX}",
            "n_ctx": dump.n_ctx, "per_chunk": dump.per_chunk, "n_tokens": dump.n_tokens,
            "rows": [[c, m] for c, m in chunk_means(dump).items()]}


def _f32(x: float) -> float:
    """x rounded to single precision, as a C float holds it."""
    return float(_F32.unpack(_F32.pack(x))[0])


def _percentile(values: list[float], fraction: float) -> float:
    """llama-perplexity's percentile of sorted float values, step for step in single precision."""
    n = len(values)
    p = _f32(_f32(fraction) * _f32(float(n - 1)))
    ip = int(p)
    p = _f32(p - ip)
    lo = _f32(_f32(1.0 - p) * values[ip])
    hi = _f32(p * values[min(ip + 1, n - 1)])
    return _f32(lo + hi)


def _median(values: list[float]) -> float:
    n = len(values)
    if n % 2:
        return values[n // 2]
    return _f32(0.5 * _f32(values[n // 2] + values[n // 2 - 1]))


def _mean_err(total: float, total2: float, count: int) -> tuple[float, float]:
    mean = total / count
    var = total2 / count - mean * mean
    return mean, (math.sqrt(var / (count - 1)) if var > 0 and count > 10 else 0.0)


def stats_over(dump: TokenDump, chunks: Iterable[int] | None = None) -> FinalStats | None:
    """The KL divergence and token probability blocks over `chunks` (numbers from 1; None: all
    chunks of the dump), as llama-perplexity prints them for a run on exactly those chunks.

    Δp figures are in percent, like FinalStats holds them; the perplexity block stays empty
    (the dump has no log-likelihoods). None when the chunks hold no token. Chunks the dump
    lacks are an error: a statistic over chunks that were not measured would be a wrong one.
    """
    if chunks is None:
        picked = list(dump.chunks.values())
    else:
        wanted = sorted({int(c) - 1 for c in chunks})
        missing = [c + 1 for c in wanted if c not in dump.chunks]
        if missing:
            shown = ", ".join(str(c) for c in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise KeyError(f"no per-token data for chunk(s) {shown}")
        picked = [dump.chunks[c] for c in wanted]
    kld: list[float] = []
    dp: list[float] = []
    same = 0
    for c in picked:
        kld.extend(c.kld)
        dp.extend(c.dp)
        same += c.same_top
    count = len(kld)
    if count == 0:
        return None
    kld_mean, kld_err = _mean_err(math.fsum(kld), math.fsum(v * v for v in kld), count)
    # The tool squares Δp in single precision before summing the squares in double.
    dp2 = [_f32(v * v) for v in dp]
    dp_mean, dp_err = _mean_err(math.fsum(dp), math.fsum(dp2), count)
    mse, mse_err = _mean_err(math.fsum(dp2), math.fsum(v * v for v in dp2), count)
    rms = math.sqrt(mse)
    rms_err = 0.5 / rms * mse_err if rms > 0 else 0.0
    top = same / count
    top_err = math.sqrt(top * (1 - top) / (count - 1)) if count > 1 else 0.0
    kld.sort()
    dp.sort()
    out = FinalStats(kld_mean=kld_mean, kld_mean_err=kld_err, kld_max=kld[-1], kld_min=kld[0],
                     kld_median=_median(kld), dp_mean=100.0 * dp_mean, dp_mean_err=100.0 * dp_err,
                     dp_max=100.0 * dp[-1], dp_min=100.0 * dp[0], dp_median=100.0 * _median(dp),
                     dp_rms=100.0 * rms, dp_rms_err=100.0 * rms_err, same_top=100.0 * top,
                     same_top_err=100.0 * top_err)
    for name, fraction in _KLD_PCTS:
        setattr(out, name, _percentile(kld, fraction))
    for name, fraction in _DP_PCTS:
        setattr(out, name, 100.0 * _percentile(dp, fraction))
    return out
