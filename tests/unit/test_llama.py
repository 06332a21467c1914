"""find_tools search order, child env sanitising, probing, and setup_llama's stamp logic.

Fake builds are folders of small shell scripts, so these tests run without llama.cpp.
Parsing of real --version/--help output uses the recorded fixtures in tests/fixtures/llama.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from qtui.core.llama import build as setup_llama
from qtui.core.llama import tools as llama
from qtui.core.llama.tools import LlamaNotFound, LlamaTools, child_env, find_tools, parse_help_flags, probe

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama"

NEW_VERSION = 'echo "version: 0.5.0-dev (build 7890, commit abc1234)" >&2; echo "built with cc for x86_64" >&2'
HELP = r"""----- common params -----

-h,    --help, --usage                  print usage and exit
--version                               show version and build info
-m,    --model FNAME                    model path to load (see --hf-repo)
-fa,   --flash-attn [on|off|auto]       set Flash Attention use ('on', 'off', or 'auto', default: 'auto')
--no-log-prefix                         Disable prefix in log messages
"""


def make_tool(path: Path, body: str = NEW_VERSION, help_text: str = HELP) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        f'echo run >> "{path}.calls"\n'
        'case "$1" in\n'
        f"  --version) {body};;\n"
        f"  --help) cat <<'EOF'\n{help_text}EOF\n;;\n"
        "esac\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_build(d: Path, tools: tuple[str, ...] = llama.TOOL_NAMES) -> Path:
    for t in tools:
        make_tool(d / t)
    return d


def stamped_build(root: Path, name: str, version: str, built_at: str = "2026-01-01T00:00:00") -> Path:
    d = root / "llama" / name
    make_build(d / "build" / "bin")
    (d / llama.STAMP_NAME).write_text(json.dumps({"version": version, "built_at": built_at,
                                                  "recipe": setup_llama.RECIPE}))
    return d


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty cache dir and a PATH without any llama-perplexity."""
    monkeypatch.setenv("QTUI_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}:/usr/bin:/bin")
    llama._probe_cache.clear()
    return tmp_path


def test_llama_bin_dir_wins_over_everything(env, monkeypatch):
    flag = make_build(env / "flag")
    conf = make_build(env / "conf")
    onpath = make_build(env / "onpath")
    monkeypatch.setenv("PATH", f"{onpath}:/usr/bin:/bin")
    stamped_build(env / "cache", "0.3.36-cpu", "0.3.36")
    t = find_tools(llama_bin=flag, config_bin=conf)
    assert t.source == "--llama-bin" and t.bin_dir == flag
    assert t.quantize == flag / "llama-quantize" and t.bench == flag / "llama-bench"


def test_llama_bin_may_name_the_file_or_a_build_root(env):
    d = make_build(env / "root" / "build" / "bin")
    assert find_tools(llama_bin=env / "root").perplexity == d / "llama-perplexity"
    assert find_tools(llama_bin=str(d / "llama-perplexity")).bin_dir == d


def test_renamed_binary_is_trusted(env):
    p = make_tool(env / "ik" / "ik-perplexity")
    t = find_tools(llama_bin=p)
    assert t.perplexity == p and t.quantize is None


def test_explicit_location_missing_is_an_error_not_a_fallthrough(env, monkeypatch):
    onpath = make_build(env / "onpath")
    monkeypatch.setenv("PATH", f"{onpath}:/usr/bin:/bin")
    with pytest.raises(LlamaNotFound) as e:
        find_tools(llama_bin=env / "nope")
    msg = str(e.value)
    assert str(env / "nope") in msg and "qtui setup-llama" in msg and "--llama-bin" in msg
    with pytest.raises(LlamaNotFound, match="config"):
        find_tools(config_bin=env / "nope")


def test_config_then_path_then_cache(env, monkeypatch):
    conf = make_build(env / "conf")
    onpath = make_build(env / "onpath")
    cached = stamped_build(env / "cache", "0.3.36-cpu", "0.3.36")
    monkeypatch.setenv("PATH", f"{onpath}:/usr/bin:/bin")
    assert find_tools(config_bin=conf).source == "config llama_bin"
    assert find_tools().source == "PATH"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    t = find_tools()
    assert t.source == "cache:0.3.36-cpu" and t.bin_dir == cached / "build" / "bin"


def test_cache_prefers_newest_version_and_ignores_unstamped(env):
    stamped_build(env / "cache", "0.3.16-cpu", "0.3.16", built_at="2027-01-01T00:00:00")
    stamped_build(env / "cache", "0.3.36-cpu", "0.3.36", built_at="2026-01-01T00:00:00")
    make_build(env / "cache" / "llama" / "0.4.0-cpu" / "build" / "bin")  # killed: no stamp
    assert find_tools().source == "cache:0.3.36-cpu"


