"""llama-bench for the speed job: its command line, and reading its `-o jsonl` output.

A speed job measures how fast a variant runs (prompt processing and generation, tokens per
second) with the same offload settings its KLD run used. The user's llama-perplexity arguments
are translated, not copied: llama-bench spells some options differently (`-fa 1` on older
builds where llama-perplexity takes `-fa on`; `;` between `-ot` patterns because its `,` means
"benchmark each of these values"), and it rejects llama-perplexity-only ones (-c, --chunks,
--kl-divergence...). Repeating an option in llama-bench adds a test instead of overriding the
earlier value, so an option is never passed twice.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qtui.core.llama.tools import PROBE_TIMEOUT_S, LlamaNotFound, LlamaTools, child_env

DEFAULT_SPEED_ARGS: tuple[str, ...] = ("-p", "512", "-n", "128")
"""pp512 and tg128, the two tests speed tables usually quote"""

# llama-bench's options and their long spellings, by the short name used on our command lines.
_BENCH_ALIASES: dict[str, str] = {
    "--n-prompt": "-p", "--n-gen": "-n", "--n-depth": "-d", "--repetitions": "-r", "--threads": "-t",
    "--n-gpu-layers": "-ngl", "--flash-attn": "-fa", "--n-cpu-moe": "-ncmoe", "--batch-size": "-b",
    "--ubatch-size": "-ub", "--cache-type-k": "-ctk", "--cache-type-v": "-ctv", "--split-mode": "-sm",
    "--main-gpu": "-mg", "--tensor-split": "-ts", "--device": "-dev", "--no-kv-offload": "-nkvo",
    "--override-tensor": "-ot", "--cpu-mask": "-C", "--model": "-m", "--output": "-o", "--output-err": "-oe",
}
# Set by qtui itself: the speed job must measure the variant and print jsonl.
_OURS = frozenset({"-m", "-o", "-oe"})

# llama-perplexity options the speed job carries over, by every name llama-perplexity knows them
# under -> llama-bench's name. `None` in _PPL_BARE: a flag without a value.
_PPL_TO_BENCH: dict[str, str] = {
    "-ngl": "-ngl", "--gpu-layers": "-ngl", "--n-gpu-layers": "-ngl",
    "-fa": "-fa", "--flash-attn": "-fa",
    "-t": "-t", "--threads": "-t",
    "-ncmoe": "-ncmoe", "--n-cpu-moe": "-ncmoe",
    "-cmoe": "-cmoe", "--cpu-moe": "-cmoe",
    "-ot": "-ot", "--override-tensor": "-ot",
    "-ctk": "-ctk", "--cache-type-k": "-ctk", "-ctv": "-ctv", "--cache-type-v": "-ctv",
    "-sm": "-sm", "--split-mode": "-sm", "-mg": "-mg", "--main-gpu": "-mg",
    "-ts": "-ts", "--tensor-split": "-ts", "-dev": "-dev", "--device": "-dev",
    "-nkvo": "-nkvo", "--no-kv-offload": "-nkvo",
}
_PPL_BARE = frozenset({"-cmoe", "-nkvo"})
# What only a KLD run means (its corpus, context, batch and chunks): left out without a word.
_PPL_ONLY = frozenset({"-c", "--ctx-size", "-b", "--batch-size", "-ub", "--ubatch-size", "--chunks", "-f", "--file",
                       "-m", "--model", "--kl-divergence", "--kl-divergence-base"})
_PPL_ONLY_BARE = frozenset({"--kl-divergence"})
_FA_WORDS = {"on": "on", "off": "off", "auto": "auto", "1": "on", "0": "off", "true": "on", "false": "off",
             "enabled": "on", "disabled": "off"}
ALL_LAYERS = "999"


class BenchArgsError(ValueError):
    """--speed-args that cannot work; the message is one sentence."""


@dataclass(frozen=True)
class BenchStyle:
    """How this llama-bench spells the options whose spelling changed over llama.cpp's history."""

    fa_words: bool = True
    """True: `-fa on|off|auto` (2025-09 and later); False: `-fa 0|1`"""


def bench_style(help_text: str) -> BenchStyle:
    """The style from `llama-bench --help`: its -fa line lists `<on|off|auto>` or `<0|1>`."""
    for line in help_text.splitlines():
        s = line.strip()
        if s.startswith("-fa") or s.startswith("--flash-attn"):
            return BenchStyle(fa_words="on|off" in s)
    return BenchStyle()


_style_cache: dict[tuple[str, int], BenchStyle] = {}


