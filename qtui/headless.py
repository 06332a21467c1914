"""The headless subcommands. Each returns an exit status; bad input is a message, not a traceback."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from qtui.boards import cmd_export, cmd_results, print_run_board
from qtui.console import UserError, console, err_console, keep_going, progress_printer, settings
from qtui.core import paths
from qtui.core.config import Config, effective_llama_bin
from qtui.core.fsutil import human_bytes
from qtui.core.jobs.queue import FINISHED, Job, JobQueue, Outcome
from qtui.core.results.store import ResultStore

if TYPE_CHECKING:
    from qtui.core.gguf.model_info import ModelInfo
    from qtui.core.llama.basecache import CachedBase
    from qtui.core.showdown.service import ShowdownRequest


# -- scan ----------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    from qtui.core.gguf.discovery import scan

    dirs = args.dirs or [Path.cwd()]
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"{d} is not a folder")
    result = scan(dirs)
    if args.json:
        print(json.dumps({"models": [m.to_dict() for m in result.models],
                          "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped]}, indent=2))
        return 0
    # "b", as the app's Models tab marks a file that could be the base ("B" there is the chosen base)
    rows = [{"": "b" if m.is_base_candidate else "",
             "file": str(m.path.relative_to(_common_root(dirs, m.path)))
             + (f" (+{len(m.shards) - 1} shards)" if len(m.shards) > 1 else ""),
             "quant": m.quant, "size": human_bytes(m.size_bytes), "BPW": f"{m.bpw:.2f}" if m.bpw else "?",
             "≥8-bit": f"{100 * m.share_at_least_bits(8):.0f}%", "vocab": str(m.n_vocab or "?"),
             "arch": m.arch or "?", "by": m.quantized_by or ""} for m in result.models]
    cols = _scan_columns(rows, console.width)
    t = Table(title=f"{len(result.models)} GGUF model(s) under {', '.join(map(str, dirs))}", box=None)
    for col in cols:
        # a file name is never cut: two files of one quant would read the same
        t.add_column(col, no_wrap=col != "file", overflow="fold" if col == "file" else "ellipsis")
    for row in rows:
        t.add_row(*(row[c] for c in cols))
    console.print(t)
    hidden = len(_SCAN_COLUMNS) - len(cols)
    console.print("[dim]b = could be the base (F32/F16/BF16)"
                  + (f"; {hidden} column{'s' if hidden != 1 else ''} hidden (--json has all)" if hidden else "")
                  + "[/]")
    if args.mix and result.models:
        # Each mix on full-width lines of its own under the file's name: inside the table it was
        # squeezed into the file column, 3 to 6 lines per model.
        console.print()
        console.print("Tensor types (share of the tensor bytes)", style="bold", markup=False)
        for m in result.models:
            console.print(str(m.path.relative_to(_common_root(dirs, m.path))), markup=False, soft_wrap=True)
            console.print(Padding(Text(mix_line(m), style="dim"), (0, 0, 0, 2)))
    for s in result.skipped:
        err_console.print(f"[yellow]skipped[/] {s.path}: {s.reason}")
    return 0


_SCAN_COLUMNS = ("", "file", "quant", "size", "BPW", "≥8-bit", "vocab", "arch", "by")
_SCAN_DROP = ("vocab", "arch", "≥8-bit", "by", "BPW")  # given up first when the names do not fit


def _scan_columns(rows: Sequence[dict[str, str]], width: int) -> list[str]:
    """The columns of `qtui scan` that leave the file names whole (up to 60 characters)."""
    def natural(c: str) -> int:
        return max([len(c)] + [len(r[c]) for r in rows]) + 2

    cols = list(_SCAN_COLUMNS)
    file_w = min(60, natural("file"))
    for drop in _SCAN_DROP:
        if sum(natural(c) for c in cols if c != "file") + file_w <= width:
            break
        cols.remove(drop)
    return cols


def mix_line(model: ModelInfo) -> str:
    """'Q4_K 71.2%, Q6_K 20.3%, F32 0.4%': each tensor type's share of the model's tensor bytes."""
    total = max(1, sum(x.nbytes for x in model.mix_by_type))
    return ", ".join(f"{s.type_name} {100 * s.nbytes / total:.1f}%" for s in model.mix_by_type)


# -- diff ----------------------------------------------------------------------------------
def cmd_diff(args: argparse.Namespace) -> int:
    from qtui.core.gguf.mixdiff import mix_diff
    from qtui.core.gguf.model_info import model_info
    from qtui.core.gguf.reader import GGUFError

    infos = []
    for p in (args.a, args.b):
        try:
            infos.append(model_info(p))
        except GGUFError as exc:
            raise UserError(f"{p}: {exc}") from exc
    diff = mix_diff(infos[0], infos[1])
    if args.json:
        print(json.dumps(diff.to_dict(), indent=2))
        return 0
    from qtui.ui.mixdiff_table import diff_table, diff_verdict  # rich only, no Textual

    console.print(diff_table(diff))
    console.print(diff_verdict(diff))
    return 0


def _common_root(dirs: Sequence[Path], p: Path) -> Path:
    for d in dirs:
        try:
            p.relative_to(d)
            return d
        except ValueError:
            continue
    return Path("/")


# -- run -----------------------------------------------------------------------------------
def first_gpu_name() -> str | None:
    from qtui.core.gpu import Nvml

    nvml = Nvml()
    try:
        snap = nvml.sample()
    finally:
        nvml.shutdown()
    return snap.gpus[0].name if snap.available and snap.gpus else None


def cmd_run(args: argparse.Namespace) -> int:
    from qtui.core.showdown.service import ShowdownRequest

    cfg, data_dir = settings(args)
    request = ShowdownRequest(
        base=args.base, variants=args.variants, corpus=args.corpus or cfg.corpus,
        # `-c 0` and `--chunks 0` are checked by the plan, not quietly replaced by the config's
        ctx=args.ctx if args.ctx is not None else cfg.ctx,
        chunks=args.chunks if args.chunks is not None else cfg.chunks,
        llama_args=args.llama_args or cfg.llama_args, base_file=args.base_file,
        base_args=_base_args(args, cfg),
        again=getattr(args, "again", False), hash_models=getattr(args, "sha256", False),
        floor=getattr(args, "floor", False),
        screen=getattr(args, "screen", False), top=getattr(args, "top", None),
        speed=getattr(args, "speed", False), speed_args=_speed_args(args),
        gpus_per_run=_gpus_per_run(args, cfg), **_cluster(args, cfg),
    )
    if getattr(args, "speed_args", None) is not None and not request.speed:
        raise UserError("--speed-args only works with --speed (they are llama-bench's options for the speed jobs)")
    if request.top is not None and not request.screen:
        raise UserError("--top N only works with --screen (it says which places screening must settle)")
    if request.top is not None and request.top < 1:
        raise UserError(f"--top {request.top} is not a number of variants: give 1 or more")
    return run_showdown(request, cfg, data_dir, llama_bin=getattr(args, "llama_bin", None), detach=args.detach)


def cluster_address(given: str | None, option: str, cfg: Config) -> str:
    """The cluster an option names, else the config's ("" for none); a wrong one is one sentence."""
    from qtui.core.config import cluster_address_problem

    address = (given if given is not None else cfg.cluster).strip()
    problem = cluster_address_problem(address)
    if problem:
        raise UserError(f"{option} {given!r} {problem}" if given is not None else f"cluster in the config {problem}")
    return address


