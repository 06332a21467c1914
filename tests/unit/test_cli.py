"""The command line: bad input is a message and exit status 2, never a traceback or a hung app."""

import subprocess
from pathlib import Path

from tests.helpers import run_qtui


def qtui(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return run_qtui(*args, tmp=tmp)


def test_help_teaches_the_workflow(tmp_path: Path) -> None:
    out = qtui("--help", tmp=tmp_path)
    assert out.returncode == 0
    for words in ("--kl-divergence-base", "qtui demo", "qtui run --base", "qtui export"):
        assert words in out.stdout


def test_app_without_a_terminal_is_refused(tmp_path: Path) -> None:
    out = qtui(tmp=tmp_path)
    assert out.returncode == 2 and "needs a terminal" in out.stderr


def test_missing_results_path(tmp_path: Path) -> None:
    out = qtui("--results", str(tmp_path / "nope"), tmp=tmp_path)
    assert out.returncode == 2 and "no such file" in out.stderr


def test_bad_inputs_are_messages(tmp_path: Path) -> None:
    for args, words in ((("scan", str(tmp_path / "nope")), "not a folder"),
                        (("results", "--sort", "bogus"), "unknown column"),
                        (("export", "-f", "md", str(tmp_path / "no" / "x.md")), "cannot write"),
                        (("run", "--base", str(tmp_path / "b.gguf"), str(tmp_path / "v.gguf"), "--llama-bin", str(tmp_path)),
                         "llama-perplexity")):
        out = qtui(*args, tmp=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        text = " ".join(out.stderr.split())  # rich wraps long messages at the terminal width
        assert words in text and "Traceback" not in text, (args, out.stderr)
