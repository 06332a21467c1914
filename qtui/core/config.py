"""qtui's settings, kept as TOML in paths.config_file().

Loading never fails: a value that does not make sense is replaced by its default and reported
as a readable message ("config.toml line 3: ctx must be a positive integer, using 512"), and a
file that is not TOML at all gives the defaults plus one message naming the file. The caller
(CLI or TUI) decides how to show those messages.

Precedence, highest first: command-line flags (the CLI's job), environment (QTUI_LLAMA_BIN,
QTUI_DATA_DIR), this file, built-in defaults. The environment is applied by the effective_*
helpers rather than folded into Config, so saving a Config never writes an env value to disk.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from qtui.core import paths
from qtui.core.fsutil import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

ENV_LLAMA_BIN = "QTUI_LLAMA_BIN"
ENV_DATA_DIR = "QTUI_DATA_DIR"

_HEADER = "# qtui settings. qtui rewrites this file when settings change; comments are not kept.\n"


@dataclass
class Config:
    model_dirs: list[str] = field(default_factory=list)
    corpus: str | None = None
    ctx: int = 512
    chunks: int | None = None  # None: every chunk the corpus holds
    llama_bin: str | None = None  # a llama.cpp build dir or the llama-perplexity binary
    llama_args: list[str] = field(default_factory=list)  # extra args, e.g. ["-ngl", "99", "-fa", "on"]
    # The base run's args instead of llama_args when set: a BF16 base rarely fits where its quants do.
    base_args: list[str] = field(default_factory=list)
    data_dir: str | None = None
    cache_dir: str | None = None  # llama builds, demo models, base files (paths.cache_dir reads it)
    theme: str = "textual-dark"
    gpu_interval_s: float = 1.0
    slots: int = 1  # runs at once on a box without GPU (with GPUs, gpus_per_run decides)
    gpus_per_run: int | str = "auto"  # the fewest GPUs that hold the run (a BF16 base may need two)
    """GPUs each run takes (1-64), or "auto": the fewest whose free memory holds the run"""
    cluster: str = ""
    """a Ray cluster to run jobs on: "auto" (this machine is part of one), "ray://HOST:PORT" or
    "HOST:PORT"; "" runs them here"""
    cluster_base_dir: str | None = None
    """with a cluster: a folder all nodes and this machine share, where base files are made and read"""


class ConfigError(ValueError):
    """A Config that cannot be saved because some values are invalid."""


class _Bad(Exception):
    """A value's problem, phrased to follow the key name: 'ctx must be ...'."""


# -- per-key validators: return the cleaned value or raise _Bad --------------------------------

