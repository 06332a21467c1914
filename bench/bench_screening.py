#!/usr/bin/env python3
"""Full runs and adaptive screening side by side, on one base file and one quant ladder.

    .venv/bin/python bench/bench_screening.py [--model gemma|tiny] [--corpus FILE] [--chunks N]
        [--ctx N] [--variants Q8_0,Q4_0,...] [--llama-args '-t 2'] [--top N]

Both modes go through `qtui run` (the real CLI, the detached scheduler), each in a data dir of its
own, on the same cached base log-probs (made once, not counted). Then it prints:

- the total llama-perplexity time of each mode: the sum of its KLD jobs' run times (from the
  scheduler taking a job to its result being recorded, so screening pays for cutting windows
  and for starting more processes), and the CPU time of its llama-perplexity children (on a
  busy CPU box the steadier figure: wall time also counts whatever else runs);
- for every pair of variants that the full runs separate at 95 % (paired by chunk over all
  chunks, no screening involved), whether screening ordered it the same way. A pair screening
  left in one rank range (a tie) counts as a wrong call: the full run could tell them apart;
- the top 3 of both (the same when they hold the same variants: tied ones have no order).

The last line reads `time ratio R; pairs agreed A/B; top3 same yes|no` (R = screening time /
full time). Targets (issue 7): every separated pair in the same order, the same top 3, R <= 0.33.
Exit status 1 on a miss. Models and the ladder are cached under <qtui cache>/bench.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qtui.core import paths  # noqa: E402
from qtui.core.jobs.queue import JobQueue  # noqa: E402
from qtui.core.jobs.screening import read_state  # noqa: E402
from qtui.core.llama import assets  # noqa: E402
from qtui.core.llama.tools import find_tools  # noqa: E402
from qtui.core.results.chunks import chunk_series  # noqa: E402
from qtui.core.results.paired import paired_diff  # noqa: E402
from qtui.core.results.store import ResultRecord, ResultStore  # noqa: E402

TINY_LADDER = ("Q8_0", "Q6_K", "Q4_K_M", "Q4_0", "Q2_K")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare(args: argparse.Namespace) -> tuple[Path, list[Path], Path, Path]:
    tools = find_tools(args.llama_bin, None)
    cache = paths.cache_dir() / "bench"
    corpus = Path(args.corpus).resolve() if args.corpus else assets.stdlib_corpus()
    if args.model == "gemma":
        src = assets.gemma_model()
        base = cache / "gemma" / "gemma-3-270m-F16.gguf"
        if not base.is_file():
            say("quantizing Gemma 3 270M to the F16 base ...")
            assets.quantize(tools, src, base, "F16")
        default = assets.DEMO_LADDER
    else:
        base = assets.tiny_model(corpus=corpus)
        default = TINY_LADDER
    types = [t.strip() for t in args.variants.split(",")] if args.variants else list(default)
    say(f"quant ladder {', '.join(types)} ...")
    variants = assets.ladder(tools, base, types, cache / args.model)
    return base, variants, corpus, tools.bin_dir


def qtui_run(env: dict[str, str], base: Path, variants: list[Path], corpus: Path, args: argparse.Namespace,
             *extra: str) -> None:
    argv = [sys.executable, "-m", "qtui.cli", "run", *extra, "--base", str(base), "--corpus", str(corpus),
            "--ctx", str(args.ctx), "--chunks", str(args.chunks), *map(str, variants)]
    if args.llama_args:
        argv += ["--", *shlex.split(args.llama_args)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"qtui run {' '.join(extra)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def kld_seconds(data: Path) -> float:
    total = 0.0
    for job in JobQueue(data).jobs():
        if job.spec.kind == "kld" and job.state.started_at and job.state.ended_at:
            total += job.state.ended_at - job.state.started_at
    return total


def kld_cpu_seconds(data: Path) -> float:
    """The CPU time of the mode's llama-perplexity children (the scheduler records each one's):
    on a busy CPU box it measures the work alone, where wall time also counts other processes."""
    return sum(job.state.cpu_s or 0.0 for job in JobQueue(data).jobs() if job.spec.kind == "kld")


def quant_of(rec: ResultRecord) -> str:
    return str(rec.model.get("path") and Path(str(rec.model["path"])).stem.rsplit("-", 1)[-1] or rec.model.get("quant"))


def span(rank: str | None) -> tuple[int, int]:
    lo, _, hi = str(rank or "0").partition("-")
    return int(lo), int(hi or lo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--model", choices=("gemma", "tiny"), default="gemma",
                    help="Gemma 3 270M (the demo's, needs the demo extra) or the tiny random llama (fast, meaningless)")
    ap.add_argument("--corpus", metavar="FILE", help="text to evaluate on (default: qtui's built-in text)")
    ap.add_argument("--chunks", type=int, default=48, metavar="N", help="chunks of the corpus the full runs use (default 48)")
    ap.add_argument("--ctx", type=int, default=128, metavar="N", help="context per chunk (default 128)")
    ap.add_argument("--variants", metavar="TYPES", help="comma-separated llama-quantize types made from the base "
                    "(default: the demo's ladder)")
    ap.add_argument("--top", type=int, default=None, metavar="N", help="screen with --top N")
    ap.add_argument("--llama-args", metavar="ARGS", help="extra llama-perplexity flags for both modes, e.g. '-t 2'")
    ap.add_argument("--llama-bin", metavar="PATH", help="llama.cpp build (default: as qtui finds it)")
    args = ap.parse_args(argv)

    base, variants, corpus, bin_dir = prepare(args)
    work = Path(tempfile.mkdtemp(prefix="bench-screening-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTUI_")}
    env.update(QTUI_CACHE_DIR=str(paths.cache_dir()), QTUI_CONFIG_DIR=str(work / "config"),
               QTUI_LLAMA_BIN=str(bin_dir), COLUMNS="200", NO_COLOR="1")
    say("base log-probs (cached; not counted) ...")
    warm = dict(env, QTUI_DATA_DIR=str(work / "warm"))
    qtui_run(warm, base, variants[:1], corpus, args)  # makes the base file if it is not cached yet
    full_dir, screen_dir = work / "full", work / "screen"
    say(f"full runs of {len(variants)} variants ...")
    qtui_run(dict(env, QTUI_DATA_DIR=str(full_dir)), base, variants, corpus, args)
    say("screening ...")
    qtui_run(dict(env, QTUI_DATA_DIR=str(screen_dir)), base, variants, corpus, args, "--screen",
             *(["--top", str(args.top)] if args.top else []))
    t_full, t_screen = kld_seconds(full_dir), kld_seconds(screen_dir)

    full = {quant_of(r): r for r in ResultStore(full_dir).load().records if r.kind == "kld" and r.status == "done"}
    screened = {quant_of(r): r for r in ResultStore(screen_dir).load().records if r.screen is not None}
    state = read_state(JobQueue(screen_dir), str(next(iter(screened.values())).screen["batch"]))  # type: ignore[index]
    ranks = {quant_of_key(k): v for k, v in (state or {}).get("variants", {}).items()}

    print(f"{'variant':<10} {'full KLD':>10} {'screen KLD':>11} {'chunks':>7}  state    rank  why")
    order_full = sorted(full, key=lambda q: full[q].stats["kld_mean"])
    for q in order_full:
        s = screened.get(q)
        info = ranks.get(q, {})
        print(f"{q:<10} {full[q].stats['kld_mean']:>10.6f} {s.stats['kld_mean'] if s else float('nan'):>11.6f} "
              f"{info.get('chunks_run', '?'):>7}  {info.get('state', '?'):<8} {info.get('rank') or '?':<5} {info.get('why', '')}")
    pairs = agreed = 0
    for a, b in itertools.combinations(order_full, 2):  # a better than b in the full runs
        sa, sb = chunk_series(full[a]), chunk_series(full[b])
        d = paired_diff(sb, sa) if sa is not None and sb is not None else None
        if d is None or d.verdict() != "separated":
            continue
        pairs += 1
        ra, rb = span(ranks.get(a, {}).get("rank")), span(ranks.get(b, {}).get("rank"))
        if ra[1] < rb[0]:
            agreed += 1
        else:
            print(f"  not the same: {a} < {b} in the full runs (difference {d.mean:.6f}), screening ranks "
                  f"{ranks.get(a, {}).get('rank')} and {ranks.get(b, {}).get('rank')}")
    order_screen = sorted(ranks, key=lambda q: (span(ranks[q].get("rank")), screened[q].stats["kld_mean"] if q in screened else 0))
    # As sets: two variants that compute the same KLD (a type llama-quantize falls back from) have
    # no order, in the full runs or in screening.
    top_same = set(order_full[:3]) == set(order_screen[:3])
    c_full, c_screen = kld_cpu_seconds(full_dir), kld_cpu_seconds(screen_dir)
    print(f"llama-perplexity time: full {t_full:.1f} s, screening {t_screen:.1f} s "
          f"({sum(1 for j in JobQueue(screen_dir).jobs() if j.spec.kind == 'kld')} screening jobs)")
    if c_full:
        print(f"llama-perplexity CPU time: full {c_full:.1f} s, screening {c_screen:.1f} s: cpu ratio "
              f"{c_screen / c_full:.2f}")
    print(f"top 3: full {', '.join(order_full[:3])}; screening {', '.join(order_screen[:3])}")
    ratio = t_screen / t_full if t_full else float("nan")
    print(f"time ratio {ratio:.2f}; pairs agreed {agreed}/{pairs}; top3 same {'yes' if top_same else 'no'}")
    return 0 if (agreed == pairs and top_same and ratio <= 0.33) else 1


def quant_of_key(key: str) -> str:
    """The screening state keys variants by file name: its quant type is the part after the last '-'."""
    return Path(key.split("#", 1)[0]).stem.rsplit("-", 1)[-1]


if __name__ == "__main__":
    raise SystemExit(main())
