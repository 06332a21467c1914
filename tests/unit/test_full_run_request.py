"""A full run of a leaderboard row (F in the app): the request names the row's own setup."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtui.core.results.store import ResultRecord
from qtui.core.showdown.request import NoFullRun, full_run_request


def test_a_screened_record_asks_for_every_chunk_of_its_own_setup() -> None:
    rec = ResultRecord(id="r", kind="kld", status="done", model={"path": "/m/x-Q4_K_M.gguf", "label": "x-Q4_K_M"},
                       base={"path": "/m/x-F16.gguf", "file": "/cache/base-k.kld", "key": "k"},
                       corpus={"path": "/c/wiki.test.raw", "sha256": "s"}, ctx=256, chunks=40,
                       screen={"state": "settled", "chunks_run": 8, "n_chunk": 40})
    req = full_run_request(rec, ("-ngl", "99"))
    assert req.base == Path("/m/x-F16.gguf") and req.variants == (Path("/m/x-Q4_K_M.gguf"),)
    assert req.base_file == Path("/cache/base-k.kld") and req.corpus == "/c/wiki.test.raw"
    assert (req.ctx, req.chunks, req.llama_args) == (256, 40, ("-ngl", "99"))
    assert req.again and not req.screen


def test_a_published_record_cannot_be_run() -> None:
    rec = ResultRecord(id="p", kind="kld", status="done", model={"label": "AesSedai IQ4_XS"}, source={"type": "published"})
    with pytest.raises(NoFullRun, match="AesSedai IQ4_XS has no local model file"):
        full_run_request(rec)
