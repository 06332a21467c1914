"""`qtui results` and `qtui export`: the ranked board on the terminal (one setup at a time, the
marks and published fields beside it), as JSON, and the exports; and the board a finished
`qtui run` prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.table import Table

from qtui.console import UserError, console, err_console, keep_going, settings
from qtui.core import formats
from qtui.core.results.export import export, to_markdown
from qtui.core.results.fit import fit_columns
from qtui.core.results.leaderboard import Row, board_columns, board_records, build_rows, format_cell, sort_rows
from qtui.core.results.setups import SetupGroup, SetupNotFound, find_setup, group_setups
from qtui.core.results.store import ResultRecord, ResultStore, load_records


def _records(args: argparse.Namespace) -> list[ResultRecord]:
    if getattr(args, "source", None):
        res = load_records(args.source)
    else:
        cfg, data_dir = settings(args)
        keep_going(cfg, data_dir)
        res = ResultStore(data_dir).load()
    for p in res.problems:
        err_console.print(f"[yellow]warning:[/] {p}")
    return res.records


def _setups(args: argparse.Namespace, records: list[ResultRecord]) -> tuple[list[SetupGroup], list[SetupGroup]]:
    """Every setup the board's records span, and the ones `--setup` picks: the default (the one
    with the most results) without it, all of them with `--setup all`."""
    _sorted_rows(args, [])  # an unknown --sort column is an error even with nothing to sort
    groups = group_setups(board_records(records))
    wanted = getattr(args, "setup", None)
    if not groups or wanted is None:
        return groups, groups[:1]
    if wanted.strip().lower() == "all":
        return groups, groups
    try:
        return groups, [find_setup(groups, wanted)]
    except SetupNotFound as exc:
        raise UserError(str(exc)) from None


def _sorted_rows(args: argparse.Namespace, records: Sequence[ResultRecord], include_failed: bool = False) -> list[Row]:
    """The rows of one setup's records (board_records already applied), sorted as asked."""
    try:
        return sort_rows(build_rows(records, include_failed=include_failed), args.sort, args.reverse)
    except ValueError as exc:  # an unknown column: sort_rows says which ones exist
        raise UserError(str(exc)) from None


def _others_line(groups: Sequence[SetupGroup], shown: SetupGroup, command: str) -> str | None:
    """Where the results not shown are: a board never hides other setups silently."""
    others = [g for g in groups if g is not shown]
    if not others:
        return None
    n = sum(len(g.records) for g in others)
    return (f"{n} result{'s' if n != 1 else ''} in {len(others)} other setup{'s' if len(others) != 1 else ''}: "
            f"{command} --setup all shows every setup, --setup N one of them")


def print_board(rows: Sequence[Row], title: str = "Leaderboard", records: Sequence[ResultRecord] = ()) -> None:
    """The rows as a table; with the `records` they come from, each name with the mark the app
    gives it (≈, ≡). What the marks mean comes after the board (print_annotations)."""
    if not rows:
        console.print("no results yet: run [bold]qtui run[/] or [bold]qtui demo[/]")
        return
    from qtui.core.results.annotations import row_marks, with_published_column

    marks = row_marks(records)
    # the # column takes 4 cells (and a mark 2 more after a name); a readable table of the
    # essentials beats every column cut to "0.…"
    columns = with_published_column(board_columns(rows), rows)  # pp/tg t/s where a row has a speed
    cols = fit_columns(rows, console.width - 4 - (2 if marks else 0), columns=columns)
    t = Table(title=title, box=None, header_style="bold")
    t.add_column("#", justify="right")
    for c in cols:
        t.add_column(c.title, justify=formats.align(c.key),
                     no_wrap=True, max_width=44 if c.key == "model" else None)
    for i, r in enumerate(rows, 1):
        style = "" if r.status == "done" else "red"
        cells = [format_cell(c, r) if r.status == "done" or c.key in ("model", "quant", "size_gib", "bpw", "quantizer")
                 else ("✗ " + r.status if c.key == "kld" else "") for c in cols]
        if r.id in marks and cols and cols[0].key == "model":
            cells[0] += f" {marks[r.id].symbol}"  # as the app marks the name: ≈ base origin, ≡ same tensors
        t.add_row(str(i), *cells, style=style)
    console.print(t)
    hidden = len(columns) - len(cols)
    if hidden:
        console.print(f"[dim]{hidden} columns hidden at this width (qtui export -f md shows all)[/]")


