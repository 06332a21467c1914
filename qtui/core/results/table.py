"""The results table: one row per result record, as a pandas DataFrame.

This is the form for analysis (`qtui.load_results()` in a notebook) and where the ranking
maths lives: the efficiency score and the Pareto front are computed within each measurement
setup by a groupby, so the leaderboard, `qtui results` and every export rank the same way.

pandas is imported inside the functions, never at module level: importing it costs about as
much as drawing the app's whole first screen, and `import qtui` or opening the app must not pay
for it before a single result is shown.
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
from qtui.core.results.store import ResultRecord, load_records

if TYPE_CHECKING:
    import pandas as pd

GIB = 1024**3

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
    ("kind", '"kld" (a quant against its base), "base" (making the base log-prob file) or "ppl"'),
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
    ("score", "efficiency: distance to (0 size, 0 KLD) after min-max scaling within the setup; lower is better"),
    ("pareto", "on the size/KLD Pareto front of its setup"),
    ("setup", "measurement setup number (0, 1, ...; Int64): same base, corpus, context and source"),
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
_FLOAT_COLUMNS = ("size_gib", "bpw", *HEADLINE_STATS, "score", "duration_s", *OTHER_STATS)
_TIME_COLUMNS = ("started_at", "ended_at")


def number(d: dict[str, Any], key: str) -> float | None:
    """A finite number stored under `key`, else None: nan/inf (stored as text), bools and text are unknown."""
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def _int(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def model_label(model: dict[str, Any]) -> str:
    return str(model.get("label") or model.get("name") or model.get("path") or "?")


def size_gib(model: dict[str, Any]) -> float | None:
    """GiB from the byte count; published figures give only the GiB they printed."""
    size = number(model, "size_bytes")
    return size / GIB if size is not None else number(model, "size_gib")


def setup_key(rec: ResultRecord) -> tuple[Any, ...]:
    """What makes two KLD figures comparable: the same base, tokens, context and source.

    KLD against one base means nothing next to KLD against another, so the efficiency score
    and the Pareto front are computed within each setup, never across them.
    """
    base = rec.base.get("label") or rec.base.get("path")
    return (base, rec.corpus.get("sha256"), rec.ctx, rec.source.get("url"))


def _setup_numbers(records: Sequence[ResultRecord]) -> list[int]:
    seen: dict[tuple[Any, ...], int] = {}
    return [seen.setdefault(setup_key(r), len(seen)) for r in records]


def _record_row(rec: ResultRecord, setup: int) -> dict[str, Any]:
    m, s, llama = rec.model, rec.stats, rec.llama
    return {
        "id": rec.id, "kind": rec.kind, "status": rec.status,
        "model": model_label(m), "quantizer": m.get("quantized_by"), "quant": m.get("quant"), "path": m.get("path"),
        "size_bytes": _int(m, "size_bytes"), "size_gib": size_gib(m), "bpw": number(m, "bpw"), "n_params": _int(m, "n_params"),
        **{k: number(s, k) for k in HEADLINE_STATS},
        "score": None, "pareto": False, "setup": setup,
        "base": rec.base.get("label") or rec.base.get("path"), "corpus": rec.corpus.get("name"),
        "corpus_sha256": rec.corpus.get("sha256"), "ctx": rec.ctx, "chunks": rec.chunks,
        "llama_fork": llama.get("fork"), "llama_version": llama.get("version"), "llama_commit": llama.get("commit"),
        "gpu": rec.gpu, "source": rec.source.get("type", "qtui"), "source_url": rec.source.get("url"),
        "job_id": rec.job_id, "started_at": rec.started_at, "ended_at": rec.ended_at, "duration_s": rec.duration_s,
        "failure": (rec.failure or {}).get("reason"),
        **{k: number(s, k) for k in OTHER_STATS},
    }


def results_frame(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """One row per record, columns FRAME_COLUMN_NAMES, score and Pareto flag filled in.

    Missing or non-finite figures are NaN (<NA> in the Int64 columns): the table never
    invents a value a run did not print.
    """
    import pandas as pd

    records = list(records)
    rows = [_record_row(r, n) for r, n in zip(records, _setup_numbers(records))]
    frame = pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMN_NAMES))
    frame = frame.astype({c: "Int64" for c in _INT_COLUMNS} | {c: "float64" for c in _FLOAT_COLUMNS} | {"pareto": "bool"})
    for c in _TIME_COLUMNS:
        frame[c] = pd.to_datetime(frame[c].astype("float64"), unit="s", utc=True)
    return rank(frame)


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill `score` and `pareto` for the finished KLD rows with a size and a KLD, per setup.

    Relative to the set (as in the showdown post): adding a row can change every score of
    its setup. Other rows get NaN and False.
    """
    import pandas as pd

    frame = frame.copy()
    ranked = (frame["kind"] == "kld") & (frame["status"] == "done") & frame["size_gib"].notna() & frame["kld_mean"].notna()
    frame["score"] = math.nan
    frame["pareto"] = False
    if not ranked.any():
        return frame
    axes = frame.loc[ranked, ["setup", "size_gib", "kld_mean"]].astype({"size_gib": "float64", "kld_mean": "float64"})
    by_setup = axes.groupby("setup", sort=False)[["size_gib", "kld_mean"]]
    lo, hi = by_setup.transform("min"), by_setup.transform("max")
    span = hi - lo
    # a constant axis (one row, or equal values) scales to 0, not to 0/0
    scaled = ((axes[["size_gib", "kld_mean"]] - lo) / span).where(span != 0, 0.0)
    # math.hypot, not numpy's: correctly rounded everywhere, so a score is the same figure
    # to the last digit on every machine that exports it
    frame.loc[ranked, "score"] = pd.Series(
        [math.hypot(x, y) for x, y in scaled.itertuples(index=False)], index=scaled.index, dtype="float64")
    for _, group in axes.groupby("setup", sort=False):
        frame.loc[group.index, "pareto"] = pareto_mask(group["size_gib"].to_numpy(), group["kld_mean"].to_numpy())
    return frame


def pareto_mask(size: Any, kld: Any) -> Any:
    """True where no other point is at least as small AND at least as close, and better in one.

    All pairs at once: a setup holds tens of quants, so n² comparisons are nothing.
    """
    import numpy as np

    s, k = np.asarray(size, dtype="float64"), np.asarray(kld, dtype="float64")
    # [i, j]: does point j dominate point i?
    no_worse = (s[None, :] <= s[:, None]) & (k[None, :] <= k[:, None])
    better = (s[None, :] < s[:, None]) | (k[None, :] < k[:, None])
    return ~(no_worse & better).any(axis=1)


def scores_and_front(records: Sequence[ResultRecord]) -> tuple[list[float | None], list[bool]]:
    """rank() over `records`, as plain Python values in the same order (for the leaderboard rows)."""
    frame = results_frame(records)
    scores = [None if math.isnan(v) else v for v in frame["score"].tolist()]
    return scores, [bool(v) for v in frame["pareto"].tolist()]


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
