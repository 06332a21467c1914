"""Adaptive screening run by the scheduler: stage after stage on growing windows of the base file.

`qtui run --screen` queues, for every variant, a KLD job on the first window of the full base
file (stage 1). Each time a screening job is finalized, the scheduler calls `after_job`; once
every job of the batch's current stage has finished, it merges each variant's per-token data
over the windows it ran, asks results/screening.decide() which variants are settled, writes
the batch's state (`<data>/jobs/screens/<batch>.json`) and one summary record per variant,
and queues the next window for the variants still open, at the front of the queue.

Everything happens under the queue's lock and is safe to repeat: a stage's jobs have ids made
from (batch, stage, variant), so a hook run twice (two slots finishing together, a scheduler
killed half-way and the next one resuming) finds them queued already and adds nothing.
The window records stay in the store as parts (source.screen_part): the leaderboard shows the
summary instead, one row per variant, over the chunks it ran.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qtui.core.fsutil import atomic_write_bytes, atomic_write_json, read_json
from qtui.core.jobs.queue import ACTIVE, FINISHED, Job, JobQueue, JobSpec
from qtui.core.llama.basefile import ensure_window, read_base_header, window_path
from qtui.core.llama.tokendump import TokenDump, encode_dump
from qtui.core.results.chunks import ChunkSeries, chunk_series
from qtui.core.results.screening import ScreenPolicy, decide, windows
from qtui.core.results.store import ResultRecord, ResultStore, new_id
from qtui.core.results.tokens import chunk_means, exact_chunk_field, load_tokens, merge_dumps, stats_over, tokens_path

__all__ = ["ScreenError", "after_job", "fail_batch", "new_batch", "prepare_window", "read_state", "resume",
           "stage_spec", "state_path"]

SCREENS = "screens"
BASE_FLAG = "--kl-divergence-base"


class ScreenError(Exception):
    """A screening batch that cannot go on; the message says why."""


# -- the batch's state on disk ---------------------------------------------------------------
def state_path(queue: JobQueue, batch: str) -> Path:
    return queue.root / SCREENS / f"{batch}.json"


def read_state(queue: JobQueue, batch: str) -> dict[str, Any] | None:
    try:
        data = read_json(state_path(queue, batch))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(queue: JobQueue, state: dict[str, Any]) -> None:
    state["updated_at"] = time.time()
    atomic_write_json(state_path(queue, str(state["batch"])), state)


def policy_of(state_or_screen: Mapping[str, Any]) -> ScreenPolicy:
    raw = state_or_screen.get("policy") or {}
    known = {f.name for f in dataclasses.fields(ScreenPolicy)}
    return ScreenPolicy(**{k: v for k, v in raw.items() if k in known})


def new_batch(queue: JobQueue, batch: str, policy: ScreenPolicy, specs: Iterable[JobSpec]) -> None:
    """Write a new batch's state for its stage-1 jobs (made by stage_spec). Called by the
    showdown service under the queue lock, before it adds the jobs."""
    variants = {}
    for spec in specs:
        key = str((spec.screen or {}).get("key"))
        variants[key] = {"label": _model_name(spec), "state": "open", "why": "", "rank": None,
                         "chunks_run": 0, "record": new_id()}
    _write_state(queue, {"batch": batch, "policy": dataclasses.asdict(policy), "stage": 1, "windows": None,
                         "n_chunk": None, "finished": False, "error": None, "variants": variants,
                         "created_at": time.time()})


def _model_name(spec: JobSpec) -> str:
    path = spec.model.get("path")
    return Path(str(path)).name if path else (spec.model.get("label") or spec.label or "?")


def stage_spec(template: JobSpec, batch: str, stage: int, key: str, policy: ScreenPolicy,
               window: tuple[int, int] | None = None, n_chunk: int | None = None) -> JobSpec:
    """The KLD job of one variant at one stage, made from its planned full-run job.

    Its id is made from (batch, stage, variant), so queuing a stage twice finds it there. The
    window of stage 1 may be unknown when it is queued (the base file is not made yet): the
    runner resolves it from the base file's header (prepare_window)."""
    spec = copy.deepcopy(template)
    digest = hashlib.sha256(f"{batch}\0{stage}\0{key}".encode()).hexdigest()[:8]
    spec.id = f"{batch.rsplit('-', 1)[0]}-{digest}"
    spec.seq = spec.created_at = time.time()
    spec.batch = batch
    spec.screen = {"batch": batch, "stage": stage, "key": key, "policy": dataclasses.asdict(policy), "n_chunk": n_chunk}
    spec.window = list(window) if window is not None else None
    _name_window(spec)
    return spec


