"""Session fixtures for tests that run the real llama.cpp binaries.

The build itself comes from `llama_tools` (tests/conftest.py): it fails under CI when there is
none. Everything here is marked `integration`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qtui.core.cluster.placement import SLOT_RESOURCE
from qtui.core.llama import assets
from tests.helpers import require_module

HERE = Path(__file__).resolve().parent


def qtui(env: dict[str, str], *args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, with `env` (see the `env` fixture)."""
    return subprocess.run([sys.executable, "-m", "qtui.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


@pytest.fixture()
def env(tmp_path: Path, llama_tools) -> dict[str, str]:
    """qtui's folders in the test's tmp dir, the real build, wide and colourless output."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    e.update(QTUI_DATA_DIR=str(tmp_path / "data"), QTUI_CACHE_DIR=str(tmp_path / "cache"),
             QTUI_CONFIG_DIR=str(tmp_path / "config"), QTUI_LLAMA_BIN=str(llama_tools.bin_dir),
             COLUMNS="250", NO_COLOR="1")
    return e


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real local Ray cluster (ray.cluster_utils.Cluster): a head without CPUs and two
    workers with a `qtui_slot` each, every node on 127.0.0.1, CPU only. The test module sets
    RAY_USAGE_STATS_ENABLED=0 and placement.LOOPBACK_ENV=0 before Ray is imported."""
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == "0", "a Ray test module must switch usage statistics off"
    ray = require_module("ray", "pip install -e '.[ray]'")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                      "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1, resources={SLOT_RESOURCE: 1}, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return assets.stdlib_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, corpus) -> Path:
    """The 2048-token tiny llama, F32 (made in a session temp dir: no user cache touched)."""
    require_module("gguf")
    require_module("tokenizers")
    return assets.tiny_model(tmp_path_factory.mktemp("tiny"), corpus=corpus)


@pytest.fixture(scope="session")
def tiny_ladder(llama_tools, tiny_model, tmp_path_factory) -> dict[str, Path]:
    """{"Q8_0": path, "Q4_0": path, "Q2_K": path}, quantized by the build under test."""
    types = ("Q8_0", "Q4_0", "Q2_K")
    paths = assets.ladder(llama_tools, tiny_model, types, tmp_path_factory.mktemp("ladder"))
    return dict(zip(types, paths))
