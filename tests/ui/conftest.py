"""Fixtures for the app's pilot and snapshot tests.

Every test gets its own config, data and cache dirs (never the user's). Runs go through the
REAL JobQueue and the real detached scheduler; the llama-perplexity they start is a wrapper
around tests/fakes/fake_llama_perplexity.py that replays REAL recorded transcripts
(tests/fixtures/llama/b0336 from llama.cpp, tests/fixtures/ik from ik_llama.cpp), chosen by
the model's file name:

  *Q8_0*  -> kld-q8_0        *Q4*  -> kld-q4_0       no --kl-divergence -> base generation
  *TRUNC* -> fail-truncated-base (a real failure: exit 0, no final block)
  *SLOW*  -> kld-q4_0 streamed over ~20 s (for cancel / re-attach / quit-while-running)

Each case is replayed in its recorded order of stdout and stderr; `--version` and `--help`
answer with the recorded texts of the same build.
"""

from __future__ import annotations

import io
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qtui.core.jobs.queue import ACTIVE, JobQueue
from qtui.core.jobs.scheduler import scheduler_running
from qtui.core.llama.tools import LlamaTools
from qtui.ui.app import QtuiApp, make_app

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "fake_llama_perplexity.py"
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from gguf_builders import F16, Q4_K, Q8_0, dense_tensors, write_model  # noqa: E402

N_VOCAB = 64  # what the fake's base file says, so a cached base file is reusable

WRAPPER = '''#!{python}
import os, sys
args = sys.argv[1:]  # --version / --help: the fake answers with the recorded texts
fix = {fixtures!r}
flavour = os.environ.get("QTUI_TEST_FLAVOUR", "llama")
model = os.path.basename(args[args.index("-m") + 1]) if "-m" in args else ""
if "--kl-divergence" not in args:
    case = "ik/ik-tiny-base" if flavour == "ik" else "llama/b0336/base"
elif "TRUNC" in model:
    case = "llama/b0336/fail-truncated-base"
elif "Q8_0" in model:
    case = "ik/ik-tiny-kld-q8_0" if flavour == "ik" else "llama/b0336/kld-q8_0"
else:
    case = "ik/ik-tiny-kld-q4_0" if flavour == "ik" else "llama/b0336/kld-q4_0"
os.environ["FAKE_LLAMA_CASE"] = os.path.join(fix, case)
if "SLOW" in model:
    os.environ["FAKE_LLAMA_DELAY"] = "1.0"
os.execv({python!r}, [{python!r}, {fake!r}, *args])
'''


@pytest.fixture(autouse=True)
def qtui_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    # Not under tmp_path: a test may rightly expect its tmp_path to hold only what it wrote.
    root = tmp_path_factory.mktemp("qtui-dirs")
    dirs = {k: root / k for k in ("config", "data", "cache")}
    for k, p in dirs.items():
        p.mkdir()
        monkeypatch.setenv(f"QTUI_{k.upper()}_DIR", str(p))
    for var in ("QTUI_LLAMA_BIN", "FAKE_LLAMA_DELAY", "FAKE_LLAMA_SPEED", "FAKE_LLAMA_EXIT", "FAKE_LLAMA_CASE",
                "FAKE_LLAMA_BUILD"):
        monkeypatch.delenv(var, raising=False)
    yield dirs
    stop_jobs(dirs["data"])


def stop_jobs(data_dir: Path, timeout: float = 20.0) -> None:
    """Cancel whatever a test left queued or running and wait for its scheduler to exit."""
    q = JobQueue(data_dir)
    for j in sorted(q.jobs(), key=lambda j: j.state.status != "queued"):
        if j.state.status in ACTIVE:
            q.cancel(j.id)
    deadline = time.time() + timeout
    while scheduler_running(data_dir) and time.time() < deadline:
        time.sleep(0.1)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A base (F16), two quants, and a file that is not a GGUF model."""
    d = tmp_path / "models"
    write_model(d / "tiny-F16.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16, embd_type=F16),
                n_vocab=N_VOCAB, file_type=1)
    write_model(d / "tiny-Q4_K_M.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q4_K),
                n_vocab=N_VOCAB, file_type=15)
    write_model(d / "tiny-Q8_0.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=Q8_0, embd_type=Q8_0),
                n_vocab=N_VOCAB, file_type=7)
    (d / "notes.gguf").write_bytes(b"GGUF\x03\x00")
    return d


def add_model(folder: Path, name: str, n_vocab: int = N_VOCAB, weight_type: int = Q4_K) -> Path:
    return write_model(folder / name, tensors=dense_tensors(n_vocab=n_vocab, weight_type=weight_type),
                       n_vocab=n_vocab, file_type=15)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    return p


@pytest.fixture
def fake_tools(tmp_path: Path) -> LlamaTools:
    bin_dir = tmp_path / "llama-bin"
    bin_dir.mkdir()
    script = bin_dir / "llama-perplexity"
    script.write_text(WRAPPER.format(python=sys.executable, fixtures=str(FIXTURES), fake=str(FAKE)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return LlamaTools(perplexity=script, quantize=None, bench=None, bin_dir=bin_dir, source="test")


class NoGpu:
    """A GPU sampler for a machine without NVIDIA: the same snapshot NVML gives there."""

    permanently_unavailable = True

    def sample(self) -> Any:
        from qtui.core.gpu import GpuSnapshot

        return GpuSnapshot(False, "no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found "
                                  "(no NVIDIA driver installed)", None, (), 0.0)


@pytest.fixture
def app_factory(qtui_dirs: dict[str, Path], corpus: Path, fake_tools: LlamaTools) -> Callable[..., QtuiApp]:
    """make_app with the test dirs, the fake llama and a corpus in the config."""
    from qtui.core.config import Config, save_config

    def make(dirs: list[Path] | None = None, *, cfg: Config | None = None, **kw: Any) -> QtuiApp:
        save_config(cfg or Config(corpus=str(corpus), ctx=128))
        kw.setdefault("tools", fake_tools)
        kw.setdefault("gpu", NoGpu())
        kw.setdefault("poll_interval", 0.1)
        kw.setdefault("theme_dirs", [])
        return make_app(dirs=dirs or [], data_dir=qtui_dirs["data"], **kw)

    return make


async def ready(pilot: Any) -> None:
    """Wait for the first frame's follow-ups (polling started, plot mounted), as a person would."""
    app = pilot.app
    await wait_for(pilot, lambda: bool(app._pumps) and bool(app.screen.query("Scatter")), 15, "the app to be ready")


async def wait_for(pilot: Any, cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until cond() holds (runs are real processes: no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


async def notified(pilot: Any, text: str, timeout: float = 10.0) -> None:
    """Wait for a notification containing text (notify() posts a message: it lands later)."""
    app = pilot.app
    await wait_for(pilot, lambda: any(text in str(n.message) for n in app._notifications), timeout,
                   f"a notification saying {text!r}")


def rich_text(renderable: Any, width: int = 100) -> str:
    """A Rich renderable as plain text."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def screen_text(app: QtuiApp) -> str:
    """What the terminal shows right now, as plain text (what a person would read)."""
    from rich.console import Console

    w, h = app.size
    console = Console(width=w, height=h, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def statics_text(node: Any) -> str:
    """The text of every Static under a node (a dialog's words, unwrapped)."""
    from textual.widgets import Static

    return "\n".join(str(w.render()) for w in node.query(Static))
