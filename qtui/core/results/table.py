"""The results table: one row per result record, as a pandas DataFrame.

The form for analysis (`qtui.load_results()` in a notebook): every figure of every run, the
measurement setup it belongs to, and the leaderboard's efficiency score and Pareto front,
computed within each setup by a groupby with the same functions the leaderboard rows use
(ranking.py), so a notebook, the app and every export rank the same way.

pandas is imported inside the functions, never at module level: importing it costs about as
much as drawing the app's whole first screen, and `import qtui` or opening the app must not pay
for it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtui.core.llama.stats import FinalStats
from qtui.core.results.chunks import common_chunk_means
from qtui.core.results.floor import is_floor
from qtui.core.results.ranking import efficiency, model_label, number, pareto, size_gib
from qtui.core.results.setups import setup_keys
from qtui.core.results.store import ResultRecord, file_identity, load_records

if TYPE_CHECKING:
    import pandas as pd

# The headline statistics, in the order a reader compares them; every other FinalStats field
# follows them at the end of the table.
HEADLINE_STATS = ("ppl_q", "ppl_ratio", "kld_mean", "kld_mean_err", "kld_p99", "kld_p999", "kld_max", "dp_rms", "same_top")
OTHER_STATS = tuple(f.name for f in fields(FinalStats) if f.name not in HEADLINE_STATS)

# Every column of results_frame(), in order, with what it holds: what a reader compares first,
# then every other statistic, the ranking, the measurement setup and the run. The README's
# "Python API" section documents the same list (a test keeps the two in step).
FRAME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model label (the record's label, else its name, else the file path)"),
    ("quantizer", "who quantized it (general.quantized_by or the folder)"),
    ("quant", "file_type label from the GGUF header (a label, not the truth)"),
    ("path", "model file path (absent for published figures)"),
    ("size_bytes", "file size in bytes, all shards (Int64; absent for published figures)"),
    ("size_gib", "file size in GiB: size_bytes / 2^30, or the size a post published"),
    ("bpw", "bits per weight over all tensors"),
    ("n_params", "number of parameters (Int64)"),
    ("status", '"done", "failed" or "cancelled"'),
    ("kind", '"kld" (a quant against its base), "base" (making the base log-prob file), "speed" (llama-bench on a '
             'model file) or "ppl"'),
    ("kld_mean", "mean KL divergence from the base (lower = closer)"),
    ("kld_mean_err", "uncertainty of kld_mean"),
    ("kld_p99", "99th percentile KLD (the tail)"),
    ("kld_p999", "99.9th percentile KLD"),
    ("kld_max", "maximum KLD"),
    ("same_top", "how often the top token matches the base's, percent"),
    ("dp_rms", "RMS of the token probability change, percent"),
    ("ppl_q", "perplexity of the quant"),
    ("ppl_ratio", "PPL(Q) / PPL(base)"),
    *((name, "as llama-perplexity printed it (percent for dp_* and same_top_err)") for name in OTHER_STATS),
    ("score", "distance to the ideal (the leaderboard's Dist.): 0 = smallest and most faithful, lower is better; "
              "size and KLD min-max scaled within the setup"),
    ("pareto", "on the size/KLD Pareto front of its setup"),
    ("pp_ts", "prompt processing speed, tokens per second (llama-bench, `qtui run --speed`): a speed record's own, "
              "and on KLD records that of the latest speed record of the same file"),
    ("tg_ts", "generation speed, tokens per second (as pp_ts)"),
    ("setup", "measurement setup number (0, 1, ...; Int64): same base, corpus, context, chunk count, llama build family and source"),
    ("base", "base model label (or path)"),
    ("corpus", "corpus name"),
    ("corpus_sha256", "SHA-256 of the corpus file"),
    ("ctx", "context size, -c (Int64)"),
    ("chunks", "chunks measured, --chunks (Int64)"),
    ("llama_fork", "llama.cpp fork that measured it"),
    ("llama_version", "llama.cpp version"),
    ("llama_commit", "llama.cpp commit"),
    ("gpu", "GPU the run used"),
    ("source", '"qtui" (measured here), "import" (an imported log) or "published" (figures from a post)'),
    ("source_url", "the post published figures come from"),
    ("id", "record id (sortable by time, unique across machines)"),
    ("job_id", "the job that produced it"),
    ("started_at", "start time (datetime, UTC)"),
    ("ended_at", "end time (datetime, UTC)"),
    ("duration_s", "run duration in seconds"),
    ("failure", "why a failed or cancelled run stopped"),
)
FRAME_COLUMN_NAMES = tuple(name for name, _ in FRAME_COLUMNS)
_INT_COLUMNS = ("size_bytes", "n_params", "ctx", "chunks", "setup")
_FLOAT_COLUMNS = ("size_gib", "bpw", *HEADLINE_STATS, "score", "pp_ts", "tg_ts", "duration_s", *OTHER_STATS)
_TIME_COLUMNS = ("started_at", "ended_at")


def _int(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _setup_numbers(records: Sequence[ResultRecord]) -> list[int]:
    # setup_keys, not setup_key: a cancelled run gets the number of its base file's setup
    seen: dict[tuple[Any, ...], int] = {}
    return [seen.setdefault(k, len(seen)) for k in setup_keys(records)]


def _record_row(rec: ResultRecord, setup: int) -> dict[str, Any]:
    m, s, llama = rec.model, rec.stats, rec.llama
    return {
        "id": rec.id, "kind": rec.kind, "status": rec.status,
        "model": model_label(m), "quantizer": m.get("quantized_by"), "quant": m.get("quant"), "path": m.get("path"),
        "size_bytes": _int(m, "size_bytes"), "size_gib": size_gib(m), "bpw": number(m, "bpw"), "n_params": _int(m, "n_params"),
        **{k: number(s, k) for k in HEADLINE_STATS},
        "score": None, "pareto": False, "setup": setup,
        "pp_ts": number(s, "pp_ts") if rec.kind == "speed" else None,
        "tg_ts": number(s, "tg_ts") if rec.kind == "speed" else None,
        "base": rec.base.get("label") or rec.base.get("path"), "corpus": rec.corpus.get("name"),
        "corpus_sha256": rec.corpus.get("sha256"), "ctx": rec.ctx, "chunks": rec.chunks,
        "llama_fork": llama.get("fork"), "llama_version": llama.get("version"), "llama_commit": llama.get("commit"),
        "gpu": rec.gpu, "source": rec.source.get("type", "qtui"), "source_url": rec.source.get("url"),
        "job_id": rec.job_id, "started_at": rec.started_at, "ended_at": rec.ended_at, "duration_s": rec.duration_s,
        "failure": (rec.failure or {}).get("reason"),
        **{k: number(s, k) for k in OTHER_STATS},
    }


def _join_speed(records: Sequence[ResultRecord], rows: list[dict[str, Any]]) -> None:
    """Each KLD row gets the speeds of the latest finished speed record of its file, as the
    leaderboard's rows do."""
    latest: dict[Any, ResultRecord] = {}
    for r in records:
        ident = file_identity(r.model)
        if r.kind == "speed" and r.status == "done" and ident is not None:
            if ident not in latest or (r.ended_at or 0) >= (latest[ident].ended_at or 0):
                latest[ident] = r
    for rec, row in zip(records, rows):
        sp = latest.get(file_identity(rec.model)) if rec.kind == "kld" else None
        if sp is not None:
            row["pp_ts"], row["tg_ts"] = number(sp.stats, "pp_ts"), number(sp.stats, "tg_ts")


