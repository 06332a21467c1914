"""The real llama.cpp build: it is found, it runs, the tiny model loads, a base + KLD cycle completes.

Runs in seconds on the tiny model; marked `integration` by conftest.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from qtui.core.llama import assets
from qtui.core.llama import build as setup_llama
from qtui.core.llama.tools import STAMP_NAME, TOOL_NAMES, child_env, probe
from tests.helpers import unavailable

CTX = 128


def run_ppl(tools, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tools.perplexity_argv() + list(args), cwd=cwd, env=child_env(tools),
                          capture_output=True, text=True, errors="replace", timeout=300)


def mean_kld(stdout: str) -> float:
    m = re.search(r"^Mean\s+KLD:\s+(\S+)", stdout, re.M)
    assert m, stdout[-2000:]
    return float(m.group(1))


@pytest.fixture(scope="module")
def tiny_base(llama_tools, tiny_model, corpus, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    proc = run_ppl(llama_tools, "-m", str(tiny_model), "-f", str(corpus), "-c", str(CTX), "--chunks", "8",
                   "--kl-divergence-base", "base.kld", cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d / "base.kld"


def test_probe_real_build(llama_tools):
    info = probe(llama_tools)
    assert info.fork == "llama.cpp"
    assert info.version and info.build_number is not None
    assert {"--kl-divergence", "--kl-divergence-base", "-c", "-b", "--chunks"} <= info.flags
    assert probe(llama_tools) is info


def test_qtui_build_is_stamped_and_setup_is_idempotent(llama_tools):
    if not llama_tools.source.startswith("cache:"):
        unavailable(f"the llama.cpp tools come from {llama_tools.source}, not from a `qtui setup-llama` build")
    root = llama_tools.bin_dir.parent.parent
    stamp = json.loads((root / STAMP_NAME).read_text())
    assert stamp["backend"] in ("cpu", "cuda")
    assert [Path(b).name for b in stamp["binaries"]] == list(TOOL_NAMES)
    # A second setup of the same version and backend returns the finished build at once.
    bins = setup_llama.setup_llama(stamp["version"], cuda=stamp["backend"] == "cuda",
                                   cuda_arch=stamp.get("arch"))
    assert bins == llama_tools.bin_dir


def test_base_file_has_the_documented_size(tiny_base, tiny_model):
    import gguf

    n_vocab = len(gguf.GGUFReader(str(tiny_model)).fields["tokenizer.ggml.tokens"].data)
    raw = tiny_base.read_bytes()
    assert raw[:8] == b"_logits_"
    n_ctx, nv_file, n_chunk = (int.from_bytes(raw[o:o + 4], "little") for o in (8, 12, 16))
    assert (n_ctx, nv_file, n_chunk) == (CTX, n_vocab, 8)
    nv = 2 * ((n_vocab + 1) // 2) + 4
    assert len(raw) == 20 + 4 * n_chunk * n_ctx + 2 * n_chunk * (n_ctx - 1 - n_ctx // 2) * nv


def _patched(tools) -> bool:
    stamp = tools.bin_dir.parent.parent / STAMP_NAME
    return stamp.is_file() and setup_llama.LOG_PATCH in json.loads(stamp.read_text()).get("patches", [])


def test_kld_cycle_completes_and_orders_quants(llama_tools, tiny_base, tiny_ladder):
    klds, lost = {}, 0
    for qtype in ("Q8_0", "Q4_0", "Q2_K"):
        # Unpatched recent builds can exit 0 before writing their last lines (see setup_llama);
        # a lost tail is retried here and counted.
        for _ in range(4):
            proc = run_ppl(llama_tools, "-m", str(tiny_ladder[qtype]), "--kl-divergence-base", str(tiny_base),
                           "--kl-divergence", "-c", str(CTX), cwd=tiny_base.parent)
            assert proc.returncode == 0, proc.stderr[-3000:]
            if "Same top p:" in proc.stdout:
                break
            lost += 1
        assert "Same top p:" in proc.stdout, f"{qtype}: no final block in 4 runs\n{proc.stdout[-2000:]}"
        klds[qtype] = mean_kld(proc.stdout)
    # Fewer bits, further from the base: true even for random weights.
    assert 0 <= klds["Q8_0"] < klds["Q4_0"], klds
    if _patched(llama_tools):
        assert lost == 0, "a qtui-patched build lost the end of its output"


def test_ladder_reuses_outputs(llama_tools, tiny_model, tiny_ladder):
    before = {q: p.stat().st_mtime_ns for q, p in tiny_ladder.items()}
    again = assets.ladder(llama_tools, tiny_model, list(tiny_ladder), tiny_ladder["Q8_0"].parent)
    assert [p.stat().st_mtime_ns for p in again] == list(before.values())


def test_tiny_model_tokenizes_and_runs_plain_perplexity(llama_tools, tiny_model, corpus, tmp_path):
    proc = run_ppl(llama_tools, "-m", str(tiny_model), "-f", str(corpus), "-c", str(CTX), "--chunks", "4",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"\[4\]\d+\.\d+", proc.stdout), proc.stdout[-1000:]
    assert "Final estimate: PPL" in proc.stdout + proc.stderr


def test_a_bench_shaped_model_loads_and_runs(llama_tools, corpus, tmp_path):
    """bench_scale.py's --dim/--layers/--ff models take another weight draw (float32, for
    speed) than the pinned tiny model: llama.cpp must still load and run them as that shape."""
    import gguf

    path = assets.tiny_model(tmp_path, corpus=corpus, dim=192, n_layer=3, n_ff=512)
    assert path.name.startswith("rand-d192-l3-")
    fields = gguf.GGUFReader(str(path)).fields
    assert [int(fields[k].parts[-1][0]) for k in ("llama.embedding_length", "llama.block_count",
                                                   "llama.feed_forward_length")] == [192, 3, 512]
    proc = run_ppl(llama_tools, "-m", str(path), "-f", str(corpus), "-c", str(CTX), "--chunks", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Final estimate: PPL" in proc.stdout + proc.stderr