def test_nothing_found_lists_what_was_searched(env):
    with pytest.raises(LlamaNotFound) as e:
        find_tools()
    msg = str(e.value)
    assert "PATH" in msg and str(env / "cache" / "llama") in msg and "qtui setup-llama" in msg


def test_single_llama_binary_uses_subcommands(env):
    make_tool(env / "multi" / "llama")
    t = find_tools(llama_bin=env / "multi")
    assert t.multi and t.perplexity_argv() == [str(env / "multi" / "llama"), "perplexity"]
    assert t.quantize_argv() == [str(env / "multi" / "llama"), "quantize"]


def test_child_env_drops_llama_args_and_sets_library_path(env):
    d = make_build(env / "b")
    t = find_tools(llama_bin=d)
    base = {"LLAMA_ARG_CTX_SIZE": "4096", "LLAMA_ARG_N_GPU_LAYERS": "0", "HOME": "/h",
            "LD_LIBRARY_PATH": "/opt/lib", "LLAMA_CACHE": "/keep", "LLAMA_LOG_PREFIX": "1"}
    out = child_env(t, base)
    assert not any(k.startswith(("LLAMA_ARG_", "LLAMA_LOG_")) for k in out)
    assert out["HOME"] == "/h" and out["LLAMA_CACHE"] == "/keep"
    assert out["LD_LIBRARY_PATH"].split(os.pathsep) == [str(d), "/opt/lib"]
    assert out["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "LLAMA_ARG_CTX_SIZE" in base  # the caller's dict is not modified


def test_probe_parses_version_and_flags_and_caches(env):
    d = make_build(env / "b")
    t = find_tools(llama_bin=d)
    info = probe(t)
    assert (info.fork, info.version, info.commit, info.build_number) == (
        "llama.cpp", "0.5.0-dev", "abc1234", 7890)
    assert {"--no-log-prefix", "-fa", "--flash-attn", "-m", "--model", "--version"} <= info.flags
    assert "--hf-repo" not in info.flags  # only in a description
    calls = (d / "llama-perplexity.calls").read_text().count("run")
    assert probe(t) is info
    assert (d / "llama-perplexity.calls").read_text().count("run") == calls


def calls(tool: Path) -> int:
    f = tool.with_name(tool.name + ".calls")
    return f.read_text().count("run") if f.is_file() else 0


def test_probe_is_remembered_on_disk_for_the_next_process(env):
    """A CUDA build loads hundreds of MB of CUDA libraries at every start, even for --version: a
    later `qtui run` (a new process, so an empty in-memory cache) must not start it again to
    learn the same thing."""
    t = find_tools(llama_bin=make_build(env / "b"))
    first = probe(t)
    assert calls(t.perplexity) == 2  # --version (which also proves it starts) and --help, once each
    llama._probe_cache.clear()  # what a new process starts with
    assert probe(t) == first
    assert calls(t.perplexity) == 2
    stored = json.loads((env / "cache" / "llama" / "probes.json").read_text())
    assert [e["version"] for e in stored.values()] == ["0.5.0-dev"]


def test_starting_a_run_asks_the_build_once_and_later_runs_not_at_all(env):
    """load_tools is what `qtui run` and the app call before queueing: it used to start the
    binary four times (two checks, --version, --help)."""
    from qtui.core.showdown.service import load_tools

    d = make_build(env / "b")
    tools, info = load_tools(d, None)
    assert (info.version, calls(tools.perplexity)) == ("0.5.0-dev", 2)
    llama._probe_cache.clear()
    assert load_tools(d, None)[1] == info
    assert calls(tools.perplexity) == 2


def test_a_changed_build_is_asked_again(env):
    d = make_build(env / "b")
    t = find_tools(llama_bin=d)
    assert probe(t).version == "0.5.0-dev"
    llama._probe_cache.clear()
    make_tool(d / "llama-perplexity", 'echo "version: 6235 (deadbee)" >&2')  # rebuilt in place
    assert (probe(t).version, calls(t.perplexity)) == ("6235", 4)
    llama._probe_cache.clear()
    lib = d / "libllama.so"  # the same binary with a rebuilt library beside it
    lib.write_bytes(b"new")
    probe(t)
    assert calls(t.perplexity) == 6


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"KEY": {"fork": 1}}', '{"KEY": {"flags": "x"}}'])
def test_a_damaged_probe_file_is_probed_past(env, damage):
    t = find_tools(llama_bin=make_build(env / "b"))
    memo = env / "cache" / "llama" / "probes.json"
    memo.parent.mkdir(parents=True)
    memo.write_text(damage.replace("KEY", llama.probecache.key(t.perplexity)))
    assert probe(t).version == "0.5.0-dev"
    assert calls(t.perplexity) == 2
    assert json.loads(memo.read_text())  # and rewritten whole


