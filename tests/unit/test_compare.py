"""The compare view's core (results/compare.py) against brute-force oracles: per-chunk and
cumulative differences recomputed from scratch for every prefix, the tokens that differ most
found by sorting every token pair, and token context read back from a synthetic base file and
a GGUF vocabulary written here."""

from __future__ import annotations

import math
import random
import statistics
import struct
from array import array
from pathlib import Path

import pytest

from qtui.core.gguf.reader import GGUFError, read_header, read_token_strings
from qtui.core.llama.tokendump import ChunkTokens, TokenDump, encode_dump
from qtui.core.results.chunks import ChunkSeries
from qtui.core.results.compare import (
    CompareError,
    chunk_differences,
    compare_records,
    cumulative_diffs,
    predicted_position,
    read_tokens,
    token_text,
    top_token_diffs,
)
from qtui.core.results.paired import t_quantile
from qtui.core.results.store import ResultRecord
from qtui.core.results.tokens import exact_chunk_field, store_tokens
from tests.unit.gguf_builders import write_model

# Student t 97.5 % quantiles from a printed table: the oracle does not trust the code's t.
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 19: 2.0930, 29: 2.0452}


def test_chunk_differences_pair_only_common_chunks() -> None:
    a = ChunkSeries.from_exact([1, 2, 3, 5], [0.5, 0.4, 0.3, 0.1])
    b = ChunkSeries.from_exact([2, 3, 4, 5], [0.1, 0.2, 0.9, 0.3])
    got = chunk_differences(a, b)
    assert [c for c, _ in got] == [2, 3, 5]
    assert [d for _, d in got] == pytest.approx([0.3, 0.1, -0.2])


def test_cumulative_diffs_match_a_brute_force_recomputation_of_every_prefix() -> None:
    rng = random.Random(7)
    diffs = [(c, rng.gauss(0.01, 0.03)) for c in range(1, 31)]
    got = cumulative_diffs(diffs)
    assert len(got) == 30
    assert got[0].low is None and got[0].high is None and got[0].mean == pytest.approx(diffs[0][1])
    for n in range(2, 31):
        xs = [d for _, d in diffs[:n]]
        mean = statistics.fmean(xs)
        half = t_quantile(0.975, n - 1) * statistics.stdev(xs) / math.sqrt(n)
        point = got[n - 1]
        assert (point.n, point.chunk) == (n, diffs[n - 1][0])
        assert point.mean == pytest.approx(mean, rel=1e-10, abs=1e-15)
        assert point.low == pytest.approx(mean - half, rel=1e-9, abs=1e-15)
        assert point.high == pytest.approx(mean + half, rel=1e-9, abs=1e-15)



def test_cumulative_interval_uses_the_t_table() -> None:
    diffs = [(1, 0.1), (2, 0.3), (3, 0.2), (4, 0.6), (5, 0.1), (6, 0.4)]
    point = cumulative_diffs(diffs)[-1]
    xs = [d for _, d in diffs]
    want = T975[5] * statistics.stdev(xs) / math.sqrt(6)
    assert (point.high - point.low) / 2 == pytest.approx(want, rel=1e-4)
    assert point.excludes_zero  # all positive and tight enough
    assert not cumulative_diffs([(1, 0.1), (2, -0.1)])[-1].excludes_zero


def _dump(rng: random.Random, chunks: list[int], n_ctx: int = 16, n_chunk: int = 8) -> TokenDump:
    per = n_ctx - 1 - n_ctx // 2
    out = {}
    for i in chunks:
        kld = array("f", [rng.random() ** 3 for _ in range(per)])
        dp = array("f", [rng.uniform(-0.1, 0.1) for _ in range(per)])
        out[i] = ChunkTokens(i, kld, dp, rng.randrange(per))
    return TokenDump(n_ctx, per, n_chunk, out)


def test_top_token_diffs_match_sorting_every_token_pair() -> None:
    rng = random.Random(3)
    a, b = _dump(rng, [0, 1, 2, 4]), _dump(rng, [1, 2, 3, 4])
    got = top_token_diffs(a, b, 12)
    brute = sorted(((abs(a.chunks[i].kld[j] - b.chunks[i].kld[j]), i + 1, j)
                    for i in (1, 2, 4) for j in range(a.per_chunk)), key=lambda t: (-t[0], t[1], t[2]))
    assert [(t.chunk, t.index) for t in got] == [(c, j) for _, c, j in brute[:12]]
    for t in got:
        assert t.kld_a == a.chunks[t.chunk - 1].kld[t.index] and t.kld_b == b.chunks[t.chunk - 1].kld[t.index]
    assert abs(got[0].diff) == pytest.approx(brute[0][0])
    with pytest.raises(CompareError):
        top_token_diffs(a, _dump(rng, [1], n_ctx=32), 3)


def test_predicted_position_is_the_token_after_the_scored_one() -> None:
    # -c 16: chunk 1 scores positions 8..14, value 0 predicting the token at 9
    assert predicted_position(16, 1, 0) == 9
    assert predicted_position(16, 1, 6) == 15  # the last scored value predicts the chunk's last token
    assert predicted_position(16, 3, 0) == 2 * 16 + 9


def test_token_text_reads_common_vocabulary_spellings() -> None:
    assert token_text("▁the") == " the"
    assert token_text("Ġthe") == " the"
    assert token_text("Ċ") == "⏎"
    assert token_text("<0x0A>") == "⏎"
    assert token_text("plain") == "plain"


