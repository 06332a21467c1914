"""Judging a finished job by its output and persisting the result: the moment a run ends.

Kept apart from the scheduler so that log import and tests use the same judgement.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from qtui.core.fsutil import atomic_write_json
from qtui.core.jobs.queue import Job, JobQueue
from qtui.core.llama.basefile import BaseFileError, check_base_file
from qtui.core.llama.parser import ParseResult, parse_transcript
from qtui.core.results.store import ResultRecord, ResultStore, new_id


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
        return "done", None, parsed
    # base generation: the estimate line AND a complete file on disk
    if parsed.base_estimate is None:
        return "failed", "base generation ended without its final PPL estimate", parsed
    partial = Path(str(job.spec.output) + ".partial")
    try:
        check_base_file(partial)
    except (BaseFileError, OSError) as exc:
        return "failed", f"the base file is not usable: {exc}", parsed
    return "done", None, parsed


MAX_AUTO_RETRIES = 2


def finalize_job(queue: JobQueue, job_id: str, exit_code: int | None) -> ResultRecord | None:
    """Judge, persist, and update the job's state. Returns None when the job was re-queued."""
    job = queue.get(job_id)
    if job is None:
        return None
    status, reason, parsed = judge(job, exit_code)
    if status == "failed" and parsed.failed is not None and parsed.failed.retryable and job.state.attempts < MAX_AUTO_RETRIES:
        # llama.cpp 0.3.36 can drop the end of its output at exit (its log thread is never
        # drained): the measurement is fine, only its printout was lost. Run it again,
        # at the front of the queue, rather than make the user find and retry it.
        if job.spec.kind == "base" and job.spec.output:
            with contextlib.suppress(FileNotFoundError):
                Path(job.spec.output + ".partial").unlink()
        queue.update(job.id, status="queued", pid=None, pid_started=None, slot=None, started_at=None,
                     attempts=job.state.attempts + 1, reason=f"re-run: {reason}")
        return None
    if job.spec.kind == "base" and job.spec.output:
        partial = Path(job.spec.output + ".partial")
        if status == "done":
            os.replace(partial, job.spec.output)
            atomic_write_json(Path(job.spec.output + ".json"), _base_meta(job, parsed))
        else:
            # A partial base file is useless (and can be tens of GB): never leave it behind.
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    ended = time.time()
    record = ResultRecord(
        id=new_id(),
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
    )
    if job.spec.kind == "base" and parsed.base_estimate is not None:
        record.stats = {"ppl_base": parsed.base_estimate.ppl, "ppl_base_err": parsed.base_estimate.ppl_err}
    ResultStore(queue.data_dir).save(record)
    queue.update(job.id, status=status, reason=reason, exit_code=exit_code, ended_at=ended, result_id=record.id)
    return record


def _chunks_done(parsed: ParseResult, job: Job) -> int | None:
    if parsed.progress:
        return parsed.progress[-1].chunk
    return job.spec.chunks


def _base_meta(job: Job, parsed: ParseResult) -> dict[str, Any]:
    hdr = check_base_file(Path(job.spec.output or ""))
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
