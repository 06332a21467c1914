"""Finding llama.cpp's tools, learning what a build can do, and the environment to run it in.

Search order for llama-perplexity: --llama-bin, the config's llama_bin, PATH, then qtui's own
builds (`qtui setup-llama`). An explicit location that does not hold the tool is an error rather
than a silent fall-through: the user asked for that build.

Newer llama.cpp also ships a single `llama` binary whose `perplexity` / `quantize` / `bench`
subcommands replace the separate tools; LlamaTools.multi marks that case and the *_argv()
methods give the right command prefix either way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtui.core.llama import probecache
from qtui.core.paths import llama_cache_dir

TOOL_NAMES = ("llama-perplexity", "llama-quantize", "llama-bench")
STAMP_NAME = "qtui-build.json"
PROBE_TIMEOUT_S = 20.0
_EXE = ".exe" if sys.platform == "win32" else ""


class LlamaNotFound(Exception):
    """llama-perplexity is missing or cannot start; the message says where we looked."""


@dataclass(frozen=True)
class LlamaTools:
    perplexity: Path
    quantize: Path | None
    bench: Path | None
    bin_dir: Path
    source: str  # "--llama-bin", "config", "PATH" or "cache:<build dir name>"
    multi: bool = False  # True: `perplexity` is the single `llama` binary with subcommands

    def perplexity_argv(self) -> list[str]:
        return [str(self.perplexity), "perplexity"] if self.multi else [str(self.perplexity)]

    def quantize_argv(self) -> list[str] | None:
        if self.quantize is None:
            return None
        return [str(self.quantize), "quantize"] if self.multi else [str(self.quantize)]

    def bench_argv(self) -> list[str] | None:
        if self.bench is None:
            return None
        return [str(self.bench), "bench"] if self.multi else [str(self.bench)]


@dataclass(frozen=True)
class BuildInfo:
    fork: str  # "llama.cpp" or "ik_llama.cpp"
    version: str | None  # as printed: "0.5.0-dev" (new builds) or the build number "6235" (older)
    commit: str | None  # None when the build did not know it ("unknown": built outside git)
    flags: frozenset[str]  # option names listed by --help, e.g. "--no-log-prefix"
    build_number: int | None = None  # llama.cpp's bNNNN; 0 when built outside git


def _is_exe(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _tools_in_dir(d: Path, source: str) -> LlamaTools | None:
    ppl = d / f"llama-perplexity{_EXE}"
    if _is_exe(ppl):
        q, b = d / f"llama-quantize{_EXE}", d / f"llama-bench{_EXE}"
        return LlamaTools(ppl, q if _is_exe(q) else None, b if _is_exe(b) else None, d, source)
    multi = d / f"llama{_EXE}"
    if _is_exe(multi):
        return LlamaTools(multi, multi, multi, d, source, multi=True)
    return None


def _from_explicit(value: str | Path, source: str, searched: list[str]) -> LlamaTools:
    p = Path(value).expanduser()
    if p.is_dir():
        for d in (p, p / "bin", p / "build" / "bin"):
            searched.append(f"{source}: {d}")
            tools = _tools_in_dir(d, source)
            if tools is not None:
                return tools
    elif _is_exe(p):
        searched.append(f"{source}: {p}")
        if p.name == f"llama{_EXE}":
            return LlamaTools(p, p, p, p.parent, source, multi=True)
        tools = _tools_in_dir(p.parent, source)
        if tools is not None and tools.perplexity == p:
            return tools
        # A renamed llama-perplexity (e.g. a fork's copy): trust the user's choice.
        return LlamaTools(p, None, None, p.parent, source)
    else:
        searched.append(f"{source}: {p} (does not exist or is not executable)")
    raise LlamaNotFound(_not_found_message(searched, stop=source))


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def cached_builds() -> list[tuple[Path, dict[str, Any]]]:
    """qtui's finished builds (those with a stamp and their binary), newest version first."""
    found: list[tuple[Path, dict[str, Any]]] = []
    root = llama_cache_dir()
    if not root.is_dir():
        return found
    for stamp in root.glob(f"*/{STAMP_NAME}"):
        try:
            data = json.loads(stamp.read_text())
        except (OSError, ValueError):
            continue
        if _is_exe(stamp.parent / "build" / "bin" / f"llama-perplexity{_EXE}"):
            found.append((stamp.parent, data))
    found.sort(key=lambda t: (_version_key(str(t[1].get("version", ""))), str(t[1].get("built_at", ""))),
               reverse=True)
    return found


