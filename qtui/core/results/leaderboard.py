"""The leaderboard: which records it shows, its rows and columns, sorting.

Shared by the TUI's DataTable, `qtui results` and every export, so that all of them rank
the same way. The ranking maths (ranking.py) is the one the results DataFrame applies too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from qtui.core import formats
from qtui.core.results.chunks import ChunkSeries, chunk_series, common_chunk_means
from qtui.core.results.floor import floors_by_setup, is_floor
from qtui.core.results.paired import Separation, adjacent_separations, rank_ranges
from qtui.core.results.ranking import GIB, Point, efficiency, model_label, number, pareto, setup_key, size_gib
from qtui.core.results.screening import paired_order
from qtui.core.results.store import ResultRecord, file_identity

__all__ = ["COLUMNS", "COLUMN_KEYS", "GIB", "PUBLISHED_SCORE", "SPEED_COLUMNS", "SPEED_KEYS", "Column", "Row",
           "board_columns", "board_records", "build_rows", "efficiency_scores", "format_cell", "has_speed", "join_speed",
           "pareto_front", "rank_rows", "row_from_record", "setup_key", "sort_rows"]


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    quantizer: str | None
    quant: str | None
    size_gib: float | None
    bpw: float | None
    ppl_q: float | None
    ppl_ratio: float | None
    kld: float | None
    kld_err: float | None
    kld_p99: float | None
    kld_p999: float | None
    kld_max: float | None
    dp_rms: float | None
    same_top: float | None
    duration_s: float | None
    status: str
    path: str | None = None
    score: float | None = None
    pareto: bool = False
    source: str = "qtui"
    rank: str | None = None
    """place in the KLD ranking of its setup: '3', or '3-5' for neighbours not separated"""
    vs_next: Separation | None = None
    """paired comparison with the next row down the ranking (next_id)"""
    next_id: str | None = None
    chunk_data: str | None = None
    """'exact' or 'derived' (from the printed running means); None without per-chunk data"""
    screen: str | None = None
    """a screened variant: its state and the chunks it ran, e.g. 'settled · 8/120 chunks'"""
    position: int | None = None
    """place in its setup's ranking (0 = best), set where the setup has screened variants: their
    means cover different chunks, so the KLD sort follows the paired order on common chunks
    (the order screening decided on) instead of each row's own mean"""
    published_score: float | None = None
    """the score a published sweep gave this row, over its post's own set of quants"""
    pp_ts: float | None = None
    """prompt processing speed, tokens per second, from the latest speed run of the same file"""
    tg_ts: float | None = None
    """generation speed, tokens per second (same speed run)"""
    speed_id: str | None = None
    """the speed record pp_ts and tg_ts come from"""


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: Callable[[Any], str]
    help: str


def _num(digits: int) -> Callable[[Any], str]:
    return lambda v: "?" if v is None else f"{v:.{digits}f}"


def _text(v: Any) -> str:
    return "?" if v in (None, "") else str(v)


