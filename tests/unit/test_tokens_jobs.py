"""Per-token data through the real scheduler: the child is told where to write it, finalize keeps
it with the record; a build that writes none (the fake here, like ik_llama.cpp) still works."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.llama.tokendump import DUMP_ENV, JOB_FILE
from qtui.core.results.store import ResultStore
from qtui.core.results.tokens import PER_TOKEN, load_tokens, tokens_path
from tests.unit.test_scheduler import FAKE, spec

# Stands in for a patched build: writes a dump where DUMP_ENV says (3 chunks at -c 8, the last
# cut short as by a kill), then runs the fake llama-perplexity for the transcript.
WRAPPER = """
import os, struct, sys
path = os.environ.get({env!r})
if path and os.environ.get("WRAP_DUMP") == "1":
    data = b"QTUIKLD\\0" + struct.pack("<4I", 1, 8, 3, 3)
    for c in range(3):
        data += struct.pack("<3I", c, 3, 1) + struct.pack("<6f", *[0.1 * (c + 1)] * 3, 0.0, 0.01, -0.01)
    open(path, "wb").write(data[:-5])
elif path and os.environ.get("WRAP_DUMP") == "junk":
    open(path, "wb").write(b"not a dump at all, but long enough")
with open(os.environ["WRAP_SEEN"], "w") as fh:
    fh.write(path or "")
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def _job(tmp_path: Path, mode: str | None, kind: str = "kld"):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER.format(env=DUMP_ENV))
    s = spec(kind, "ik-tiny-kld-q8_0", tmp_path)
    s.argv = [sys.executable, str(wrapper), *s.argv[1:]]
    assert s.argv[2] == str(FAKE)
    s.env["WRAP_SEEN"] = str(tmp_path / "seen.txt")
    if mode:
        s.env["WRAP_DUMP"] = mode
    return JobQueue(tmp_path).add(s)


def _record(tmp_path: Path, job_id: str):
    (rec,) = [r for r in ResultStore(tmp_path).load().records if r.job_id == job_id]
    return rec


def test_a_patched_builds_dump_is_kept_with_the_record(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DUMP_ENV, "/somewhere/else")  # the scheduler's own value always wins
    job = _job(tmp_path, "1")
    Scheduler(tmp_path).run()
    assert (tmp_path / "seen.txt").read_text() == str(job.dir / JOB_FILE)
    rec = _record(tmp_path, job.id)
    assert rec.status == "done"
    assert rec.chunk_kld is not None and rec.chunk_kld["kind"] == "exact" and rec.chunk_kld["source"] == PER_TOKEN
    # chunk 3 was cut short: the two whole chunks are kept, numbered from 1
    assert [r[0] for r in rec.chunk_kld["rows"]] == [1, 2]
    assert [round(r[1], 6) for r in rec.chunk_kld["rows"]] == [0.1, 0.2]
    kept = load_tokens(ResultStore(tmp_path).root, rec.id)
    assert kept is not None and list(kept.chunks) == [0, 1] and not kept.truncated
    assert tokens_path(ResultStore(tmp_path).root, rec.id).stat().st_size == 24 + 2 * (12 + 6 * 4)


def test_a_build_without_the_patch_keeps_the_derived_series(tmp_path: Path) -> None:
    job = _job(tmp_path, None)
    Scheduler(tmp_path).run()
    rec = _record(tmp_path, job.id)
    assert rec.status == "done"
    assert rec.chunk_kld is not None and rec.chunk_kld["kind"] == "running"
    assert not tokens_path(ResultStore(tmp_path).root, rec.id).exists()


def test_a_damaged_dump_costs_only_the_exact_series(tmp_path: Path) -> None:
    job = _job(tmp_path, "junk")
    Scheduler(tmp_path).run()
    rec = _record(tmp_path, job.id)
    assert rec.status == "done" and rec.stats["kld_mean"] is not None
    assert rec.chunk_kld is not None and rec.chunk_kld["kind"] == "running"


def test_a_rerun_never_inherits_the_previous_attempts_dump(tmp_path: Path) -> None:
    job = _job(tmp_path, None)
    stale = job.dir / JOB_FILE
    stale.write_bytes(b"QTUIKLD\0" + struct.pack("<4I", 1, 8, 3, 1) + struct.pack("<3I", 0, 3, 0) + bytes(24))
    Scheduler(tmp_path).run()
    assert not stale.exists()
    assert _record(tmp_path, job.id).chunk_kld["kind"] == "running"  # type: ignore[index]


def test_base_jobs_get_no_dump_variable(tmp_path: Path) -> None:
    job = _job(tmp_path, "1", kind="base")
    Scheduler(tmp_path).run()
    assert (tmp_path / "seen.txt").read_text() == ""
    assert not (job.dir / JOB_FILE).exists()