def write_base_file(path: Path, n_ctx: int, n_vocab: int, tokens: list[int]) -> Path:
    """A valid base file: header, the tokens, zero log-prob records of the right size."""
    n_chunk = len(tokens) // n_ctx
    per = n_ctx - 1 - n_ctx // 2
    nv = 2 * ((n_vocab + 1) // 2) + 4
    with open(path, "wb") as fh:
        fh.write(b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, n_chunk))
        fh.write(struct.pack(f"<{len(tokens)}i", *tokens))
        fh.write(bytes(2 * n_chunk * per * nv))
    return path


def test_read_tokens_reads_the_ids_after_the_header(tmp_path: Path) -> None:
    ids = [(i * 37) % 50 for i in range(4 * 16)]
    bf = write_base_file(tmp_path / "b.kld", 16, 50, ids)
    assert read_tokens(bf, 0, 5) == ids[:5]
    assert read_tokens(bf, 20, 10) == ids[20:30]
    assert read_tokens(bf, 60, 10) == ids[60:]  # clipped at the end


def test_read_token_strings_keeps_the_whole_vocabulary(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(300)]  # longer than the header reader keeps
    model = write_model(tmp_path / "m.gguf", n_vocab=300, tokens=words)
    assert read_header(model).metadata["tokenizer.ggml.tokens"].values is None  # type: ignore[union-attr]
    assert read_token_strings(model) == words
    with pytest.raises(GGUFError):
        read_token_strings(write_base_file(tmp_path / "x.kld", 16, 50, list(range(32))))


def _record(rid: str, base: dict[str, object], dump: TokenDump | None, means: list[float] | None = None) -> ResultRecord:
    rec = ResultRecord(id=rid, kind="kld", status="done", model={"label": rid, "path": f"/m/{rid}.gguf"},
                       stats={"kld_mean": 0.1}, base=base, corpus={"sha256": "ab"}, ctx=16, chunks=4,
                       llama={"fork": "llama.cpp"})
    if dump is not None:
        rec.chunk_kld = exact_chunk_field(dump, rid)
    elif means is not None:
        rec.chunk_kld = {"kind": "running", "decimals": 5,
                         "rows": [[k, round(statistics.fmean(means[:k]), 5)] for k in range(1, len(means) + 1)]}
    return rec


def test_compare_records_shows_the_tokens_in_their_text(tmp_path: Path) -> None:
    n_ctx, n_vocab = 16, 64
    rng = random.Random(11)
    ids = [rng.randrange(n_vocab) for _ in range(4 * n_ctx)]
    words = [f"▁t{i}" for i in range(n_vocab)]
    base_model = write_model(tmp_path / "base.gguf", n_vocab=n_vocab, tokens=words)
    bf = write_base_file(tmp_path / "base.kld", n_ctx, n_vocab, ids)
    base = {"label": "base", "path": str(base_model), "file": str(bf)}
    store = tmp_path / "results"
    store.mkdir()
    da, db = _dump(rng, [0, 1, 2, 3], n_chunk=4), _dump(rng, [0, 1, 2, 3], n_chunk=4)
    for rid, d in (("A", da), ("B", db)):
        (tmp_path / f"{rid}.dump").write_bytes(encode_dump(d))
        store_tokens(store, rid, tmp_path / f"{rid}.dump")
    a, b = _record("A", base, da), _record("B", base, db)
    cmp = compare_records(store, a, b, top=5, width=4)
    assert cmp.exact and cmp.label_a == "A" and cmp.label_b == "B" and not cmp.notes
    assert len(cmp.diffs) == 4 and cmp.overall is not None and cmp.overall.n == 4
    # the per-chunk differences are the chunk means' differences, from the tokens themselves
    for c, d in cmp.diffs:
        want = statistics.fmean(da.chunks[c - 1].kld) - statistics.fmean(db.chunks[c - 1].kld)
        assert d == pytest.approx(want, rel=1e-9)
    assert len(cmp.tokens) == 5
    for t in cmp.tokens:
        pos = (t.chunk - 1) * n_ctx + n_ctx // 2 + t.index + 1  # the token the scored position predicts
        assert t.token == ids[pos]
        assert list(t.context) == ids[max((t.chunk - 1) * n_ctx, pos - 4):pos]
        assert t.token_text == f" t{ids[pos]}"
        assert t.context_text == "".join(f" t{i}" for i in t.context)


def test_compare_records_with_derived_data_says_so_and_refuses_other_setups(tmp_path: Path) -> None:
    base = {"label": "base", "file": str(tmp_path / "gone.kld")}
    a = _record("A", base, None, [0.2, 0.3, 0.25, 0.22])
    b = _record("B", base, None, [0.1, 0.2, 0.15, 0.12])
    cmp = compare_records(tmp_path, a, b)
    assert not cmp.exact and not cmp.tokens
    assert any("derived" in n for n in cmp.notes) and any("per-token" in n for n in cmp.notes)
    assert [round(d, 4) for _, d in cmp.diffs] == pytest.approx([0.1, 0.1, 0.1, 0.1], abs=1e-3)
    other = _record("C", {"label": "other base"}, None, [0.1, 0.1])
    with pytest.raises(CompareError, match="different setups"):
        compare_records(tmp_path, a, other)
    with pytest.raises(CompareError, match="itself"):
        compare_records(tmp_path, a, a)
    with pytest.raises(CompareError, match="no per-chunk data"):
        compare_records(tmp_path, a, _record("D", base, None))