def print_annotations(rows: Sequence[Row], records: Sequence[ResultRecord]) -> None:
    """Under a board: what its marks mean and, for published rows, what the post said (the
    words of the app's caption and i, from core/results/annotations.py)."""
    from qtui.core.results.annotations import marks_legend, published_fields, published_note, row_marks

    marks = row_marks(records)
    ids = {r.id for r in rows}
    legend = marks_legend(marks, ids)
    if legend:
        console.print(" · ".join(legend), style="dim", markup=False, soft_wrap=True)
    by_id = {rec.id: rec for rec in records}
    for r in rows:
        for note in marks[r.id].notes() if r.id in marks else []:
            console.print(f"{r.model}: {note}", markup=False, soft_wrap=True)
    sources: dict[tuple[str, str, str], None] = {}
    for r in rows:
        rec = by_id.get(r.id)
        fields = dict(published_fields(rec)) if rec is not None else {}
        if rec is None or not fields:
            continue
        sources[(fields.get("url", ""), fields.get("date", ""), published_note(rec) or "")] = None
        said = " · ".join(f"{k} {v}" for k, v in fields.items() if k not in ("date", "url"))
        if said:  # a row the post gave only figures for has nothing more to say
            who = f"{r.model} ({r.quantizer})" if r.quantizer and r.quantizer not in r.model else r.model
            console.print(f"{who}, published: {said}", markup=False, soft_wrap=True)
    for url, date, note in sources:
        where = " ".join(x for x in (url, f"({date})" if date else "") if x)
        console.print(f"published{' ' + where if where else ''}: {note or 'no note'}", style="dim", markup=False,
                      soft_wrap=True)


def print_run_board(records: Sequence[ResultRecord]) -> None:
    """The "This run" table: ranked as the leaderboard ranks (by mean KLD, rank ranges where
    neighbours are not separated), failed and cancelled runs apart: queue order is no ranking."""
    rows = sort_rows(build_rows(records, include_failed=True), "kld", False)
    ranked = [r for r in rows if r.status == "done"]
    apart = [r for r in rows if r.status != "done"]
    if ranked:
        print_board(ranked, title="This run, ranked by mean KLD", records=records)
    elif not apart:
        print_board([])
    if apart:
        print_unranked(apart, records)
    print_annotations(rows, records)


def print_unranked(rows: Sequence[Row], records: Sequence[ResultRecord]) -> None:
    """Failed and cancelled runs of a setup, apart from its ranking: they have no place in it."""
    why = {r.id: (r.failure or {}).get("reason") or "" for r in records}
    t = Table(title="Not ranked: failed or cancelled", box=None, header_style="bold")
    for title in ("Model", "Quant", "Status", "Why"):
        t.add_column(title, no_wrap=title != "Why", max_width=44 if title == "Model" else None)
    for r in rows:
        t.add_row(r.model, r.quant or "?", r.status, why.get(r.id, ""), style="red")
    console.print(t)


