"""Exports of a leaderboard: CSV and JSON for tools, Markdown ready to post, SVG for a page.

All take the same rows (already sorted as the user sees them) so an export matches the
screen; JSON also carries the full records so that nothing measured is thrown away.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from qtui import __version__
from qtui.core import formats
from qtui.core.results.leaderboard import COLUMNS, SPEED_KEYS, Row, board_columns, has_speed
from qtui.core.results.store import ResultRecord

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "json", "md", "svg")
COLUMN_KEYS = [c.key for c in COLUMNS]
# CSV: the leaderboard's columns, then the run's status and where the figures come from; the
# rank and the paired comparison with the next row come last, so older columns keep their place
PAIRED_KEYS = ["rank", "next_id", "next_diff", "next_low", "next_high", "next_chunks", "next_verdict", "chunk_data"]
# the speed columns (llama-bench, tokens per second; empty where not measured) after those
CSV_KEYS = [*(k for k in COLUMN_KEYS if k != "rank"), "kld_status", "path", "source", *PAIRED_KEYS, *SPEED_KEYS]


def board_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The rows as a table, in their order: the leaderboard's columns, then id, status, path, source.

    Cells are the rows' own Python values (None where unknown, object dtype): an export writes
    exactly the figures the screen formats, with no float or NA conversion on the way.
    """
    import pandas as pd

    keys = [*COLUMN_KEYS, "id", "status", "path", "source", *SPEED_KEYS]
    return pd.DataFrame([[getattr(r, k) for k in keys] for r in rows], columns=keys, dtype=object)


def vs_next(row: Row) -> dict[str, Any] | None:
    """The paired comparison of a row with the next one down its setup's ranking, for JSON.

    `diff` is the next row's mean KLD minus this row's over the chunks both have (positive:
    the next one is further from the base), `low`..`high` its 95 % interval.
    """
    sep = row.vs_next
    if sep is None or row.next_id is None:
        return None
    out: dict[str, Any] = {"next_id": row.next_id, "verdict": sep.verdict, "words": sep.words}
    if sep.diff is not None:
        d = sep.diff
        out.update(diff=d.mean, low=d.low, high=d.high, level=d.level, n_chunks=d.n, p=d.p,
                   precision=d.precision, data="exact" if d.exact else "derived")
    return out


def _paired_cells(row: Row) -> list[Any]:
    nxt = vs_next(row) or {}
    return [row.rank, nxt.get("next_id"), nxt.get("diff"), nxt.get("low"), nxt.get("high"), nxt.get("n_chunks"),
            nxt.get("verdict"), row.chunk_data]


def to_csv(rows: Sequence[Row]) -> str:
    frame = board_frame(rows).rename(columns={"status": "kld_status"})
    paired = [_paired_cells(r) for r in rows]
    for j, key in enumerate(PAIRED_KEYS):
        frame[key] = [cells[j] for cells in paired]
    return str(frame.to_csv(columns=CSV_KEYS, index=False, lineterminator="\n"))


