"""The tensor-mix diff: two files with one label, where their bytes differ group by group."""

import json
import subprocess
import sys
from pathlib import Path

from qtui.core.gguf.ggml_types import type_name
from qtui.core.gguf.mixdiff import group_summary, mix_diff
from qtui.core.gguf.model_info import model_info
from tests.unit.gguf_builders import Q4_K, Q6_K, Q8_0, dense_tensors, write_model

FILE_TYPE_Q4_K_M = 15


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two "Q4_K_M" files: B keeps attention in Q8_0, A has it in Q4_K like its FFN."""
    a = write_model(tmp_path / "a-Q4_K_M.gguf", file_type=FILE_TYPE_Q4_K_M)
    b_tensors = [(n, d, Q8_0 if ".attn_" in n and len(d) == 2 else t) for n, d, t in dense_tensors()]
    b = write_model(tmp_path / "b-Q4_K_M.gguf", tensors=b_tensors, file_type=FILE_TYPE_Q4_K_M)
    return a, b


def test_only_the_changed_group_differs(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    d = mix_diff(model_info(a), model_info(b))
    assert not d.identical
    assert [g.group for g in d.differing] == ["attention"]
    att = next(g for g in d.groups if g.group == "attention")
    by_type = {t.type_name: t for t in att.types}
    q4, q8 = type_name(Q4_K), type_name(Q8_0)
    assert by_type[q4].a_tensors == 8 and by_type[q4].b_tensors == 0
    assert by_type[q8].a_tensors == 0 and by_type[q8].b_tensors == 8
    assert att.b_bytes > att.a_bytes  # Q8_0 is bigger than Q4_K
    assert f"{q8} only in B" in group_summary(att) and f"{q4} only in A" in group_summary(att)
    ffn = next(g for g in d.groups if g.group == "ffn_dense")
    assert not ffn.differs and group_summary(ffn) == "same"
    # groups neither file has (experts) are not listed
    assert "ffn_expert_down" not in {g.group for g in d.groups}


def test_a_file_against_itself_is_identical(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path)
    info = model_info(a)
    d = mix_diff(info, info)
    assert d.identical and d.groups
    assert all(group_summary(g) == "same" for g in d.groups)


def test_same_types_different_counts(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a.gguf", tensors=dense_tensors(embd_type=Q6_K))
    b = write_model(tmp_path / "b.gguf",
                    tensors=[(n, d, Q6_K if n == "output.weight" else t)
                             for n, d, t in dense_tensors(embd_type=Q4_K)])
    d = mix_diff(model_info(a), model_info(b))
    assert [g.group for g in d.differing] == ["embed_output"]
    summary = group_summary(d.differing[0])
    assert f"{type_name(Q6_K)} -" in summary and "2→1 tensors" in summary
    assert f"{type_name(Q4_K)} only in B" in summary


def _qtui(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "QTUI_DATA_DIR": str(tmp / "d"), "QTUI_CONFIG_DIR": str(tmp / "c"),
           "QTUI_CACHE_DIR": str(tmp / "k"), "HOME": str(tmp), "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "qtui.cli", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=env)


def test_cli_diff_table_and_json(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    out = _qtui("diff", str(a), str(b), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "a-Q4_K_M.gguf" in out.stdout and "b-Q4_K_M.gguf" in out.stdout
    assert f"{type_name(Q8_0)} only in B" in out.stdout and "1 group differs" in out.stdout
    js = _qtui("diff", str(a), str(b), "--json", tmp=tmp_path)
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["identical"] is False
    assert [g["group"] for g in data["groups"] if g["differs"]] == ["attention"]
    same = _qtui("diff", str(a), str(a), tmp=tmp_path)
    assert same.returncode == 0 and "Same tensor types" in same.stdout


def test_cli_diff_bad_paths_are_one_line(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all, just some bytes here")
    for bad in (tmp_path / "nope.gguf", junk, tmp_path):
        out = _qtui("diff", str(a), str(bad), tmp=tmp_path)
        assert out.returncode == 2, (bad, out.stderr)
        assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.startswith("error:") and str(bad.name) in out.stderr