def _name_window(spec: JobSpec) -> None:
    """Point the job's argv at its window's base file, and say stage and window in its label
    (the queue, the run panel and `qtui run`'s live view show the label)."""
    screen = spec.screen or {}
    label = f"{_model_name(spec)} · screen {screen.get('stage')}"
    if spec.window is not None:
        a, b = spec.window
        full = str(spec.base.get("file"))
        whole = screen.get("n_chunk") is not None and (a, b) == (0, screen.get("n_chunk"))
        use = full if whole else str(window_path(full, a, b))
        if BASE_FLAG in spec.argv:
            spec.argv[spec.argv.index(BASE_FLAG) + 1] = use
        label += f" · chunks {a + 1}-{b}"
    spec.label = label


# -- the runner's part: the window's base file -----------------------------------------------
def prepare_window(queue: JobQueue, job: Job) -> None:
    """Before a screening job's child starts: fix its window (stage 1 learns it from the
    finished base file's header) and cut the window's base file, or reuse the cached one.
    Raises BaseFileError/OSError (the job then fails with that reason)."""
    spec = job.spec
    if not spec.screen:
        return
    full = str(spec.base.get("file"))
    if spec.window is None or spec.screen.get("n_chunk") is None:
        n_chunk = read_base_header(full).n_chunk
        wins = windows(n_chunk, policy_of(spec.screen))
        stage = int(spec.screen.get("stage") or 1)
        if not 1 <= stage <= len(wins):
            raise ScreenError(f"screening stage {stage} has no window: the base file holds {n_chunk} chunks")
        spec.screen["n_chunk"] = n_chunk
        if spec.window is None:
            spec.window = list(wins[stage - 1])
        _name_window(spec)
        queue.write_spec(job)
    a, b = spec.window
    if (a, b) != (0, spec.screen["n_chunk"]):
        ensure_window(full, a, b)


# -- the hook --------------------------------------------------------------------------------
def after_job(queue: JobQueue, job_id: str) -> bool:
    """Called after a job is finalized: advance its screening batch when its stage is over.
    True when this call advanced (or finished) the batch. Raises on failure: the caller fails
    the batch with words (fail_batch)."""
    job = queue.get(job_id)
    if job is None or not job.spec.screen:
        return False
    with queue.locked():
        return _advance(queue, str(job.spec.screen["batch"]))


def resume(queue: JobQueue) -> list[tuple[str, BaseException]]:
    """Advance every unfinished batch whose stage is over: what a scheduler killed between a
    job's finalizing and its hook left undone. Returns the batches that raised, with the error
    (each is failed with words); never raises itself."""
    folder = queue.root / SCREENS
    problems: list[tuple[str, BaseException]] = []
    if not folder.is_dir():
        return problems
    for path in sorted(folder.glob("*.json")):
        batch = path.stem
        try:
            with queue.locked():
                _advance(queue, batch)
        except Exception as exc:
            problems.append((batch, exc))
    return problems


def fail_batch(queue: JobQueue, batch: str, reason: str) -> None:
    """End a batch that cannot go on: its state says why, its queued jobs fail with the reason
    (never left waiting for a stage that will not come)."""
    with queue.locked():
        state = read_state(queue, batch)
        if state is not None:
            state["error"] = reason
            state["finished"] = True
            _write_state(queue, state)
        for job in queue.jobs():
            if job.spec.screen and job.spec.screen.get("batch") == batch and job.state.status == "queued":
                job.state.status = "failed"
                job.state.reason = f"screening stopped: {reason}"
                job.state.ended_at = time.time()
                queue.write_state(job)