def json_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The rows as JSON objects: the columns, id and status, the kind of per-chunk data, and the
    paired comparisons with the neighbours in the ranking (vs_prev: this row minus the one ranked
    just above it; vs_next: the one just below minus this row)."""
    table = board_frame(rows)[[*COLUMN_KEYS, "id", "status", *SPEED_KEYS]]
    listed = [{str(k): v for k, v in item.items()} for item in table.to_dict(orient="records")]
    above = {r.next_id: r for r in rows if r.next_id is not None}
    for item, row in zip(listed, rows):
        prev = above.get(row.id)
        back = vs_next(prev) if prev is not None else None
        if back is not None and prev is not None:
            back = {"prev_id": prev.id, **{k: v for k, v in back.items() if k != "next_id"}}
        item.update(chunk_data=row.chunk_data, vs_prev=back, vs_next=vs_next(row))
        if row.screen:  # a screened variant: its state and the chunks it ran
            item["screen"] = row.screen
    return listed


def to_json(rows: Sequence[Row], records: Iterable[ResultRecord]) -> str:
    by_id = {r.id: r for r in records}
    table = board_frame(rows)[[*COLUMN_KEYS, "id", "status"]]
    # a row's speed comes from a record of its own (kind "speed"): kept beside the KLD records
    speed_ids = [r.speed_id for r in rows if r.speed_id is not None]
    payload = {
        "generator": f"qtui {__version__}",
        "rows": json_rows(rows),
        "records": [by_id[i].to_dict() for i in [*table["id"], *dict.fromkeys(speed_ids)] if i in by_id],
    }
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"


def provenance(records: Iterable[ResultRecord]) -> list[str]:
    """One line per distinct measurement setup: results from different setups must not be mixed silently."""
    seen: dict[tuple[Any, ...], int] = {}
    for rec in records:
        if rec.kind != "kld":
            continue
        key = (rec.base.get("label"), rec.corpus.get("sha256", "")[:12] or rec.corpus.get("name"), rec.ctx,
               rec.chunks, rec.llama.get("fork"), rec.llama.get("version"), rec.gpu, rec.source.get("type"))
        seen[key] = seen.get(key, 0) + 1
    lines = []
    for (base, corpus, ctx, chunks, fork, version, gpu, src), n in seen.items():
        parts = [f"base {base or '?'}", f"corpus {corpus or '?'}", f"-c {ctx or '?'}", f"{chunks or '?'} chunks"]
        if fork or version:
            parts.append(f"{fork or 'llama.cpp'} {version or ''}".strip())
        if gpu:
            parts.append(str(gpu))
        if src and src != "qtui":
            parts.append(f"source: {src}")
        lines.append(f"{n} run(s): " + ", ".join(parts))
    return lines


def to_markdown(rows: Sequence[Row], records: Iterable[ResultRecord] = (), title: str = "KLD leaderboard") -> str:
    # The footer describes the table: a run that is not a row (cancelled, failed) is not counted.
    ids = {r.id for r in rows}
    records = [r for r in records if r.id in ids]
    cols = [c for c in board_columns(rows) if c.key != "kld_err"]  # with pp/tg t/s where a row has them
    table = board_frame(rows)
    cells = {c.key: table[c.key].map(c.fmt) for c in cols}
    # the mean KLD carries its uncertainty in the same cell, as posted showdowns write it
    cells["kld"] = table["kld"].combine(table["kld_err"], lambda k, e: formats.plus_minus(k, e, 6))  # as everywhere
    text = table[[]].assign(**cells).map(lambda s: s.replace("|", "\\|"))
    names = {r.id: r.quant or r.model for r in rows}
    text = text.assign(vs_next=[_next_cell(r, names) for r in rows])
    titles = [f"{c.title} (lower is better)" if c.key == "score" else c.title for c in cols]
    head = "| # | " + " | ".join(titles) + " | vs next-ranked (95 %) |"
    sep = "|---|" + "|".join("---" if formats.align(c.key) == "left" else "---:" for c in cols) + "|---|"
    body = [f"| {i} | " + " | ".join(line) + " |" for i, line in enumerate(text.itertuples(index=False), 1)]
    notes = ["", "Lower KLD = closer to the base. Dist. = distance to the ideal, lower is better: 0 = the smallest "
             "and most faithful file, with size and KLD scaled 0-1 over these rows (the largest file with the "
             "lowest KLD and the smallest with the highest both score 1.000); ★ = on the size/KLD Pareto front; "
             "? = not measured or not published." + (" pp t/s and tg t/s = llama-bench prompt processing and "
                                                    "generation speed in tokens per second (empty: not measured)."
                                                    if has_speed(rows) else ""),
             "Rank 3-5 = neighbours not separated at 95 %. vs next-ranked = the next-ranked row's mean KLD minus "
             "this one's over the chunks both ran, with its 95 % interval (paired by chunk, Holm over the neighbours)."]
    notes += [f"- {line}" for line in provenance(records)]
    notes.append(f"\n_Made with qtui {__version__} (llama-perplexity --kl-divergence)._")
    return "\n".join([f"### {title}", "", head, sep, *body, *notes]) + "\n"


def _next_cell(row: Row, names: dict[str, str]) -> str:
    sep = row.vs_next
    if sep is None or row.next_id is None:
        return ""
    other = names.get(row.next_id, row.next_id)
    if sep.diff is None:
        text = f"{other}: {sep.words}"
    else:
        d = sep.diff
        text = f"{other}: {d.mean:+.6f} [{d.low:+.6f}, {d.high:+.6f}] {sep.words}, {d.n} chunks"
    return text.replace("|", "\\|")


def to_svg(rows: Sequence[Row], title: str = "Size vs mean KLD", width: int = 760, height: int = 440) -> str:
    """A standalone scatter of size against mean KLD (log scale), Pareto front joined."""
    # (size, log10 KLD, row) of the rows that can be placed: a log axis has no place for 0
    pts = [(r.size_gib, math.log10(r.kld), r) for r in rows if r.size_gib is not None and r.kld is not None and r.kld > 0]
    ml, mr, mt, mb = 70, 180, 40, 50
    pw, ph = width - ml - mr, height - mt - mb
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{ml}" y="22" font-size="14">{escape(title)}</text>']
    if not pts:
        out.append(f'<text x="{ml}" y="{mt + ph / 2}">no finished runs with size and KLD</text></svg>')
        return "\n".join(out) + "\n"
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x0, x1 = (x0 - 0.5, x1 + 0.5) if x0 == x1 else (x0 - 0.05 * (x1 - x0), x1 + 0.05 * (x1 - x0))
    y0, y1 = (y0 - 0.5, y1 + 0.5) if y0 == y1 else (y0 - 0.08 * (y1 - y0), y1 + 0.08 * (y1 - y0))

    def px(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return mt + ph - (y - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    for i in range(5):
        xv = x0 + (x1 - x0) * i / 4
        yv = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{px(xv):.1f}" y="{mt + ph + 16}" text-anchor="middle">{xv:.2f}</text>')
        out.append(f'<text x="{ml - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{10 ** yv:.3g}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 10}" text-anchor="middle">size (GiB)</text>')
    out.append(f'<text x="14" y="{mt + ph / 2}" transform="rotate(-90 14 {mt + ph / 2})" text-anchor="middle">mean KLD (log)</text>')
    front = sorted((p for p in pts if p[2].pareto), key=lambda p: p[0])
    if len(front) > 1:
        d = " ".join(f"{px(s):.1f},{py(k):.1f}" for s, k, _ in front)
        out.append(f'<polyline points="{d}" fill="none" stroke="#d62728" stroke-dasharray="4 3"/>')
    for s, k, r in pts:
        x, y = px(s), py(k)
        color = "#d62728" if r.pareto else "#1f77b4"
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{escape(r.model)}: {r.kld:.6f}</title></circle>')
        out.append(f'<text x="{x + 6:.1f}" y="{y - 5:.1f}">{escape(r.quant or r.model)}</text>')
    out.append(f'<text x="{ml + pw + 10}" y="{mt + 12}" fill="#d62728">● Pareto front</text>')
    out.append(f'<text x="{ml + pw + 10}" y="{mt + 28}" fill="#1f77b4">● other</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def export(fmt: str, rows: Sequence[Row], records: Iterable[ResultRecord]) -> str:
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "json":
        return to_json(rows, records)
    if fmt == "md":
        return to_markdown(rows, records)
    if fmt == "svg":
        return to_svg(rows)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
