"""The tensor-mix diff drawn as a table, for `qtui diff` and the app's Models tab alike.

Rich only (no Textual): the headless command imports it without paying for the app.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from qtui.core.fsutil import human_bytes
from qtui.core.gguf.mixdiff import MixDiff, group_summary, shares_text

DIFFERS_STYLE = "bold yellow"


def diff_table(diff: MixDiff, *, title: bool = True) -> Table:
    """One row per tensor group: A's types, B's types, what changed; differing groups in yellow."""
    a, b = diff.a, diff.b
    heading = (f"Tensor mix: A {a.path.name} ({a.quant}, {human_bytes(a.size_bytes)}) vs "
               f"B {b.path.name} ({b.quant}, {human_bytes(b.size_bytes)})")
    t = Table(title=heading if title else None, show_lines=True)
    t.add_column("group", no_wrap=True)
    t.add_column("A", overflow="fold")
    t.add_column("B", overflow="fold")
    t.add_column("difference", overflow="fold")
    for g in diff.groups:
        style = DIFFERS_STYLE if g.differs else ""
        t.add_row(Text(g.label, style=style), Text(shares_text(g.a)), Text(shares_text(g.b)),
                  Text(group_summary(g), style=style or "dim"))
    return t


def diff_verdict(diff: MixDiff) -> Text:
    """The line under the table: how many groups differ, or that none does."""
    if diff.identical:
        return Text("Same tensor types and bytes in every group.", style="green")
    n = len(diff.differing)
    return Text(f"{n} group{'s differ' if n != 1 else ' differs'} (in yellow).", style="yellow")
