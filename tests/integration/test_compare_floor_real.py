"""The noise floor and the compare view's data on the real, patched llama-perplexity: `qtui run
--floor` measures the base against its own base file with half the batches, the floor stays off
the ranking, and the tokens where two quants differ most are read back, in their text, from the
base file and the GGUF vocabulary (checked against the corpus itself and gguf's own reader)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qtui.core.results.compare import compare_records, predicted_position, read_tokens
from qtui.core.results.floor import floor_value, is_floor, noise_floor
from qtui.core.results.leaderboard import build_rows
from qtui.core.results.store import ResultStore
from qtui.core.showdown.plan import floor_args
from tests.integration.test_tokens_real import _patched

CTX, CHUNKS = 128, 6


@pytest.fixture(scope="module")
def floor_run(llama_tools, tiny_model, tiny_ladder, corpus, tmp_path_factory) -> Path:
    _patched(llama_tools)
    tmp = tmp_path_factory.mktemp("floor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    env.update(QTUI_DATA_DIR=str(tmp / "data"), QTUI_CACHE_DIR=str(tmp / "cache"), QTUI_CONFIG_DIR=str(tmp / "config"),
               QTUI_LLAMA_BIN=str(llama_tools.bin_dir), COLUMNS="200", NO_COLOR="1")
    res = subprocess.run([sys.executable, "-m", "qtui.cli", "run", "--floor", "--base", str(tiny_model),
                          "--corpus", str(corpus), "--ctx", str(CTX), "--chunks", str(CHUNKS),
                          str(tiny_ladder["Q8_0"]), str(tiny_ladder["Q4_0"])],
                         env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp / "data"


def _variant(records, path: Path):  # type: ignore[no-untyped-def]
    return next(r for r in records if r.model["path"] == str(path.absolute()) and not is_floor(r.model))


def test_the_floor_runs_with_half_the_batches_and_stays_off_the_ranking(floor_run: Path, tiny_model: Path,
                                                                        tiny_ladder: dict[str, Path]) -> None:
    records = [r for r in ResultStore(floor_run).load().records if r.kind == "kld"]
    assert all(r.status == "done" for r in records), [r.failure for r in records]
    (floor,) = [r for r in records if is_floor(r.model)]
    assert floor.model["path"] == str(tiny_model.absolute())
    assert floor.argv[-4:] == floor_args([])  # -b 1024 -ub 256
    # What it really is on this CPU build: tiny but not 0. The printed mean (6 decimals) reads
    # 0.000000; the per-token data keep its size, a few 1e-7, from the base file's 16-bit
    # log-probs and the other summation order (some tokens even come out slightly negative).
    assert floor.stats["kld_mean"] == 0.0
    assert 0.0 < floor.stats["kld_max"] < 1e-4
    floor_kld = noise_floor(records)
    assert floor_kld is not None and 0.0 < floor_kld < 1e-5
    assert floor_kld == pytest.approx(floor_value(floor))
    q8 = _variant(records, tiny_ladder["Q8_0"])
    assert q8.stats["kld_mean"] > 100 * floor_kld  # far above the floor: a real difference
    rows = build_rows(records)
    assert {r.path for r in rows} == {str(tiny_ladder[q].absolute()) for q in ("Q8_0", "Q4_0")}  # the floor is no row
    assert all(r.rank is not None for r in rows)


def test_compare_reads_the_tokens_in_their_text(floor_run: Path, corpus: Path, tiny_model: Path,
                                                tiny_ladder: dict[str, Path]) -> None:
    from gguf import GGUFReader

    records = [r for r in ResultStore(floor_run).load().records if r.kind == "kld"]
    q8, q4 = _variant(records, tiny_ladder["Q8_0"]), _variant(records, tiny_ladder["Q4_0"])
    cmp = compare_records(ResultStore(floor_run).root, q8, q4, top=8, width=6)
    assert cmp.exact and not cmp.notes, cmp.notes
    assert len(cmp.diffs) == CHUNKS and cmp.overall is not None
    assert cmp.overall.mean < 0  # Q8_0 is closer to the base than Q4_0
    assert len(cmp.tokens) == 8
    # the vocabulary as gguf's own reader sees it (an independent reader)
    reader = GGUFReader(tiny_model)
    field = reader.fields["tokenizer.ggml.tokens"]
    vocab = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    base_file = Path(q8.base["file"])
    text = corpus.read_text(encoding="utf-8")
    checked = 0
    for t in cmp.tokens:
        pos = predicted_position(CTX, t.chunk, t.index)
        (token,) = read_tokens(base_file, pos, 1)
        assert t.token == token and len(t.context) == 6
        shown = "".join(vocab[i] for i in (*t.context, token)).replace("Ġ", " ").replace("Ċ", "\n")
        assert t.context_text + t.token_text == shown.replace("\n", "⏎").replace("\t", "⇥")
        # byte-level BPE pieces of ASCII text: the shown text is the corpus's own, verbatim
        if shown.isascii():
            assert shown.replace("ĉ", "\t") in text
            checked += 1
    assert checked >= 4  # most of the corpus is ASCII: the check above is no formality


def test_qtui_results_names_the_floor_and_never_ranks_it(floor_run: Path, tiny_ladder: dict[str, Path]) -> None:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    env.update(QTUI_DATA_DIR=str(floor_run), COLUMNS="200", NO_COLOR="1")
    res = subprocess.run([sys.executable, "-m", "qtui.cli", "results", "--json"], env=env, capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    (setup,) = json.loads(res.stdout)["setups"]
    records = [r for r in ResultStore(floor_run).load().records if r.kind == "kld"]
    assert setup["noise_floor"] == pytest.approx(noise_floor(records)) and setup["noise_floor"] > 0
    assert len(setup["rows"]) == 2
    text = subprocess.run([sys.executable, "-m", "qtui.cli", "results"], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL).stdout
    assert "noise floor " in text and "neighbours closer than it are ties" in text
