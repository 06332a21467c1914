#!/usr/bin/env python3
"""What joining a Ray cluster and warming its workers while the base job runs saves.

    python bench/bench_ray_warm.py [--runs 3] [--chunks 384] [--address HOST:PORT]

A user's run: the base job on this machine first, then two KLD jobs (Q8_0, Q4_0 of the tiny
test model) that wait for it. Each trial runs it in a fresh process (a fresh Ray driver, as each
detached scheduler is) three ways, interleaved: `local` (the KLD jobs here, 2 slots), `warm`
(on the cluster, as qtui runs them: it joins and starts the cluster's workers while the base
runs) and `cold` (on the cluster with that switched off: joining and worker starts come after
the base). Prints each trial, then the mean wall times and the ratios to local. Without
--address it starts a one-node loopback cluster with this box's CPUs (usage statistics off)
and stops it after. CPU only (the CPU build, CUDA hidden): what it shows is Ray's fixed cost
per run, which does not depend on the GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
os.environ.update(RAY_ENV)
sys.path.insert(0, str(ROOT))


def trial(mode: str, address: str, chunks: int) -> float:
    """One run in this process (called through `--trial`): prints a line, returns the wall time."""
    from qtui.core.jobs import remote
    from qtui.core.jobs.queue import JobQueue, JobSpec
    from qtui.core.jobs.scheduler import Scheduler
    from qtui.core.llama import assets
    from qtui.core.llama.tools import child_env, find_tools
    from qtui.core.paths import cache_dir
    from qtui.core.showdown.plan import base_argv, kld_argv

    if mode == "cold":
        remote.ClusterSeats.prepare = lambda self, address, gpus: None  # type: ignore[method-assign]
    tools = find_tools(None, None)
    models = cache_dir() / "bench" / "ray-warm"
    corpus = assets.stdlib_corpus(models / "corpus.txt")
    model = assets.tiny_model(models, corpus=corpus)
    ladder = assets.ladder(tools, model, ("Q8_0", "Q4_0"), models)
    work = Path(tempfile.mkdtemp(prefix="qtui-bench-ray-warm-"))
    q, out, env = JobQueue(work), work / "base.kld", child_env(tools, base_env={})
    base = q.add(JobSpec(kind="base", argv=base_argv(tools, model, corpus, 128, chunks, Path(f"{out}.partial"), ["-t", "1"]),
                         env=env, model={"label": "tiny"}, ctx=128, chunks=chunks, output=str(out), label="base"))
    klds = [q.add(JobSpec(kind="kld", argv=kld_argv(tools, m, out, 128, ["-t", "1"]), env=env, model={"label": m.name},
                          ctx=128, label=m.name, cluster=None if mode == "local" else address, depends_on=base.id))
            for m in ladder]
    t0 = time.monotonic()
    Scheduler(work, 2, parent_env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}).run()
    wall = time.monotonic() - t0
    jobs = {j.id: j.state for j in q.jobs()}
    b, ks = jobs[base.id], [jobs[k.id] for k in klds]
    if not all(s.status == "done" for s in (b, *ks)):
        raise SystemExit(f"{mode}: a job did not finish: {[(s.status, s.reason) for s in (b, *ks)]} (see {work})")
    after = max(s.ended_at or 0.0 for s in ks) - (b.ended_at or 0.0)
    print(f"{mode:5}  wall {wall:5.2f} s  base {(b.ended_at or 0) - (b.started_at or 0):4.2f} s  "
          f"KLD jobs done {after:4.2f} s after the base", flush=True)
    print(f"WALL {wall:.4f}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=384, help="chunks of the base run (its length: the time there is to warm)")
    ap.add_argument("--address", default=None, help="a running cluster (default: start a loopback one)")
    ap.add_argument("--trial", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trial:
        trial(args.trial, args.address, args.chunks)
        return 0
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    address = args.address
    if address is None:
        address = "127.0.0.1:6391"
        started = subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", "--port=6391",
                                  "--disable-usage-stats", "--include-dashboard=false"], capture_output=True, check=False)
        if started.returncode != 0:
            raise SystemExit(f"could not start a Ray head: {started.stderr.decode()[-400:]}")
    walls: dict[str, list[float]] = {"local": [], "warm": [], "cold": []}
    try:
        for _ in range(args.runs):
            for mode in walls:
                proc = subprocess.run([sys.executable, __file__, "--trial", mode, "--address", address,
                                       "--chunks", str(args.chunks)], stdout=subprocess.PIPE, text=True, check=False)
                lines = proc.stdout.splitlines()
                print("\n".join(ln for ln in lines if not ln.startswith("WALL ")), flush=True)
                if proc.returncode != 0 or not lines or not lines[-1].startswith("WALL "):
                    raise SystemExit(f"the {mode} trial failed")
                walls[mode].append(float(lines[-1].split()[1]))
    finally:
        if args.address is None:
            subprocess.run([ray, "stop"], capture_output=True, check=False)
    local = statistics.fmean(walls["local"])
    for mode, w in walls.items():
        print(f"{mode:5}  mean wall {statistics.fmean(w):5.2f} s over {len(w)} runs  ratio to local "
              f"{statistics.fmean(w) / local:4.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
