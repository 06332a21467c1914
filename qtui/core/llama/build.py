"""Build llama.cpp's tools from the llama-cpp-python source distribution on PyPI.

PyPI is often the only registry a locked-down box can reach, and the sdist vendors the full
llama.cpp tree. Layout, one folder per version and backend under llama_cache_dir():

    <version>-cpu/ or <version>-cuda<arch>/
        src/             the sdist's vendor/llama.cpp
        build/           cmake build tree; binaries in build/bin
        build.log        full configure + build log
        qtui-build.json  stamp, written last: its presence means "built and verified"

CMake build trees hold absolute paths (CMakeCache, rpaths), so a build cannot be made in a
temporary folder and renamed; instead the stamp is written only after verification, and a
killed build is simply resumed (cmake rebuilds incrementally).

Two patches are applied to the source (see apply_patches). Recent llama.cpp (e.g. the one in
llama-cpp-python 0.3.36) leaks its log singleton on purpose (llama.cpp issue 22142), so a
process can exit before the log thread has written the last lines -- the KLD final statistics. On a busy 2-core box 13 of 20 unpatched
runs lost them. qtui's builds drain the logger at exit. And `kl_divergence()` writes the
per-token KLD and delta-p values of every chunk to the file that QTUI_KLD_DUMP names (format in
tokendump.py): exact statistics over any set of chunks, instead of per-chunk values derived from
rounded running means. Each patch is applied only where its anchors are found verbatim; a tree
they do not fit is built unpatched (its runs simply have no per-token data).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qtui.core.llama.tools import STAMP_NAME, TOOL_NAMES, LlamaTools, check_runnable
from qtui.core.paths import downloads_dir, llama_cache_dir

STAGES = ("download", "unpack", "configure", "build", "verify")
DEFAULT_VERSION = "0.3.36"
BASE_CMAKE_ARGS = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                   "-DLLAMA_BUILD_SERVER=OFF")

Progress = Callable[[str, "float | None"], None]

# Bump when the recipe (cmake args, patches) changes: older stamps are rebuilt incrementally.
RECIPE = 3
LOG_PATCH = "log-drain-at-exit"
_LOG_LEAK = "        log = new common_log;\n"
_LOG_FIX = (
    "        log = new common_log;\n"
    "#if !defined(_WIN32)\n"
    "        // qtui patch: drain the leaked logger at exit, or the last lines can be lost\n"
    "        std::atexit([]() { log->pause(); });\n"
    "#endif\n"
)


TOKENS_PATCH = "per-token-dump"
TOKENS_FILE = Path("tools") / "perplexity" / "perplexity.cpp"
# (anchor, replacement) pairs for tools/perplexity/perplexity.cpp, applied in order. With the
# environment variable set, kl_divergence() appends each chunk's per-token KLD and delta-p values
# (and its same-top count) to the named file as soon as the chunk is computed, flushed per pass,
# so a run killed midway still leaves every finished pass. Format: qtui/core/llama/tokendump.py.
_TOKENS_EDITS = (
    ("#include <cstdio>\n", "#include <cstdio>\n#include <cstdlib> // qtui patch: getenv\n"),
    ("    auto p_diff_ptr = p_diff_values.data();\n",
     "    auto p_diff_ptr = p_diff_values.data();\n"
     "\n"
     "    // qtui patch: per-token dump; header \"QTUIKLD\\0\", uint32 version, n_ctx, tokens per chunk,\n"
     "    // n_chunk; then per chunk: uint32 chunk, n, n_same_top, float32 kld[n], float32 dp[n]\n"
     "    struct qtui_file { FILE * f = nullptr; ~qtui_file() { if (f) { fclose(f); } } } qtui_dump;\n"
     "    if (const char * qtui_path = getenv(\"QTUI_KLD_DUMP\")) {\n"
     "        qtui_dump.f = fopen(qtui_path, \"wb\");\n"
     "        if (qtui_dump.f) {\n"
     "            const uint32_t qtui_hdr[4] = {1u, uint32_t(n_ctx), uint32_t(n_ctx - 1 - n_ctx/2), uint32_t(n_chunk)};\n"
     "            fwrite(\"QTUIKLD\", 1, 8, qtui_dump.f);\n"
     "            fwrite(qtui_hdr, sizeof(uint32_t), 4, qtui_dump.f);\n"
     "            fflush(qtui_dump.f);\n"
     "        } else {\n"
     "            LOG_WRN(\"%s: qtui: per-token dump not written, cannot create %s\\n\", __func__, qtui_path);\n"
     "        }\n"
     "    }\n"),
    ("            process_logits(n_vocab, all_logits, tokens.data() + start + seq*n_ctx + first, n_ctx - 1 - first,\n"
     "                    workers, log_probs_uint16, kld, kld_ptr, p_diff_ptr);\n",
     "            const size_t qtui_same_before = kld.n_same_top; // qtui patch\n"
     "            process_logits(n_vocab, all_logits, tokens.data() + start + seq*n_ctx + first, n_ctx - 1 - first,\n"
     "                    workers, log_probs_uint16, kld, kld_ptr, p_diff_ptr);\n"
     "            if (qtui_dump.f) {\n"
     "                const uint32_t qtui_n = uint32_t(n_ctx - 1 - first);\n"
     "                const uint32_t qtui_rec[3] = {uint32_t(i + seq), qtui_n, uint32_t(kld.n_same_top - qtui_same_before)};\n"
     "                fwrite(qtui_rec, sizeof(uint32_t), 3, qtui_dump.f);\n"
     "                fwrite(kld_ptr, sizeof(float), qtui_n, qtui_dump.f);\n"
     "                fwrite(p_diff_ptr, sizeof(float), qtui_n, qtui_dump.f);\n"
     "            }\n"),
    ("        logits.clear();\n    }\n\n    LOG(\"\\n\");\n\n    if (kld.count < 100) return;",
     "        if (qtui_dump.f) {\n"
     "            fflush(qtui_dump.f); // qtui patch: a killed run keeps every finished pass\n"
     "        }\n"
     "        logits.clear();\n    }\n\n    LOG(\"\\n\");\n\n    if (kld.count < 100) return;"),
)


class SetupError(Exception):
    """The build could not be made; the message says why and what to install."""


def build_dir(version: str, backend: str = "cpu", arch: str | None = None) -> Path:
    name = f"{version}-cpu" if backend == "cpu" else f"{version}-cuda{arch or ''}"
    return llama_cache_dir() / name


def read_stamp(d: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((d / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    bins = d / "build" / "bin"
    if not all((bins / t).is_file() for t in TOOL_NAMES):
        return None  # stamp of a build whose binaries were deleted
    return data if isinstance(data, dict) else None


def _gpu_visible() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
            if out.returncode == 0 and "GPU " in out.stdout:
                return True
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return bool(pynvml.nvmlDeviceGetCount() > 0)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing, no driver, no device: all mean "no GPU"
        return False


def _find_nvcc() -> str | None:
    return shutil.which("nvcc") or next(
        (str(p) for p in (Path("/usr/local/cuda/bin/nvcc"),) if p.is_file()), None)


def detect_cuda_arch() -> str | None:
    """CMAKE_CUDA_ARCHITECTURES for the visible GPUs ("90", or "86;90" for a mixed box)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    caps = sorted({line.strip().replace(".", "") for line in out.stdout.splitlines() if line.strip()})
    caps = [c for c in caps if c.isdigit()]
    return ";".join(caps) or None


