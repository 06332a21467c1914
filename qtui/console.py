"""What the headless commands and the demo share to talk to the terminal: the consoles, the
error a user can fix, a progress printer, the settings as a command reads them and the
scheduler check every command that reads the queue makes. A module of its own so that none
of them has to import another."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from qtui.core.config import Config, effective_data_dir, load_config

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

Progress = Callable[[str, float | None], None]


class UserError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def progress_printer() -> Progress:
    """Print a stage and its percentage on stderr, once per change."""
    last: dict[str, object] = {}

    def show(stage: str, frac: float | None) -> None:
        pct = None if frac is None else int(frac * 100)
        if last.get("stage") == stage and (pct is None or pct == last.get("pct")):
            return
        last.update(stage=stage, pct=pct)
        err_console.print(f"  {stage}" + (f" {pct}%" if pct is not None else ""))

    return show


def settings(args: argparse.Namespace) -> tuple[Config, Path]:
    cfg, problems = load_config()
    for p in problems:
        err_console.print(f"[yellow]config:[/] {p}")
    # --data-dir reaches here through QTUI_DATA_DIR (set in dispatch), which wins over the file.
    return cfg, effective_data_dir(cfg)


def keep_going(cfg: Config, data_dir: Path, quiet: bool = False) -> None:
    """Restart the scheduler if it died with work pending (every command that reads the queue)."""
    from qtui.core.showdown.service import Showdown

    if Showdown(data_dir, cfg.slots).ensure_scheduler() and not quiet:
        err_console.print("the scheduler had stopped with work pending: started it again", style="dim")
