"""Per-token dump: the reader (incl. a killed run's partial record), storage with a result, and
exact statistics over chunk sets checked against an independent numpy oracle."""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import pytest

from qtui.core.llama.tokendump import TokenDumpError, encode_dump, parse_dump, read_dump
from qtui.core.results.tokens import chunk_means, exact_chunk_field, load_tokens, merge_dumps, stats_over, store_tokens, tokens_path

N_CTX = 32
PER_CHUNK = N_CTX - 1 - N_CTX // 2  # 15


def _chunk_values(rng: random.Random, n: int) -> tuple[list[float], list[float], int]:
    # heavy-tailed KLD (most tokens tiny, a few large), Δp in [-1, 1]
    kld = [rng.lognormvariate(-4, 2) for _ in range(n)]
    dp = [max(-1.0, min(1.0, rng.gauss(0, 0.1))) for _ in range(n)]
    return kld, dp, rng.randint(0, n)


def _dump_bytes(chunks: list[tuple[int, list[float], list[float], int]], n_chunk: int,
                n_ctx: int = N_CTX) -> bytes:
    """Written by hand with struct, as the patched C++ writes it (not with the code under test)."""
    per = n_ctx - 1 - n_ctx // 2
    out = b"QTUIKLD\0" + struct.pack("<4I", 1, n_ctx, per, n_chunk)
    for idx, kld, dp, same in chunks:
        out += struct.pack("<3I", idx, len(kld), same)
        out += struct.pack(f"<{len(kld)}f", *kld) + struct.pack(f"<{len(dp)}f", *dp)
    return out


def _sample(n_chunk: int = 12, seed: int = 1, order: list[int] | None = None):
    rng = random.Random(seed)
    chunks = [(i, *_chunk_values(rng, PER_CHUNK)) for i in range(n_chunk)]
    if order is not None:
        chunks = [chunks[i] for i in order]
    return chunks


def _f32(values: list[float]) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def test_reader_decodes_what_the_patch_writes():
    chunks = _sample(order=[3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8])  # passes may write out of order
    dump = parse_dump(_dump_bytes(chunks, n_chunk=12))
    assert (dump.n_ctx, dump.per_chunk, dump.n_chunk, dump.truncated) == (N_CTX, PER_CHUNK, 12, False)
    assert list(dump.chunks) == list(range(12))
    for idx, kld, dp, same in chunks:
        c = dump.chunks[idx]
        assert list(c.kld) == _f32(kld) and list(c.dp) == _f32(dp) and c.same_top == same
    assert dump.n_tokens == 12 * PER_CHUNK
    assert parse_dump(encode_dump(dump)).chunks.keys() == dump.chunks.keys()
    assert encode_dump(parse_dump(encode_dump(dump))) == encode_dump(dump)
    # encode_dump writes sorted chunks: the same bytes as a dump written in order
    assert encode_dump(dump) == _dump_bytes(sorted(chunks), n_chunk=12)


@pytest.mark.parametrize("cut", [1, 5, 12, 13, 12 + 4 * PER_CHUNK, 12 + 8 * PER_CHUNK - 1])
def test_a_killed_runs_partial_last_record_is_dropped(cut):
    chunks = _sample(n_chunk=4)
    whole = _dump_bytes(chunks, n_chunk=8)
    last = 12 + 8 * PER_CHUNK
    data = whole[: len(whole) - last + cut]
    dump = parse_dump(data)
    assert dump.truncated
    assert list(dump.chunks) == [0, 1, 2]
    assert list(dump.chunks[2].kld) == _f32(chunks[2][1])


def test_header_only_and_missing_files(tmp_path):
    assert parse_dump(_dump_bytes([], n_chunk=3)).chunks == {}
    assert read_dump(tmp_path / "none.bin") is None  # a build without the patch writes nothing
    (tmp_path / "empty.bin").write_bytes(b"")
    assert read_dump(tmp_path / "empty.bin") is None


