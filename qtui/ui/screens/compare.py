"""Two results side by side (m marks a leaderboard row, C compares it with the row under the
cursor): the paired verdict, the per-chunk difference along the run with the cumulative mean
and its interval, and the tokens where the two differ most, in their text.

The comparison is computed in a thread (reading a 262k-token vocabulary takes a moment); the
screen says so meanwhile. plotext is imported here only, when the screen is opened.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from qtui.core.results.compare import CompareError, Comparison, compare_records
from qtui.core.results.paired import LEVEL
from qtui.core.results.store import ResultRecord

MARK_CHUNK, MARK_MEAN, MARK_BAND = "•", "braille", "·"
CONTEXT_CHARS = 32
"""characters of text shown before a token: the row fits at 80 columns"""


def _signed(x: float) -> str:
    return f"{x:+.6f}"


def summary(cmp: Comparison, floor: float | None = None) -> Text:
    """The verdict in words: which is closer to the base, by how much, and how sure."""
    text = Text()
    text.append("A ", style="bold")
    text.append(cmp.label_a)
    text.append("   B ", style="bold")
    text.append(cmp.label_b + "\n")
    d = cmp.overall
    kind = "exact per-chunk data" if cmp.exact else "per-chunk data derived from the printed running means"
    if d is None:
        text.append(f"{len(cmp.diffs)} chunk(s) in common: too few for an interval ({kind}).")
        return text
    text.append(f"mean KLD A - B = {_signed(d.mean)}   {round(100 * d.level)} % interval "
                f"[{_signed(d.low)}, {_signed(d.high)}] over {d.n} chunks, paired by chunk ({kind})\n")
    verdict = d.verdict()
    if floor is not None and abs(d.mean) <= floor:
        text.append(f"tie: the difference is within the noise floor ({floor:.6f})", style="bold")
    elif verdict == "separated":
        closer = cmp.label_a if d.mean < 0 else cmp.label_b
        text.append(f"separated: {closer} is closer to the base", style="bold")
    elif verdict == "limited":
        text.append("limited by printed precision: the rounded figures differ, the worst case does not",
                    style="bold")
    else:
        text.append("tie: the interval holds 0, the data do not tell them apart", style="bold")
    return text


def tokens_table(cmp: Comparison) -> RenderableType:
    """The tokens where A and B differ most, each after the text the models saw before it."""
    if not cmp.tokens:
        return Text("")
    table = Table(box=None, pad_edge=False, title="Tokens where they differ most (KLD from the base)",
                  title_justify="left", title_style="bold", expand=True)
    table.add_column("chunk", justify="right", no_wrap=True)
    table.add_column("KLD A", justify="right", no_wrap=True)
    table.add_column("KLD B", justify="right", no_wrap=True)
    table.add_column("text before ▸ token", ratio=1, no_wrap=True, overflow="ellipsis")
    for t in cmp.tokens:
        cell = Text(no_wrap=True, overflow="ellipsis")
        if t.token is None:
            cell.append(f"token {t.index} of the chunk's scored tokens", style="dim")
        elif t.token_text or t.context_text:
            # the end of the context, so that the token itself is never the part cut off
            before = t.context_text if len(t.context_text) <= CONTEXT_CHARS else "…" + t.context_text[-CONTEXT_CHARS:]
            cell.append(before, style="dim")
            cell.append("▸")
            cell.append(t.token_text or "∅", style="bold reverse")
        else:
            cell.append(" ".join(str(i) for i in t.context[-8:]), style="dim")
            cell.append(" ▸ ")
            cell.append(str(t.token), style="bold reverse")
        table.add_row(str(t.chunk), f"{t.kld_a:.5f}", f"{t.kld_b:.5f}", cell)
    return table


class CompareScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]
    DEFAULT_CSS = """
    CompareScreen > .dialog { width: 96%; height: 94%; max-width: 140; }
    CompareScreen #compare-plot { height: 12; min-height: 8; }
    CompareScreen #compare-summary { height: auto; }
    """

    def __init__(self, store_root: Path, a: ResultRecord, b: ResultRecord, floor: float | None = None) -> None:
        super().__init__(id="compare")
        self.store_root = Path(store_root)
        self.a, self.b, self.floor = a, b, floor
        self.comparison: Comparison | None = None
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        title = f"Compare: {self.a.model.get('label') or self.a.id}  vs  {self.b.model.get('label') or self.b.id}"
        with Vertical(classes="dialog"):
            yield Static(Text(title, style="bold"), classes="dialog-title")
            yield Static(Text("comparing…", style="dim"), id="compare-summary")
            yield PlotextPlot(id="compare-plot")
            with VerticalScroll(classes="dialog-body"):
                yield Static("", id="compare-tokens")
            yield Static(Text("esc / q: close", style="dim"), classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self._compare()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False, description="comparing two results")
    def _compare(self) -> None:
        try:
            cmp = compare_records(self.store_root, self.a, self.b, LEVEL)
        except CompareError as exc:
            self.app.call_from_thread(self._show_problem, str(exc))
            return
        self.app.call_from_thread(self._show, cmp)

    def _show_problem(self, text: str) -> None:
        self.problem = text
        self.query_one("#compare-summary", Static).update(Text(f"cannot compare: {text}", style="bold"))
        self.query_one("#compare-plot", PlotextPlot).display = False

    def _show(self, cmp: Comparison) -> None:
        self.comparison = cmp
        self.query_one("#compare-summary", Static).update(summary(cmp, self.floor))
        self._plot(cmp)
        notes = [Text("• " + n, style="dim") for n in cmp.notes]
        self.query_one("#compare-tokens", Static).update(Group(tokens_table(cmp), *notes))

    def _plot(self, cmp: Comparison) -> None:
        widget = self.query_one("#compare-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_figure()
        chunks = [c for c, _ in cmp.diffs]
        # Drawn back to front: zero line, interval, running mean, then the chunks on top.
        if chunks:
            plt.plot([chunks[0], chunks[-1]], [0.0, 0.0], marker="─", color="gray")
        band = [p for p in cmp.cumulative if p.low is not None and p.high is not None]
        if band:
            xs = [p.chunk for p in band]
            plt.plot(xs, [p.low for p in band], marker=MARK_BAND, color="cyan")
            plt.plot(xs, [p.high for p in band], marker=MARK_BAND, color="cyan")
        plt.plot([p.chunk for p in cmp.cumulative], [p.mean for p in cmp.cumulative], marker=MARK_MEAN,
                 color="orange")
        plt.scatter(chunks, [d for _, d in cmp.diffs], marker=MARK_CHUNK, color="white")
        plt.title(f"KLD A - B by chunk {MARK_CHUNK}, running mean and its {round(100 * LEVEL)} % interval "
                  f"{MARK_BAND}")
        plt.xlabel("chunk")
        widget.refresh()

    def action_close(self) -> None:
        self.dismiss(None)
