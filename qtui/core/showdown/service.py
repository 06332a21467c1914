"""The showdown service: the one way every front end (`qtui run`, the app, the demo) starts a
showdown, and the one way every reader of the queue keeps the work going.

`Showdown.start` plans (every check at once, see plan.py), then decides what to queue and
queues it in ONE hold of the queue's cross-process lock, so that two qtui processes started
at the same moment cannot both decide to do the same work:

- a base job already queued or running for the same base file is reused: the new KLD jobs
  wait for it instead of writing the same `.partial` file a second time;
- a finished base file (with its metadata) that appeared since planning is reused;
- a variant already measured on the same setup, or queued or running on it, is skipped
  with a line that says so, unless the request says `again`.

Then it makes sure a scheduler runs. `Showdown.ensure_scheduler` is what every command that
reads the queue calls: a scheduler killed by kill -9, the OOM killer or a reboot is started
again as soon as anyone looks, and adopts what it left.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from qtui.core.jobs.queue import ACTIVE, Job, JobQueue, JobSpec
from qtui.core.llama.tools import BuildInfo, LlamaTools
from qtui.core.results.store import ResultRecord, ResultStore, new_id
from qtui.core.showdown.plan import (
    RunPlan,
    RunRefused,
    base_argv,
    base_run_args,
    cached_base_problem,
    pass_chunks,
    plan_showdown,
    resolve_corpus,
)
from qtui.core.showdown.request import ShowdownRequest

__all__ = ["DataDirError", "Queued", "RunRefused", "Showdown", "ShowdownRequest", "Skipped", "load_tools"]


SkipReason = Literal["measured", "queued", "running", "repeated"]


@dataclass(frozen=True)
class Skipped:
    """A variant not queued, and why."""

    variant: Path
    why: SkipReason
    speed: bool = False
    """the variant's speed job (llama-bench) was skipped, not its KLD job"""

    @property
    def text(self) -> str:
        if self.speed:
            what = {"measured": "already measured with these llama-bench arguments",
                    "queued": "already waiting in the queue", "running": "already running",
                    "repeated": "named more than once"}[self.why]
            return f"skipped the speed of {self.variant.name}: {what}"
        what = {"measured": "already measured on this setup",
                "queued": "already waiting in the queue on this setup",
                "running": "already running on this setup",
                "repeated": "named more than once"}[self.why]
        return f"skipped {self.variant.name}: {what}"


@dataclass
class Queued:
    """What `start` queued (possibly nothing), what to tell the user, and what it skipped."""

    jobs: list[Job]
    notes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def kld_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.spec.kind == "kld"]

    @property
    def speed_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.spec.kind == "speed"]

    @property
    def base_job(self) -> Job | None:
        return next((j for j in self.jobs if j.spec.kind == "base"), None)


class DataDirError(Exception):
    """The data dir cannot take a job (a file, read-only, full): one sentence, no job left half-made."""

    def __init__(self, data_dir: Path, exc: OSError) -> None:
        super().__init__(f"cannot write to the data dir {data_dir}: {exc.strerror or exc}")


def load_tools(llama_bin: str | Path | None, config_bin: str | Path | None,
               tools: LlamaTools | None = None) -> tuple[LlamaTools, BuildInfo]:
    """The llama.cpp tools a showdown runs with, checked to start, and what build they are.
    Raises LlamaNotFound with where it looked or why the binary cannot run."""
    from qtui.core.llama.tools import find_tools, probe

    if tools is None:
        tools = find_tools(llama_bin, config_bin)
    return tools, probe(tools)  # probing starts the binary: it fails in words if it cannot


