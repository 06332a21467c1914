"""Windows of a base file: cut_window / ensure_window against a base file built by hand here
(the layout written out in the test, not taken from qtui)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from qtui.core.llama.basefile import BaseFileError, cut_window, ensure_window, read_base_header, window_path


def hand_built(path: Path, n_ctx: int, n_vocab: int, n_chunk: int) -> tuple[list[bytes], list[bytes]]:
    """A base file whose every chunk is recognisable: tokens of chunk c are c*1000 + position,
    each log-prob record of chunk c is filled with the byte (c*7 + row) % 256. Returns each
    chunk's token bytes and record bytes, as an independent oracle for a cut."""
    scored = n_ctx - 1 - n_ctx // 2
    nv = 2 * ((n_vocab + 1) // 2) + 4
    toks = [struct.pack(f"<{n_ctx}i", *(c * 1000 + i for i in range(n_ctx))) for c in range(n_chunk)]
    recs = [b"".join(bytes([(c * 7 + r) % 256]) * (2 * nv) for r in range(scored)) for c in range(n_chunk)]
    with open(path, "wb") as fh:
        fh.write(b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, n_chunk))
        fh.write(b"".join(toks))
        fh.write(b"".join(recs))
    return toks, recs


@pytest.mark.parametrize(("a", "b"), [(0, 1), (0, 6), (2, 5), (5, 6), (1, 3)])
@pytest.mark.parametrize("n_vocab", [11, 12])  # odd vocab: records padded to even
def test_window_holds_exactly_its_chunks(tmp_path: Path, a: int, b: int, n_vocab: int) -> None:
    src = tmp_path / "full.kld"
    toks, recs = hand_built(src, 16, n_vocab, 6)
    dst = tmp_path / "w.kld"
    head = cut_window(src, dst, a, b)
    assert (head.n_ctx, head.n_vocab, head.n_chunk) == (16, n_vocab, b - a)
    data = dst.read_bytes()
    assert data[:8] == b"_logits_"
    assert struct.unpack("<iii", data[8:20]) == (16, n_vocab, b - a)
    assert data[20:] == b"".join(toks[a:b]) + b"".join(recs[a:b])
    assert not (tmp_path / "w.kld.partial").exists()


def test_window_of_windows_is_the_window(tmp_path: Path) -> None:
    src = tmp_path / "full.kld"
    hand_built(src, 16, 9, 8)
    cut_window(src, tmp_path / "w2-7.kld", 2, 7)
    cut_window(tmp_path / "w2-7.kld", tmp_path / "w3-5a.kld", 1, 3)
    cut_window(src, tmp_path / "w3-5b.kld", 3, 5)
    assert (tmp_path / "w3-5a.kld").read_bytes() == (tmp_path / "w3-5b.kld").read_bytes()


@pytest.mark.parametrize(("a", "b"), [(-1, 2), (3, 3), (4, 2), (0, 7)])
def test_bad_windows_are_refused_in_words(tmp_path: Path, a: int, b: int) -> None:
    src = tmp_path / "full.kld"
    hand_built(src, 16, 9, 6)
    with pytest.raises(BaseFileError, match="cannot cut chunks"):
        cut_window(src, tmp_path / "w.kld", a, b)
    assert not list(tmp_path.glob("w.kld*"))


def test_failed_cut_leaves_no_partial(tmp_path: Path) -> None:
    src = tmp_path / "full.kld"
    hand_built(src, 16, 9, 6)

    def boom(done: int, total: int) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        cut_window(src, tmp_path / "w.kld", 1, 4, progress=boom)
    assert not list(tmp_path.glob("w.kld*"))


def test_ensure_window_caches_and_recuts_a_stale_or_damaged_one(tmp_path: Path) -> None:
    src = tmp_path / "full.kld"
    toks, recs = hand_built(src, 16, 9, 6)
    path = ensure_window(src, 2, 4)
    assert path == window_path(src, 2, 4) == tmp_path / "full.kld.w2-4.kld"
    first = path.stat()
    assert ensure_window(src, 2, 4) == path and path.stat().st_ino == first.st_ino  # reused, not cut again
    # A damaged cached window (truncated) is cut again.
    with open(path, "r+b") as fh:
        fh.truncate(first.st_size - 3)
    ensure_window(src, 2, 4)
    assert path.read_bytes()[20:] == b"".join(toks[2:4]) + b"".join(recs[2:4])
    # The full file made again after the window: the window is stale and cut again from the new one.
    toks2, recs2 = hand_built(src, 16, 9, 6)
    old = path.stat().st_mtime
    os.utime(path, (old - 100, old - 100))
    before = path.stat().st_ino
    ensure_window(src, 2, 4)
    assert path.stat().st_ino != before
    assert read_base_header(path).n_chunk == 2