def cmake_args(cuda: bool, arch: str | None, nvcc: str | None = None) -> list[str]:
    args = list(BASE_CMAKE_ARGS)
    if cuda:
        args += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={arch}"]
        if nvcc:
            args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    return args


def _sdist(version: str, log: Path, progress: Progress) -> Path:
    name = f"llama_cpp_python-{version}.tar.gz"
    target = downloads_dir() / name
    if target.is_file():
        return target
    progress("download", None)
    downloads_dir().mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            f"llama-cpp-python=={version}", "-d", str(downloads_dir())]
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not target.is_file():
        raise SetupError(f"downloading llama-cpp-python=={version} from PyPI failed (pip exit {rc}); "
                         f"see {log}. You can also put {name} into {downloads_dir()} yourself.")
    return target


def _unpack(sdist: Path, src: Path, progress: Progress) -> None:
    """Extract only vendor/llama.cpp, into src.partial first so a killed unpack is redone."""
    tmp = src.with_name(src.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = tar.getmembers()
        marker = "/vendor/llama.cpp/"
        wanted = [m for m in members if marker in m.name and not m.name.endswith(marker)]
        if not wanted:
            raise SetupError(f"{sdist} holds no vendor/llama.cpp: not a llama-cpp-python sdist?")
        for i, m in enumerate(wanted):
            m.name = m.name.split(marker, 1)[1]
            if hasattr(tarfile, "data_filter"):
                tar.extract(m, tmp, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extract(m, tmp)
            if i % 200 == 0:
                progress("unpack", i / len(wanted))
    shutil.rmtree(src, ignore_errors=True)
    os.replace(tmp, src)
    progress("unpack", 1.0)


_PCT_RE = re.compile(r"^\[\s*(\d+)%\]")
_NINJA_RE = re.compile(r"^\[(\d+)/(\d+)\]")


def build_fraction(line: str) -> float | None:
    """Progress from a cmake build line: make's `[ 44%]` or ninja's `[12/345]`."""
    m = _PCT_RE.match(line)
    if m:
        return min(int(m.group(1)), 100) / 100
    m = _NINJA_RE.match(line)
    if m and int(m.group(2)) > 0:
        return int(m.group(1)) / int(m.group(2))
    return None


def _stream(argv: list[str], log: Path, stage: str, progress: Progress, cwd: Path) -> tuple[int, list[str]]:
    tail: list[str] = []
    best = 0.0
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
                                text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            tail = (tail + [line.rstrip()])[-30:]
            frac = build_fraction(line) if stage == "build" else None
            # make restarts its percentages per target; keep the bar monotonic.
            if frac is not None and frac > best:
                best = frac
                progress(stage, best)
        rc = proc.wait()
    return rc, tail


def _explain_failure(stage: str, tail: list[str], log: Path) -> str:
    text = "\n".join(tail)
    hint = ""
    if "CMAKE_CXX_COMPILER" in text or "CMAKE_C_COMPILER" in text:
        hint = "No C/C++ compiler: install one (Debian/Ubuntu: `apt-get install build-essential`).\n"
    elif "CUDA" in text and ("not find" in text or "No CMAKE_CUDA_COMPILER" in text):
        hint = "CUDA toolkit not usable: install it (Debian/Ubuntu: `apt-get install nvidia-cuda-toolkit`).\n"
    return f"{stage} failed. {hint}Last lines:\n{text[-3000:]}\nFull log: {log}"


@contextlib.contextmanager
def _lock(d: Path) -> Iterator[None]:
    """One build per folder at a time (parallel CI jobs, two terminals)."""
    d.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(d.with_name(d.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _adopted_cmake_args(d: Path) -> list[str] | None:
    """The -D options of an existing build tree (made by hand or by an older qtui)."""
    cache = d / "build" / "CMakeCache.txt"
    if not cache.is_file():
        return None
    wanted = {a[2:].split("=", 1)[0] for a in BASE_CMAKE_ARGS} | {"GGML_CUDA", "CMAKE_CUDA_ARCHITECTURES"}
    out = []
    for line in cache.read_text(errors="replace").splitlines():
        m = re.match(r"^([A-Z_]+):[A-Z]+=(.*)$", line)
        if m and m.group(1) in wanted:
            out.append(f"-D{m.group(1)}={m.group(2)}")
    return sorted(out)


def apply_patches(src: Path) -> tuple[list[str], bool]:
    """Apply qtui's source patches; returns (patches in effect, whether a file changed now)."""
    patches: list[str] = []
    changed = False
    for name, patch in ((LOG_PATCH, _patch_log), (TOKENS_PATCH, _patch_tokens)):
        state = patch(src)
        if state is not None:
            patches.append(name)
            changed = changed or state
    return patches, changed


def _write_source(path: Path, text: str) -> None:
    # Replaced whole: a killed qtui never leaves a half-patched source behind.
    tmp = path.with_name(path.name + ".qtui-partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def _patch_log(src: Path) -> bool | None:
    """None: not applicable; False: applied before; True: applied now."""
    log_cpp = src / "common" / "log.cpp"
    try:
        text = log_cpp.read_text()
    except OSError:
        return None
    if _LOG_FIX in text:
        return False
    if _LOG_LEAK in text and "std::call_once" in text:
        _write_source(log_cpp, text.replace(_LOG_LEAK, _LOG_FIX, 1))
        return True
    return None  # older builds keep a static logger that is destroyed (drained) at exit


def _patch_tokens(src: Path) -> bool | None:
    """The per-token dump in kl_divergence(); None where the code differs from what it expects."""
    path = src / TOKENS_FILE
    try:
        text = path.read_text()
    except OSError:
        return None
    if _TOKENS_EDITS[1][1] in text:
        return False
    if any(text.count(anchor) != 1 for anchor, _ in _TOKENS_EDITS):
        return None
    for anchor, new in _TOKENS_EDITS:
        text = text.replace(anchor, new, 1)
    _write_source(path, text)
    return True


_PATCHED_FILES = {LOG_PATCH: Path("common") / "log.cpp", TOKENS_PATCH: TOKENS_FILE}


def _binaries_older_than(d: Path, *src_files: Path) -> bool:
    try:
        newest_src = max((f.stat().st_mtime for f in src_files), default=0.0)
        return any((d / "build" / "bin" / t).stat().st_mtime < newest_src for t in TOOL_NAMES)
    except OSError:
        return True


def verify(d: Path, source: str = "setup") -> LlamaTools:
    bins = d / "build" / "bin"
    missing = [t for t in TOOL_NAMES if not (bins / t).is_file()]
    if missing:
        raise SetupError(f"build in {d} lacks {', '.join(missing)}")
    tools = LlamaTools(bins / TOOL_NAMES[0], bins / TOOL_NAMES[1], bins / TOOL_NAMES[2], bins, source)
    try:
        check_runnable(tools)
    except Exception as exc:
        raise SetupError(f"the freshly built llama-perplexity does not run: {exc}") from exc
    return tools


def write_stamp(d: Path, version: str, backend: str, arch: str | None, args: list[str] | None,
                log: Path, adopted: bool = False, patches: list[str] | None = None) -> dict[str, Any]:
    data = {
        "version": version, "backend": backend, "arch": arch, "cmake_args": args,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "binaries": [str(d / "build" / "bin" / t) for t in TOOL_NAMES],
        "log": str(log), "adopted": adopted, "patches": patches or [], "recipe": RECIPE,
    }
    tmp = d / (STAMP_NAME + ".partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, d / STAMP_NAME)
    return data


def setup_llama(version: str = DEFAULT_VERSION, cuda: bool | None = None, cuda_arch: str | None = None,
                jobs: int | None = None, force: bool = False,
                progress: Progress | None = None) -> Path:
    """Build (or find the finished build of) llama-perplexity/quantize/bench; returns the bin dir.

    cuda=None means: CUDA if nvcc is installed AND an NVIDIA GPU is visible.
    """
    report: Progress = progress or (lambda stage, frac: None)
    nvcc = _find_nvcc()
    if cuda is None:
        cuda = bool(nvcc) and _gpu_visible()
    if cuda:
        if not nvcc:
            raise SetupError("CUDA build asked for but nvcc was not found: install the CUDA toolkit "
                             "(Debian/Ubuntu: `apt-get install nvidia-cuda-toolkit`) or add it to PATH.")
        cuda_arch = cuda_arch or detect_cuda_arch()
        if not cuda_arch:
            raise SetupError("cannot tell the GPU's compute capability (nvidia-smi gave none); "
                             "pass the CUDA architecture, e.g. 90 for H100, 89 for RTX 40xx, 86 for RTX 30xx.")
    backend = "cuda" if cuda else "cpu"
    arch = cuda_arch.replace(";", "-") if cuda and cuda_arch else None
    d = build_dir(version, backend, arch)
    bins = d / "build" / "bin"

    def current() -> bool:
        stamp = read_stamp(d)
        return stamp is not None and stamp.get("recipe") == RECIPE

    if not force and current():
        return bins
    with _lock(d):
        if not force and current():  # another process finished it meanwhile
            return bins
        log = d / "build.log"
        src = d / "src"
        patches, changed = apply_patches(src) if (src / "CMakeLists.txt").is_file() else ([], False)
        # A complete, up-to-date tree without a current stamp (built by hand, or by a qtui
        # killed while verifying): verify and adopt it instead of spending minutes rebuilding.
        fresh = not changed and not (patches and _binaries_older_than(d, *(src / _PATCHED_FILES[p] for p in patches)))
        if not force and fresh and all((bins / t).is_file() for t in TOOL_NAMES):
            report("verify", None)
            try:
                verify(d)
            except SetupError:
                pass  # fall through to a normal (incremental) build
            else:
                old_log = next((p for p in (log, d / "cmake.log") if p.is_file()), log)
                write_stamp(d, version, backend, arch, _adopted_cmake_args(d), old_log, adopted=True,
                            patches=patches)
                report("verify", 1.0)
                return bins
        cmake = shutil.which("cmake")
        if not cmake:
            raise SetupError("cmake not found: install it (Debian/Ubuntu: `apt-get install cmake`, "
                             "or `pip install cmake`).")
        if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
            raise SetupError("no C++ compiler found: install one "
                             "(Debian/Ubuntu: `apt-get install build-essential`).")
        d.mkdir(parents=True, exist_ok=True)
        if force:
            shutil.rmtree(d / "build", ignore_errors=True)
            (d / STAMP_NAME).unlink(missing_ok=True)
        log.write_text(f"# qtui setup-llama {version} {backend} {arch or ''} {time.ctime()}\n")
        if force or not (src / "CMakeLists.txt").is_file():
            _unpack(_sdist(version, log, report), src, report)
        patches, _ = apply_patches(src)
        with log.open("a") as fh:
            fh.write(f"# qtui patches: {', '.join(patches) or 'none'}\n")
        args = cmake_args(cuda, cuda_arch, nvcc)
        report("configure", None)
        rc, tail = _stream([cmake, "-S", str(src), "-B", str(d / "build"), *args], log, "configure", report, d)
        if rc != 0:
            raise SetupError(_explain_failure("cmake configure", tail, log))
        report("build", 0.0)
        rc, tail = _stream([cmake, "--build", str(d / "build"), "--config", "Release",
                            "-j", str(jobs or os.cpu_count() or 2), "--target", *TOOL_NAMES],
                           log, "build", report, d)
        if rc != 0:
            raise SetupError(_explain_failure("build", tail, log))
        report("build", 1.0)
        report("verify", None)
        verify(d)
        write_stamp(d, version, backend, arch, args, log, patches=patches)
        report("verify", 1.0)
    return bins