class Showdown:
    """Showdowns queued into one data dir, run by its scheduler: each job on its group of GPUs
    (request.gpus_per_run), or `slots` jobs at once on a box without GPU."""

    def __init__(self, data_dir: Path, slots: int = 1) -> None:
        self.data_dir = Path(data_dir)
        self.slots = max(1, slots)
        self.queue = JobQueue(self.data_dir)

    # -- starting --------------------------------------------------------------------------
    def start(self, request: ShowdownRequest, tools: LlamaTools, build: BuildInfo | None = None,
              gpu_name: str | None = None) -> Queued:
        """Plan, reuse, queue, and make sure a scheduler runs.

        Raises RunRefused (every reason at once) or DataDirError; queues nothing then."""
        self.check_data_dir()  # before planning, which can take a while (hashing the corpus)
        plan = self.plan(request, tools, build, gpu_name)
        try:
            queued = self._queue(plan, request.again, request)
            if queued.jobs:
                self._spawn_if_needed()
        except OSError as exc:
            raise DataDirError(self.data_dir, exc) from exc
        return queued

    def plan(self, request: ShowdownRequest, tools: LlamaTools, build: BuildInfo | None = None,
             gpu_name: str | None = None) -> RunPlan:
        if request.cluster and request.cluster_base_dir and request.base_file is None:
            # The base file in the shared folder, under the name it has in qtui's cache.
            first = self._plan(request, tools, build, gpu_name)
            request = replace(request, base_file=Path(request.cluster_base_dir) / first.base_file.name)
        plan = self._plan(request, tools, build, gpu_name)
        if request.cluster and not request.cluster_base_dir:
            plan.base_cmd = plan.base_job.argv if plan.base_job else rebuilt_base_argv(request, tools, plan.base_file)
        return plan

    def _plan(self, request: ShowdownRequest, tools: LlamaTools, build: BuildInfo | None,
              gpu_name: str | None) -> RunPlan:
        return plan_showdown(
            base_model=request.base, variants=list(request.variants), corpus=resolve_corpus(request.corpus),
            ctx=request.ctx, chunks=request.chunks, extra_args=list(request.llama_args), tools=tools, build=build,
            base_file=request.base_file, gpu_name=gpu_name, hash_models=request.hash_models, floor=request.floor,
            base_args=list(request.base_args), speed=request.speed, speed_args=list(request.speed_args),
        )

    def check_data_dir(self) -> None:
        """Raise DataDirError unless a job folder can be written (a data dir that is a file,
        read-only or full). A few bytes are written, since on a full disk an empty file
        can still be made."""
        probe = self.queue.root / f".write-check-{os.getpid()}"
        made = [d for d in (self.data_dir, self.queue.root) if not d.is_dir()]
        try:
            self.queue.root.mkdir(parents=True, exist_ok=True)
            with open(probe, "wb") as fh:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink()
            for d in reversed(made):  # leave the data dir as it was found
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise DataDirError(self.data_dir, exc) from exc
        with contextlib.suppress(OSError):
            probe.unlink()

    def _queue(self, plan: RunPlan, again: bool, request: ShowdownRequest | None = None) -> Queued:
        notes = list(plan.notes)
        screen = request is not None and request.screen
        with self.queue.locked():
            jobs = self.queue.jobs()
            records = [] if again else ResultStore(self.data_dir).load().records
            if not screen:
                # A screened variant ran only some chunks: a full run of it is still news.
                records = [r for r in records if not screened(r)]
            kld, skipped = select_variants(plan.kld_jobs, jobs, records, again)
            speed, speed_skipped = select_speed(plan.speed_jobs, jobs, records, again)
            skipped += speed_skipped
            if not kld:
                # Nothing to measure: a base file nobody waits for is not worth making.
                added = self.queue.add_many_locked(with_gpus(in_order([], speed), request)) if speed else []
                return Queued(added, notes, skipped)
            base_job, depends_on, base_note = self._base_decision(plan, jobs)
            if base_note:
                notes.append(base_note)
            for spec in kld:
                spec.depends_on = depends_on
            if screen and request is not None:
                kld = self._screen_stage1(kld, request)
                notes.append(f"screening {len(kld)} variant(s): stage 1 on the first chunks of the base file, then "
                             "growing windows only for the variants whose place is not settled yet.")
            if request is not None and request.cluster:
                with_cluster([base_job] if base_job else [], kld, request, plan.base_cmd)
            added = self.queue.add_many_locked(with_gpus(in_order(([base_job] if base_job else []) + kld, speed), request))
        return Queued(added, notes, skipped)

    def _screen_stage1(self, kld: list[JobSpec], request: ShowdownRequest) -> list[JobSpec]:
        """Stage 1 of a screening batch: each variant's job on the first window (fixed by the
        runner once the base file exists), and the batch's state. Under the queue lock."""
        from qtui.core.jobs.screening import new_batch, stage_spec
        from qtui.core.results.screening import ScreenPolicy

        # windows in whole passes: their per-token values are then the full run's
        policy = ScreenPolicy(top=request.top, align=pass_chunks(kld[0].argv) if kld else 1)
        batch = new_id()
        keys: set[str] = set()
        out = []
        for spec in kld:
            name = Path(str(spec.model.get("path") or spec.label)).name
            key, n = name, 1
            while key in keys:  # two files of one name in two folders: two variants
                n += 1
                key = f"{name}#{n}"
            keys.add(key)
            staged = stage_spec(spec, batch, 1, key, policy)
            staged.depends_on = spec.depends_on
            out.append(staged)
        new_batch(self.queue, batch, policy, out)
        return out

    def _base_decision(self, plan: RunPlan, jobs: Sequence[Job]) -> tuple[JobSpec | None, str | None, str | None]:
        """(base job to add, the job the KLD jobs wait for, the note about the base). Called
        under the queue lock: what another qtui queued or finished since planning counts."""
        base = plan.base_job
        if base is None:
            return None, None, None
        pending = next((j for j in jobs if j.spec.kind == "base" and j.state.status in ACTIVE
                        and j.spec.output == base.output), None)
        if pending is not None:
            if pending.spec.base.get("key") != base.base.get("key"):
                raise RunRefused([f"the base file {base.output} is being made for another model, corpus or context "
                                  f"by the queued job {pending.spec.label}: give another --base-file, or wait for it."])
            return None, pending.id, f"waiting for the base log-probs already being made ({pending.spec.label})."
        if base.output and Path(base.output).exists() and \
                cached_base_problem(Path(base.output), base.model.get("n_vocab")) is None:
            return None, None, f"reusing the base log-probs {base.output} (finished meanwhile by another run)."
        return base, base.id, plan.base_note

    # -- keeping the work going ------------------------------------------------------------
    def ensure_scheduler(self) -> bool:
        """Start the detached scheduler when work is queued or running and none runs; True
        when one was started. Every command that reads the queue calls this, so a scheduler
        that died (kill -9, the OOM killer, a reboot) comes back as soon as anyone looks;
        the new one adopts the runs the old one left. Never raises: a reader of a store it
        cannot write still reads."""
        try:
            return self._spawn_if_needed()
        except OSError:
            return False

    def _spawn_if_needed(self) -> bool:
        from qtui.core.jobs.scheduler import ensure_scheduler, scheduler_running
        from qtui.core.jobs.screening import fail_batch, resume

        if scheduler_running(self.data_dir):
            return False
        # A screening stage that ended while its scheduler died before queuing the next one:
        # queue it now (idempotent), so the batch goes on instead of waiting for ever.
        for batch, exc in resume(self.queue):
            fail_batch(self.queue, batch, f"qtui could not decide the next screening stage: {exc}")
        if not any(j.state.status in ACTIVE for j in self.queue.jobs()):
            return False
        ensure_scheduler(self.data_dir, self.slots)
        return True