def _advance(queue: JobQueue, batch: str) -> bool:
    state = read_state(queue, batch)
    if state is None or state.get("finished"):
        return False
    jobs = [j for j in queue.jobs() if j.spec.screen and j.spec.screen.get("batch") == batch]
    stage = int(state.get("stage") or 1)
    current = [j for j in jobs if j.spec.screen and j.spec.screen.get("stage") == stage]
    if not current or any(j.state.status in ACTIVE for j in current):
        return False  # the stage is still running (or its jobs are being added right now)
    store = ResultStore(queue.data_dir)
    full = str(current[0].spec.base.get("file"))
    n_chunk = state.get("n_chunk") or next((j.spec.screen.get("n_chunk") for j in jobs
                                            if j.spec.screen and j.spec.screen.get("n_chunk")), None)
    if n_chunk is None:
        if not any(j.state.status == "done" for j in jobs):
            # Nothing ran (e.g. no window could be cut): the jobs' own reasons say why.
            for key, info in state["variants"].items():
                job = next((j for j in current if j.spec.screen and j.spec.screen.get("key") == key), None)
                info.update(state="failed" if job is None or job.state.status == "failed" else "cancelled",
                            why=(job.state.reason if job is not None else None) or "its screening job is gone")
                _write_summary(store, state, key, info, [], None, None, stage, job)
            state["finished"] = True
            _write_state(queue, state)
            return True
        n_chunk = read_base_header(full).n_chunk
    policy = policy_of(state)
    wins = [tuple(w) for w in (state.get("windows") or windows(int(n_chunk), policy))]
    state["n_chunk"], state["windows"] = int(n_chunk), [list(w) for w in wins]

    variants: dict[str, dict[str, Any]] = state["variants"]
    parts: dict[str, list[tuple[Job, ResultRecord]]] = {k: [] for k in variants}
    stopped: dict[str, tuple[str, str]] = {}
    for job in jobs:
        key = str(job.spec.screen.get("key")) if job.spec.screen else ""
        if key not in variants or job.state.status not in FINISHED:
            continue
        if job.state.status == "done":
            rec = _record(store, job.state.result_id)
            if rec is not None:
                parts[key].append((job, rec))
        else:
            stopped[key] = (job.state.status, job.state.reason or job.state.status)
    series: dict[str, ChunkSeries] = {}
    merged: dict[str, TokenDump | None] = {}
    for key, got in parts.items():
        if key in stopped or not got:
            continue
        got.sort(key=lambda p: (p[0].spec.window or [0])[0])
        s, dump = _variant_series(store, got)
        if s is not None and len(s):
            series[key], merged[key] = s, dump
    decisions = decide(series, stage, len(wins), int(n_chunk), policy) if series else {}

    last = stage >= len(wins)
    templates = {str(j.spec.screen.get("key")): j for j in jobs if j.spec.screen}
    to_add: list[JobSpec] = []
    for key, info in variants.items():
        if key in stopped:
            status, why = stopped[key]
            info.update(state="failed" if status == "failed" else "cancelled", why=why)
        elif key in decisions:
            d = decisions[key]
            info.update(state=d.state, why=d.why, rank=d.rank)
        elif info.get("state") == "open":
            info.update(state="failed", why="no result from its screening run")
        done_windows = {tuple(j.spec.window or ()) for j, _ in parts.get(key, [])}
        info["chunks_run"] = sum(b - a for a, b in done_windows)
        if info.get("state") == "open" and not last and key in templates:
            # Every window up to the next stage that it has not run (a variant settled earlier
            # and reopened by its neighbours' data catches up).
            for s_no in range(1, stage + 2):
                w = wins[s_no - 1]
                if w not in done_windows:
                    to_add.append(_next_spec(templates[key].spec, batch, stage + 1, s_no, key, policy, w, int(n_chunk)))
    for key, info in variants.items():
        _write_summary(store, state, key, info, parts.get(key, []), series.get(key), merged.get(key), stage,
                       templates.get(key))
    if to_add:
        _queue_front(queue, to_add)
        state["stage"] = stage + 1
    else:
        state["finished"] = True
    _write_state(queue, state)
    return True


