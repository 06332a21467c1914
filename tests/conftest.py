"""Fixtures every suite may use.

`llama_tools` is THE way a test gets the real llama.cpp build: find_tools() (QTUI_LLAMA_BIN,
PATH, then the builds `qtui setup-llama` makes), checked to start. When there is none, the test
FAILS under CI (CI set: these tests must never be skipped silently there) and is skipped with
the reason elsewhere, unless QTUI_TEST_BUILD_LLAMA=1 asks to build llama.cpp on the spot (minutes).

Session-scoped, so it is resolved before any function-scoped fixture points the cache dir
(where qtui's builds live) at a test's temporary folder.
"""

from __future__ import annotations

import os

import pytest

from qtui.core.llama.tools import LlamaNotFound, LlamaTools, check_runnable, find_tools
from tests.helpers import unavailable


@pytest.fixture(scope="session")
def llama_tools() -> LlamaTools:
    try:
        tools = find_tools(llama_bin=os.environ.get("QTUI_LLAMA_BIN") or None)
    except LlamaNotFound as exc:
        if os.environ.get("QTUI_TEST_BUILD_LLAMA") != "1":
            unavailable(f"there is no llama.cpp build (run `qtui setup-llama`): {exc}")
        from qtui.core.llama.build import setup_llama

        tools = find_tools(llama_bin=setup_llama())
    try:
        check_runnable(tools)
    except LlamaNotFound as exc:
        unavailable(f"the llama.cpp build cannot run: {exc}")
    return tools