def rebuilt_base_argv(request: ShowdownRequest, tools: LlamaTools, base_file: Path) -> list[str] | None:
    """The command that makes `base_file`, for a cluster node that lacks it when the base file
    was reused from this machine's cache (no base job); None without a corpus to make it from."""
    corpus = resolve_corpus(request.corpus)
    if corpus is None:
        return None
    extra = list(request.llama_args)
    if request.base_args:
        try:
            extra = base_run_args(request.base_args, request.llama_args, request.ctx, request.chunks)
        except RunRefused:
            return None
    return base_argv(tools, Path(request.base).absolute(), Path(corpus).absolute(), request.ctx, request.chunks,
                     Path(str(base_file) + ".partial"), extra)


def with_cluster(base: list[JobSpec], kld: list[JobSpec], request: ShowdownRequest, base_cmd: list[str] | None) -> None:
    """Mark the jobs that run on the cluster. Under the queue lock, before screening copies them.

    With a shared cluster_base_dir everything runs there: the base job writes into the shared
    folder from whatever node Ray picks, and KLD jobs read it. Without one, the base job runs
    here (its file stays in this machine's cache, as without a cluster) and each KLD job carries
    the base job's command, so that a node without the file makes it first, once per node.
    Screening cuts windows of the base file on this machine: without a shared folder, its jobs
    stay here. Speed jobs (llama-bench) stay here too: their figure is this machine's GPU."""
    shared = request.cluster_base_dir is not None
    for spec in base:
        spec.cluster = request.cluster if shared else None
    for spec in kld:
        if spec.screen and not shared:
            continue
        spec.cluster = request.cluster
        spec.base_argv = None if shared else base_cmd


def with_gpus(specs: list[JobSpec], request: ShowdownRequest | None) -> list[JobSpec]:
    """Each job keeps the GPUs per run it was asked for, whatever the config says by the time
    it starts (later screening stages copy it from their first stage)."""
    if request is not None and request.gpus_per_run is not None:
        for spec in specs:
            spec.gpus_per_run = request.gpus_per_run
    return specs


# -- what counts as "the same measurement" -----------------------------------------------
def select_variants(planned: Sequence[JobSpec], jobs: Sequence[Job], records: Iterable[ResultRecord],
                    again: bool) -> tuple[list[JobSpec], list[Skipped]]:
    """The planned KLD jobs worth queuing, and the skipped ones with why. A variant named
    twice in one request is measured once even with `again`."""
    done = [r for r in records if r.kind == "kld" and r.status == "done"]
    active = [j for j in jobs if j.spec.kind == "kld" and j.state.status in ACTIVE]
    keep: list[JobSpec] = []
    skipped: list[Skipped] = []
    for spec in planned:
        path = Path(str(spec.model.get("path", "")))
        if any(same_setup(spec.model, spec.base, spec.ctx, k.model, k.base, k.ctx) for k in keep):
            skipped.append(Skipped(path, "repeated"))
            continue
        if not again:
            job = next((j for j in active if same_setup(spec.model, spec.base, spec.ctx, j.spec.model, j.spec.base, j.spec.ctx)), None)
            if job is not None:
                skipped.append(Skipped(path, "running" if job.state.status == "running" else "queued"))
                continue
            if any(same_setup(spec.model, spec.base, spec.ctx, r.model, r.base, r.ctx) for r in done):
                skipped.append(Skipped(path, "measured"))
                continue
        keep.append(spec)
    return keep, skipped