@pytest.mark.parametrize("data, words", [
    (b"_logits_" + bytes(16), "magic"),
    (b"QTUIKLD\0" + struct.pack("<4I", 2, N_CTX, PER_CHUNK, 3), "version"),
    (b"QTUIKLD\0" + struct.pack("<4I", 1, N_CTX, PER_CHUNK + 1, 3), "tokens per chunk"),
    (b"QTUIKLD\0", "too short"),
    (b"QTUIKLD\0" + struct.pack("<4I", 1, N_CTX, PER_CHUNK, 3) + struct.pack("<3I", 5, PER_CHUNK, 0), "corrupt"),
    (b"QTUIKLD\0" + struct.pack("<4I", 1, N_CTX, PER_CHUNK, 3) + struct.pack("<3I", 0, 7, 0), "corrupt"),
])
def test_foreign_or_corrupt_files_are_refused(data, words):
    with pytest.raises(TokenDumpError, match=words):
        parse_dump(data)


def _oracle_pct(sorted32: np.ndarray, fraction: float) -> float:
    """llama-perplexity's percentile, in numpy float32 arithmetic."""
    n = len(sorted32)
    p = np.float32(fraction) * np.float32(n - 1)
    ip = int(p)
    p = np.float32(p - np.float32(ip))
    return float((np.float32(1) - p) * sorted32[ip] + p * sorted32[min(ip + 1, n - 1)])


