#!/usr/bin/env python3
"""Throughput with 1, 2, 4... GPUs on one box, and the Ray executor against the local one.

    python bench/bench_scale.py [--jobs N] [--gpus 1,2,4] [--gpus-per-run 1] [--ctx 512]
        [--chunks N] [--corpus-repeat N] [--dim 2048 --layers 12 --ff 5632] [--llama-bin DIR]
        [--ray auto|ray://HOST:PORT|start] [--ray-runs 2] [--no-baseline] [--with-base] [--cpu-slots 1,2]
        [-- LLAMA ARGS, e.g. -ngl 99]

The same queue of KLD jobs (N variant files: hard links of a quant ladder of one model, so
every job is new to qtui) runs through the real CLI and scheduler (`qtui run`, followed to
the end) once per GPU count k, each time in a data dir of its own with CUDA_VISIBLE_DEVICES
set to the first k GPUs (NVML order). The base log-probs are made once beforehand and read by
every run (not counted). It prints each run's wall time and throughput (jobs/s) and the ratio
to 1 GPU: the target (issue 9) is at least 0.9k for k GPUs. With --gpus-per-run g > 1 the
baseline is g GPUs (one run at a time) and the target 0.9k/g.

--ray: the same queue at the largest k again through qtui's Ray executor (`qtui run
--cluster ADDRESS`), --ray-runs times, and the wall-time ratio Ray / local: target <= 1.03.
"start" starts a one-node Ray cluster on this box for it (usage statistics off), waits until
its freshly started processes are idle (a cluster a user runs qtui on is up before the run),
and stops it after; an address uses a cluster already running. The first Ray run on a cluster
also uploads qtui's package (once per cluster and version); the later ones are what a user's
next run costs, and the target is judged on them (on the only one with --ray-runs 1). Skipped,
with a line saying so, where this qtui has no --cluster.

--no-baseline: only the GPU counts given (ratios to the first of them), e.g. `--gpus 4
--no-baseline --ray start` for the Ray comparison alone.

--with-base: every run makes its own base log-probs first, as a user's run does (the base job
runs on this machine's first GPU, the KLD jobs then go to the GPUs or the cluster); without it
the base is made once beforehand and the runs time the KLD queue alone. With a cluster, qtui
joins it and starts its workers while the base runs, so this is where a user sees Ray's cost.

Each line also gives where the time went, from the jobs' own timestamps: "lead-in" from the
start of `qtui run` to its first job's start (CLI, scheduler start, joining a cluster), with
"planned at" the moment its first job was planned (Python's start, the build probe and the plan
lie before it) and "scheduler at" the moment the scheduler process started (queueing and the
spawn lie between; its imports, NVML and the first placement after it), "job" the
mean job length, "first" the mean length of each GPU's first job (a Ray worker starts there).

--cpu-slots 1,2: a smoke check on a box without GPU: CUDA_VISIBLE_DEVICES="" and `slots = k`
instead of GPU subsets. Those figures say nothing about GPUs (a few cores shared by k jobs).

Exit status 1 when a run fails or a target is missed (for --cpu-slots: when a run fails). The
work dir (printed first) is removed after a good run unless --keep.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qtui.core import paths  # noqa: E402
from qtui.core.gpu import Nvml  # noqa: E402
from qtui.core.jobs.queue import Job, JobQueue  # noqa: E402
from qtui.core.llama import assets  # noqa: E402
from qtui.core.llama.tools import find_tools  # noqa: E402

LADDER = ("Q8_0", "Q6_K", "Q4_K_M", "Q4_0")
TARGET_SCALE = 0.9
TARGET_RAY = 1.03


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def gpu_indices() -> list[int]:
    snap = Nvml().sample()
    return [g.index for g in snap.gpus] if snap.available else []


def models(args: argparse.Namespace, work: Path) -> tuple[Path, list[Path], Path]:
    """The base model, the N variant files (hard links, or copies across file systems) and the corpus."""
    tools = find_tools(args.llama_bin, None)
    cache = paths.cache_dir() / "bench" / "scale"
    corpus = assets.stdlib_corpus()
    if args.corpus_repeat > 1:
        # Longer jobs, the same model: the built-in text N times over (each chunk is evaluated
        # on its own, so repeats are new work). Fixed costs per job or per run weigh less.
        longer = work / f"corpus-x{args.corpus_repeat}.txt"
        longer.write_text(corpus.read_text() * args.corpus_repeat)
        corpus = longer
    shape = {} if args.dim is None else {"dim": args.dim, "n_layer": args.layers, "n_ff": args.ff}
    base = assets.tiny_model(cache, corpus=corpus, **shape)
    ladder = []
    for q in LADDER:
        out = cache / base.name.replace("-F32", f"-{q}")
        if not out.is_file():
            say(f"quantizing {base.name} to {q} ...")
            assets.quantize(tools, base, out, q)
        ladder.append(out)
    variants = []
    (work / "variants").mkdir(parents=True)
    for i in range(args.jobs):
        src = ladder[i % len(ladder)]
        dst = work / "variants" / f"v{i:03d}-{src.name}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        variants.append(dst)
    return base, variants, corpus


def qtui_env(data: Path, config: Path, visible: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(QTUI_DATA_DIR=str(data), QTUI_CONFIG_DIR=str(config), COLUMNS="200", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def qtui(argv: list[str], env: dict[str, str], log: Path) -> int:
    with open(log, "ab") as fh:
        return subprocess.run([sys.executable, "-m", "qtui.cli", *argv], env=env, stdout=fh, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False).returncode


@dataclass
class Leg:
    wall: float
    done: int
    where: str
    """jobs per GPU group (local) or node (Ray), e.g. 0:6 1:6"""
    lead_in: float
    """from `qtui run`'s start to its first job's start"""
    planned: float
    """from `qtui run`'s start to its first job's spec (Python start, the build probe, the
    plan): the rest of the lead-in is queueing, the scheduler's start and the first placement"""
    scheduler: float | None
    """from `qtui run`'s start to its scheduler process's start (None: not seen)"""
    job: float
    """mean job length"""
    first: float
    """mean length of the first job of each group/node"""
    cpu: float
    """mean CPU seconds per job (the child's, as the scheduler recorded them; 0 where unknown)"""
    llama: str
    """llama-perplexity's own timings from the jobs' logs, means (tokenization, first pass, load)"""

    def timing(self) -> str:
        spawned = f", scheduler at {self.scheduler:.2f} s" if self.scheduler is not None else ""
        return (f"lead-in {self.lead_in:4.2f} s (planned at {self.planned:.2f} s{spawned}), job {self.job:4.2f} s, first {self.first:4.2f} s, cpu {self.cpu:.2f} s"
                f"{'; ' + self.llama if self.llama else ''}")