def probe_bench(tools: LlamaTools) -> BenchStyle:
    """Ask llama-bench how it spells its options (cached per binary and mtime). Raises
    LlamaNotFound when the build has no llama-bench or it cannot start."""
    argv = tools.bench_argv()
    if argv is None or tools.bench is None:
        raise LlamaNotFound(f"no llama-bench beside {tools.perplexity}: the speed job needs it "
                            "(rebuild with `qtui setup-llama`, or leave out --speed)")
    try:
        key = (str(tools.bench.resolve()), tools.bench.stat().st_mtime_ns)
    except OSError as exc:
        raise LlamaNotFound(f"{tools.bench}: {exc}") from None
    if key in _style_cache:
        return _style_cache[key]
    try:
        proc = subprocess.run([*argv, "--help"], env=child_env(tools), capture_output=True, text=True,
                              errors="replace", timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LlamaNotFound(f"{tools.bench} --help did not finish in {PROBE_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise LlamaNotFound(f"{tools.bench} cannot be started: {exc}") from None
    text = proc.stdout + "\n" + proc.stderr
    if "--n-prompt" not in text:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()[-1]
        raise LlamaNotFound(f"{tools.bench} does not answer --help like llama-bench (exit {proc.returncode}): {tail}")
    style = bench_style(text)
    _style_cache[key] = style
    return style


def _is_value(token: str | None) -> bool:
    """A token that is an option's value, not the next option (negative numbers are values)."""
    if token is None:
        return False
    if not token.startswith("-"):
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


@dataclass
class Translated:
    args: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """options llama-bench has no equivalent for, as the user wrote them"""


def translate_args(llama_args: Sequence[str], style: BenchStyle = BenchStyle()) -> Translated:
    """The user's llama-perplexity arguments as llama-bench takes them.

    Kept: GPU offload and placement (-ngl, -ot, -ncmoe/-cmoe, -sm, -mg, -ts, -dev, -nkvo),
    flash attention, threads and the KV cache types: what changes speed. The last value of an
    option wins, as in llama-perplexity. Left out silently: what only a KLD run means (-c, -b,
    -ub, --chunks, -f, --kl-divergence*); left out and listed in `dropped`: anything else."""
    args = list(llama_args)
    chosen: dict[str, str | None] = {}
    out = Translated()
    i = 0
    while i < len(args):
        flag = args[i]
        name, eq, inline = flag.partition("=") if flag.startswith("--") else (flag, "", "")
        nxt = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
        step = 1 if eq else 2
        bench = _PPL_TO_BENCH.get(name)
        if bench == "-fa":
            word = _FA_WORDS.get((nxt or "").lower()) if nxt is not None else None
            if word is None:  # a bare -fa (older builds): on
                word, step = "on", 1
            chosen["-fa"] = word
        elif bench in _PPL_BARE:
            chosen[bench] = None
            step = 1
        elif bench is not None:
            if not _is_value(nxt):
                out.dropped.append(flag)
                step = 1
            else:
                assert nxt is not None
                chosen[bench] = nxt
        elif name in _PPL_ONLY:
            if name in _PPL_ONLY_BARE or not _is_value(nxt):
                step = 1
        else:
            if not eq and not _is_value(nxt):
                step = 1
            out.dropped.append(" ".join(args[i:i + step]))
        i += step
    for bench, value in chosen.items():
        out.args += _bench_option(bench, value, style)
    return out


def _bench_option(bench: str, value: str | None, style: BenchStyle) -> list[str]:
    if bench == "-fa":
        if style.fa_words:
            return ["-fa", str(value)]
        return [] if value == "auto" else ["-fa", "1" if value == "on" else "0"]
    if bench == "-ngl":
        if value == "auto":
            return []  # llama-bench's own default
        return ["-ngl", ALL_LAYERS if value == "all" else str(value)]
    if bench == "-cmoe":
        return ["-ncmoe", ALL_LAYERS]
    if bench == "-nkvo":
        return ["-nkvo", "1"]
    if bench == "-t" and value is not None and value.lstrip("-").isdigit() and int(value) <= 0:
        return []  # llama-perplexity's "-t -1" = its default; llama-bench has its own
    if bench == "-ot":
        return ["-ot", str(value).replace(",", ";")]
    if bench in ("-ts", "-dev"):
        return [bench, str(value).replace(",", "/")]
    return [bench, str(value)]


def _canonical(flag: str) -> str:
    return _BENCH_ALIASES.get(flag.partition("=")[0], flag)


def split_speed_args(text: str | Sequence[str] | None) -> list[str]:
    """--speed-args as given (one string, or already split). Raises BenchArgsError."""
    if text is None:
        return []
    if isinstance(text, str):
        try:
            args = shlex.split(text)
        except ValueError as exc:
            raise BenchArgsError(f"--speed-args {text!r} cannot be read: {exc}") from None
    else:
        args = list(text)
    ours = sorted({a for a in args if _canonical(a) in _OURS})
    if ours:
        raise BenchArgsError(f"--speed-args cannot set {', '.join(ours)}: qtui names the model and reads jsonl itself")
    return args


def speed_argv(tools: LlamaTools, model: Path, llama_args: Sequence[str] = (), speed_args: Sequence[str] = (),
               style: BenchStyle = BenchStyle()) -> tuple[list[str], list[str]]:
    """(argv, dropped options) of the speed job for `model`. `speed_args` (llama-bench's own
    options, e.g. -p 1024 -n 256 -r 3) replace the defaults and any translated option of the
    same name."""
    argv = tools.bench_argv()
    if argv is None:
        raise LlamaNotFound(f"no llama-bench beside {tools.perplexity}: the speed job needs it")
    given = {_canonical(a) for a in speed_args if a.startswith("-") and not _is_value(a)}
    tr = translate_args(llama_args, style)
    kept: list[str] = []
    i = 0
    while i < len(tr.args):  # translated options come in (flag, value) pairs
        if _canonical(tr.args[i]) not in given:
            kept += tr.args[i:i + 2]
        i += 2
    defaults: list[str] = []
    for j in range(0, len(DEFAULT_SPEED_ARGS), 2):
        if DEFAULT_SPEED_ARGS[j] not in given:
            defaults += DEFAULT_SPEED_ARGS[j:j + 2]
    return [*argv, "-m", str(model), "-o", "jsonl", *kept, *defaults, *speed_args], tr.dropped


# -- reading the output --------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchTest:
    """One llama-bench test: pp (n_prompt tokens), tg (n_gen tokens) or both (-pg)."""

    n_prompt: int
    n_gen: int
    n_depth: int
    avg_ts: float
    stddev_ts: float
    samples: int

    @property
    def name(self) -> str:
        depth = f"@d{self.n_depth}" if self.n_depth else ""
        if self.n_prompt and self.n_gen:
            return f"pp{self.n_prompt}+tg{self.n_gen}{depth}"
        return (f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}") + depth


@dataclass
class BenchResult:
    tests: list[BenchTest] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    """what llama-bench says about the build and machine: build_commit, build_number, backends,
    cpu_info, gpu_info, n_threads, n_gpu_layers, flash_attn, model_type"""
    failed: str | None = None
    """why the run gave no usable result, one sentence; None when it did"""

    @property
    def pp(self) -> BenchTest | None:
        """The first prompt-processing test (at depth 0 when there is one)."""
        return _first(t for t in self.tests if t.n_prompt and not t.n_gen)

    @property
    def tg(self) -> BenchTest | None:
        return _first(t for t in self.tests if t.n_gen and not t.n_prompt)

    def stats(self) -> dict[str, Any]:
        """The figures a speed record stores: pp/tg tokens per second with their standard
        deviation over the repetitions, the test sizes, and every test llama-bench ran."""
        out: dict[str, Any] = {}
        for key, test in (("pp", self.pp), ("tg", self.tg)):
            if test is not None:
                out.update({f"{key}_ts": test.avg_ts, f"{key}_ts_sd": test.stddev_ts,
                            f"{key}_tokens": test.n_prompt if key == "pp" else test.n_gen})
        out["tests"] = [{"name": t.name, **asdict(t)} for t in self.tests]
        return out


def _first(tests: Iterable[BenchTest]) -> BenchTest | None:
    found = list(tests)
    at_zero = [t for t in found if not t.n_depth]
    return (at_zero or found)[0] if found else None


_INFO_KEYS = ("build_commit", "build_number", "backends", "cpu_info", "gpu_info", "n_threads", "n_gpu_layers",
              "flash_attn", "model_type", "devices")


def _int_field(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{key} is {v!r}, not a count of tokens")
    return v


def _ts_field(obj: dict[str, Any], key: str) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{key} is {v!r}, not a speed")
    return float(v)


def _stderr_reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return (errors or lines or ["(no output)"])[-1]


def parse_bench(stdout: bytes | str, stderr: bytes | str, exit_code: int | None) -> BenchResult:
    """llama-bench's jsonl (one JSON object per test) and how it ended. exit_code None: the
    process was not ours to wait for (a scheduler that died started it): judged by content."""
    out = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    err = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    res = BenchResult()
    if exit_code is not None and exit_code > 128:
        res.failed = f"llama-bench was killed (signal {exit_code - 128}) before it finished"
        return res
    if exit_code:
        res.failed = f"llama-bench exited with status {exit_code}: {_stderr_reason(err)}"
        return res
    lines = out.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            cut = n == len(lines) and not out.endswith("\n")
            res.failed = (f"llama-bench's output ends in the middle of test {len(res.tests) + 1} (line {n} is cut off)"
                          if cut else f"llama-bench printed a line that is not JSON (line {n}: {line.strip()[:60]!r})")
            return res
        if not isinstance(obj, dict):
            res.failed = f"llama-bench printed {type(obj).__name__} on line {n}, not a test result"
            return res
        try:
            test = BenchTest(n_prompt=_int_field(obj, "n_prompt"), n_gen=_int_field(obj, "n_gen"),
                             n_depth=_int_field(obj, "n_depth"), avg_ts=_ts_field(obj, "avg_ts"),
                             stddev_ts=_ts_field(obj, "stddev_ts"),
                             samples=len(obj["samples_ts"]) if isinstance(obj.get("samples_ts"), list) else 0)
        except ValueError as exc:
            res.failed = f"llama-bench's test on line {n} is not usable: {exc}"
            return res
        if not test.n_prompt and not test.n_gen:
            res.failed = f"llama-bench's test on line {n} processed no tokens"
            return res
        res.tests.append(test)
        if not res.info:
            res.info = {k: obj[k] for k in _INFO_KEYS if k in obj}
    if not res.tests:
        why = _stderr_reason(err) if err.strip() else "no output at all"
        res.failed = f"llama-bench printed no test results ({why})"
    return res
