"""The key table as data: the help screen and the command palette (ctrl+p) both read the same
BINDINGS the footer shows, so a key added to a widget appears everywhere at once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider

from qtui.ui.bindings import APP_BINDINGS, BOARD_BINDINGS, MAIN_BINDINGS, KeyGroups
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.model_list import ModelList
from qtui.ui.widgets.queue import QueueView

if TYPE_CHECKING:
    from textual.app import App



@dataclass(frozen=True)
class Command:
    title: str
    help: str
    action: str
    tab: str | None
    target: str  # "app", "screen" or a CSS selector of the widget whose action this is
    key: str


def _sources() -> list[tuple[str, str | None, str, list[BindingType]]]:
    return [
        ("Models tab", "models", "#model-list", list(ModelList.BINDINGS)),
        ("Runs tab", "runs", "#queue-view", list(QueueView.BINDINGS)),
        ("Leaderboard tab", "board", "#leaderboard", list(Leaderboard.BINDINGS)),
        ("Leaderboard tab", "board", "#board-pane", list(BOARD_BINDINGS)),
        ("Everywhere", None, "screen", list(MAIN_BINDINGS)),
        ("Everywhere", None, "app", list(APP_BINDINGS)),
    ]


def key_groups() -> KeyGroups:
    groups: dict[str, list[BindingType]] = {}
    for title, _tab, _target, bindings in _sources():
        groups.setdefault(title, []).extend(bindings)
    groups["Everywhere"].append(Binding("ctrl+p", "command_palette", "Commands",
                                        tooltip="Command palette: every action by name"))
    return list(groups.items())


def commands() -> list[Command]:
    out: dict[str, Command] = {}
    for _title, tab, target, bindings in _sources():
        for b in Binding.make_bindings(bindings):
            name = f"{target}:{b.action}"
            if name not in out:
                out[name] = Command(b.tooltip or b.description, b.description, b.action, tab, target, b.key)
    return list(out.values())


async def run_command(app: App[object], cmd: Command) -> None:
    screen = app.screen
    if cmd.tab is not None and hasattr(screen, "action_tab"):
        screen.action_tab(cmd.tab)  # also focuses the tab's main widget
    if cmd.target == "app":
        namespace: object = app
    elif cmd.target == "screen":
        namespace = screen
    else:
        namespace = screen.query_one(cmd.target)
    action = cmd.action.removeprefix("app.")
    await app.run_action(action, app if cmd.action.startswith("app.") else namespace)  # type: ignore[arg-type]


class QtuiCommands(Provider):
    """Every qtui action by name, with its key."""

    async def discover(self) -> Hits:
        for cmd in commands():
            yield DiscoveryHit(cmd.title, partial(self._run, cmd), help=f"key: {cmd.key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for cmd in commands():
            score = matcher.match(cmd.title)
            if score > 0:
                yield Hit(score, matcher.highlight(cmd.title), partial(self._run, cmd), help=f"key: {cmd.key}")

    async def _run(self, cmd: Command) -> None:
        await run_command(self.app, cmd)