LLAMA_TIMES = {
    "tokenize": re.compile(r"tokenization took ([\d.]+) ms"),
    "pass": re.compile(r"([\d.]+) seconds per pass"),
    "load": re.compile(r"load time =\s*([\d.]+) ms"),
}


def llama_times(jobs: list[Job]) -> str:
    """Mean tokenization, first-pass and load times over the jobs' logs: where a job's time goes
    when it runs beside others (a shared CPU shows in tokenization, a shared GPU in passes)."""
    found: dict[str, list[float]] = defaultdict(list)
    for j in jobs:
        try:
            text = j.stderr_path.read_text(errors="replace") + j.stdout_path.read_text(errors="replace")
        except OSError:
            continue
        for name, rx in LLAMA_TIMES.items():
            m = rx.search(text)
            if m:
                found[name].append(float(m.group(1)) / (1000 if name != "pass" else 1))
    return ", ".join(f"{name} {statistics.fmean(v):.2f} s" for name, v in found.items() if v)


class SchedulerSpotter(threading.Thread):
    """When the scheduler process of a data dir started, seen by looking every 20 ms: one that
    lives less than that may be missed (then `at` is None). psutil's create_time counts from
    the boot time, which Linux gives in whole seconds: a child started here first says by how
    much that clock is off this one's (to about 10 ms)."""

    def __init__(self, data: Path) -> None:
        super().__init__(daemon=True)
        self.data = data.resolve()
        self.at: float | None = None
        self._done = threading.Event()
        before = time.time()
        probe = subprocess.Popen(["sleep", "5"])
        try:
            self._skew = psutil.Process(probe.pid).create_time() - before
        finally:
            probe.kill()
            probe.wait()

    def _ours(self, cmd: list[str]) -> bool:
        if "qtui.core.jobs.scheduler" not in cmd or "--data-dir" not in cmd[:-1]:
            return False
        return Path(cmd[cmd.index("--data-dir") + 1]).resolve() == self.data

    def run(self) -> None:
        while self.at is None and not self._done.wait(0.02):
            for proc in psutil.process_iter(["cmdline", "create_time"]):
                if self._ours(proc.info["cmdline"] or []):
                    self.at = proc.info["create_time"] - self._skew
                    break

    def stop(self) -> None:
        self._done.set()
        self.join()