def _cluster(args: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    """--cluster, else the config's cluster (and its shared base folder); checked here so a
    wrong address is one sentence, before anything is queued."""
    address = cluster_address(getattr(args, "cluster", None), "--cluster", cfg)
    if not address:
        return {}
    if importlib.util.find_spec("ray") is None:
        raise UserError(f"running on the Ray cluster {address} needs Ray: pip install 'qtui[ray]' (or run here with --cluster '')")
    base_dir = Path(cfg.cluster_base_dir).expanduser().absolute() if cfg.cluster_base_dir else None
    if base_dir is not None and not base_dir.is_dir():
        raise UserError(f"cluster_base_dir {base_dir} is not a folder: it must be a folder every node and this machine share")
    return {"cluster": address, "cluster_base_dir": base_dir}


def _gpus_per_run(args: argparse.Namespace, cfg: Config) -> int | str:
    """--gpus-per-run, else the config's; checked here so a wrong value is one sentence."""
    from qtui.core.jobs.gpus import parse_gpus_per_run

    given = getattr(args, "gpus_per_run", None)
    try:
        return parse_gpus_per_run(given if given is not None else cfg.gpus_per_run)
    except ValueError:
        raise UserError(f"--gpus-per-run {given} is not a number of GPUs: give 1 to 64, or auto (the fewest GPUs "
                        "whose free memory holds the run)") from None


def _speed_args(args: argparse.Namespace) -> list[str]:
    from qtui.core.llama.bench import BenchArgsError, split_speed_args

    try:
        return split_speed_args(getattr(args, "speed_args", None))
    except BenchArgsError as exc:
        raise UserError(str(exc)) from None


def _base_args(args: argparse.Namespace, cfg: Config) -> list[str]:
    """--base-args as arguments ('' overrides the config's with none), else the config's."""
    text = getattr(args, "base_args", None)
    if text is None:
        return list(cfg.base_args)
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UserError(f"--base-args {text!r} cannot be split into arguments ({exc})") from None


# After "skipped X: already measured on this setup": where to look, and how to measure anyway.
_SKIP_HINTS = {"measured": " (qtui results); --again measures it again",
               "queued": " (qtui jobs); --again queues it once more",
               "running": " (qtui jobs); --again queues it once more",
               "repeated": ""}


def run_showdown(request: ShowdownRequest, cfg: Config, data_dir: Path, *, llama_bin: str | None, detach: bool) -> int:
    """`qtui run` and `qtui demo --headless`: start through the showdown service, say what it
    did, and follow the jobs unless detached."""
    from qtui.core.llama.tools import LlamaNotFound
    from qtui.core.showdown.service import DataDirError, RunRefused, Showdown, load_tools

    try:
        tools, build = load_tools(llama_bin, effective_llama_bin(cfg))
    except LlamaNotFound as exc:
        raise UserError(str(exc)) from None
    service = Showdown(data_dir, cfg.slots)
    try:
        queued = service.start(request, tools, build, gpu_name=first_gpu_name())
    except RunRefused as exc:
        err_console.print("[red]Refused:[/]")
        for p in exc.problems:
            err_console.print(f"  • {p}", markup=False)
        return 2
    except DataDirError as exc:
        raise UserError(str(exc)) from None
    for note in queued.notes:
        console.print(note, style="dim", markup=False)
    for skip in queued.skipped:
        console.print(skip.text + _SKIP_HINTS[skip.why], markup=False)
    if not queued.jobs:
        console.print("nothing to run: every variant is already measured, queued or running on this setup")
        return 0
    ids = [j.id for j in queued.jobs]
    if detach:
        console.print(f"queued {len(ids)} job(s); follow them with [bold]qtui jobs --watch[/] or open [bold]qtui[/]")
        return 0
    batch = next((str(j.spec.screen.get("batch")) for j in queued.jobs if j.spec.screen), None)
    return follow(service.queue, ids, data_dir, service.slots, screen=batch)


def follow(queue: JobQueue, ids: Sequence[str], data_dir: Path, slots: int, screen: str | None = None) -> int:
    """Watch the jobs until they end (a screening batch: until its last stage is decided),
    then print this run's rows."""
    from qtui.core.jobs.screening import read_state
    from qtui.core.showdown.service import Showdown
    from qtui.watch import Detached, watch

    def batch_jobs() -> list[str]:
        return [j.id for j in queue.jobs() if j.spec.screen and j.spec.screen.get("batch") == screen]

    def batch_over() -> bool:
        state = read_state(queue, screen) if screen else None
        return state is None or bool(state.get("finished"))

    try:
        # A scheduler killed while we watch is started again, as opening `qtui jobs` would.
        jobs = watch(queue, ids, console, keep_going=Showdown(data_dir, slots).ensure_scheduler,
                     more=batch_jobs if screen else None, done=batch_over if screen else None)
    except Detached:
        _say_detached()
        return 0
    console.print()
    all_records = ResultStore(data_dir).load().records
    records = [r for r in all_records if r.job_id in set(ids)
               and not (r.source.get("screen_part") or r.source.get("screen"))]
    if screen:
        # a screened variant is one row, its summary over the chunks it ran
        records += [r for r in all_records if r.source.get("screen") == screen]
        print_screen(queue, screen)
    print_run_board(records)
    failed = [j for j in jobs if j.state.status != "done"]
    return 1 if failed else 0


def print_screen(queue: JobQueue, batch: str) -> None:
    """How a screening batch ended: each variant's state, the chunks it ran, and why."""
    from qtui.core.jobs.screening import read_state

    state = read_state(queue, batch)
    if state is None:
        return
    total = state.get("n_chunk") or "?"
    t = Table(title=f"Screening: {len(state.get('windows') or [])} windows over {total} chunks", box=None,
              header_style="bold")
    for title in ("Variant", "State", "Chunks", "Rank", "Why"):
        t.add_column(title, no_wrap=title != "Why")
    for key, info in (state.get("variants") or {}).items():
        t.add_row(*(Text(x) for x in (key, str(info.get("state")), f"{info.get('chunks_run', 0)}/{total}",
                                      str(info.get("rank") or ""), str(info.get("why") or ""))))
    console.print(t)
    if state.get("error"):
        err_console.print(f"screening stopped: {state['error']}", markup=False)


def _say_detached() -> None:
    try:
        console.print("\n[bold]Stopped watching.[/] The runs go on in the background: "
                      "[bold]qtui jobs --watch[/] or [bold]qtui[/] to follow them, [bold]qtui cancel JOB[/] to stop one.")
    except OSError:
        pass  # the terminal is gone (SIGHUP): nothing to tell


# -- import --------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    """Each log becomes one record; the same content imported again is not stored twice.

    A file that cannot be read or holds no llama-perplexity output is one line and exit 2; the
    other files are still imported.
    """
    from qtui.core.results.log_import import LogImportError, read_log

    _, data_dir = settings(args)
    store = ResultStore(data_dir)
    records = []
    status = 0
    for log in args.logs:
        try:
            imported = read_log(log)
        except LogImportError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            status = 2
            continue
        rec = imported.record
        for note in imported.notes:
            err_console.print(f"note: {note}", markup=False, soft_wrap=True)
        records.append(rec)
        if args.json:
            continue
        try:
            earlier = store.save_new(rec)
        except OSError as exc:
            raise UserError(f"cannot write to the results store {store.root}: {exc.strerror or exc}") from None
        if earlier is not None:
            first = (earlier.source or {}).get("file")
            same = "same content" + (f" as {first}" if first and Path(first).name != log.name else "")
            console.print(f"already imported {log} ({same})", markup=False, soft_wrap=True)
            continue
        label = rec.model.get("label") or log.stem
        what = (f"mean KLD {rec.stats.get('kld_mean')}" if rec.kind == "kld" else f"PPL {rec.stats.get('ppl_base')}") \
            if rec.status == "done" else f"failed: {(rec.failure or {}).get('reason')}"
        console.print(f"imported {log.name}: {label}, {rec.kind}, {what}", markup=False, soft_wrap=True)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    return status


# -- jobs ----------------------------------------------------------------------------------
def cmd_jobs(args: argparse.Namespace) -> int:
    cfg, data_dir = settings(args)
    keep_going(cfg, data_dir)
    queue = JobQueue(data_dir)
    jobs = queue.jobs()
    if args.watch:
        active = [j.id for j in jobs if j.state.status not in FINISHED]
        if not active:
            console.print("no queued or running jobs")
            return 0
        return follow(queue, active, data_dir, cfg.slots)
    if not jobs:
        console.print("no jobs")
        return 0
    t = Table(box=None)
    t.add_column("id", no_wrap=True)  # short and whole: it is what `qtui cancel ID` takes
    t.add_column("job", no_wrap=True, max_width=48)
    t.add_column("state", no_wrap=True)
    gpus = [gpu_cell(j) for j in jobs]
    if any(gpus):  # only where GPUs were given out or asked for: a CPU box sees no empty column
        t.add_column("GPUs", no_wrap=True)
    nodes = [node_cell(j) for j in jobs]
    if any(nodes):  # only where jobs ran on a Ray cluster
        t.add_column("node", no_wrap=True)
    t.add_column("reason")
    for j, g, n in zip(jobs, gpus, nodes):
        t.add_row(short_id(j.id), j.spec.label, j.state.status, *([g] if any(gpus) else []), *([n] if any(nodes) else []),
                  j.state.reason or "")
    console.print(t)
    return 0


def node_cell(job: Job) -> str:
    """Where a cluster job runs (ran): the node's host name and the GPU ids Ray gave it."""
    node = job.state.node or {}
    name = node.get("hostname") or node.get("ip") or ("(Ray picks a node)" if node and job.state.status == "running" else "")
    gpus = node.get("gpus") or []
    return f"{name} GPU {','.join(map(str, gpus))}" if name and gpus else str(name)


def gpu_cell(job: Job) -> str:
    """Which GPUs a job holds (or held), as nvidia-smi numbers them; a queued one: what it asks
    for, when that is not the usual one GPU."""
    if job.state.gpus:
        return ",".join(str(g) for g in job.state.gpus)
    asked = job.spec.gpus_per_run
    if job.state.status == "queued" and asked not in (None, 1):
        return f"wants {asked}"
    return ""


def cmd_cluster(args: argparse.Namespace) -> int:
    """Join the Ray cluster, print one survey of its nodes and GPUs (which qtui job holds each
    GPU, from the queue's running jobs), and leave."""
    from qtui.core.cluster.survey import survey_lines, survey_to_dict
    from qtui.core.cluster.watch import Unreachable, survey_once
    from qtui.core.jobs.remote import cluster_gpu_holders

    cfg, data_dir = settings(args)
    address = cluster_address(getattr(args, "address", None), "--address", cfg)
    if not address:
        raise UserError("no Ray cluster to survey: give --address (ray://HOST:PORT, HOST:PORT or auto) "
                        "or set cluster in the config")
    # Something that accepts the connection but never answers as Ray would keeps ray.init
    # waiting for minutes, uninterruptibly: past this bound the command ends itself, in words.
    bound = args.timeout + JOIN_BOUND_S
    watchdog = threading.Timer(bound, _give_up_joining, args=(address, bound))
    watchdog.daemon = True
    watchdog.start()
    try:
        found = survey_once(address, timeout_s=args.timeout)
    except Unreachable as exc:
        raise UserError(str(exc)) from exc
    finally:
        watchdog.cancel()
    holders = cluster_gpu_holders(JobQueue(data_dir).jobs())
    if args.json:
        doc = survey_to_dict(found)
        doc["holders"] = [{"node_id": n, "gpu": g, "job": label} for (n, g), label in sorted(holders.items())]
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    for line in survey_lines(found, holders):
        console.print(escape(line), soft_wrap=True)
    return 0


JOIN_BOUND_S = 60.0
"""`qtui cluster`: how long joining may take on top of the nodes' answer time"""


def _give_up_joining(address: str, bound: float) -> None:
    words = (f"cannot join the Ray cluster at {address}: no answer within {bound:g} s "
             "(is `ray start` running there, and the address right?)")
    err_console.print(f"[red]error:[/] {escape(words)}", soft_wrap=True)
    os._exit(2)  # the main thread is stuck inside Ray: nothing else can end the process


def short_id(job_id: str) -> str:
    """The random part of a job id (ids are time-random): unique in practice, easy to type."""
    return job_id.rsplit("-", 1)[-1]


def match_job(ids: Sequence[str], wanted: str) -> str:
    """The one job id that `wanted` names: the whole id, its short id, or any unique part of it."""
    exact = [i for i in ids if wanted in (i, short_id(i))]
    matches = exact or [i for i in ids if wanted in i]
    if not matches:
        raise UserError(f"no job matches {wanted!r} (qtui jobs lists them)")
    if len(matches) > 1:
        shown = ", ".join(short_id(i) for i in matches[:8]) + (", ..." if len(matches) > 8 else "")
        raise UserError(f"{wanted!r} is ambiguous: it matches {len(matches)} jobs ({shown}); give more of the id")
    return matches[0]


def _job_action(args: argparse.Namespace, action: Callable[[JobQueue, str], Outcome]) -> int:
    """Apply `action` to each job named; exit 2 if one is unknown or ambiguous, 1 if one was refused."""
    _, data_dir = settings(args)
    queue = JobQueue(data_dir)
    ids = [j.id for j in queue.jobs()]
    bad_input = refused = False
    for wanted in args.job_ids:
        try:
            job_id = match_job(ids, wanted)
        except UserError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            bad_input = True
            continue
        out = action(queue, job_id)
        if out.ok:
            console.print(out, markup=False, soft_wrap=True)
            continue
        refused = True
        if action is JobQueue.remove and out.state == "running":
            out = Outcome(f"cannot remove {wanted}: it is running; qtui cancel {wanted} first", ok=False)
        err_console.print(f"[red]error:[/] {escape(out)}", soft_wrap=True)
    return 2 if bad_input else 1 if refused else 0


def cmd_retry(args: argparse.Namespace) -> int:
    cfg, data_dir = settings(args)
    status = _job_action(args, JobQueue.retry)
    keep_going(cfg, data_dir, quiet=True)
    return status


def cmd_cancel(args: argparse.Namespace) -> int:
    cfg, data_dir = settings(args)
    status = _job_action(args, JobQueue.cancel)
    # A running job's end is recorded by a scheduler: if it died, the cancel needs a new one.
    keep_going(cfg, data_dir, quiet=True)
    return status


# -- setup / paths / demo / app ------------------------------------------------------------
def cmd_setup_llama(args: argparse.Namespace) -> int:
    from qtui.core.llama.build import DEFAULT_VERSION, SetupError, setup_llama

    try:
        bin_dir = setup_llama(version=args.llama_version or DEFAULT_VERSION, cuda=args.cuda, cuda_arch=args.cuda_arch,
                              jobs=args.jobs, force=args.force, progress=progress_printer())
    except SetupError as exc:
        raise UserError(str(exc)) from None
    console.print(f"llama.cpp tools ready in [bold]{bin_dir}[/]")
    return 0


def cmd_paths(args: argparse.Namespace) -> int:
    from qtui.core.llama.basecache import describe_summary

    for name, p in (("config", paths.config_file()), ("themes", paths.user_themes_dir()), ("data", paths.data_dir()),
                    ("cache", paths.cache_dir()), ("llama builds", paths.llama_cache_dir()), ("base files", paths.bases_dir())):
        # Base files are the big ones (GBs each): their size says when `qtui cache` is due.
        extra = f" ({describe_summary(p)})" if name == "base files" else ""
        console.print(f"{name:>12}: {p}{extra}", markup=False, soft_wrap=True)
    return 0


# -- cache (base log-prob files) -----------------------------------------------------------
def _cache_refs(data_dir: Path) -> list[str]:
    """Every path a queued or running job names: a base file among them is still needed."""
    from qtui.core.jobs.queue import ACTIVE

    refs: list[str] = []
    for job in JobQueue(data_dir).jobs():
        if job.state.status in ACTIVE:
            spec = job.spec
            refs += [a for a in spec.argv if isinstance(a, str)]
            refs += [str(v) for v in (spec.output, spec.base.get("file")) if v]
    return refs


def _cache_line(b: CachedBase, now: float) -> str:
    import time as _time

    corpus = f"{b.corpus or '?'}" + (f" ({b.corpus_sha})" if b.corpus_sha else "")
    days = max(0, int((now - b.last_used) // 86400))
    when = _time.strftime("%Y-%m-%d", _time.localtime(b.last_used)) + (" (today)" if days == 0 else f" ({days} d ago)")
    parts = [f"model {b.model or '?'}", f"corpus {corpus}", f"ctx {b.ctx if b.ctx is not None else '?'}",
             f"{b.chunks if b.chunks is not None else '?'} chunks", human_bytes(b.size), f"used {when}"]
    if b.windows:
        parts.append(f"{len(b.windows)} window{'s' if len(b.windows) > 1 else ''}")
    return "    " + " · ".join(parts)


def cmd_cache(args: argparse.Namespace) -> int:
    import time as _time

    from qtui.core.llama.basecache import list_bases, needed, remove, select, unused_for

    _, data_dir = settings(args)
    folder = paths.bases_dir()
    entries = list_bases(folder)
    action = getattr(args, "cache_action", None)
    if action is None:
        now = _time.time()
        if not entries:
            console.print(f"no base files in {folder}", markup=False, soft_wrap=True)
            return 0
        for b in entries:
            console.print(b.name, markup=False, soft_wrap=True)
            console.print(_cache_line(b, now), markup=False, soft_wrap=True)
        n = len(entries)
        console.print(f"total: {human_bytes(sum(b.size for b in entries))} in {n} base file{'s' if n > 1 else ''} "
                      f"({folder})", markup=False, soft_wrap=True)
        return 0
    if action == "rm":
        chosen: list[CachedBase] = []
        for word in args.names:
            found = select(entries, word)
            if not found:
                raise UserError(f"no base file in {folder} matches {word!r} (qtui cache lists them); nothing removed")
            chosen += [b for b in found if b not in chosen]
    else:
        if args.older_than < 0:
            raise UserError(f"--older-than {args.older_than:g} is not a number of days: give 0 or more")
        chosen = unused_for(entries, args.older_than)
    refs = _cache_refs(data_dir)
    freed = kept = 0
    for b in chosen:
        if needed(b, refs):
            kept += 1
            err_console.print(f"kept {b.name}: a queued or running job needs it", markup=False, soft_wrap=True)
            continue
        try:
            freed += remove(b)
        except OSError as exc:
            raise UserError(f"cannot remove {b.name}: {exc.strerror or exc}") from None
        console.print(f"removed {b.name}", markup=False, soft_wrap=True)
    if not chosen:
        console.print(f"no base file unused for {args.older_than:g} days", markup=False, soft_wrap=True)
    elif freed or len(chosen) > kept:
        console.print(f"freed {human_bytes(freed)}", markup=False, soft_wrap=True)
    # rm refused on a needed file is a refusal (1); prune leaving it is what prune is for (0).
    return 1 if kept and action == "rm" else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from qtui.demo import prepare_demo_request, run_demo_app

    cfg, data_dir = settings(args)
    request, llama_bin = prepare_demo_request(args, effective_llama_bin(cfg))
    if not args.headless:
        return run_demo_app(args, request, llama_bin)
    # As in the app: the configured llama arguments first, the demo's own after them.
    # The base args replace only the configured ones; the demo's -b reaches the base run anyway
    # (plan.base_run_args carries -c/-b/-ub over).
    request = replace(request, llama_args=(*cfg.llama_args, *request.llama_args), base_args=cfg.base_args)
    return run_showdown(request, cfg, data_dir, llama_bin=str(llama_bin), detach=False)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "scan": cmd_scan,
    "diff": cmd_diff,
    "run": cmd_run,
    "results": cmd_results,
    "export": cmd_export,
    "import": cmd_import,
    "jobs": cmd_jobs,
    "cluster": cmd_cluster,
    "cancel": cmd_cancel,
    "retry": cmd_retry,
    "remove": lambda a: _job_action(a, JobQueue.remove),
    "setup-llama": cmd_setup_llama,
    "demo": cmd_demo,
    "paths": cmd_paths,
    "cache": cmd_cache,
}


def dispatch(args: argparse.Namespace) -> int:
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        # soft_wrap: a one-line message stays one line (scripts grep it); escaped: paths may hold [..]
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
