"""The compare view: m marks a leaderboard row, C compares it with the row under the cursor; the
screen shows both labels, the paired difference and the tokens where they differ most, in their
text (ids from a base file, text from a GGUF vocabulary, both written here). A snapshot of it."""

from __future__ import annotations

import random
from array import array
from pathlib import Path
from typing import Any

from qtui.core.llama.tokendump import ChunkTokens, TokenDump, encode_dump
from qtui.core.results.compare import predicted_position
from qtui.core.results.store import ResultRecord, ResultStore
from qtui.core.results.tokens import exact_chunk_field, store_tokens
from qtui.ui.messages import RecordsChanged
from qtui.ui.screens.compare import CompareScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from tests.ui.conftest import notified, ready, screen_text, wait_for
from tests.ui.test_snapshots import T0, scan_done, snap_app
from tests.unit.gguf_builders import write_model
from tests.unit.test_compare import write_base_file

__all__ = ["snap_app"]

N_CTX, N_CHUNK = 32, 6
WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "big", "red", "house", "in", "of", "it",
         "was", "very", "small", "tree", "by", "river", "we", "saw", "bird", "fly", "over", "hill", "slowly", "then",
         "came", "back")


def _dump(rng: random.Random, scale: float) -> TokenDump:
    per = N_CTX - 1 - N_CTX // 2
    chunks = {}
    for i in range(N_CHUNK):
        hard = 1.0 + i % 3  # some chunks are hard for every quant
        kld = array("f", [scale * hard * rng.random() ** 2 for _ in range(per)])
        chunks[i] = ChunkTokens(i, kld, array("f", [0.0] * per), per // 2)
    return TokenDump(N_CTX, per, N_CHUNK, chunks)


def setup_pair(data_dir: Path, tmp: Path) -> tuple[list[ResultRecord], dict[str, TokenDump], list[int]]:
    """Two quants of one base with per-token data in the store, the base model and base file on disk."""
    rng = random.Random(2026)
    vocab = [f"▁{w}" for w in WORDS]
    base_model = write_model(tmp / "models" / "tiny-F16.gguf", n_vocab=len(vocab), tokens=vocab)
    ids = [rng.randrange(len(vocab)) for _ in range(N_CHUNK * N_CTX)]
    base_file = write_base_file(tmp / "tiny-F16.kld", N_CTX, len(vocab), ids)
    base = {"label": "tiny-F16", "path": str(base_model), "file": str(base_file), "n_chunk": N_CHUNK}
    store = ResultStore(data_dir)
    store.root.mkdir(parents=True, exist_ok=True)
    records, dumps = [], {}
    for name, scale, gib in (("tiny-Q8_0", 0.01, 0.5), ("tiny-Q4_K_M", 0.05, 0.3)):
        rid = f"20260101-000000-{name}"
        dump = _dump(rng, scale)
        (tmp / f"{name}.dump").write_bytes(encode_dump(dump))
        store_tokens(store.root, rid, tmp / f"{name}.dump")
        mean = sum(sum(c.kld) for c in dump.chunks.values()) / dump.n_tokens
        rec = ResultRecord(id=rid, kind="kld", status="done",
                           model={"path": f"/m/{name}.gguf", "label": name, "quant": name.split("-")[1],
                                  "size_bytes": int(gib * 1024**3)},
                           stats={"kld_mean": mean, "kld_mean_err": mean / 20}, base=base, corpus={"sha256": "ab" * 32},
                           ctx=N_CTX, chunks=N_CHUNK, llama={"fork": "llama.cpp"}, ended_at=T0 - 60)
        rec.chunk_kld = exact_chunk_field(dump, rid)
        store.save(rec)
        records.append(rec)
        dumps[name] = dump
    return records, dumps, ids


async def test_mark_then_compare_shows_both_labels_the_difference_and_the_tokens(
        app_factory: Any, qtui_dirs: dict[str, Path], tmp_path: Path) -> None:
    records, dumps, ids = setup_pair(qtui_dirs["data"], tmp_path)
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 2, what="the two results")
        board.focus()
        await pilot.press("C")  # nothing marked yet: says what to do
        await notified(pilot, "mark a result with m first")
        first = board.selected_id
        await pilot.press("m")
        await notified(pilot, "marked")
        await pilot.press("down")
        await wait_for(pilot, lambda: board.selected_id not in (None, first), what="the cursor on the other row")
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
        screen = app.screen
        await wait_for(pilot, lambda: screen.comparison is not None or screen.problem is not None, what="the comparison")
        assert screen.problem is None
        cmp = screen.comparison
        assert {cmp.label_a, cmp.label_b} == {"tiny-Q8_0", "tiny-Q4_K_M"}
        assert cmp.a.id == first  # the marked row is A
        text = " ".join(screen_text(app).split())
        assert "A tiny-Q8_0" in text and "B tiny-Q4_K_M" in text
        # the difference as computed from the per-token data, to the printed digit
        qa, qb = dumps["tiny-Q8_0"], dumps["tiny-Q4_K_M"]
        mean_a = sum(sum(c.kld) / c.n for c in qa.chunks.values()) / N_CHUNK
        mean_b = sum(sum(c.kld) / c.n for c in qb.chunks.values()) / N_CHUNK
        assert f"mean KLD A - B = {mean_a - mean_b:+.6f}" in text
        assert "separated: tiny-Q8_0 is closer to the base" in text
        assert "Tokens where they differ most" in text
        # the top token, found here by brute force, is shown after its context
        i, j = max(((i, j) for i in range(N_CHUNK) for j in range(qa.per_chunk)),
                   key=lambda ij: abs(qa.chunks[ij[0]].kld[ij[1]] - qb.chunks[ij[0]].kld[ij[1]]))
        pos = predicted_position(N_CTX, i + 1, j)
        before = " ".join(WORDS[t] for t in ids[pos - 3:pos])
        assert f"{before}▸ {WORDS[ids[pos]]}" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen), what="the view to close")


def test_compare_view_snapshot(snap_compare: Any, snap_app: Any, qtui_dirs: dict[str, Path], tmp_path: Path) -> None:
    records, _, _ = setup_pair(qtui_dirs["data"], tmp_path)
    app = snap_app([RecordsChanged(records)])

    def loaded(app: Any) -> bool:
        if not (isinstance(app.screen, CompareScreen) and app.screen.comparison is not None):
            return False
        if any(screen.query("Toast") for screen in app.screen_stack):
            app.clear_notifications()  # the "marked" toast times out: not part of the picture
            return False
        return True

    assert snap_compare(app, run_before=scan_done("3", "m", "down", "C", until=loaded), terminal_size=(100, 40))
