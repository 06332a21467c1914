"""Settings (, or f2): the measurement setup and where things live, saved to config.toml.

Values are checked here first for a message next to the field, then by save_config, which
refuses anything load_config would reject; nothing half-valid reaches the file.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from qtui.core import paths
from qtui.core.config import Config, ConfigError, save_config
from qtui.core.jobs.gpus import AUTO, parse_gpus_per_run
from qtui.core.llama.basecache import describe_summary
from qtui.core.showdown.plan import BUILTIN_CORPUS, RunRefused, base_run_args

# field id, label, hint shown as the placeholder
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("corpus", "Corpus", "text file to evaluate on, e.g. ~/wiki.test.raw, or builtin"),
    ("ctx", "Context (-c)", "tokens per chunk, 512 is usual"),
    ("chunks", "Chunks", "empty: every chunk of the corpus"),
    ("llama_bin", "llama bin", "empty: PATH, then qtui setup-llama's build"),
    ("llama_args", "llama args", "extra arguments, e.g. -ngl 99 -fa on -ot exps=CPU"),
    ("base_args", "Base args", "base run only, e.g. -ngl 20; empty: llama args"),
    ("data_dir", "Data dir", "empty: the user data dir (results, jobs)"),
    ("cache_dir", "Cache dir", "empty: the user cache dir (base files, llama builds)"),
    ("model_dirs", "Model dirs", f"more folders to scan, separated by {os.pathsep}"),
    ("gpus_per_run", "GPUs per run", "auto: the fewest GPUs that hold the run; or 1, 2, ..."),
    ("slots", "Parallel runs", "without GPU: jobs at once, usually 1 (with GPUs: one per group)"),
)


def config_values(cfg: Config) -> dict[str, str]:
    return {
        "corpus": cfg.corpus or "", "ctx": str(cfg.ctx), "chunks": str(cfg.chunks or ""),
        "llama_bin": cfg.llama_bin or "", "llama_args": shlex.join(cfg.llama_args),
        "base_args": shlex.join(cfg.base_args), "data_dir": cfg.data_dir or "", "cache_dir": cfg.cache_dir or "",
        "model_dirs": os.pathsep.join(cfg.model_dirs), "slots": str(cfg.slots),
        "gpus_per_run": str(cfg.gpus_per_run),
    }


def parse_values(cfg: Config, values: dict[str, str]) -> tuple[Config, list[str]]:
    """The edited Config and a sentence for every field that does not make sense."""
    problems: list[str] = []

    def number(key: str, label: str, optional: bool = False) -> int | None:
        text = values[key].strip()
        if not text and optional:
            return None
        try:
            n = int(text)
            if n <= 0:
                raise ValueError
            return n
        except ValueError:
            problems.append(f"{label} must be a positive whole number{' or empty' if optional else ''}, not {text!r}")
            return None

    ctx = number("ctx", "Context")
    chunks = number("chunks", "Chunks", optional=True)
    slots = number("slots", "Parallel runs")
    try:
        gpus_per_run = parse_gpus_per_run(values["gpus_per_run"].strip() or AUTO)
    except ValueError:
        problems.append(f"GPUs per run must be auto or a number of GPUs from 1 to 64, not {values['gpus_per_run'].strip()!r}")
        gpus_per_run = cfg.gpus_per_run
    try:
        args = shlex.split(values["llama_args"])
    except ValueError as exc:
        problems.append(f"llama args cannot be split into arguments: {exc}")
        args = cfg.llama_args
    try:
        base_args = shlex.split(values["base_args"])
    except ValueError as exc:
        problems.append(f"base args cannot be split into arguments: {exc}")
        base_args = cfg.base_args
    if base_args:
        try:  # the check a start makes: context, batch and chunks as the KLD runs have them
            base_run_args(base_args, args, ctx or cfg.ctx, chunks)
        except RunRefused as exc:
            problems += [p.removesuffix(".") for p in exc.problems]
    cache = values["cache_dir"].strip()
    if cache and Path(cache).expanduser().exists() and not Path(cache).expanduser().is_dir():
        problems.append(f"cache dir {cache} is not a folder")
    corpus = values["corpus"].strip()
    if corpus and corpus != BUILTIN_CORPUS and not Path(corpus).expanduser().is_file():
        problems.append(f"corpus {corpus} does not exist or is not a file")
    new = replace(
        cfg, corpus=corpus or None, ctx=ctx or cfg.ctx, chunks=chunks, llama_bin=values["llama_bin"].strip() or None,
        llama_args=args, base_args=base_args, data_dir=values["data_dir"].strip() or None,
        cache_dir=cache or None, slots=slots or cfg.slots, gpus_per_run=gpus_per_run,
        model_dirs=[d.strip() for d in values["model_dirs"].split(os.pathsep) if d.strip()],
    )
    return new, problems


def cache_line() -> str:
    """How much the base files take and where (they are the big ones, 0.5-40 GB each)."""
    folder = paths.bases_dir()
    line = f"Base files: {describe_summary(folder)} in {folder}"
    if os.environ.get("QTUI_CACHE_DIR"):
        line += " (QTUI_CACHE_DIR is set: it wins over Cache dir)"
    return line + ". qtui cache lists and removes them; a new Cache dir does not move them."


class SettingsScreen(ModalScreen[Config | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, cfg: Config, config_path: Path | None = None) -> None:
        super().__init__(id="settings")
        self.cfg = cfg
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        values = config_values(self.cfg)
        with Vertical(classes="dialog"):
            yield Static(Text("Settings", style="bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                for key, label, hint in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(label, classes="field-label")
                        yield Input(values[key], placeholder=hint, id=f"set-{key}", compact=True)
            yield Static(Text(cache_line(), style="dim"), id="settings-cache")
            yield Static(id="settings-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#set-corpus", Input).focus()

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#set-{key}", Input).value for key, _, _ in FIELDS}

    def action_save(self) -> None:
        new, problems = parse_values(self.cfg, self.values())
        if not problems:
            try:
                save_config(new, self.config_path)
            except (ConfigError, OSError) as exc:
                problems.append(str(exc))
        if problems:
            self.query_one("#settings-error", Static).update(Text("\n".join(f"✗ {p}" for p in problems), style="bold red"))
            return
        self.dismiss(new)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()