def test_a_probe_file_that_cannot_be_written_costs_nothing_but_time(env):
    (env / "cache").mkdir()
    (env / "cache" / "llama").write_text("a file where the folder should be")
    t = find_tools(llama_bin=make_build(env / "b"))
    assert probe(t).version == "0.5.0-dev"


def test_the_probe_file_keeps_the_newest_builds(env, monkeypatch):
    monkeypatch.setattr(llama.probecache, "MAX_ENTRIES", 2)
    tools = [find_tools(llama_bin=make_build(env / f"b{i}")) for i in range(3)]
    for t in tools:
        probe(t)
    stored = json.loads((env / "cache" / "llama" / "probes.json").read_text())
    keys = [llama.probecache.key(t.perplexity) for t in tools]
    assert sorted(stored) == sorted(keys[1:])


def test_a_binary_gone_since_it_was_found_is_named_in_words(env):
    t = find_tools(llama_bin=make_build(env / "b"))
    t.perplexity.unlink()
    with pytest.raises(LlamaNotFound, match="llama-perplexity: No such file or directory"):
        probe(t)


def test_a_binary_that_cannot_start_is_not_remembered(env):
    p = env / "broken" / "llama-perplexity"
    p.parent.mkdir()
    p.write_text("#!/bin/sh\necho 'error while loading shared libraries: libggml.so' >&2\nexit 127\n")
    p.chmod(0o755)
    with pytest.raises(LlamaNotFound, match="libggml.so"):
        probe(find_tools(llama_bin=p))
    assert not (env / "cache" / "llama" / "probes.json").exists()


def test_probe_detects_ik_and_old_version_format(env):
    ik_help = HELP + "-rtr,   --run-time-repack                 repack tensors\n"
    p = make_tool(env / "ik" / "llama-perplexity", 'echo "version: 3862 (8337e4cd)" >&2', ik_help)
    info = probe(find_tools(llama_bin=p))
    assert (info.fork, info.version, info.commit, info.build_number) == (
        "ik_llama.cpp", "3862", "8337e4cd", 3862)


def test_check_runnable_shows_the_loader_message(env):
    p = env / "broken" / "llama-perplexity"
    p.parent.mkdir()
    p.write_text("#!/bin/sh\necho 'llama-perplexity: error while loading shared libraries: "
                 "libllama.so: cannot open shared object file: No such file or directory' >&2\nexit 127\n")
    p.chmod(0o755)
    with pytest.raises(LlamaNotFound, match="libllama.so: cannot open shared object"):
        llama.check_runnable(find_tools(llama_bin=p))


@pytest.mark.parametrize("build", ["b0336", "b0316"])
def test_real_version_and_help_parse(build):
    d = FIXTURES / build
    assert (d / "version.json").is_file(), f"{build}'s --version is not recorded in {d}"
    meta = json.loads((d / "version.json").read_text())
    text = (d / "version.out").read_text() + (d / "version.err").read_text()
    version, commit, number = llama.parse_version(text)
    assert version == meta["version"] and commit == meta["commit"] and number is not None
    flags = parse_help_flags((d / "help.out").read_text() + (d / "help.err").read_text())
    assert {"--kl-divergence", "--kl-divergence-base", "-c", "--chunks", "-b", "-ngl"} <= flags
    assert ("--no-log-prefix" in flags) == meta["has_log_prefix_flag"]


# --- setup_llama: stamps, adoption, clear errors (no compiler is run) ---

def test_setup_is_idempotent_with_a_stamp(env, monkeypatch):
    d = stamped_build(env / "cache", "0.3.36-cpu", "0.3.36")
    monkeypatch.setattr(setup_llama.shutil, "which", lambda name: None)  # cmake would be needed
    assert setup_llama.setup_llama("0.3.36", cuda=False) == d / "build" / "bin"


def test_setup_adopts_a_finished_tree_without_stamp(env):
    d = env / "cache" / "llama" / "0.3.36-cpu"
    make_build(d / "build" / "bin")
    (d / "cmake.log").write_text("done 0\n")
    stages: list[str] = []
    bins = setup_llama.setup_llama("0.3.36", cuda=False, progress=lambda s, f: stages.append(s))
    stamp = json.loads((d / llama.STAMP_NAME).read_text())
    assert bins == d / "build" / "bin" and stamp["adopted"] is True
    assert stamp["version"] == "0.3.36" and stamp["backend"] == "cpu" and stamp["log"].endswith("cmake.log")
    assert stages and set(stages) <= set(setup_llama.STAGES)


