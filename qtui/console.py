"""What the headless commands and the demo share to talk to the terminal: the consoles, the
error a user can fix, and a progress printer. A module of its own so that neither has to
import the other."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

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
