"""Quitting while jobs are queued or running: they keep going, say so and say how to come back."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

QuitChoice = Literal["quit", "cancel-all", "stay"]


class QuitScreen(ModalScreen[QuitChoice]):
    BINDINGS = [
        Binding("q,enter", "choose('quit')", "Quit, runs go on"),
        Binding("c", "choose('cancel-all')", "Cancel runs and quit"),
        Binding("escape", "choose('stay')", "Stay"),
    ]

    def __init__(self, running: int, waiting: int) -> None:
        super().__init__(id="quit")
        self.running = running
        self.waiting = waiting

    def compose(self) -> ComposeResult:
        what = " and ".join(p for p in (f"{self.running} running" if self.running else "",
                                         f"{self.waiting} waiting" if self.waiting else "") if p)
        body = Text.assemble(
            (f"{what} job(s) will go on in the background", "bold"), " after qtui closes; closing the terminal "
            "or losing the SSH connection does not stop them either.\n\nTo watch them again, run ",
            ("qtui", "bold"), " (the Runs tab shows them live) or ", ("qtui jobs --watch", "bold"), ".",
        )
        with Vertical(classes="dialog"):
            yield Static(Text("Quit qtui?", style="bold"), classes="dialog-title")
            yield Static(body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Quit (q)", id="quit", variant="primary", compact=True)
                yield Button("Cancel runs & quit (c)", id="cancel-all", variant="error", compact=True)
                yield Button("Stay (esc)", id="stay", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)  # type: ignore[arg-type]

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)