COLUMNS: tuple[Column, ...] = (
    Column("model", "Model", _text, "file or model name"),
    Column("quantizer", "By", _text, "who quantized it (general.quantized_by or folder)"),
    Column("quant", "Quant", _text, "file_type label from the header (a label, not the truth)"),
    Column("size_gib", "GiB", _num(3), "file size, all shards"),
    Column("bpw", "BPW", _num(2), "bits per weight over all tensors"),
    Column("ppl_q", "PPL(Q)", _num(4), "perplexity of the quant"),
    Column("ppl_ratio", "PPL ratio", _num(4), "PPL(Q)/PPL(base)"),
    Column("kld", "Mean KLD", _num(6), "mean KL divergence from the base (lower = closer)"),
    Column("kld_err", "±", lambda v: formats.error(v, 6), "uncertainty of the mean KLD (standard error)"),
    Column("rank", "Rank", _text, "place by mean KLD within the setup; neighbours not separated at 95 % "
           "(paired by chunk, Holm over the neighbours) share a range such as 3-5; a screened variant adds "
           "settled, open or tie and the chunks it ran"),
    Column("kld_p99", "KLD 99%", _num(5), "99th percentile KLD (tail)"),
    Column("kld_p999", "KLD 99.9%", _num(5), "99.9th percentile KLD"),
    Column("kld_max", "Max KLD", _num(4), "maximum KLD"),
    Column("dp_rms", "RMS Δp %", _num(3), "RMS of token probability change"),
    Column("same_top", "Same top %", _num(2), "how often the top token matches the base"),
    # Titled for what it is: "Eff." read as higher-is-better. The key stays `score` (stored data,
    # `--sort score`, the DataFrame column).
    Column("score", "Dist.", _num(3), "distance to the ideal: 0 = smallest and most faithful; lower is better "
           "(size and KLD scaled 0-1 over the rows shown, so the largest file with the lowest KLD and the "
           "smallest with the highest both score 1.000: each is best on one axis and worst on the other)"),
    Column("pareto", "Pareto", lambda v: "★" if v else "", "on the size/KLD Pareto front"),
    Column("duration_s", "Time", formats.duration, "run duration"),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
PUBLISHED_SCORE = Column("published_score", "Published", _num(3),
                         "the score the published sweep gave this row, normalised over every quant of its post "
                         "(lower is better): not comparable with the score computed over the rows shown")
"""Not among COLUMNS: only a published sweep has it; the app shows it where a row has one."""


def _speed(v: Any) -> str:
    # empty, not "?": a speed is optional, not a figure that went missing
    return "" if v is None else (f"{v:.0f}" if v >= 1000 else f"{v:.1f}")


SPEED_COLUMNS: tuple[Column, ...] = (
    Column("pp_ts", "pp t/s", _speed, "prompt processing speed, tokens per second (llama-bench, pp512 by default, "
           "with the run's -ngl/-fa/-t; `qtui run --speed`); empty where not measured"),
    Column("tg_ts", "tg t/s", _speed, "generation speed, tokens per second (llama-bench, tg128 by default); "
           "empty where not measured"),
)
"""Not among COLUMNS: shown where a row has a speed (a speed job is optional)."""
SPEED_KEYS = tuple(c.key for c in SPEED_COLUMNS)


def has_speed(rows: Iterable[Row]) -> bool:
    return any(r.pp_ts is not None or r.tg_ts is not None for r in rows)


def board_columns(rows: Sequence[Row]) -> tuple[Column, ...]:
    """COLUMNS, with the speed columns after BPW (beside the size they trade against) when a
    row has a speed."""
    if not has_speed(rows):
        return COLUMNS
    at = COLUMN_KEYS.index("bpw") + 1
    return (*COLUMNS[:at], *SPEED_COLUMNS, *COLUMNS[at:])


def join_speed(records: Iterable[ResultRecord], rows: Sequence[Row], kept: Sequence[ResultRecord]) -> list[Row]:
    """Each row with the latest finished speed run of its file (rows made from `kept`, in order)."""
    latest: dict[tuple[str, object, float], ResultRecord] = {}
    for r in records:
        ident = file_identity(r.model)
        if r.kind == "speed" and r.status == "done" and ident is not None:
            prev = latest.get(ident)
            if prev is None or (r.ended_at or 0) >= (prev.ended_at or 0):
                latest[ident] = r
    if not latest:
        return list(rows)
    out = []
    for rec, row in zip(kept, rows):
        ident = file_identity(rec.model)
        sp = latest.get(ident) if ident is not None else None
        out.append(row if sp is None else replace(row, pp_ts=number(sp.stats, "pp_ts"), tg_ts=number(sp.stats, "tg_ts"),
                                                  speed_id=sp.id))
    return out


def row_from_record(rec: ResultRecord) -> Row:
    m, s = rec.model, rec.stats
    return Row(
        id=rec.id,
        model=model_label(m),
        quantizer=m.get("quantized_by"),
        quant=m.get("quant"),
        size_gib=size_gib(m),
        bpw=number(m, "bpw"),
        ppl_q=number(s, "ppl_q"),
        ppl_ratio=number(s, "ppl_ratio"),
        kld=number(s, "kld_mean"),
        kld_err=number(s, "kld_mean_err"),
        kld_p99=number(s, "kld_p99"),
        kld_p999=number(s, "kld_p999"),
        kld_max=number(s, "kld_max"),
        dp_rms=number(s, "dp_rms"),
        same_top=number(s, "same_top"),
        duration_s=rec.duration_s,
        status=rec.status,
        path=m.get("path"),
        source=str(rec.source.get("type", "qtui")),
        screen=screen_text(rec),
        published_score=published_score(rec),
    )


def published_score(rec: ResultRecord) -> float | None:
    """The efficiency score a published sweep printed for this row, if it printed one."""
    published = rec.source.get("published")
    return number(published, "efficiency") if isinstance(published, dict) else None


def screen_text(rec: ResultRecord) -> str | None:
    """'settled · 8/120 chunks' for a screened variant's summary, None for any other record."""
    screen = rec.screen
    if not isinstance(screen, dict):
        return None
    run, total = screen.get("chunks_run"), screen.get("n_chunk")
    chunks = f"{run}/{total} chunks" if total else f"{run} chunks"
    return f"{screen.get('state') or '?'} · {chunks}"


def _point(r: Row) -> Point:
    return (r.size_gib, r.kld) if r.size_gib is not None and r.kld is not None else None


def efficiency_scores(rows: Sequence[Row]) -> list[float | None]:
    """score = sqrt(size_n² + kld_n²) with both axes min-max normalised over `rows`.

    Relative to the set on screen (as in the showdown post): adding a row can change every
    score. Rows missing size or KLD get None. A constant axis normalises to 0.
    """
    return efficiency([_point(r) for r in rows])


def pareto_front(rows: Sequence[Row]) -> list[bool]:
    """True where no other row is at least as small AND at least as close, and better in one."""
    return pareto([_point(r) for r in rows])


def build_rows(records: Iterable[ResultRecord], include_failed: bool = False) -> list[Row]:
    """KLD rows; score and Pareto flag computed over the finished rows of the same setup.

    A noise-floor run (the base against itself, results/floor.py) is no row: it is the
    threshold below which the setup's neighbours are tied."""
    records = list(records)
    floors = floors_by_setup(records)
    kept = [r for r in records if r.kind == "kld" and (include_failed or r.status == "done") and not is_floor(r.model)]
    rows = [row_from_record(r) for r in kept]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (rec, row) in enumerate(zip(kept, rows)):
        if row.status == "done":
            groups.setdefault(setup_key(rec), []).append(i)
    scores: list[float | None] = [None] * len(rows)
    front = [False] * len(rows)
    for members in groups.values():
        ranked = _comparable([kept[i] for i in members], [rows[i] for i in members])
        for i, s, f in zip(members, efficiency_scores(ranked), pareto_front(ranked)):
            scores[i], front[i] = s, f
    rows = join_speed(records, [replace(r, score=s, pareto=f) for r, s, f in zip(rows, scores, front)], kept)
    return rank_rows(kept, rows, floors)


def _comparable(records: Sequence[ResultRecord], rows: Sequence[Row]) -> list[Row]:
    """The rows of one setup as the score and the Pareto front see them: in a setup with
    screened rows, each scored by its mean over the chunks every row ran (chunks.common_chunk_means);
    the table still shows each row's own mean."""
    means = common_chunk_means(records) if any(r.screen for r in rows) else None
    if means is None:
        return list(rows)
    return [replace(r, kld=m) for r, m in zip(rows, means)]


def rank_rows(records: Sequence[ResultRecord], rows: Sequence[Row],
              floors: dict[tuple[Any, ...], float] | None = None) -> list[Row]:
    """Rank ranges and paired separations, within each setup, of rows made from `records`
    (one row per record, same order).

    Finished rows with a mean KLD are ranked by it; each is compared with the next one down
    over their common chunks, Holm across the setup's V-1 neighbours. Neighbours without
    per-chunk data in common are never called separated, nor are neighbours whose mean
    difference is within their setup's noise floor (`floors`, by setup key).
    """
    series: list[ChunkSeries | None] = [chunk_series(rec) for rec in records]
    out = [replace(r, chunk_data=s.kind if s is not None else None) for r, s in zip(rows, series)]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (rec, row) in enumerate(zip(records, rows)):
        if row.status == "done" and row.kld is not None:
            groups.setdefault(setup_key(rec), []).append(i)
    for key, members in groups.items():
        order = sorted(members, key=lambda i: (rows[i].kld or 0.0, rows[i].id))
        screened = any(rows[i].screen for i in members)
        have = {rows[i].id: s for i in order if (s := series[i]) is not None}
        if screened and len(have) == len(order):
            # screened variants ran different chunks: order them as screening did, pair by pair
            # on the chunks both have (a variant stopped after 8 hard chunks is not worse than
            # one whose mean covers 120 easier ones)
            by_id = {rows[i].id: i for i in order}
            order = [by_id[k] for k in paired_order(have)]
        seps = adjacent_separations([series[i] for i in order], floor=(floors or {}).get(key))
        for pos, (i, rank) in enumerate(zip(order, rank_ranges(seps))):
            nxt = order[pos + 1] if pos + 1 < len(order) else None
            out[i] = replace(out[i], rank=rank, vs_next=seps[pos] if nxt is not None else None,
                             next_id=rows[nxt].id if nxt is not None else None,
                             position=pos if screened else None)
    return out


def board_records(records: Sequence[ResultRecord]) -> list[ResultRecord]:
    """What the board ranks: the latest finished run of each measurement, plus the latest
    failure of a model that has no finished run yet.

    A failed or cancelled attempt that was later retried with success is history, not news:
    showing it would fill the board with one FAILED row per retry. A variant measured again on
    the same setup (`qtui run --again`, a second demo) is one row, its latest run: two rows for
    one file would read as two quants. Records with no local file (published sweeps) are
    never merged: two quantizers' IQ4_XS are two rows.
    """
    def key(r: ResultRecord) -> tuple[object, object]:
        return r.model.get("path") or r.model.get("label"), r.base.get("file") or r.base.get("label")

    # Screening windows are parts of one summary per variant: never rows of their own.
    records = [r for r in records if not is_screen_part(r)]

    latest_done: dict[tuple[object, ...], ResultRecord] = {}
    for r in records:
        measured = _measurement(r)
        if r.status == "done" and measured is not None:
            prev = latest_done.get(measured)
            if prev is None or (r.ended_at or 0) >= (prev.ended_at or 0):
                latest_done[measured] = r
    done = {key(r) for r in records if r.status == "done"}
    latest_failure: dict[tuple[object, object], ResultRecord] = {}
    for r in records:
        if r.status != "done" and key(r) not in done:
            prev = latest_failure.get(key(r))
            if prev is None or (r.ended_at or 0) >= (prev.ended_at or 0):
                latest_failure[key(r)] = r
    keep = {id(r) for r in (*latest_failure.values(), *latest_done.values())}
    return [r for r in records if id(r) in keep or (r.status == "done" and _measurement(r) is None)]


def is_screen_part(rec: ResultRecord) -> bool:
    """A screening job's run on one window: its variant's summary record stands for it."""
    return bool(rec.source.get("screen_part"))


def _measurement(r: ResultRecord) -> tuple[object, ...] | None:
    """One variant file against one base file at one context; None without a local file."""
    path = r.model.get("path")
    if not path:
        return None
    return (path, r.model.get("size_bytes"), r.model.get("mtime"), r.base.get("file") or r.base.get("label"), r.ctx,
            is_floor(r.model))


def sort_rows(rows: Iterable[Row], key: str = "kld", reverse: bool = False) -> list[Row]:
    """Sort by any column; unknown values always last, whichever the direction."""
    if key not in COLUMN_KEYS and key not in ("status", PUBLISHED_SCORE.key, *SPEED_KEYS):
        raise ValueError(f"unknown column {key!r}; choose one of: {', '.join(COLUMN_KEYS)}")
    rows = list(rows)
    known = [r for r in rows if getattr(r, key) is not None]
    unknown = [r for r in rows if getattr(r, key) is None]

    # a setup with screened variants sorts by KLD in its paired order (Row.position)
    by_position = key == "kld" and bool(known) and all(r.position is not None for r in known)

    def k(r: Row) -> Any:
        v = getattr(r, key)
        if by_position:
            return r.position
        if key == "rank":
            return _rank_order(v)
        return v.lower() if isinstance(v, str) else v

    known.sort(key=k, reverse=reverse)
    return known + unknown


def _rank_order(rank: str) -> tuple[int, int]:
    """'3-5' sorts as (3, 5): numbers, not text ('10' after '9')."""
    lo, _, hi = rank.partition("-")
    return int(lo), int(hi or lo)


def format_cell(column: Column | str, row: Row) -> str:
    col = column if isinstance(column, Column) else next(c for c in (*COLUMNS, *SPEED_COLUMNS) if c.key == column)
    text = col.fmt(getattr(row, col.key))
    if col.key == "rank" and row.screen:
        return f"{text} · {row.screen}"  # a screened row says how far it ran, and whether it is settled
    return text
