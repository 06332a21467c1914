"""Read-only modal views: a model's full tensor-type breakdown, a result record, lists of
problems (skipped files, refused runs). All are an InfoScreen around a renderable."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from qtui.core.fsutil import human_bytes
from qtui.core.gguf.discovery import Skipped
from qtui.core.gguf.mixdiff import mix_diff
from qtui.core.gguf.model_info import GROUPS, ModelInfo, TypeShare
from qtui.core.results.annotations import published_fields, published_note
from qtui.core.results.leaderboard import COLUMNS, format_cell, row_from_record
from qtui.core.results.store import ResultRecord
from qtui.ui.mixdiff_table import diff_table, diff_verdict


class InfoScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, title: str, body: RenderableType, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.body, id="info-body")
            yield Static(Text("esc / q / enter: close", style="dim"), classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)


def _kv(rows: Iterable[tuple[str, Any]]) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for k, v in rows:
        t.add_row(k, "?" if v in (None, "") else str(v))
    return t


def mix_table(shares: Iterable[TypeShare], total: int, title: str | None = None) -> Table:
    t = Table(box=None, title=title, title_justify="left", title_style="bold", pad_edge=False)
    for col, just in (("type", "left"), ("tensors", "right"), ("bytes", "right"), ("share", "right"), ("bpw", "right")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for s in shares:
        t.add_row(s.type_name, str(s.n_tensors), human_bytes(s.nbytes),
                  f"{100 * s.nbytes / total:.1f}%" if total else "?", f"{s.bpw:.2f}")
    return t


def model_details(m: ModelInfo, notes: Sequence[str] = ()) -> RenderableType:
    """Header facts in a few dense lines, so the tensor-type table shows at 80x24 without scrolling."""
    imatrix = ", ".join(f"{k}={v}" for k, v in (m.imatrix or {}).items()) or "none recorded"
    shards = f" ({len(m.shards)} shards)" if len(m.shards) > 1 else ""
    head = _kv([
        ("file", f"{m.path}{shards}"),
        ("model", f"{m.name or '?'} · {m.arch or '?'} · {m.n_params:,} parameters"),
        ("size", f"{human_bytes(m.size_bytes)} · {m.bpw:.3f} bits/weight · "
                 f"{100 * m.share_at_least_bits(8):.1f}% of bytes at ≥8 bits"),
        ("header", f"quant label {m.quant} · vocab {m.n_vocab or '?'} · trained ctx {m.context_length or '?'}"),
        ("quantized by", m.quantized_by),
        ("imatrix", imatrix),
        ("base candidate", "yes (all big tensors F32/F16/BF16)" if m.is_base_candidate else "no"),
        *([("upcast from", f"{m.upcast_from}: it holds that file's weights, so a {m.upcast_from} made from it "
                           "is near it by construction")] if m.upcast_from else []),
        *(("note", n) for n in notes),
    ])
    total = m.tensor_bytes
    parts: list[RenderableType] = [head, Text(""), mix_table(m.mix_by_type, total, "Tensor types (all tensors)")]
    for g in GROUPS:
        shares = m.mix_by_group.get(g, ())
        if shares:
            gbytes = sum(s.nbytes for s in shares)
            title = f"{g}: {human_bytes(gbytes)}, {100 * gbytes / total:.1f}% of bytes" if total else g
            parts += [Text(""), mix_table(shares, gbytes, title)]
    return Group(*parts)


def record_details(rec: ResultRecord, notes: Sequence[str] = ()) -> RenderableType:
    row = row_from_record(rec)
    board = _kv([(c.title, format_cell(c, row)) for c in COLUMNS if c.key not in ("score", "pareto")])
    stats = _kv(sorted((k, v) for k, v in rec.stats.items() if v is not None))
    setup = _kv([
        ("status", rec.status), ("model file", rec.model.get("path")),
        ("base", rec.base.get("label") or rec.base.get("path")), ("corpus", rec.corpus.get("path") or rec.corpus.get("name")),
        ("ctx", rec.ctx), ("chunks", rec.chunks),
        ("llama", " ".join(str(rec.llama.get(k)) for k in ("fork", "version", "commit") if rec.llama.get(k)) or None),
        ("gpu", rec.gpu), ("source", rec.source.get("type")), ("url", rec.source.get("url")),
        ("command", " ".join(rec.argv) if rec.argv else None),
    ])
    # A published row: what the post said first, where a reader at 80x24 sees it without scrolling.
    published = published_details(rec)
    # How the row's file relates to the others (≈ base origin, ≡ same tensors), beside its figures.
    marks: list[RenderableType] = [*(Text(n, style="bold") for n in notes), *([Text("")] if notes else [])]
    parts: list[RenderableType] = [*published, *([Text("")] if published else []), *marks, board, Text(""),
                                   Text("Setup", style="bold"), setup]
    if rec.failure:
        parts += [Text(""), Text(f"✗ {rec.failure.get('reason')}", style="bold red"),
                  Text(str(rec.failure.get("stderr_tail") or ""), style="dim")]
    mix = rec.model.get("mix") or {}
    if isinstance(mix, dict) and mix:
        total = sum(v for v in mix.values() if isinstance(v, (int, float))) or 1
        t = Table(box=None, title="Tensor types", title_justify="left", title_style="bold", pad_edge=False)
        t.add_column("type")
        t.add_column("bytes", justify="right")
        t.add_column("share", justify="right")
        for name, b in sorted(mix.items(), key=lambda kv: -kv[1]):
            t.add_row(name, human_bytes(b), f"{100 * b / total:.1f}%")
        parts += [Text(""), t]
    parts += [Text(""), Text("All final statistics", style="bold"), stats]
    return Group(*parts)


def published_details(rec: ResultRecord) -> list[RenderableType]:
    """What a published sweep said of this row beyond its figures: its score, its finding, the
    note on how to read it. Nothing for a run measured here."""
    fields = published_fields(rec)
    if not fields:
        return []
    parts: list[RenderableType] = [Text("Published", style="bold"), _kv(list(fields))]
    note = published_note(rec)
    if note:
        parts.append(Text(note, style="dim"))
    return parts


def mix_diff_details(a: ModelInfo, b: ModelInfo) -> RenderableType:
    """Where two models' tensor types differ, group by group (A is the marked one)."""
    diff = mix_diff(a, b)
    head = _kv([("A", f"{a.path.name} · {a.quant} · {human_bytes(a.size_bytes)} · {a.bpw:.3f} bpw"),
                ("B", f"{b.path.name} · {b.quant} · {human_bytes(b.size_bytes)} · {b.bpw:.3f} bpw")])
    return Group(head, Text(""), diff_table(diff, title=False), diff_verdict(diff))


def skipped_details(skipped: list[Skipped]) -> RenderableType:
    if not skipped:
        return Text("No files were skipped.")
    t = Table(box=None, pad_edge=False, show_header=True)
    t.add_column("file", overflow="fold")
    t.add_column("why", overflow="fold")
    for s in skipped:
        t.add_row(str(s.path), s.reason)
    return t


def problems_text(problems: list[str], footer: str = "") -> RenderableType:
    body = Text("\n").join(Text(f"• {p}") for p in problems)
    return Group(body, Text(""), Text(footer, style="dim")) if footer else body