def _not_found_message(searched: list[str], stop: str | None = None) -> str:
    where = "\n".join(f"  - {s}" for s in searched)
    head = (f"llama-perplexity not found at the location given by {stop}" if stop
            else "llama-perplexity not found")
    return (f"{head}. Searched:\n{where}\n"
            "Build one with `qtui setup-llama`, or point at an existing build with "
            "`--llama-bin DIR` (a folder holding llama-perplexity, or the file itself).")


def find_tools(llama_bin: str | Path | None = None, config_bin: str | Path | None = None) -> LlamaTools:
    searched: list[str] = []
    if llama_bin:
        return _from_explicit(llama_bin, "--llama-bin", searched)
    if config_bin:
        return _from_explicit(config_bin, "config llama_bin", searched)
    on_path = shutil.which("llama-perplexity")
    searched.append("PATH: llama-perplexity")
    if on_path:
        p = Path(on_path)
        tools = _tools_in_dir(p.parent, "PATH")
        return tools if tools is not None else LlamaTools(p, None, None, p.parent, "PATH")
    builds = cached_builds()
    searched.append(f"qtui builds: {llama_cache_dir()}/*/build/bin (with {STAMP_NAME})")
    for build_dir, _ in builds:
        tools = _tools_in_dir(build_dir / "build" / "bin", f"cache:{build_dir.name}")
        if tools is not None:
            return tools
    raise LlamaNotFound(_not_found_message(searched))