def results_frame(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """One row per record, columns FRAME_COLUMN_NAMES, score and Pareto flag filled in.

    Missing or non-finite figures are NaN (<NA> in the Int64 columns): the table never
    invents a value a run did not print.
    """
    import pandas as pd

    records = list(records)
    rows = [_record_row(r, n) for r, n in zip(records, _setup_numbers(records))]
    _join_speed(records, rows)
    frame = pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMN_NAMES))
    frame = frame.astype({c: "Int64" for c in _INT_COLUMNS} | {c: "float64" for c in _FLOAT_COLUMNS} | {"pareto": "bool"})
    for c in _TIME_COLUMNS:
        frame[c] = pd.to_datetime(frame[c].astype("float64"), unit="s", utc=True)
    return rank(frame, skip=[is_floor(r.model) for r in records], scored=_scored_klds(records, frame["setup"].tolist()))


def _scored_klds(records: Sequence[ResultRecord], setups: Sequence[int]) -> list[float] | None:
    """The KLD each record is scored by: its own mean, except in a setup with screened variants,
    where each is scored over the chunks all of the setup's finished runs share (as the
    leaderboard does: chunks.common_chunk_means). None when no setup has screened variants."""
    if not any(r.screen for r in records):
        return None
    out = [number(r.stats, "kld_mean") for r in records]
    groups: dict[int, list[int]] = {}
    for i, (rec, setup) in enumerate(zip(records, setups)):
        if rec.kind == "kld" and rec.status == "done" and not is_floor(rec.model):
            groups.setdefault(setup, []).append(i)
    for members in groups.values():
        if any(records[i].screen for i in members):
            means = common_chunk_means([records[i] for i in members])
            for i, m in zip(members, means or []):
                out[i] = m
    return [math.nan if v is None else float(v) for v in out]


