"""scan(): recursion, symlink loops, duplicates, split sets, and reasons for skipped files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from qtui.core.gguf.discovery import Skipped, scan
from tests.unit.gguf_builders import dense_tensors, write_model


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    p = write_model(tmp_path_factory.mktemp("m") / "m.gguf", n_vocab=256,
                    tensors=dense_tensors(n_layers=1, n_vocab=256), file_type=15)
    return p.read_bytes()


def _model(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _reasons(skipped: list[Skipped], root: Path) -> dict[str, str]:
    return {str(s.path.relative_to(root)): s.reason for s in skipped}


def test_scan_tree(tmp_path: Path, model_bytes: bytes) -> None:
    root = tmp_path / "models"
    a = _model(root / "a" / "one-Q4_K_M.gguf", model_bytes)
    _model(root / "b" / "deep" / "er" / "two.GGUF", model_bytes)
    (root / "a" / "notes.txt").write_text("not a model")
    (root / "a" / "x.gguf.partial").write_bytes(model_bytes[:100])  # download in progress
    # symlink loop, a second path to the same folder, and an alias of a file
    os.symlink(root, root / "a" / "loop")
    os.symlink(root / "b", root / "b-again")
    os.symlink(a, root / "alias.gguf")
    # split set, folded into one model
    write_model(root / "split" / "big.gguf", tensors=dense_tensors(n_layers=2), split_max_tensors=8)
    seen: list[Path] = []
    res = scan([root], progress=seen.append)
    names = [str(m.path.relative_to(root)) for m in res.models]
    # each file once, under its real path rather than the links that also reach it
    assert names == ["a/one-Q4_K_M.gguf", "b/deep/er/two.GGUF", "split/big-00001-of-00003.gguf"]
    assert len(res.models[2].shards) == 3
    assert res.skipped == []
    assert seen == [m.path for m in res.models]
    assert all(m.quant == "Q4_K_M" for m in res.models[:2])


def test_bad_files_have_reasons(tmp_path: Path, model_bytes: bytes) -> None:
    root = tmp_path
    _model(root / "good.gguf", model_bytes)
    _model(root / "cut.gguf", model_bytes[: len(model_bytes) // 2])
    (root / "empty.gguf").write_bytes(b"")
    (root / "lfs.gguf").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    v1 = bytearray(model_bytes)
    v1[4] = 1
    _model(root / "old.gguf", bytes(v1))
    os.symlink(root / "nowhere.gguf", root / "dangling.gguf")
    first = write_model(root / "s" / "set.gguf", tensors=dense_tensors(n_layers=2),
                        split_max_tensors=8)
    os.unlink(first.with_name("set-00002-of-00003.gguf"))
    orphan = write_model(root / "o" / "orph.gguf", tensors=dense_tensors(n_layers=2),
                         split_max_tensors=8)
    os.unlink(orphan)
    res = scan([root, root / "does-not-exist"])
    assert [m.path.name for m in res.models] == ["good.gguf"]
    r = _reasons(res.skipped, root)
    assert set(r) == {"cut.gguf", "empty.gguf", "lfs.gguf", "old.gguf", "dangling.gguf",
                      "s/set-00001-of-00003.gguf", "o/orph-00002-of-00003.gguf",
                      "o/orph-00003-of-00003.gguf", "does-not-exist"}
    assert "truncated" in r["cut.gguf"]
    assert r["empty.gguf"] == "file is empty"
    assert "not a GGUF file" in r["lfs.gguf"]
    assert "version 1" in r["old.gguf"]
    assert r["dangling.gguf"] == "broken symlink"
    assert "set-00002-of-00003.gguf is missing" in r["s/set-00001-of-00003.gguf"]
    assert "orph-00001-of-00003.gguf is missing" in r["o/orph-00002-of-00003.gguf"]
    assert r["does-not-exist"] == "does not exist"
    assert [s.path for s in res.skipped] == sorted((s.path for s in res.skipped), key=str)


def test_max_depth(tmp_path: Path, model_bytes: bytes) -> None:
    _model(tmp_path / "0.gguf", model_bytes)
    _model(tmp_path / "d1" / "1.gguf", model_bytes)
    _model(tmp_path / "d1" / "d2" / "2.gguf", model_bytes)
    assert [m.path.name for m in scan([tmp_path], max_depth=0).models] == ["0.gguf"]
    assert len(scan([tmp_path], max_depth=1).models) == 2
    assert len(scan([tmp_path]).models) == 3


def test_link_only_path_is_kept(tmp_path: Path, model_bytes: bytes) -> None:
    _model(tmp_path / "elsewhere" / "m.gguf", model_bytes)
    (tmp_path / "scan").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "scan" / "linked")
    res = scan([tmp_path / "scan"])
    assert [m.path for m in res.models] == [tmp_path / "scan" / "linked" / "m.gguf"]


def test_same_folder_twice_and_single_file(tmp_path: Path, model_bytes: bytes) -> None:
    p = _model(tmp_path / "m.gguf", model_bytes)
    res = scan([tmp_path, tmp_path, p])
    assert len(res.models) == 1 and res.skipped == []


def test_mutual_symlink_loop(tmp_path: Path, model_bytes: bytes) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    os.symlink(tmp_path / "y", tmp_path / "x" / "to-y")
    os.symlink(tmp_path / "x", tmp_path / "y" / "to-x")
    os.symlink(tmp_path / "self", tmp_path / "self")  # a link to itself: ELOOP on stat
    _model(tmp_path / "y" / "m.gguf", model_bytes)
    res = scan([tmp_path], max_depth=50)
    assert len(res.models) == 1


def _deny_as_if_not_root(monkeypatch: pytest.MonkeyPatch, *denied: Path) -> None:
    """Root reads through chmod 0, so make the OS calls fail as they would for anyone else."""
    import builtins

    import qtui.core.gguf.discovery as discovery

    real_open, real_scandir = builtins.open, os.scandir

    def guard(path: object) -> None:
        if Path(str(path)) in denied:
            raise PermissionError(13, "Permission denied", str(path))

    def fake_open(file, *a, **kw):  # type: ignore[no-untyped-def]
        guard(file)
        return real_open(file, *a, **kw)

    def fake_scandir(path=".", *a, **kw):  # type: ignore[no-untyped-def]
        guard(path)
        return real_scandir(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(discovery.os, "scandir", fake_scandir)


def test_unreadable(tmp_path: Path, model_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _model(tmp_path / "locked.gguf", model_bytes)
    d = tmp_path / "closed"
    d.mkdir()
    p.chmod(0)
    d.chmod(0)
    if os.geteuid() == 0:
        _deny_as_if_not_root(monkeypatch, p, d)
    try:
        r = _reasons(scan([tmp_path]).skipped, tmp_path)
    finally:
        d.chmod(0o755)
        p.chmod(0o644)
    assert "Permission denied" in r["locked.gguf"] or "permission" in r["locked.gguf"]
    assert r["closed"] == "cannot open folder: permission denied"


def test_not_a_model_is_skipped(tmp_path: Path) -> None:
    write_model(tmp_path / "imatrix.gguf", extra={"general.type": "imatrix"})
    res = scan([tmp_path])
    assert res.models == []
    assert "imatrix" in res.skipped[0].reason


def test_copy_is_not_a_duplicate(tmp_path: Path, model_bytes: bytes) -> None:
    a = _model(tmp_path / "a.gguf", model_bytes)
    shutil.copy(a, tmp_path / "b.gguf")  # a real copy is a different file: both listed
    assert len(scan([tmp_path]).models) == 2
