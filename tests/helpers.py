"""Helpers shared by the test suites (nothing here ships with qtui).

- unavailable(): the one rule for a missing prerequisite (a llama.cpp build, a test extra):
  under CI (CI set) the test FAILS, elsewhere it is skipped with the reason. Never a silent skip.
- wait_until(): poll a condition with a deadline instead of sleeping a fixed time.
- write_synthetic_base_file() / cut_base_file(): base log-prob files for the base-file tests.
"""

from __future__ import annotations

import importlib
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from qtui.core.llama.basefile import (
    BaseFileError,
    BaseFileHeader,
    cut_window,
    expected_size,
    read_base_header,
)

PathLike = str | os.PathLike[str]
_BLOCK = 8 << 20
# The layout written out here rather than taken from qtui, so a wrong constant there is caught.
MAGIC = b"_logits_"
_HEADER = struct.Struct("<8siii")  # magic, n_ctx, n_vocab, n_chunk
HEADER_SIZE = _HEADER.size


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> NoReturn:
    """A prerequisite is missing: fail under CI (it must be there), skip with the reason elsewhere."""
    if in_ci():
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name: str, hint: str = "pip install -e '.[test]'") -> ModuleType:
    """importorskip that fails under CI: the test extras are part of the CI install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"the `{name}` package is not installed ({hint}): {exc}")


def wait_until(cond: Callable[[], object], timeout: float = 20.0, what: str = "the condition",
               interval: float = 0.05) -> None:
    """Return as soon as cond() is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# -- base log-prob files ---------------------------------------------------------------------
def write_synthetic_base_file(path: PathLike, n_ctx: int, n_vocab: int, n_chunk: int,
                              truncate_to: int | None = None) -> None:
    """A structurally valid base file with patterned contents (token i = i % n_vocab,
    record bytes = their position mod 251). Every byte is position-dependent so a cut that
    copies the wrong range is caught."""
    size = expected_size(n_ctx, n_vocab, n_chunk)
    limit = size if truncate_to is None else truncate_to
    with open(path, "wb") as fh:
        fh.write(_HEADER.pack(MAGIC, n_ctx, n_vocab, n_chunk)[:limit])
        tokens = struct.pack(f"<{n_chunk * n_ctx}i", *(i % n_vocab for i in range(n_chunk * n_ctx)))
        fh.write(tokens[: max(0, limit - HEADER_SIZE)])
        start = HEADER_SIZE + len(tokens)
        pattern = bytes(range(251)) * (_BLOCK // 251 + 1)
        pos = start
        while pos < limit:
            off = (pos - start) % 251
            n = min(_BLOCK, limit - pos)
            fh.write(pattern[off: off + n])
            pos += n


def cut_base_file(src: PathLike, dst: PathLike, n_chunks: int,
                  progress: Callable[[int, int], None] | None = None) -> BaseFileHeader:
    """Write a valid base file made of the first n_chunks chunks of src (qtui's cut_window on
    [0, n_chunks)): the tests make smaller files this way to see what llama-perplexity does
    with them."""
    head = read_base_header(src)
    if not 1 <= n_chunks <= head.n_chunk:
        raise BaseFileError(f"cannot cut {n_chunks} chunks from {src}: it has {head.n_chunk} (1..{head.n_chunk})")
    return cut_window(src, dst, 0, n_chunks, progress)


ROOT = Path(__file__).resolve().parents[1]


def run_qtui(*args: str, tmp: Path, data: Path | None = None, columns: str | None = None,
             path: str = "/usr/bin:/bin", cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`qtui ARGS` as a separate process with this tree's qtui, its data, config and cache dirs
    under `tmp` (nothing of the user's is read or written)."""
    env = {"PATH": path, "QTUI_DATA_DIR": str(data or tmp / "d"), "QTUI_CONFIG_DIR": str(tmp / "c"),
           "QTUI_CACHE_DIR": str(tmp / "k"), "HOME": str(tmp), "PYTHONPATH": str(ROOT)}
    if columns is not None:
        env["COLUMNS"] = columns  # wide: one message is one line, whatever the path lengths
    return subprocess.run([sys.executable, "-m", "qtui.cli", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env, cwd=cwd)


def flag(argv: list[str], name: str) -> str | None:
    """The value after the last `name` in argv (as llama.cpp reads it), or None."""
    found = None
    for a, b in zip(argv, argv[1:]):
        if a == name:
            found = b
    return found


def one_line_error(out: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one line a refused command prints (exit `code`, no traceback)."""
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]
