"""Judging a finished job by its output and persisting the result: the moment a run ends.

Kept apart from the scheduler so that log import and tests use the same judgement.

Finalizing may be interrupted at any point (the scheduler killed, the disk full) and run again
by the next scheduler, so every step is safe to repeat: the result record's id is fixed in the
job's state before the record is written, the base file's metadata is written before the base
file gets its final name, and a base file already in place under that name is recognised.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from qtui.core.fsutil import atomic_write_json, read_json
from qtui.core.jobs.queue import FINISHED, Job, JobQueue, JobStatus
from qtui.core.llama.basefile import BaseFileError, check_base_file
from qtui.core.llama.bench import BenchResult, parse_bench
from qtui.core.llama.parser import ParseResult, parse_transcript
from qtui.core.llama.stats import FinalStats
from qtui.core.llama.tokendump import JOB_FILE, TokenDumpError
from qtui.core.results.chunks import running_means_field
from qtui.core.results.store import ResultRecord, ResultStore, new_id
from qtui.core.results.tokens import exact_chunk_field, store_tokens

# The figures a leaderboard row is made of: if one of them is nan/inf, the row means nothing.
KEY_STATS = (("kld_mean", "KLD"), ("ppl_q", "PPL"), ("ppl_ratio", "PPL ratio"),
             ("kld_p99", "99th-percentile KLD"), ("same_top", "same-top-token rate"))
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NEARLY_FULL_BYTES = 64 * 1024


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def judge(job: Job, exit_code: int | None) -> tuple[str, str | None, ParseResult]:
    """(status, reason, parse) for a job whose child has ended."""
    parsed = parse_transcript(_read(job.stdout_path), _read(job.stderr_path), exit_code)
    if job.state.cancel_requested_at is not None:
        return "cancelled", "cancelled by the user", parsed
    if parsed.failed is not None:
        return "failed", parsed.failed.reason, parsed
    if job.spec.kind == "kld":
        if parsed.stats is None or not parsed.stats.is_complete:
            return "failed", "the run ended without a complete final statistics block", parsed
        broken = nonfinite_stat(parsed.stats)
        return ("failed", broken, parsed) if broken else ("done", None, parsed)
    # base generation: the estimate line AND a complete file on disk
    if parsed.base_estimate is None:
        return "failed", "base generation ended without its final PPL estimate", parsed
    if not math.isfinite(parsed.base_estimate.ppl):
        return "failed", (f"llama-perplexity reported a non-finite PPL ({_word(parsed.base_estimate.ppl)}) "
                          "for the base model: its output is broken, so its base file cannot be used"), parsed
    partial = Path(str(job.spec.output) + ".partial")
    if not partial.exists() and _base_file_in_place(job):
        return "done", None, parsed  # a scheduler died after placing the file: finish its work
    try:
        check_base_file(partial)
    except (BaseFileError, OSError) as exc:
        return "failed", f"the base file is not usable: {exc}", parsed
    return "done", None, parsed


def nonfinite_stat(stats: FinalStats) -> str | None:
    """Words for the first key statistic that is nan or inf, None when all are numbers."""
    for key, name in KEY_STATS:
        value = getattr(stats, key)
        if value is not None and not math.isfinite(value):
            return f"llama-perplexity reported a non-finite {name} ({_word(value)}): the model's output is broken"
    return None


def _word(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _base_file_in_place(job: Job) -> bool:
    """The finished base file is already under its final name, placed by this very job.

    Its metadata (written before the rename) names the job, or, for a file placed before its
    metadata was written, the file was last written during this job's run: a base file left by
    an earlier run does not count."""
    final = Path(str(job.spec.output))
    try:
        check_base_file(final)
        written = final.stat().st_mtime
    except (BaseFileError, OSError):
        return False
    started = job.state.started_at
    return _meta_job(final) == job.id or (started is not None and written >= started - 1.0)


def _meta_job(base_file: Path) -> str | None:
    try:
        meta = read_json(Path(str(base_file) + ".json"))
    except (OSError, ValueError):
        return None
    return meta.get("job_id") if isinstance(meta, dict) else None


def disk_nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


MAX_AUTO_RETRIES = 2


def finalize_job(queue: JobQueue, job_id: str, exit_code: int | None) -> ResultRecord | None:
    """Judge, persist, and update the job's state. Returns None when the job was re-queued.

    Raises whatever persisting raises (a full disk...): the scheduler turns that into a
    failed job with `mark_failed`."""
    job = queue.get(job_id)
    if job is None:
        return None
    if job.state.status in FINISHED:
        return _stored_record(queue, job)  # judged already (a second call, or another process)
    if job.spec.kind == "speed":
        return _finalize_speed(queue, job, exit_code)
    status, reason, parsed = judge(job, exit_code)
    if status == "failed" and parsed.failed is not None and parsed.failed.retryable and job.state.attempts < MAX_AUTO_RETRIES:
        # llama.cpp 0.3.36 can drop the end of its output at exit (its log thread is never
        # drained): the measurement is fine, only its printout was lost. Run it again,
        # at the front of the queue, rather than make the user find and retry it.
        if job.spec.kind == "base" and job.spec.output:
            with contextlib.suppress(FileNotFoundError):
                Path(job.spec.output + ".partial").unlink()
        queue.update(job.id, status="queued", pid=None, pid_started=None, slot=None, started_at=None,
                     attempts=job.state.attempts + 1, reason=f"re-run: {reason}", result_id=None)
        return None
    partial = Path(f"{job.spec.output}.partial")
    if status == "failed" and disk_nearly_full(job.dir):
        reason = f"{reason} (the disk is full)"  # checked before the partial file frees space
    if status != "done" and job.spec.kind == "base" and job.spec.output:
        # A partial base file is useless (and can be tens of GB): never leave it behind, and
        # free its space before writing anything else (it may be what filled the disk).
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    record_id = job.state.result_id or new_id()
    if job.state.result_id is None:
        # Fixed before the record is written: finalizing again rewrites the same record.
        queue.update(job.id, result_id=record_id)
    if status == "done" and job.spec.kind == "base" and job.spec.output:
        final = Path(job.spec.output)
        if partial.exists():
            # Metadata first: a base file under its final name always has its metadata.
            atomic_write_json(Path(job.spec.output + ".json"), _base_meta(job, parsed, partial))
            os.replace(partial, final)
        elif _meta_job(final) != job.id:  # placed, then the scheduler died: finish the job
            atomic_write_json(Path(job.spec.output + ".json"), _base_meta(job, parsed, final))
    ended = time.time()
    record = ResultRecord(
        id=record_id,
        kind=job.spec.kind,
        status=status,  # type: ignore[arg-type]
        model=job.spec.model,
        stats=parsed.stats.to_dict() if parsed.stats is not None else {},
        base=job.spec.base,
        corpus=job.spec.corpus,
        ctx=job.spec.ctx,
        chunks=_chunks_done(parsed, job),
        llama=job.spec.llama,
        argv=job.spec.argv,
        gpu=job.spec.llama.get("gpu"),
        started_at=job.state.started_at,
        ended_at=ended,
        failure=None if status == "done" else {
            "reason": reason,
            "exit_code": exit_code,
            "stderr_tail": parsed.failed.stderr_tail if parsed.failed else _tail(job.stderr_path),
        },
        job_id=job.id,
        chunk_kld=running_means_field(parsed.progress) if job.spec.kind == "kld" else None,
        source=provenance(job),
    )
    if job.spec.kind == "base" and parsed.base_estimate is not None:
        est = FinalStats(ppl_base=parsed.base_estimate.ppl, ppl_base_err=parsed.base_estimate.ppl_err).to_dict()
        record.stats = {k: est[k] for k in ("ppl_base", "ppl_base_err")}  # nan-safe, like every stat
    if job.spec.kind == "kld":
        _keep_tokens(queue, job, record)
    ResultStore(queue.data_dir).save(record)
    queue.update(job.id, status=status, reason=reason, exit_code=exit_code, ended_at=ended, result_id=record.id)
    return record


def judge_speed(job: Job, exit_code: int | None) -> tuple[str, str | None, BenchResult]:
    """(status, reason, parse) for a speed job (llama-bench -o jsonl) whose child has ended."""
    res = parse_bench(_read(job.stdout_path), _read(job.stderr_path), exit_code)
    if job.state.cancel_requested_at is not None:
        return "cancelled", "cancelled by the user", res
    if res.failed is not None:
        return "failed", res.failed, res
    return "done", None, res


def _finalize_speed(queue: JobQueue, job: Job, exit_code: int | None) -> ResultRecord:
    """A speed job's record: its own kind, joined to the variant's KLD row by the model file
    when the board is built (results/leaderboard.py), so a speed measured later, again, or
    not at all never changes the KLD record."""
    status, reason, res = judge_speed(job, exit_code)
    if status == "failed" and disk_nearly_full(job.dir):
        reason = f"{reason} (the disk is full)"
    record_id = job.state.result_id or new_id()
    if job.state.result_id is None:
        queue.update(job.id, result_id=record_id)  # fixed first: finalizing again rewrites the same record
    ended = time.time()
    record = ResultRecord(
        id=record_id, kind="speed", status=status,  # type: ignore[arg-type]
        model=job.spec.model, stats=res.stats() if status == "done" else {},
        llama={**job.spec.llama, "bench": res.info}, argv=job.spec.argv, gpu=job.spec.llama.get("gpu"),
        started_at=job.state.started_at, ended_at=ended, job_id=job.id, source=screen_source(job),
        failure=None if status == "done" else {"reason": reason, "exit_code": exit_code,
                                               "stderr_tail": _tail(job.stderr_path)},
    )
    ResultStore(queue.data_dir).save(record)
    queue.update(job.id, status=status, reason=reason, exit_code=exit_code, ended_at=ended, result_id=record.id)
    return record


def _keep_tokens(queue: JobQueue, job: Job, record: ResultRecord) -> None:
    """Store the per-token data the run left (qtui's own builds write it; a cancelled run keeps
    its finished chunks too) and take the record's per-chunk series from it, exact. Without it
    the series stays the one derived from the printed running means: never a reason to lose the
    result itself, so a damaged dump or a failed write only costs the exact series."""
    # A run on a window [a, b) of the base file numbers its chunks from 0: place them at a.
    offset = job.spec.window[0] if job.spec.window else 0
    try:
        dump = store_tokens(ResultStore(queue.data_dir).root, record.id, job.dir / JOB_FILE, offset=offset,
                            n_chunk=job.spec.screen.get("n_chunk") if job.spec.screen else None)
    except (TokenDumpError, OSError):
        return
    if dump is not None:
        record.chunk_kld = exact_chunk_field(dump, record.id)


def screen_source(job: Job) -> dict[str, Any]:
    """A screening job's record is a part of its variant's summary (jobs/screening.py writes
    that one): marked so the leaderboard never shows the part as a row of its own."""
    if job.spec.screen:
        return {"type": "qtui", "screen_part": job.spec.screen.get("batch")}
    return {"type": "qtui"}


def provenance(job: Job) -> dict[str, Any]:
    """The record's source: screen_source, plus where a cluster job ran (the Ray node, its id,
    the GPU ids Ray gave it), so a figure can be traced to the machine that measured it."""
    source = screen_source(job)
    if job.state.node:
        keep = ("cluster", "node_id", "ip", "hostname", "gpus")
        source["node"] = {k: job.state.node[k] for k in keep if k in job.state.node}
    return source


def mark_failed(queue: JobQueue, job_id: str, reason: str) -> None:
    """Record a job as failed when finalizing it (or starting it) raised.

    Frees what it can first (a base job's partial file), writes the state even on a full disk
    (JobQueue.fail), then leaves a failure record if the disk allows. Raises only when even the
    state cannot be written."""
    job = queue.get(job_id)
    if job is None or job.state.status in FINISHED:
        return
    if job.spec.kind == "base" and job.spec.output:
        with contextlib.suppress(OSError):
            Path(job.spec.output + ".partial").unlink()
    status: JobStatus = "cancelled" if job.state.cancel_requested_at is not None else "failed"
    queue.fail(job_id, reason, status=status)
    with contextlib.suppress(Exception):  # best effort: the job's state already says it all
        record_id = job.state.result_id or new_id()
        ResultStore(queue.data_dir).save(ResultRecord(
            id=record_id, kind=job.spec.kind, status=status,  # type: ignore[arg-type]
            model=job.spec.model, base=job.spec.base, corpus=job.spec.corpus, ctx=job.spec.ctx,
            chunks=job.spec.chunks, llama=job.spec.llama, argv=job.spec.argv, gpu=job.spec.llama.get("gpu"),
            started_at=job.state.started_at, ended_at=time.time(), job_id=job.id, source=provenance(job),
            failure={"reason": reason, "exit_code": job.state.exit_code, "stderr_tail": _tail(job.stderr_path)},
        ))
        queue.update(job_id, result_id=record_id)


def failure_words(doing: str, exc: BaseException, log: Path) -> str:
    """One sentence for an exception that stopped qtui from finishing a job's bookkeeping."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return f"disk full: {doing}: {exc}"
    if isinstance(exc, OSError):
        return f"{doing}: {exc}"
    return f"{doing}: {type(exc).__name__}: {exc} (the details are in {log})"


def _stored_record(queue: JobQueue, job: Job) -> ResultRecord | None:
    if job.state.result_id is None:
        return None
    try:
        return ResultRecord.from_dict(read_json(ResultStore(queue.data_dir).root / f"{job.state.result_id}.json"))
    except (OSError, ValueError, TypeError):
        return None


def _chunks_done(parsed: ParseResult, job: Job) -> int | None:
    if parsed.progress:
        return parsed.progress[-1].chunk
    return job.spec.chunks


def _base_meta(job: Job, parsed: ParseResult, path: Path) -> dict[str, Any]:
    hdr = check_base_file(path)
    return {
        "base": job.spec.base,
        "corpus": job.spec.corpus,
        "ctx": hdr.n_ctx,
        "n_vocab": hdr.n_vocab,
        "n_chunk": hdr.n_chunk,
        "ppl": parsed.base_estimate.ppl if parsed.base_estimate else None,
        "created_at": time.time(),
        "job_id": job.id,
    }


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(_read(path).decode("utf-8", "replace").splitlines()[-n:])
