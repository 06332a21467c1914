"""The help screen (?): every key binding, grouped by where it works, generated from the same
binding tables the footer and the command palette read, so it cannot fall out of date."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.keys import format_key

from qtui.ui.bindings import KeyGroups
from qtui.ui.screens.details import InfoScreen

INTRO = ("qtui ranks quantized GGUF variants by their KL divergence from a base model, measured by "
         "llama.cpp's llama-perplexity. Choose a base (b) and variants (space: adds or removes the row and "
         "moves down, so space space space chooses three in a row) on the Models tab, press s; "
         "runs go on in the background if you quit. Marks: B the base, ✓ a chosen variant, b a file that could "
         "be the base (F32/F16/BF16; press b on it), ★ on the size/KLD Pareto front.")
BOARD = ("Leaderboard: Mean KLD ± its standard error, lower = closer to the base. Dist. = distance to the "
         "ideal: 0 = smallest and most faithful; lower is better. Size and KLD are scaled 0-1 over the rows "
         "shown, so the largest file with the lowest KLD and the smallest with the highest both score 1.000 "
         "(each is best on one axis and worst on the other).")


def key_display(binding: Binding) -> str:
    """'ctrl+up', '/', '!': the key as a person types it (the footer's ^ is less obvious)."""
    if binding.key_display:
        return binding.key_display
    *mods, key = binding.key.split("+")
    key = {"space": "space", "delete": "del", "escape": "esc"}.get(key, format_key(key))
    return "+".join([*mods, key])


def keys_table(groups: KeyGroups) -> Table:
    t = Table(box=None, show_header=False, pad_edge=False, expand=True)
    t.add_column("key", no_wrap=True, style="bold")
    t.add_column("what", ratio=1)
    for title, bindings in groups:
        t.add_row(Text(title, style="bold underline", overflow="ignore"), "")
        merged: dict[str, tuple[list[str], str]] = {}
        for b in Binding.make_bindings(bindings):
            keys, text = merged.setdefault(b.action, ([], b.tooltip or b.description))
            keys.append(key_display(b))
        for keys, text in merged.values():
            t.add_row(" / ".join(keys), text)
        t.add_row("", "")
    return t


class HelpScreen(InfoScreen):
    def __init__(self, groups: KeyGroups) -> None:
        from rich.console import Group

        super().__init__("qtui keys", Group(Text(INTRO), Text(""), Text(BOARD), Text(""), keys_table(groups)),
                         id="help")