def _positive_int(limit: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        # bool is an int in Python, but `ctx = true` is surely a mistake.
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or (limit and v > limit):
            raise _Bad("must be a positive integer" + (f" up to {limit}" if limit else ""))
        return v
    return check


def _optional_str(v: Any) -> str | None:
    if not isinstance(v, str):
        raise _Bad("must be a string")
    return v or None  # `llama_bin = ""` is how a person unsets it


def _nonempty_str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad("must be a non-empty string")
    return v


def _str_list(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Bad("must be a list of strings")
    return list(v)


def _args(v: Any) -> list[str]:
    if isinstance(v, str):
        # A whole command line is the natural way to write it: llama_args = "-ngl 99 -fa on"
        try:
            return shlex.split(v)
        except ValueError as exc:
            raise _Bad(f"cannot be split into arguments ({exc})") from None
    if not isinstance(v, list):
        raise _Bad("must be a list of strings or one string of arguments")
    out: list[str] = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (str, int, float)):
            raise _Bad("must be a list of strings or one string of arguments")
        out.append(str(x))  # ["-ngl", 99] means what it says
    return out


def _gpus_per_run(v: Any) -> int | str:
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
        raise _Bad('must be a number of GPUs from 1 to 64 or "auto"')
    return v


_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def cluster_address_problem(value: str) -> str | None:
    """Why `value` is not a Ray cluster address (None: it is; "" means no cluster)."""
    v = value.strip()
    if v in ("", "auto") or _HOST_PORT.match(v.removeprefix("ray://")):
        return None
    return 'must be "auto", "ray://HOST:PORT" or "HOST:PORT" (or "" to run on this machine)'


def _cluster(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad("must be a string")
    problem = cluster_address_problem(v)
    if problem:
        raise _Bad(problem)
    return v.strip()


def _interval(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.1 <= v <= 60:
        raise _Bad("must be a number of seconds between 0.1 and 60")
    return float(v)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "model_dirs": _str_list,
    "corpus": _optional_str,
    "ctx": _positive_int(),
    "chunks": _positive_int(),
    "llama_bin": _optional_str,
    "llama_args": _args,
    "base_args": _args,
    "data_dir": _optional_str,
    "cache_dir": _optional_str,
    "theme": _nonempty_str,
    "gpu_interval_s": _interval,
    "slots": _positive_int(64),
    "gpus_per_run": _gpus_per_run,
    "cluster": _cluster,
    "cluster_base_dir": _optional_str,
}
assert set(_CHECKS) == {f.name for f in fields(Config)}


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def _line_of(text: str, key: str) -> int | None:
    """Where a top-level key (or table) is written: tomllib keeps no positions, so search."""
    q = re.escape(key)
    pat = re.compile(rf"""^[ \t]*(?:\[[ \t]*)?(?:{q}|"{q}"|'{q}')[ \t]*[=\].]""", re.M)
    m = pat.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _validate(data: dict[str, Any]) -> tuple[Config, list[tuple[str, str | None]]]:
    """The valid values as a Config, and (key, what is wrong) for the others; what is wrong is
    None for a key qtui does not know."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str | None]] = []
    for key, raw in data.items():
        check = _CHECKS.get(key)
        if check is None:
            problems.append((key, None))
            continue
        try:
            values[key] = check(raw)
        except _Bad as bad:
            problems.append((key, str(bad)))
    return Config(**values), problems


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, list(_CHECKS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown setting '{key}' ignored{hint}"


def load_config(path: str | Path | None = None) -> tuple[Config, list[str]]:
    """The config at `path` (default paths.config_file()) and the problems found in it.

    A missing file is not a problem: it is a first run.
    """
    p = Path(path) if path is not None else paths.config_file()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return Config(), []
    except OSError as exc:
        return Config(), [f"{p}: cannot be read ({exc.strerror or exc}); using default settings"]
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        return Config(), [f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}); using default settings"]
    except tomllib.TOMLDecodeError as exc:
        return Config(), [f"{p}: not valid TOML ({exc}); using default settings"]

    cfg, problems = _validate(data)
    messages = []
    defaults = Config()
    for key, bad in problems:
        what = _unknown(key) if bad is None else f"{key} {bad}, using {_show(getattr(defaults, key))}"
        line = _line_of(text, key)
        messages.append(f"{p.name} line {line}: {what}" if line else f"{p.name}: {what}")
    return cfg, messages


def _to_data(cfg: Config) -> dict[str, Any]:
    # TOML has no null: an unset value is simply left out.
    return {k: v for k, v in asdict(cfg).items() if v is not None}


def save_config(cfg: Config, path: str | Path | None = None) -> Path:
    """Write `cfg` atomically (temp file, fsync, rename); refuse values load_config would reject.

    Raises ConfigError listing every invalid value; returns the path written.
    """
    p = Path(path) if path is not None else paths.config_file()
    data = _to_data(cfg)
    _, problems = _validate(data)
    if problems:
        bad = "; ".join(f"{key} {what} (got {data[key]!r})" for key, what in problems)
        raise ConfigError(f"cannot save the settings: {bad}")
    atomic_write_text(p, _HEADER + tomli_w.dumps(data))
    return p


def effective_llama_bin(cfg: Config) -> str | None:
    """QTUI_LLAMA_BIN if set, else the config's llama_bin."""
    return os.environ.get(ENV_LLAMA_BIN) or cfg.llama_bin


def effective_data_dir(cfg: Config) -> Path:
    """QTUI_DATA_DIR if set, else the config's data_dir, else the platform's user data dir."""
    if os.environ.get(ENV_DATA_DIR):
        return paths.data_dir()
    if cfg.data_dir:
        return Path(cfg.data_dir).expanduser()
    return paths.data_dir()
