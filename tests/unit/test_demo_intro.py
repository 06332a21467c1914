"""What `qtui demo` says before it runs: how its models are made, where that colours the ranking."""

from __future__ import annotations

import argparse
from pathlib import Path

import qtui.demo as demo
from qtui.core.llama.assets import DEMO_LADDER, demo_notes


def _setup(tmp_path: Path, notes: tuple[str, ...]) -> demo.DemoSetup:
    return demo.DemoSetup(tmp_path / "b-F16.gguf", [tmp_path / "b-Q8_0.gguf"], tmp_path / "c.txt", 128, 24, tmp_path,
                          notes=notes)


def test_the_intro_prints_the_notes_before_the_run(tmp_path, monkeypatch, capsys):
    notes = tuple(demo_notes("Q4_K_M", DEMO_LADDER, has_experts=False))
    monkeypatch.setattr(demo, "prepare_demo", lambda *a, **k: _setup(tmp_path, notes))
    demo.prepare_demo_request(argparse.Namespace(tiny=False, chunks=None))
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "note: The F16 base is upcast from a Q4_K_M file" in err
    assert "its low KLD is not a finding" in err
    assert "note: MXFP4_MOE on a dense model (no experts) gives the same tensors as Q8_0" in err


def test_no_notes_no_intro_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "prepare_demo", lambda *a, **k: _setup(tmp_path, ()))
    demo.prepare_demo_request(argparse.Namespace(tiny=True, chunks=None))
    assert "note:" not in capsys.readouterr().err