def cmd_results(args: argparse.Namespace) -> int:
    from qtui.core.results.floor import noise_floor

    groups, chosen = _setups(args, _records(args))
    if getattr(args, "json", False):
        print_results_json(args, chosen)
        return 0
    if not groups:
        print_board([])
        return 0
    for i, g in enumerate(chosen):
        if i:
            console.print()
        rows = _sorted_rows(args, g.board, include_failed=True)
        ranked = [r for r in rows if r.status == "done"]
        apart = [r for r in rows if r.status != "done"]
        title = f"Setup {g.number} of {len(groups)}: {g.label}" if len(groups) > 1 else f"Leaderboard · {g.label}"
        # The setup on a line of its own, above the table: a table's title wraps to its width.
        console.print(title if ranked else f"{title}: no finished runs", style="bold", markup=False, soft_wrap=True)
        if ranked:
            print_board(ranked, title="", records=g.records)
        floor = noise_floor(g.records)
        if floor is not None:
            console.print(f"noise floor {floor:.2e} (the base against itself with half the batch): "
                          "neighbours closer than it are ties", style="dim", markup=False, soft_wrap=True)
        if apart and args.failed:
            print_unranked(apart, g.records)
        elif apart:
            n = len(apart)
            console.print(f"{n} failed or cancelled run{'s' if n != 1 else ''} on this setup, not ranked "
                          "(--failed lists them)", style="dim", markup=False)
        print_annotations(rows if args.failed else ranked, g.records)
    line = _others_line(groups, chosen[0], "qtui results") if len(chosen) == 1 else None
    if line:
        console.print(line, markup=False, soft_wrap=True)
    return 0


def print_results_json(args: argparse.Namespace, chosen: Sequence[SetupGroup]) -> None:
    """`qtui results --json`: per setup, its rows as sorted, each with its rank range and the paired
    intervals to its neighbours in the ranking (failed and cancelled rows with --failed, unranked)."""
    from qtui import __version__
    from qtui.core.results.annotations import row_annotations
    from qtui.core.results.export import json_rows
    from qtui.core.results.floor import noise_floor

    setups = []
    for g in chosen:
        rows = _sorted_rows(args, g.board, include_failed=args.failed)
        listed = json_rows(rows)
        said = row_annotations(g.records)  # the marks and published fields the app shows
        for item in listed:
            item.update(said.get(str(item["id"]), {}))
        setups.append({"number": g.number, "id": g.id, "label": g.label, "noise_floor": noise_floor(g.records),
                       "rows": listed})
    payload = {"generator": f"qtui {__version__}", "setups": setups}
    sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def cmd_export(args: argparse.Namespace) -> int:
    groups, chosen = _setups(args, _records(args))
    if len(chosen) > 1 and args.format != "md":
        raise UserError(f"--setup all writes one table per setup, which only Markdown holds (-f md); "
                        f"export {args.format} one setup at a time with --setup N")
    # Failed and cancelled runs travel in CSV and JSON (their status says so, they have no score);
    # a Markdown table or a plot holds the ranking only.
    carries_failed = args.format in ("csv", "json")
    parts: list[str] = []
    for g in chosen:
        rows = _sorted_rows(args, g.board, include_failed=True)
        ranked = [r for r in rows if r.status == "done"]
        kept = ranked + [r for r in rows if r.status != "done"] if carries_failed else ranked
        if len(chosen) > 1:
            parts.append(to_markdown(kept, g.board, title=f"KLD leaderboard · setup {g.number}: {g.label}"))
        else:
            parts.append(export(args.format, kept, g.board))
        if len(kept) < len(rows):
            n = len(rows) - len(kept)
            err_console.print(f"{n} failed or cancelled run{'s' if n != 1 else ''} of setup {g.number} not in the "
                              f"{args.format} table (csv and json carry them)", markup=False, soft_wrap=True)
    text = "\n".join(parts) if parts else export(args.format, [], [])
    if len(chosen) == 1:
        err_console.print(f"setup {chosen[0].number}: {chosen[0].label}", markup=False, soft_wrap=True)
        line = _others_line(groups, chosen[0], "qtui export")
        if line:
            err_console.print(line, markup=False, soft_wrap=True)
    if args.file:
        try:
            args.file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.file}: {exc.strerror or exc}") from None
        err_console.print(f"wrote {args.file} ({args.format}, {len(text)} bytes)")
    else:
        sys.stdout.write(text)
    return 0