def one_run(name: str, args: argparse.Namespace, work: Path, base: Path, variants: list[Path], base_file: Path,
            visible: str | None, config: str, extra: list[str]) -> Leg:
    """Wall time of `qtui run` over every variant, the jobs done, where they ran and where the time went."""
    data, cfg = work / name / "data", work / name / "config"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text(config)
    if args.with_base and name != "base":  # the whole run, its base job included, as a user runs it
        base_file = work / name / "base.kld"
        extra = [*extra, "--corpus", str(args.corpus_path), *(["--chunks", str(args.chunks)] if args.chunks else [])]
    argv = ["run", "--base", str(base), "--base-file", str(base_file), "-c", str(args.ctx), *extra,
            *(["--llama-bin", args.llama_bin] if args.llama_bin else []), *map(str, variants)]
    if args.llama_args:
        argv += ["--", *args.llama_args]
    spotter = SchedulerSpotter(data)
    spotter.start()
    t0, wall0 = time.monotonic(), time.time()
    code = qtui(argv, qtui_env(data, cfg, visible), work / name / "qtui.log")
    wall = time.monotonic() - t0
    spotter.stop()
    every = JobQueue(data).jobs()
    jobs = [j for j in every if j.spec.kind == "kld"]
    done = sum(j.state.status == "done" for j in jobs)
    if code != 0 or done != len(variants):
        say(f"{name}: qtui run exited {code}, {done}/{len(variants)} jobs done; see {work / name / 'qtui.log'}")
    groups: dict[str, list[Job]] = defaultdict(list)
    for j in jobs:
        node = j.state.node or {}
        where = ",".join(map(str, j.state.gpus)) if j.state.gpus else \
            ",".join(map(str, node.get("gpus") or [])) or node.get("hostname", "cpu")
        groups[str(where)].append(j)
    timed = [j for j in jobs if j.state.started_at and j.state.ended_at]
    lengths = [j.state.ended_at - j.state.started_at for j in timed]  # type: ignore[operator]
    firsts = [min((j for j in g if j in timed), key=lambda j: j.state.started_at or 0.0) for g in groups.values()
              if any(j in timed for j in g)]
    return Leg(
        wall=wall, done=done, where=" ".join(f"{g}:{len(js)}" for g, js in sorted(groups.items())),
        lead_in=min((j.state.started_at or 0.0 for j in every if j.state.started_at), default=wall0) - wall0,
        planned=min((j.spec.created_at for j in every), default=wall0) - wall0,
        scheduler=spotter.at - wall0 if spotter.at is not None else None,
        job=statistics.fmean(lengths) if lengths else 0.0,
        first=statistics.fmean([(j.state.ended_at or 0.0) - (j.state.started_at or 0.0) for j in firsts]) if firsts else 0.0,
        cpu=statistics.fmean([j.state.cpu_s or 0.0 for j in timed]) if timed else 0.0,
        llama=llama_times(timed),
    )


def has_cluster_option() -> bool:
    out = subprocess.run([sys.executable, "-m", "qtui.cli", "run", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])},
                         check=False)
    return "--cluster" in out.stdout


