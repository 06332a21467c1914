"""Session fixtures for tests that run the real llama.cpp binaries.

`llama_tools` comes from find_tools() (QTUI_LLAMA_BIN, PATH, then qtui's builds made by
`qtui setup-llama`). Under CI (CI set) a missing build FAILS the session: these tests must
never be skipped silently there. Locally they are skipped with the reason, unless
QTUI_TEST_BUILD_LLAMA=1 asks to build llama.cpp on the spot (minutes).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qtui.core.llama import assets
from qtui.core.llama.tools import LlamaNotFound, LlamaTools, check_runnable, find_tools

IN_CI = bool(os.environ.get("CI"))
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def llama_tools() -> LlamaTools:
    try:
        tools = find_tools(llama_bin=os.environ.get("QTUI_LLAMA_BIN") or None)
    except LlamaNotFound as exc:
        if os.environ.get("QTUI_TEST_BUILD_LLAMA") == "1":
            from qtui.core.llama.build import setup_llama

            tools = find_tools(llama_bin=setup_llama())
        elif IN_CI:
            pytest.fail(f"CI=true but no llama.cpp build: run `qtui setup-llama` first.\n{exc}",
                        pytrace=False)
        else:
            pytest.skip(f"no llama.cpp build (run `qtui setup-llama`): {exc}")
    try:
        check_runnable(tools)
    except LlamaNotFound as exc:
        if IN_CI:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    return tools


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return assets.stdlib_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, corpus) -> Path:
    """The 2048-token tiny llama, F32 (made in a session temp dir: no user cache touched)."""
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    return assets.tiny_model(tmp_path_factory.mktemp("tiny"), corpus=corpus)


@pytest.fixture(scope="session")
def tiny_ladder(llama_tools, tiny_model, tmp_path_factory) -> dict[str, Path]:
    """{"Q8_0": path, "Q4_0": path, "Q2_K": path}, quantized by the build under test."""
    types = ("Q8_0", "Q4_0", "Q2_K")
    paths = assets.ladder(llama_tools, tiny_model, types, tmp_path_factory.mktemp("ladder"))
    return dict(zip(types, paths))
