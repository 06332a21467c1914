"""The tensor-mix diff on files the real llama-quantize made (the session's tiny ladder).

`qtui diff --json` is checked against gguf.GGUFReader as the oracle (an independent reader of
the same headers); the app's diff view is a snapshot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from textual.app import App

import qtui.ui
from qtui.core.gguf.model_info import model_info, tensor_group
from qtui.ui.screens.details import InfoScreen, mix_diff_details
from tests.helpers import require_module

gguf = require_module("gguf")


def oracle_groups(path: Path) -> dict[str, dict[str, int]]:
    """{group: {type name (lower case): bytes}} as GGUFReader reads the file."""
    out: dict[str, dict[str, int]] = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        types = out.setdefault(tensor_group(t.name), {})
        name = t.tensor_type.name.lower()
        types[name] = types.get(name, 0) + int(t.n_bytes)
    return out


def test_cli_diff_of_two_ladder_files_agrees_with_gguf_reader(tiny_ladder: dict[str, Path], tmp_path: Path) -> None:
    a, b = tiny_ladder["Q8_0"], tiny_ladder["Q2_K"]
    env = {"PATH": "/usr/bin:/bin", "QTUI_DATA_DIR": str(tmp_path / "d"), "QTUI_CONFIG_DIR": str(tmp_path / "c"),
           "QTUI_CACHE_DIR": str(tmp_path / "k"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "qtui.cli", "diff", str(a), str(b), "--json"],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    want_a, want_b = oracle_groups(a), oracle_groups(b)
    assert {g["group"] for g in got["groups"]} == set(want_a) | set(want_b)
    for g in got["groups"]:
        side_a = {t["type"].lower(): t["a_bytes"] for t in g["types"] if t["a_tensors"]}
        side_b = {t["type"].lower(): t["b_bytes"] for t in g["types"] if t["b_tensors"]}
        assert side_a == want_a.get(g["group"], {}), g["group"]
        assert side_b == want_b.get(g["group"], {}), g["group"]
        assert g["differs"] == (want_a.get(g["group"]) != want_b.get(g["group"])), g["group"]
    # Q8_0 against Q2_K: the weights cannot share a type
    assert not got["identical"]
    assert "attention" in {g["group"] for g in got["groups"] if g["differs"]}


class DiffApp(App[None]):
    """The app's own dialog styles around the diff view, as the Models tab opens it."""

    CSS_PATH = str(Path(qtui.ui.__file__).parent / "qtui.tcss")

    def __init__(self, a: Path, b: Path) -> None:
        super().__init__()
        self.a, self.b = a, b

    def on_mount(self) -> None:
        self.push_screen(InfoScreen(f"Tensor-mix diff: {self.a.name} vs {self.b.name}",
                                    mix_diff_details(model_info(self.a), model_info(self.b))))


def test_diff_view_of_two_ladder_files(snap_compare: Any, tiny_ladder: dict[str, Path]) -> None:
    assert snap_compare(DiffApp(tiny_ladder["Q8_0"], tiny_ladder["Q2_K"]), terminal_size=(120, 36))