def rank(frame: pd.DataFrame, skip: Sequence[bool] | None = None, scored: Sequence[float] | None = None) -> pd.DataFrame:
    """Fill `score` and `pareto` for the finished KLD rows, within each setup.

    Rows missing a size or a KLD, failed runs and base runs get NaN and False, and so do the
    rows `skip` marks (noise-floor runs: the base against itself is no quant to rank).
    `scored`: the KLD to score each row by, when it is not its own mean (screened setups).
    """
    import pandas as pd

    frame = frame.copy()
    frame["score"] = math.nan
    frame["pareto"] = False
    keep = (frame["kind"] == "kld") & (frame["status"] == "done")
    if skip is not None:
        keep = keep & ~pd.Series(list(skip), index=frame.index, dtype=bool)
    kld = frame["kld_mean"] if scored is None else pd.Series(list(scored), index=frame.index, dtype="float64")
    ranked = frame[keep]
    for _, group in ranked.groupby("setup", sort=False):
        points = [None if math.isnan(s) or math.isnan(k) else (s, k)
                  for s, k in zip(group["size_gib"].tolist(), kld[group.index].tolist())]
        frame.loc[group.index, "score"] = [math.nan if v is None else v for v in efficiency(points)]
        frame.loc[group.index, "pareto"] = pareto(points)
    return frame


def load_results(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The results under `path` as a DataFrame (see results_frame for the columns).

    `path`: None for the user's own store (QTUI_DATA_DIR, else the config's data_dir, else the
    platform's data dir), a data dir or its `results/` folder, a folder of exports, an exported
    JSON, or a `sample_results/*.json` file. Files that cannot be read are reported with a
    warning and skipped; a path with nothing readable is an error.
    """
    if path is None:
        from qtui.core.config import effective_data_dir, load_config

        cfg, problems = load_config()
        for p in problems:
            warnings.warn(f"config: {p}", stacklevel=2)
        where = effective_data_dir(cfg) / "results"
        if not where.is_dir():  # no run finished yet: an empty table, not an error
            return results_frame([])
    else:
        where = Path(path).expanduser()
        if not where.exists():
            raise FileNotFoundError(f"{where}: no such file or folder")
    res = load_records(where)
    if res.problems and not res.records and where.is_file():
        raise ValueError(f"{where} holds no qtui results: {res.problems[0]}")
    for p in res.problems:
        warnings.warn(f"skipped {p}", stacklevel=2)
    return results_frame(res.records)