def ray_cli(*argv: str) -> int:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    exe = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    return subprocess.run([exe, *argv], env=env, capture_output=True, check=False).returncode


def settle(quiet_cpu: float = 50.0, timeout_s: float = 60.0) -> float:
    """Wait until the processes a fresh `ray start` spawned stop using the CPU (Ray starts a
    pool of idle workers, one per CPU, right after the head is up). Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        procs = [p for p in psutil.process_iter(["name", "cmdline"])
                 if "ray" in (p.info["name"] or "") or any("ray" in c for c in (p.info["cmdline"] or [])[:2])]
        for p in procs:
            try:
                p.cpu_percent(None)
            except psutil.Error:
                pass
        time.sleep(1.0)
        busy = 0.0
        for p in procs:
            try:
                busy += p.cpu_percent(None)
            except psutil.Error:
                pass
        if busy < quiet_cpu:
            break
    return time.monotonic() - t0


def ray_legs(args: argparse.Namespace, work: Path, base: Path, variants: list[Path], base_file: Path,
             results: dict[int, Leg], present: list[int], cpu: bool, gpr_toml: str) -> bool:
    """The largest k through Ray, --ray-runs times; True when every job ran and the target holds."""
    k = max(results)
    started = args.ray == "start"
    address = "auto" if started else args.ray
    if started:
        if ray_cli("start", "--head", "--disable-usage-stats", "--include-dashboard=false",
                   *([f"--num-gpus={k}"] if not cpu else [])) != 0:
            raise SystemExit("could not start a Ray head on this box (is qtui[ray] installed?)")
        say(f"Ray head started; its processes idle after {settle():.1f} s")
    legs: list[Leg] = []
    try:
        visible = "" if cpu else ",".join(str(i) for i in present[:k])
        config = f"slots = {k}\n" if cpu else f"gpus_per_run = {gpr_toml}\n"
        for i in range(max(1, args.ray_runs)):
            legs.append(one_run(f"ray{i + 1}", args, work, base, variants, base_file, visible, config,
                                ["--cluster", address]))
    finally:
        if started:
            ray_cli("stop")
    local = results[k].wall
    for i, leg in enumerate(legs):
        kind = "first run on this cluster: uploads qtui" if i == 0 and len(legs) > 1 else "a later run"
        print(f"Ray ({address}) at {k}, {kind}: wall {leg.wall:7.1f} s against {local:.1f} s local: "
              f"ratio {leg.wall / local:4.2f}  jobs per node/GPU {leg.where}  ({leg.timing()})")
    judged = legs[1:] or legs
    ratio = statistics.fmean(leg.wall for leg in judged) / local
    met = ratio <= TARGET_RAY
    print(f"Ray / local at {k}{' (later runs)' if len(legs) > 1 else ''}: {ratio:4.2f} "
          f"(target <= {TARGET_RAY}{'' if met else ': MISSED'}); local: {results[k].timing()}")
    return met and all(leg.done == args.jobs for leg in legs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=None, help="KLD jobs in the queue (default: 4 per GPU of the largest run)")
    ap.add_argument("--gpus", default=None, help="GPU counts to compare (default 1,2,4 up to what the box has)")
    ap.add_argument("--gpus-per-run", default="1")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=None, help="chunks of the corpus in the base file (default: all)")
    ap.add_argument("--corpus-repeat", type=int, default=1, metavar="N",
                    help="evaluate the built-in text N times over: jobs N times longer, the same model")
    ap.add_argument("--dim", type=int, default=None, help="the test model's width (default: the tiny 128)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--ff", type=int, default=5632)
    ap.add_argument("--llama-bin", default=None)
    ap.add_argument("--ray", default=None, metavar="auto|ray://HOST:PORT|start")
    ap.add_argument("--ray-runs", type=int, default=2, metavar="N",
                    help="Ray runs of the queue (default 2: the first also uploads qtui's package)")
    ap.add_argument("--no-baseline", action="store_true", help="only the GPU counts given: no 1-GPU run")
    ap.add_argument("--with-base", action="store_true",
                    help="every run makes its own base log-probs first (on this machine), as a user's run does")
    ap.add_argument("--cpu-slots", default=None, metavar="1,2", help="smoke check without GPU: slots counts instead")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs) after a good run")
    ap.add_argument("llama_args", nargs="*", help="after --: llama-perplexity's arguments (e.g. -ngl 99)")
    args = ap.parse_args()

    cpu = args.cpu_slots is not None
    present = [] if cpu else gpu_indices()
    if cpu:
        counts = [int(c) for c in args.cpu_slots.split(",")]
    else:
        if not present:
            raise SystemExit("no GPU seen through NVML: give --cpu-slots 1,2 for a smoke check on this box")
        counts = [int(c) for c in args.gpus.split(",")] if args.gpus else \
            [c for c in (1, 2, 4) if c <= len(present)] + ([len(present)] if len(present) not in (1, 2, 4) and len(present) < 4 else [])
        if max(counts) > len(present):
            raise SystemExit(f"--gpus {args.gpus}: this box has {len(present)} GPU(s)")
    gpr = args.gpus_per_run
    # the baseline: one run's worth of GPUs (2 with --gpus-per-run 2); counts below it cannot run
    first = int(gpr) if gpr.isdigit() and not cpu else 1
    counts = sorted({*([] if args.no_baseline else [first]), *(c for c in counts if c >= first)})
    args.jobs = args.jobs or 4 * max(counts)
    work = Path(tempfile.mkdtemp(prefix="qtui-bench-scale-"))
    say(f"work dir {work}")
    base, variants, corpus = models(args, work)
    args.corpus_path = corpus

    # the base log-probs, once, outside the timing
    base_file = work / "base.kld"
    chunks = ["--chunks", str(args.chunks)] if args.chunks else []
    if not args.with_base:  # else each run makes its own
        one_run("base", args, work, base, variants[:1], base_file, None if not cpu else "", "slots = 1\n",
                ["--corpus", str(corpus), *chunks])
    if not args.with_base and not base_file.is_file():
        raise SystemExit(f"could not make the base log-probs; see {work / 'base' / 'qtui.log'}")

    gpr_toml = '"auto"' if gpr == "auto" else gpr
    results: dict[int, Leg] = {}
    k0 = counts[0]
    ok = True
    print(f"{args.jobs} KLD jobs of {base.name} (quants {', '.join(LADDER)}), -c {args.ctx}, "
          f"gpus_per_run {gpr}, llama args {' '.join(args.llama_args) or '(none)'}")
    for k in counts:
        visible = "" if cpu else ",".join(str(i) for i in present[:k])
        config = f"slots = {k}\n" if cpu else f"gpus_per_run = {gpr_toml}\n"
        leg = results[k] = one_run(f"k{k}", args, work, base, variants, base_file, visible, config, [])
        ok &= leg.done == args.jobs
        ratio = (leg.done / leg.wall) / (results[k0].done / results[k0].wall) if results[k0].done else 0.0
        label = f"{k} CPU slot(s)" if cpu else f"{k} GPU(s) [{visible}]"
        want = TARGET_SCALE * k / k0
        target = "" if cpu else f"  (target >= {want:.1f}{'' if ratio >= want or k == k0 else ': MISSED'})"
        if not cpu and k > k0:
            ok &= ratio >= want
        print(f"{label:22} wall {leg.wall:7.1f} s  {leg.done / leg.wall:6.3f} jobs/s  ratio to {k0}: {ratio:4.2f}{target}  "
              f"jobs per group {leg.where}  ({leg.timing()})")

    if args.ray:
        if not has_cluster_option():
            print("Ray: skipped: this qtui has no `qtui run --cluster` (the Ray executor is not there)")
        else:
            ok &= ray_legs(args, work, base, variants, base_file, results, present, cpu, gpr_toml)
    if cpu:
        print("CPU smoke check only: these figures say nothing about GPUs (k jobs share this box's few cores).")
        ok = all(leg.done == args.jobs for leg in results.values())
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)  # a miss keeps the logs to read
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
