#!/usr/bin/env python3
"""Soak test of the engine: a real queue on the real llama-perplexity, under random kills.

A queue of a base and N variants (the tiny test model quantized by the build under test) runs
while this script, at random moments, kill -9s the detached scheduler or the running
llama-perplexity child, or SIGHUPs a watcher (`qtui jobs --watch`, as a dropped SSH connection
would). After each event it does what a user would: opens `qtui jobs --watch` again. At the end it
retries what failed (a killed child fails its job, as it should) until every job has finished,
then checks the store and the queue:

  lost        a variant with no finished ("done") result
  duplicated  a variant with more than one "done" result, or more than one base job for the key
  stuck       a job still queued or running after the final wait, or "running" with no child

and prints `lost 0, duplicated 0, stuck 0` when the engine held. Exit status 1 otherwise.

    python bench/soak.py                      # 20 events, 8 variants
    python bench/soak.py --events 40 --seed 7 --ctx 256
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import psutil

from qtui.core.jobs.queue import ACTIVE, FINISHED, JobQueue
from qtui.core.llama import assets
from qtui.core.llama.tools import find_tools
from qtui.core.results.store import ResultStore

TYPES = ("Q8_0", "Q6_K", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "Q3_K_M", "Q2_K")


def qtui(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qtui.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def watcher(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`qtui jobs --watch` in its own session, as a terminal would run it."""
    return subprocess.Popen([sys.executable, "-m", "qtui.cli", "jobs", "--watch"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def scheduler_pids(data: Path) -> list[int]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "qtui.core.jobs.scheduler" in cmd and str(data) in cmd:
            out.append(p.pid)
    return out


def running_children(data: Path) -> list[int]:
    return [j.state.pid for j in JobQueue(data).jobs() if j.state.status == "running" and j.state.pid]


def kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def retry_failed(data: Path, env: dict[str, str]) -> int:
    """`qtui retry` every failed or cancelled job, bases first (a KLD job waits for its base)."""
    failed = [j for j in JobQueue(data).jobs() if j.state.status in ("failed", "cancelled")]
    for j in sorted(failed, key=lambda j: j.spec.kind != "base"):
        qtui(env, "retry", j.id)
    return len(failed)


def wait_finished(data: Path, env: dict[str, str], timeout: float) -> bool:
    """Until no job is active; `qtui jobs` now and then, which restarts a dead scheduler."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(j.state.status in ACTIVE for j in JobQueue(data).jobs()):
            return True
        qtui(env, "jobs")
        time.sleep(1.0)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--variants", type=int, default=8, choices=range(1, len(TYPES) + 1), metavar="N")
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="the corpus text repeated this many times (longer runs)")
    ap.add_argument("--gap", type=float, nargs=2, default=(0.5, 4.0), metavar=("MIN", "MAX"),
                    help="seconds between events, drawn uniformly")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    tmp = tempfile.TemporaryDirectory(prefix="qtui-soak-") if args.work is None else None
    work = Path(tmp.name) if tmp else args.work
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    tools = find_tools()
    corpus = assets.stdlib_corpus(work / "corpus.txt")
    tiny = assets.tiny_model(work / "tiny", corpus=corpus)
    # Runs long enough (seconds each, on 2 cores) that most events land on a busy queue.
    corpus.write_text(corpus.read_text() * args.repeat)
    variants = assets.ladder(tools, tiny, TYPES[: args.variants], work / "ladder")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    env.update(QTUI_DATA_DIR=str(data), QTUI_CACHE_DIR=str(work / "cache"), QTUI_CONFIG_DIR=str(work / "config"),
               QTUI_LLAMA_BIN=str(tools.bin_dir), NO_COLOR="1", COLUMNS="200")

    started = time.time()
    r = qtui(env, "run", "--detach", "--base", str(tiny), "--corpus", str(corpus), "-c", str(args.ctx), *map(str, variants))
    if r.returncode != 0:
        print(r.stdout, r.stderr, sep="\n")
        return 2
    watchers = [watcher(env)]
    events: Counter[str] = Counter()
    hup_not_detached = 0
    retried = 0
    for _ in range(args.events):
        time.sleep(rng.uniform(*args.gap))
        what = rng.choice(("scheduler", "child", "watcher"))
        if what == "scheduler":
            hit = [p for p in scheduler_pids(data) if kill(p, signal.SIGKILL)]
        elif what == "child":
            hit = [p for p in running_children(data)[:1] if kill(p, signal.SIGKILL)]
        else:
            alive = [w for w in watchers if w.poll() is None]
            hit = [w.pid for w in alive[:1] if kill(w.pid, signal.SIGHUP)]
            for w in alive[:1]:
                try:
                    w.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    hup_not_detached += 1
                    w.kill()
        events[f"{what}{'' if hit else ' (nothing to hit)'}"] += 1
        # What a user does next: look again, and retry what the kill failed.
        watchers.append(watcher(env))
        retried += retry_failed(data, env)

    rounds = 0
    finished = wait_finished(data, env, timeout=600)
    while finished and rounds < 10:
        n = retry_failed(data, env)
        if not n:
            break
        rounds += 1
        retried += n
        finished = wait_finished(data, env, timeout=600)
    for w in watchers:
        if w.poll() is None:
            w.send_signal(signal.SIGHUP)
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                hup_not_detached += 1
                w.kill()

    jobs = JobQueue(data).jobs()
    records = ResultStore(data).load().records
    done_per_variant = Counter(r.model.get("path") for r in records if r.kind == "kld" and r.status == "done")
    wanted = [str(v.absolute()) for v in variants]
    lost = sum(1 for v in wanted if done_per_variant[v] == 0)
    duplicated = sum(1 for v in wanted if done_per_variant[v] > 1)
    duplicated += max(0, len({j.id for j in jobs if j.spec.kind == "base"}) - 1)
    stuck = sum(1 for j in jobs if j.state.status not in FINISHED)
    stuck += sum(1 for j in jobs if j.state.status == "running" and j.state.pid and not psutil.pid_exists(j.state.pid))

    print(f"soak: {args.variants} variants, {args.events} events ({', '.join(f'{k} {n}' for k, n in sorted(events.items()))}), "
          f"seed {args.seed}")
    print(f"      {len(jobs)} jobs, {len(records)} records, {retried} retries ({rounds} round(s) after the events), {time.time() - started:.0f} s, "
          f"watchers that ignored SIGHUP: {hup_not_detached}")
    for j in jobs:
        if j.state.status != "done":
            print(f"      {j.spec.label}: {j.state.status} {j.state.reason or ''}")
    print(f"lost {lost}, duplicated {duplicated}, stuck {stuck}")
    if tmp is not None and not (lost or duplicated or stuck):
        tmp.cleanup()
    elif tmp is not None:
        print(f"kept {work} for inspection")
    return 0 if not (lost or duplicated or stuck or hup_not_detached) else 1


if __name__ == "__main__":
    raise SystemExit(main())