def test_killed_build_is_redone_and_missing_cmake_is_explained(env, monkeypatch):
    d = env / "cache" / "llama" / "0.3.36-cpu"
    make_build(d / "build" / "bin", tools=("llama-perplexity",))  # killed before quantize/bench
    monkeypatch.setattr(setup_llama.shutil, "which", lambda name: None)
    with pytest.raises(setup_llama.SetupError, match="apt-get install cmake"):
        setup_llama.setup_llama("0.3.36", cuda=False)
    assert not (d / llama.STAMP_NAME).exists()


def test_outdated_recipe_is_rebuilt(env, monkeypatch):
    d = stamped_build(env / "cache", "0.3.36-cpu", "0.3.36")
    stamp = json.loads((d / llama.STAMP_NAME).read_text())
    (d / llama.STAMP_NAME).write_text(json.dumps({**stamp, "recipe": setup_llama.RECIPE - 1}))
    (d / "src").mkdir()
    (d / "src" / "CMakeLists.txt").write_text("")
    (d / "src" / "common").mkdir()
    (d / "src" / "common" / "log.cpp").write_text(LEAKY_LOG)
    monkeypatch.setattr(setup_llama.shutil, "which", lambda name: None)
    with pytest.raises(setup_llama.SetupError, match="cmake"):
        setup_llama.setup_llama("0.3.36", cuda=False)  # patched source -> must rebuild
    assert setup_llama.LOG_PATCH in setup_llama.apply_patches(d / "src")[0]


LEAKY_LOG = """#include <cstdlib>
struct common_log * common_log_main() {
    static struct common_log * log;
    static std::once_flag    init_flag;
    std::call_once(init_flag, [&]() {
        log = new common_log;
        log->set_colors(tty_can_use_colors());
    });
    return log;
}
"""
STATIC_LOG = """struct common_log * common_log_main() {
    static struct common_log log;
    return &log;
}
"""


def test_log_patch_applies_once_and_only_to_the_leaky_logger(tmp_path):
    src = tmp_path / "src"
    (src / "common").mkdir(parents=True)
    log_cpp = src / "common" / "log.cpp"
    log_cpp.write_text(LEAKY_LOG)
    assert setup_llama.apply_patches(src) == ([setup_llama.LOG_PATCH], True)
    patched = log_cpp.read_text()
    assert "std::atexit([]() { log->pause(); });" in patched and "#if !defined(_WIN32)" in patched
    assert setup_llama.apply_patches(src) == ([setup_llama.LOG_PATCH], False)
    assert log_cpp.read_text() == patched
    log_cpp.write_text(STATIC_LOG)
    assert setup_llama.apply_patches(src) == ([], False)
    assert log_cpp.read_text() == STATIC_LOG


def test_cuda_without_nvcc_is_explained(env, monkeypatch):
    monkeypatch.setattr(setup_llama, "_find_nvcc", lambda: None)
    with pytest.raises(setup_llama.SetupError, match="nvcc"):
        setup_llama.setup_llama("0.3.36", cuda=True, cuda_arch="90")


def test_cuda_auto_needs_a_visible_gpu(env, monkeypatch):
    monkeypatch.setattr(setup_llama, "_find_nvcc", lambda: "/usr/bin/nvcc")
    monkeypatch.setattr(setup_llama, "_gpu_visible", lambda: False)
    d = stamped_build(env / "cache", "0.3.36-cpu", "0.3.36")
    assert setup_llama.setup_llama("0.3.36") == d / "build" / "bin"


def test_cuda_build_dir_and_args():
    assert setup_llama.build_dir("0.3.36", "cuda", "90").name == "0.3.36-cuda90"
    args = setup_llama.cmake_args(True, "90")
    assert "-DGGML_CUDA=ON" in args and "-DCMAKE_CUDA_ARCHITECTURES=90" in args
    assert "-DLLAMA_CURL=OFF" in setup_llama.cmake_args(False, None)


@pytest.mark.parametrize("line,frac", [
    ("[ 44%] Building CXX object src/CMakeFiles/llama.dir/llama.cpp.o", 0.44),
    ("[100%] Built target llama-perplexity", 1.0),
    ("[12/48] Building CXX object x.o", 0.25),
    ("-- Configuring done", None),
])
def test_build_fraction(line, frac):
    assert setup_llama.build_fraction(line) == frac


def test_tools_dataclass_argv_without_optional_tools():
    t = LlamaTools(Path("/x/llama-perplexity"), None, None, Path("/x"), "PATH")
    assert t.perplexity_argv() == ["/x/llama-perplexity"]
    assert t.quantize_argv() is None and t.bench_argv() is None