def select_speed(planned: Sequence[JobSpec], jobs: Sequence[Job], records: Iterable[ResultRecord],
                 again: bool) -> tuple[list[JobSpec], list[Skipped]]:
    """The planned speed jobs worth queuing: a file's speed is measured once per set of
    llama-bench arguments (same file, same arguments: same test), unless `again`."""
    done = [r for r in records if r.kind == "speed" and r.status == "done"]
    active = [j for j in jobs if j.spec.kind == "speed" and j.state.status in ACTIVE]
    keep: list[JobSpec] = []
    skipped: list[Skipped] = []

    def same(a: JobSpec, model: dict[str, Any], llama: dict[str, Any]) -> bool:
        return _same_file(a.model, model) and a.llama.get("bench_args") == llama.get("bench_args")

    for spec in planned:
        path = Path(str(spec.model.get("path", "")))
        if any(same(spec, k.model, k.llama) for k in keep):
            skipped.append(Skipped(path, "repeated", speed=True))
            continue
        if not again:
            job = next((j for j in active if same(spec, j.spec.model, j.spec.llama)), None)
            if job is not None:
                skipped.append(Skipped(path, "running" if job.state.status == "running" else "queued", speed=True))
                continue
            if any(same(spec, r.model, r.llama) for r in done):
                skipped.append(Skipped(path, "measured", speed=True))
                continue
        keep.append(spec)
    return keep, skipped


def in_order(jobs: Sequence[JobSpec], speed: Sequence[JobSpec]) -> list[JobSpec]:
    """`jobs` with each speed job right after its variant's KLD job (the rest at the end), in
    queue order: the first speeds come while the other variants' KLD still runs."""
    by_file: dict[object, list[JobSpec]] = {}
    for sp in speed:
        by_file.setdefault(_resolved(sp.model.get("path")), []).append(sp)
    out: list[JobSpec] = []
    for spec in jobs:
        out.append(spec)
        if spec.kind == "kld" and not spec.model.get("floor"):
            out += by_file.pop(_resolved(spec.model.get("path")), [])
    out += [sp for group in by_file.values() for sp in group]
    start = time.time()
    for i, spec in enumerate(out):  # the queue runs by seq: make it this order, whatever the clock's grain
        spec.seq = start + i * 1e-6
    return out


def screened(rec: ResultRecord) -> bool:
    """A screening summary or one of its window runs: measured on some chunks only."""
    return bool(rec.screen or rec.source.get("screen_part") or rec.source.get("screen"))


def same_setup(model_a: dict[str, Any], base_a: dict[str, Any], ctx_a: int | None,
               model_b: dict[str, Any], base_b: dict[str, Any], ctx_b: int | None) -> bool:
    """The same variant file measured against the same base log-probs at the same context.

    A model is the same file when its path, size and mtime agree (and its sha256, where both
    sides have one). The base log-probs are the same when the base file and the base model's
    identity agree (and the base cache key, where both sides have one: it covers the corpus,
    context and chunk count)."""
    if ctx_a is None or ctx_a != ctx_b:
        return False
    if bool(model_a.get("floor")) != bool(model_b.get("floor")):
        return False  # the noise floor is the base under other settings, not the base as a variant
    if not (_same_file(model_a, model_b) and _same_file(base_a, base_b)):
        return False
    if not base_a.get("file") or _resolved(base_a.get("file")) != _resolved(base_b.get("file")):
        return False
    return _agree(base_a, base_b, "key") and _agree(model_a, model_b, "sha256")


def _same_file(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if not a.get("path") or _resolved(a.get("path")) != _resolved(b.get("path")):
        return False
    if a.get("size_bytes") != b.get("size_bytes"):
        return False
    ma, mb = a.get("mtime"), b.get("mtime")
    return isinstance(ma, (int, float)) and isinstance(mb, (int, float)) and abs(ma - mb) < 1e-3


def _agree(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    return not (a.get(key) and b.get(key)) or a.get(key) == b.get(key)


def _resolved(p: object) -> Path | None:
    if not isinstance(p, str) or not p:
        return None
    try:
        return Path(p).resolve()
    except (OSError, RuntimeError):
        return Path(p)
