"""The per-token dump patch of qtui's llama.cpp builds: applied once, only where it fits."""

from __future__ import annotations

from qtui.core.llama import build
from qtui.core.llama.tokendump import DUMP_ENV, HEADER, MAGIC, RECORD, VERSION


def _tree(tmp_path, anchors):
    src = tmp_path / "src"
    path = src / build.TOKENS_FILE
    path.parent.mkdir(parents=True)
    path.write_text("// before\n" + "// between\n".join(anchors) + "// after\n")
    return src, path


def test_patch_applies_once_where_every_anchor_is_found(tmp_path):
    src, path = _tree(tmp_path, [a for a, _ in build._TOKENS_EDITS])
    assert build.apply_patches(src) == ([build.TOKENS_PATCH], True)
    text = path.read_text()
    assert text.count(f'getenv("{DUMP_ENV}")') == 1
    assert text.count("fflush(qtui_dump.f)") == 2  # after the header, and after every pass
    assert build.apply_patches(src) == ([build.TOKENS_PATCH], False)
    assert path.read_text() == text
    assert not list(path.parent.glob("*.qtui-partial"))


def test_a_source_that_differs_is_left_alone(tmp_path):
    # e.g. ik_llama.cpp or another llama.cpp version: built unpatched, its runs have no dump
    anchors = [a for a, _ in build._TOKENS_EDITS]
    src, path = _tree(tmp_path, anchors[:2] + anchors[3:])
    before = path.read_text()
    assert build.apply_patches(src) == ([], False)
    assert path.read_text() == before
    src2, path2 = _tree(tmp_path / "twice", anchors + anchors[2:3])  # ambiguous: never guess
    assert build.apply_patches(src2) == ([], False)


def test_the_cpp_writes_the_layout_the_reader_expects():
    code = "".join(new for _, new in build._TOKENS_EDITS)
    assert MAGIC == b"QTUIKLD\0" and HEADER.size == 8 + 4 * 4 and RECORD.size == 3 * 4
    assert 'fwrite("QTUIKLD", 1, 8,' in code  # 7 characters + the terminating NUL = MAGIC
    assert f"{{{VERSION}u, uint32_t(n_ctx), uint32_t(n_ctx - 1 - n_ctx/2), uint32_t(n_chunk)}}" in code
    assert "fwrite(qtui_hdr, sizeof(uint32_t), 4," in code and "fwrite(qtui_rec, sizeof(uint32_t), 3," in code
    assert code.index("fwrite(kld_ptr") < code.index("fwrite(p_diff_ptr")
    assert build.RECIPE >= 3