def _oracle_median(sorted32: np.ndarray) -> float:
    n = len(sorted32)
    if n % 2:
        return float(sorted32[n // 2])
    return float(np.float32(0.5) * (sorted32[n // 2] + sorted32[n // 2 - 1]))


def _oracle(chunks, picked):
    rows = [c for c in chunks if c[0] in picked]
    kld = np.asarray([v for c in rows for v in c[1]], dtype=np.float32)
    dp = np.asarray([v for c in rows for v in c[2]], dtype=np.float32)
    same = sum(c[3] for c in rows)
    n = len(kld)
    k64 = kld.astype(np.float64)
    dp2 = (dp * dp).astype(np.float64)  # squared in float32, as the tool does
    mse = dp2.mean()
    mse_err = math.sqrt((np.mean(dp2 * dp2) - mse * mse) / (n - 1))
    top = same / n
    ks, ds = np.sort(kld), np.sort(dp)
    out = {
        "kld_mean": k64.mean(), "kld_mean_err": math.sqrt((np.mean(k64 * k64) - k64.mean() ** 2) / (n - 1)),
        "kld_max": float(ks[-1]), "kld_min": float(ks[0]), "kld_median": _oracle_median(ks),
        "dp_mean": 100 * dp.astype(np.float64).mean(),
        "dp_mean_err": 100 * math.sqrt((mse - dp.astype(np.float64).mean() ** 2) / (n - 1)),
        "dp_rms": 100 * math.sqrt(mse), "dp_rms_err": 100 * 0.5 / math.sqrt(mse) * mse_err,
        "dp_max": 100 * float(ds[-1]), "dp_min": 100 * float(ds[0]), "dp_median": 100 * _oracle_median(ds),
        "same_top": 100 * top, "same_top_err": 100 * math.sqrt(top * (1 - top) / (n - 1)),
    }
    for name, fr in (("p999", 0.999), ("p99", 0.99), ("p95", 0.95), ("p90", 0.9), ("p10", 0.1), ("p05", 0.05),
                     ("p01", 0.01), ("p001", 0.001)):
        out[f"kld_{name}"] = _oracle_pct(ks, fr)
    for name, fr in (("p999", 0.999), ("p99", 0.99), ("p95", 0.95), ("p90", 0.9), ("p75", 0.75), ("p25", 0.25),
                     ("p10", 0.1), ("p05", 0.05), ("p01", 0.01), ("p001", 0.001)):
        out[f"dp_{name}"] = 100 * _oracle_pct(ds, fr)
    return out


@pytest.mark.parametrize("picked", [None, {0}, {1, 2}, {0, 3, 4, 9, 11}, set(range(1, 12, 2))])
def test_stats_over_chunk_sets_match_a_brute_force_oracle(picked):
    chunks = _sample(n_chunk=12, seed=7)
    dump = parse_dump(_dump_bytes(chunks, n_chunk=12))
    wanted = set(range(12)) if picked is None else picked
    got = stats_over(dump, None if picked is None else [c + 1 for c in picked])  # numbered from 1
    assert got is not None
    for name, want in _oracle(chunks, wanted).items():
        value = getattr(got, name)
        assert value == pytest.approx(want, rel=1e-9, abs=1e-12), name
    assert got.ppl_q is None  # the dump has no log-likelihoods


def test_percentiles_use_single_precision_like_the_tool():
    # The tool computes fraction * (n - 1) and the interpolation in float: with a large gap between
    # the two values interpolated, that shows in the printed digits.
    kld = [float(i) for i in range(PER_CHUNK - 1)] + [1e7]
    dump = parse_dump(_dump_bytes([(0, kld, [0.0] * PER_CHUNK, 0)], n_chunk=1))
    got = stats_over(dump)
    assert got is not None
    ks = np.asarray(kld, dtype=np.float32)
    assert got.kld_p999 == _oracle_pct(ks, 0.999)
    in_double = (1 - 0.999 * 14 % 1) * 13 + (0.999 * 14 % 1) * 1e7
    assert abs(got.kld_p999 - in_double) > 0.5  # double arithmetic would print other digits
    assert got.kld_median == 7.0


def test_few_tokens_have_no_error_bar_and_missing_chunks_are_an_error():
    dump = parse_dump(_dump_bytes([(0, [0.1] * PER_CHUNK, [0.0] * PER_CHUNK, 3)], n_chunk=2, n_ctx=N_CTX))
    got = stats_over(dump)
    assert got is not None and got.kld_mean == pytest.approx(float(np.float32(0.1)))
    assert got.kld_mean_err == 0.0  # constant values: no spread
    with pytest.raises(KeyError, match="chunk"):
        stats_over(dump, [1, 2])
    small = parse_dump(_dump_bytes([(0, [0.1, 0.3], [0.0, 0.1], 1)], n_chunk=1, n_ctx=6))
    got = stats_over(small)
    assert got is not None and got.kld_mean_err == 0.0 and got.dp_mean_err == 0.0  # n <= 10, as the tool


def test_store_load_shift_and_merge(tmp_path):
    chunks = _sample(n_chunk=5, seed=3)
    dump_file = tmp_path / "job" / "tokens.bin"
    dump_file.parent.mkdir()
    dump_file.write_bytes(_dump_bytes(chunks, n_chunk=5)[:-7])  # killed during the last record
    root = tmp_path / "results"
    kept = store_tokens(root, "rec1", dump_file)
    assert kept is not None and list(kept.chunks) == [0, 1, 2, 3]
    loaded = load_tokens(root, "rec1")
    assert loaded is not None and not loaded.truncated and list(loaded.chunks) == [0, 1, 2, 3]
    assert tokens_path(root, "rec1").stat().st_size == 24 + 4 * (12 + 8 * PER_CHUNK)
    assert store_tokens(root, "rec2", tmp_path / "no-such-dump") is None
    assert not tokens_path(root, "rec2").exists() and load_tokens(root, "rec2") is None
    tokens_path(root, "bad").write_bytes(b"garbage")
    assert load_tokens(root, "bad") is None
    # a window [10, 15) of a 40-chunk file: placed among the full file's chunks
    win = store_tokens(root, "rec3", dump_file, offset=10, n_chunk=40)
    assert win is not None and list(win.chunks) == [10, 11, 12, 13] and win.n_chunk == 40
    merged = merge_dumps([loaded, win])
    assert list(merged.chunks) == [0, 1, 2, 3, 10, 11, 12, 13]
    means = chunk_means(merged)
    assert means[1] == pytest.approx(float(np.mean(np.asarray(chunks[0][1], dtype=np.float32).astype(np.float64))))
    assert means[11] == means[1]
    both = stats_over(merged, [1, 11])
    one = stats_over(merged, [1])
    assert both is not None and one is not None and both.kld_mean == pytest.approx(one.kld_mean)
    field = exact_chunk_field(loaded, "rec1")
    assert field["kind"] == "exact" and field["tokens"] == "rec1.tokens"
    assert [r[0] for r in field["rows"]] == [1, 2, 3, 4] and field["rows"][0][1] == means[1]
    with pytest.raises(ValueError):
        merge_dumps([loaded, parse_dump(_dump_bytes([], n_chunk=1, n_ctx=64))])