def _next_spec(template: JobSpec, batch: str, stage: int, window_stage: int, key: str, policy: ScreenPolicy,
               window: tuple[int, ...], n_chunk: int) -> JobSpec:
    spec = stage_spec(template, batch, stage, key, policy, (int(window[0]), int(window[1])), n_chunk)
    if window_stage != stage:  # a catch-up window: its own id within the stage
        digest = hashlib.sha256(f"{batch}\0{stage}\0{key}\0{window_stage}".encode()).hexdigest()[:8]
        spec.id = f"{batch.rsplit('-', 1)[0]}-{digest}"
    spec.depends_on = None  # the base file is there: stage 1 ran on it
    return spec


def _queue_front(queue: JobQueue, specs: list[JobSpec]) -> None:
    """Add the specs before every queued job (the screening should finish before new work
    starts), in their order; a spec whose job exists already (a hook run twice) is skipped."""
    queued = [j.spec.seq for j in queue.jobs() if j.state.status == "queued"]
    front = min(queued + [time.time()]) - 1.0
    fresh = [s for s in specs if not (queue.root / s.id).exists()]
    for i, spec in enumerate(fresh):
        spec.seq = front + i * 1e-3
    if fresh:
        queue.add_many_locked(fresh)


def _record(store: ResultStore, record_id: str | None) -> ResultRecord | None:
    if not record_id:
        return None
    try:
        return ResultRecord.from_dict(read_json(store.root / f"{record_id}.json"))
    except (OSError, ValueError, TypeError):
        return None


def _variant_series(store: ResultStore, parts: list[tuple[Job, ResultRecord]]) -> tuple[ChunkSeries | None, TokenDump | None]:
    """The variant's per-chunk means over every window it ran, exact from the merged per-token
    data; without per-token data (a llama.cpp build without qtui's patch) derived from each
    window's printed running means, placed at the window's chunks."""
    dumps = [load_tokens(store.root, rec.id) for _, rec in parts]
    if all(d is not None and d.chunks for d in dumps):
        merged = merge_dumps([d for d in dumps if d is not None])
        means = chunk_means(merged)
        return ChunkSeries.from_exact(list(means), list(means.values())), merged
    chunks: list[int] = []
    values: list[float] = []
    step = 0.0
    for job, rec in parts:
        s = chunk_series(rec)
        if s is None:
            return None, None
        offset = (job.spec.window or [0])[0]
        if s.exact:  # exact rows were placed in the full file already
            offset = 0
        chunks += [c + offset for c in s.chunks]
        values += list(s.means)
        step = max(step, s.step)
    return ChunkSeries(tuple(chunks), tuple(values), exact=False, step=step), None