def child_env(tools: LlamaTools, base_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a llama.cpp child process.

    LLAMA_ARG_* variables are dropped because llama.cpp reads them as defaults for its flags:
    a forgotten export would silently change every measurement. Older builds (mid-2025) read
    LLAMA_LOG_{VERBOSITY,PREFIX,TIMESTAMPS,COLORS} instead, which change the output we parse.
    """
    env = dict(os.environ if base_env is None else base_env)
    for key in [k for k in env if k.startswith(("LLAMA_ARG_", "LLAMA_LOG_"))]:
        del env[key]
    # Builds keep libllama/libggml next to the binaries (or in ../lib when installed).
    lib_dirs = [str(tools.bin_dir)]
    if (tools.bin_dir.parent / "lib").is_dir():
        lib_dirs.append(str(tools.bin_dir.parent / "lib"))
    var = "PATH" if sys.platform == "win32" else (
        "DYLD_LIBRARY_PATH" if sys.platform == "darwin" else "LD_LIBRARY_PATH")
    old = env.get(var)
    env[var] = os.pathsep.join(lib_dirs + ([old] if old else []))
    # nvidia-smi numbers GPUs by PCI bus; CUDA's default order differs. Make indexes agree.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def _run(tools: LlamaTools, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tools.perplexity_argv() + args, env=child_env(tools), capture_output=True,
                          text=True, errors="replace", timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)


def _version(tools: LlamaTools) -> subprocess.CompletedProcess[str]:
    """`--version`, which also proves the binary starts (its libraries load)."""
    try:
        proc = _run(tools, ["--version"])
    except subprocess.TimeoutExpired:
        raise LlamaNotFound(f"{tools.perplexity} --version did not finish in {PROBE_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise LlamaNotFound(f"{tools.perplexity} cannot be started: {exc}") from None
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()[-5:]
        raise LlamaNotFound(f"{tools.perplexity} cannot run (exit {proc.returncode}):\n" + "\n".join(msg))
    return proc


def check_runnable(tools: LlamaTools) -> None:
    """Raise LlamaNotFound with the loader's own words if the binary cannot start."""
    _version(tools)


# New: "version: 0.5.0-dev (build 7890, commit abc1234)"; older: "version: 6235 (abc1234)";
# ik_llama.cpp and old logs: "build = 3 (abc1234)".
_NEW_VERSION_RE = re.compile(r"version:\s*(\S+)\s*\(build\s+(\d+),\s*commit\s+(\w+)\)")
_OLD_VERSION_RES = (
    re.compile(r"version:\s*(\S+)\s*\((\w+)\)"),
    re.compile(r"build\s*=\s*(\S+)\s*\((\w+)\)"),
)
_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
# Options only ik_llama.cpp has; mainline never grew these names.
_IK_FLAGS = frozenset({"--run-time-repack", "-rtr", "--fused-moe", "-fmoe", "-mla", "--mla-use"})


def parse_version(text: str) -> tuple[str | None, str | None, int | None]:
    """(version, commit, build number) from `--version` output; None where not printed."""
    m = _NEW_VERSION_RE.search(text)
    if m:
        version, number, commit = m.groups()
        return version, None if commit == "unknown" else commit, int(number)
    for rx in _OLD_VERSION_RES:
        m = rx.search(text)
        if m:
            version, commit = m.groups()
            number = int(version) if version.isdigit() else None
            return version, None if commit == "unknown" else commit, number
    return None, None, None


def parse_help_flags(text: str) -> frozenset[str]:
    """Option names from --help: only the option column of lines that start with a dash."""
    flags: set[str] = set()
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("-"):
            continue
        # The description starts after a run of spaces following the last option/value token.
        column = re.split(r"\s{2,}(?=[^-\s\[<])", s, maxsplit=1)[0]
        flags.update(_FLAG_RE.findall(column))
    return frozenset(flags)


_probe_cache: dict[str, BuildInfo] = {}


def _help_text(tools: LlamaTools) -> str:
    try:
        hlp = _run(tools, ["--help"])
    except (subprocess.TimeoutExpired, OSError):
        return ""
    return hlp.stdout + "\n" + hlp.stderr


def probe(tools: LlamaTools) -> BuildInfo:
    """What build this is and which options it has; raises LlamaNotFound if it cannot start.

    Remembered per build (the binary and its libraries, by size and time) in this process and
    on disk, so only the first run after a build or an update starts the binary to ask. Then
    `--version` and `--help` run side by side: a CUDA build spends its start-up loading CUDA.
    """
    try:
        key = probecache.key(tools.perplexity)
    except OSError as exc:
        raise LlamaNotFound(f"{tools.perplexity}: {exc.strerror or exc}") from None
    if key in _probe_cache:
        return _probe_cache[key]
    memo = probecache.file_path(llama_cache_dir())
    known = probecache.load(memo, key)
    info = _from_json(known) if known else None
    if info is None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            help_text = pool.submit(_help_text, tools)
            ver = _version(tools)
            info = _parse(ver.stdout + "\n" + ver.stderr, help_text.result())
        probecache.store(memo, key, _to_json(info))
    _probe_cache[key] = info
    return info


def _parse(version_text: str, help_text: str) -> BuildInfo:
    version, commit, number = parse_version(version_text)
    flags = parse_help_flags(help_text)
    fork = "ik_llama.cpp" if flags & _IK_FLAGS else "llama.cpp"
    return BuildInfo(fork=fork, version=version, commit=commit, flags=flags, build_number=number)


def _to_json(info: BuildInfo) -> dict[str, Any]:
    return {"fork": info.fork, "version": info.version, "commit": info.commit, "flags": sorted(info.flags),
            "build_number": info.build_number}


def _from_json(d: dict[str, Any]) -> BuildInfo | None:
    """None for an entry this qtui cannot read (another version's, or damaged): probe again."""
    try:
        flags = d["flags"]
        if not isinstance(flags, list) or not isinstance(d["fork"], str):
            return None
        number = d.get("build_number")
        return BuildInfo(fork=d["fork"], version=d.get("version"), commit=d.get("commit"),
                         flags=frozenset(map(str, flags)), build_number=int(number) if number is not None else None)
    except (KeyError, TypeError, ValueError):
        return None
