"""The key table as data: the help screen and the command palette (ctrl+p) both read the same
BINDINGS the footer shows, so a key added to a widget appears everywhere at once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.widgets import TabbedContent

from qtui.ui.bindings import APP_BINDINGS, BOARD_BINDINGS, MAIN_BINDINGS, KeyGroups
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.model_list import ModelList
from qtui.ui.widgets.queue import QueueView
from qtui.ui.widgets.rowtable import ROW_KEYS

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    action: str
    tab: str | None
    target: str  # "app", "screen" or a CSS selector of the widget whose action this is
    bindings: tuple[Binding, ...]
    """every binding of this action (comma, f2: two keys)"""

    def keys(self, app: App[object]) -> str:
        """The keys as the footer writes them ('!', '/', '^p'), not their names."""
        return " or ".join(app.get_key_display(b) for b in self.bindings)


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
                                        tooltip="Command palette: the actions of the tab shown, by name"))
    groups["In every table"] = list(ROW_KEYS)
    return list(groups.items())


def commands(tab: str | None = None) -> list[Command]:
    """Every action by name; with `tab`, only those that work there (the tab's own and the
    ones that work everywhere): the Models tab's keys do nothing on the Leaderboard."""
    found: dict[str, tuple[str | None, str, list[Binding]]] = {}
    for _title, where, target, bindings in _sources():
        if tab is not None and where not in (None, tab):
            continue
        for b in Binding.make_bindings(bindings):
            found.setdefault(f"{target}:{b.action}", (where, target, []))[2].append(b)
    return [Command(bs[0].tooltip or bs[0].description, bs[0].description, bs[0].action, where, target, tuple(bs))
            for where, target, bs in found.values()]


def current_tab(screen: Screen[object]) -> str | None:
    """The tab the screen shows (None on a screen without tabs: every action is listed)."""
    tabs = screen.query(TabbedContent)
    return tabs.first().active or None if tabs else None


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

    def _commands(self) -> list[Command]:
        # self.screen: the screen under the palette, whose tab was shown when ctrl+p was pressed
        return commands(current_tab(self.screen))

    async def discover(self) -> Hits:
        for cmd in self._commands():
            yield DiscoveryHit(cmd.title, partial(self._run, cmd), help=f"key: {cmd.keys(self.app)}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for cmd in self._commands():
            score = matcher.match(cmd.title)
            if score > 0:
                yield Hit(score, matcher.highlight(cmd.title), partial(self._run, cmd), help=f"key: {cmd.keys(self.app)}")

    async def _run(self, cmd: Command) -> None:
        await run_command(self.app, cmd)