def _combined_stats(parts: list[tuple[Job, ResultRecord]], merged: TokenDump | None) -> dict[str, Any]:
    """The variant's statistics over every chunk it ran. The perplexity block combines the
    windows' printed figures (chunks carry equal token counts); the KLD and Δp blocks come from
    the merged per-token data, exactly as llama-perplexity would print them for a run on those
    chunks, or, without it, the token-weighted means of the windows' figures."""
    weights = [(b - a, rec.stats) for job, rec in parts for a, b in [job.spec.window or (0, rec.chunks or 1)]]
    total = sum(w for w, _ in weights) or 1

    def values(key: str) -> list[tuple[int, float]] | None:
        vals = [(w, s.get(key)) for w, s in weights]
        good = [(w, float(v)) for w, v in vals
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        return good if len(good) == len(vals) else None

    def mean_of(key: str, log: bool = False) -> float | None:
        vals = values(key)
        if vals is None or (log and any(v <= 0 for _, v in vals)):
            return None
        acc = math.fsum(w * (math.log(v) if log else v) for w, v in vals) / total
        return math.exp(acc) if log else acc

    out: dict[str, Any] = {}
    for key in ("ppl_q", "ppl_base"):
        out[key] = mean_of(key, log=True)
    out["ln_ratio"] = mean_of("ln_ratio")
    if out["ln_ratio"] is not None:
        out["ppl_ratio"] = math.exp(out["ln_ratio"])
    if merged is not None:
        exact = stats_over(merged)
        if exact is not None:
            out.update({k: v for k, v in exact.to_dict().items() if v is not None and k.startswith(("kld_", "dp_", "same_"))})
            return out
    for key in ("kld_mean", "same_top", "dp_mean"):
        out[key] = mean_of(key)
    errs = values("kld_mean_err")
    if errs is not None:
        out["kld_mean_err"] = math.sqrt(math.fsum((w / total * e) ** 2 for w, e in errs))
    rms = values("dp_rms")
    if rms is not None:
        out["dp_rms"] = math.sqrt(math.fsum(w * v * v for w, v in rms) / total)
    return {k: v for k, v in out.items() if v is not None}


def _write_summary(store: ResultStore, state: dict[str, Any], key: str, info: dict[str, Any],
                   parts: list[tuple[Job, ResultRecord]], series: ChunkSeries | None, merged: TokenDump | None,
                   stage: int, template: Job | None = None) -> None:
    """Write (or replace) the variant's one summary record: kind kld, over the chunks it ran."""
    record_id = str(info.get("record") or new_id())
    info["record"] = record_id
    if not parts:
        if info.get("state") in ("failed", "cancelled") and template is not None:
            # Nothing measured: the variant's row says why, apart from the ranking like any failure.
            spec = template.spec
            store.save(ResultRecord(
                id=record_id, kind="kld", status=info["state"], model=spec.model, base=spec.base, corpus=spec.corpus,
                ctx=spec.ctx, llama=spec.llama, argv=spec.argv, gpu=spec.llama.get("gpu"),
                started_at=template.state.started_at, ended_at=template.state.ended_at or time.time(),
                job_id=template.id, source={"type": "qtui", "screen": state["batch"]},
                failure={"reason": info.get("why"), "exit_code": template.state.exit_code, "stderr_tail": ""},
                screen={"batch": state["batch"], "stage": stage, "state": info.get("state"), "why": info.get("why"),
                        "rank": None, "chunks_run": 0, "n_chunk": state.get("n_chunk")}))
        return
    first_job = parts[0][0]
    spec = first_job.spec
    chunks_run = sorted({c for j, _ in parts for c in range(*(j.spec.window or (0, 0)))})
    screen = {"batch": state["batch"], "stage": stage, "state": info.get("state"), "why": info.get("why"),
              "rank": info.get("rank"), "chunks_run": len(chunks_run), "n_chunk": state.get("n_chunk"),
              "windows": [list(j.spec.window or ()) for j, _ in parts], "parts": [r.id for _, r in parts]}
    chunk_kld: dict[str, Any] | None
    if merged is not None:
        atomic_write_bytes(tokens_path(store.root, record_id), encode_dump(merged))
        chunk_kld = exact_chunk_field(merged, record_id)
    else:
        # Without per-token data the per-chunk means are derived per window from printed running
        # means; results/chunks.py has no form for a series pieced from windows, so the summary
        # carries none (never called separated from a neighbour) rather than a wrong one.
        chunk_kld = None
    durations = [r.duration_s or 0.0 for _, r in parts]
    started = min((r.started_at for _, r in parts if r.started_at is not None), default=None)
    rec = ResultRecord(
        id=record_id, kind="kld", status="done", model=spec.model,
        stats=_combined_stats(parts, merged),
        base={**spec.base, "n_chunk": state.get("n_chunk")}, corpus=spec.corpus, ctx=spec.ctx,
        chunks=len(chunks_run), llama=spec.llama, argv=list(parts[-1][1].argv), gpu=spec.llama.get("gpu"),
        # the Time column: GPU time spent on it, not the wall time between stages
        started_at=started, ended_at=(started + math.fsum(durations)) if started is not None else None,
        source={"type": "qtui", "screen": state["batch"]}, job_id=parts[-1][0].id, chunk_kld=chunk_kld,
        screen=screen,
    )
    store.save(rec)
