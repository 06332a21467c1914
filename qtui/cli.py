"""qtui's command line: the TUI by default, headless subcommands for scripts and SSH sessions.

Every subcommand turns a bad input into one clear message and exit status 2; a traceback
is a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qtui import __version__

EPILOG = """\
the KLD workflow qtui automates:
  1. the base model (BF16/F16) writes its log-probabilities over a corpus once
     (llama-perplexity --kl-divergence-base), cached and reused by qtui;
  2. each quant is compared with them (--kl-divergence): mean KLD, KLD 99%%, PPL ratio,
     same-top-token %%; lower KLD = closer to the original.

examples:
  qtui                                  open the app on the GGUF files under this folder
  qtui -m ~/models                      ... or under another folder
  qtui demo                             a whole showdown on Gemma 3 270M, no GPU needed
  qtui setup-llama                      build llama.cpp's tools (CUDA if a GPU and nvcc are found)
  qtui scan ~/models                    list GGUF files with quant type and tensor mix
  qtui run --base m-BF16.gguf --corpus wiki.test.raw m-Q4_K_M.gguf m-IQ4_XS.gguf -- -ngl 99 -fa on
  qtui run --screen --top 3 --base m-BF16.gguf --corpus wiki.test.raw m-*.gguf
                                        stop each variant once its place (here: in the top 3) is settled
  qtui results --sort kld_p99           the leaderboard, ranked by the KLD tail
  qtui export --format md board.md      a Markdown table ready to post
  qtui import run1.log run2.log         put existing llama-perplexity logs into the store

runs go on in the background when qtui exits or the SSH connection drops; run qtui
(or qtui jobs) again to watch them. Data: qtui paths.
"""


# A ranking holds one setup: KLD against another base, corpus, context, chunk set or llama build
# family is not comparable.
SETUP_HELP = ("which setup to rank (same base, corpus, -c, chunks and llama build): its number, id or the start "
              "of its name; default the one with the most results; all: every setup, one after another")


def _add_common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--data-dir and --llama-bin, accepted before the subcommand (`top`) and after it.

    The subcommand's copies default to SUPPRESS: argparse copies every attribute a subparser
    sets over the top-level namespace, so a plain default None there would erase a value
    given before the subcommand (`qtui --data-dir X jobs`). Given twice, the later one wins.
    """
    default = None if top else argparse.SUPPRESS
    p.add_argument("--data-dir", type=Path, metavar="DIR", default=default,
                   help="where results and jobs are kept (default: the user data dir; env QTUI_DATA_DIR)")
    p.add_argument("--llama-bin", metavar="PATH", default=default,
                   help="llama.cpp build dir or llama-perplexity binary (default: config, PATH, then qtui's own build)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="qtui",
        description="Rank quantized GGUF models by how faithful they stay to their base model (KL divergence, "
        "measured by llama.cpp's llama-perplexity), live in the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=f"qtui {__version__}")
    ap.add_argument("--results", type=Path, metavar="PATH", help="open stored or exported results read-only in the app")
    ap.add_argument("--models", "-m", dest="dirs", action="append", type=Path, metavar="DIR",
                    help="model folder for the app (repeatable; default: the current folder + configured ones)")
    _add_common(ap, top=True)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("scan", help="list GGUF files and what their headers say")
    p.add_argument("dirs", nargs="*", type=Path, metavar="DIR", help="folders to scan (default: current folder)")
    p.add_argument("--mix", action="store_true", help="show each model's tensor-type mix")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_common(p)

    p = sub.add_parser("diff", help="compare two models' tensor-type mix, group by group",
                       description="Why two files with the same quant label differ: per tensor group (attention, "
                       "FFN, experts, shared experts, embeddings/output) the types and bytes in each file. "
                       "Exit status 2 if a file cannot be read.")
    p.add_argument("a", type=Path, metavar="A.gguf", help="first model (the first shard of a split set)")
    p.add_argument("b", type=Path, metavar="B.gguf", help="second model")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_common(p)

    p = sub.add_parser("run", help="measure variants against a base, with live progress",
                       description="Generate (or reuse) the base log-probs, then run every variant's KLD: on a GPU box each run "
                       "takes the fewest GPUs that hold it (or --gpus-per-run N) and runs on other GPUs go on at once, on a "
                       "box without GPU `slots` jobs at once (config). Variants queue largest file first, so that "
                       "several GPUs end the run together on the short ones. "
                       "With --screen, variants whose place is settled early stop early. "
                       "Arguments after -- go to llama-perplexity unchanged (e.g. -- -ngl 99 -fa on).")
    p.add_argument("--base", type=Path, required=True, metavar="BASE.gguf", help="the reference model (BF16/F16/F32, or any model to compare against)")
    p.add_argument("--corpus", metavar="FILE", help="text to evaluate on (e.g. wiki.test.raw; 'builtin': qtui's own "
                   "Python-docstring text, no download); not needed with --base-file")
    p.add_argument("--ctx", "-c", type=int, default=None, metavar="N", help="context size per chunk (default 512, or the config)")
    p.add_argument("--chunks", type=int, default=None, metavar="N", help="use only the first N chunks of the corpus (quicker, less precise)")
    p.add_argument("--base-file", type=Path, metavar="FILE", help="an existing --kl-divergence-base file to use (or where to write one)")
    p.add_argument("--base-args", metavar="'ARGS'", default=None,
                   help="llama-perplexity arguments for the base run only, quoted, instead of those after -- "
                   "(e.g. --base-args '-ngl 20 -ot exps=CPU': a BF16 base rarely fits where its quants do); "
                   "-c, -b and -ub must stay those of the KLD runs ('' : the base uses the same as the "
                   "variants; default: the config's base_args)")
    p.add_argument("--detach", action="store_true", help="queue the jobs and return at once")
    p.add_argument("--sha256", action="store_true", help="record each variant's sha256 in its result (slow for big files)")
    p.add_argument("--again", action="store_true", help="measure variants already measured, queued or running on the same "
                   "setup (same files, base log-probs and context) once more; by default they are skipped")
    p.add_argument("--screen", action="store_true", help="adaptive screening: run every variant on the first chunks of "
                   "the base file (8, rounded up to whole llama-perplexity passes: 16 at -c 128), then on windows three "
                   "times as long each time, only while its place in the ranking is "
                   "not settled at 95%% (paired by chunk, corrected for looking after every window); a pair that even "
                   "the full run would very likely not separate stops early as a tie. Usually a fraction of the GPU "
                   "time of full runs; `qtui results` shows each variant as settled, open or tie with the chunks it "
                   "ran. Without --screen every variant runs every chunk (a screened variant is measured in full then)")
    p.add_argument("--top", type=int, default=None, metavar="N", help="with --screen: settle only which variants are in "
                   "the top N (by mean KLD), not the whole order: quicker when only the best few matter")
    p.add_argument("--floor", action="store_true", help="also measure the noise floor: the base against its own "
                   "log-probs with half the batch size; differences below it are called ties")
    p.add_argument("--speed", action="store_true", help="also measure each variant's speed with llama-bench (prompt "
                   "processing pp512 and generation tg128, tokens per second) with the -ngl/-fa/-t/-ot... given after "
                   "--: a job after each KLD job, timed with no other job beside it; the leaderboard shows pp t/s and tg t/s")
    p.add_argument("--speed-args", metavar="'ARGS'", default=None,
                   help="with --speed: llama-bench's own options, quoted, instead of the defaults "
                   "(e.g. --speed-args '-p 1024 -n 256 -r 3')")
    p.add_argument("--gpus-per-run", metavar="N|auto", default=None,
                   help="GPUs each run takes (default auto, or gpus_per_run in the config); auto: the fewest GPUs whose "
                   "free memory holds the run, estimated from the GGUF header at this -c/-b/-ub/-ngl. Runs that name "
                   "their own devices (-dev, -ts, -mg, -ot ...=CUDA1, CUDA_VISIBLE_DEVICES) keep them and run alone, "
                   "holding every GPU")
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="run the jobs on a Ray cluster (pip install 'qtui[ray]'): auto (this machine is part of one), "
                   "ray://HOST:PORT or HOST:PORT; '' runs them here (default: cluster in the config). Models, "
                   "llama.cpp and the corpus must be at the same paths on every node; see the README")
    p.add_argument("variants", nargs="+", type=Path, metavar="VARIANT.gguf")
    _add_common(p)

    p = sub.add_parser("results", help="print the leaderboard of stored results")
    p.add_argument("--sort", default="kld", metavar="COL", help="column to rank by (default kld); e.g. kld_p99, size_gib, score, same_top")
    p.add_argument("--reverse", action="store_true", help="descending order")
    p.add_argument("--failed", action="store_true", help="list failed and cancelled runs (apart from the ranking)")
    p.add_argument("--setup", metavar="N|ID|all", help=SETUP_HELP)
    p.add_argument("--from", dest="source", type=Path, metavar="PATH", help="read results from PATH instead of the store")
    p.add_argument("--json", action="store_true", help="print the rows as JSON, with rank ranges and the paired "
                   "intervals to the neighbours in the ranking")
    _add_common(p)

    p = sub.add_parser("export", help="write the leaderboard as CSV, JSON, Markdown or SVG")
    p.add_argument("--format", "-f", choices=("csv", "json", "md", "svg"), default="md")
    p.add_argument("file", nargs="?", type=Path, help="output file (default: stdout)")
    p.add_argument("--sort", default="kld", metavar="COL")
    p.add_argument("--reverse", action="store_true")
    p.add_argument("--setup", metavar="N|ID|all", help=SETUP_HELP + " (all: Markdown only, one table per setup)")
    p.add_argument("--from", dest="source", type=Path, metavar="PATH", help="read results from PATH instead of the store")
    _add_common(p)

    p = sub.add_parser("import", help="read existing llama-perplexity logs into the store",
                       description="Each log becomes one result, a failed run too (with its reason). A log whose content "
                       "is already in the store is skipped, whatever its name. Exit status 2 if a file could not be "
                       "imported (the others still are).")
    p.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="stdout logs, or stdout+stderr logs (2>&1)")
    p.add_argument("--json", action="store_true", help="print the parsed records instead of storing them")
    _add_common(p)

    p = sub.add_parser("jobs", help="list queued, running and finished jobs")
    p.add_argument("--watch", action="store_true", help="follow the running jobs live")
    _add_common(p)
    for name, helptext in (("cancel", "stop a queued or running job"), ("retry", "queue a failed or cancelled job again"),
                           ("remove", "delete a finished job from the queue")):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ". Exit status: 0 done, "
                           "1 refused (e.g. removing a running job), 2 no such job or an id that matches several.")
        p.add_argument("job_ids", nargs="+", metavar="JOB", help="job id as shown by qtui jobs (any unique part of it)")
        _add_common(p)

    p = sub.add_parser("cluster", help="show a Ray cluster's nodes and GPUs, and which job holds each GPU",
                       description="Join the Ray cluster (--address, else the config's cluster), read every node's "
                       "GPUs there (NVML: memory, load, heat, power) and Ray's GPU counts, print them once and leave. "
                       "Exit status 2 when Ray is missing or the cluster cannot be reached.")
    p.add_argument("--address", metavar="ADDRESS", default=None,
                   help="the cluster: ray://HOST:PORT, HOST:PORT or auto (default: cluster in the config)")
    p.add_argument("--json", action="store_true", help="print the survey as JSON")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="how long each node has to answer (default 10 s; a node that does not is listed so)")
    _add_common(p)

    p = sub.add_parser("setup-llama", help="build llama.cpp's tools into qtui's cache (CPU, or CUDA when found)")
    p.add_argument("--cuda", action="store_true", default=None, help="build with CUDA (default: when nvcc and a GPU are found)")
    p.add_argument("--cpu", dest="cuda", action="store_false", help="build for the CPU only")
    p.add_argument("--cuda-arch", metavar="SM", help="CUDA architectures, e.g. 90 (H100), 89 (RTX 40xx), 86 (RTX 30xx)")
    p.add_argument("--llama-version", default=None, metavar="V", help="llama-cpp-python sdist version to build from")
    p.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs (default: all cores)")
    p.add_argument("--force", action="store_true", help="rebuild even if a build exists")

    p = sub.add_parser("demo", help="the whole showdown on Gemma 3 270M: builds tools, makes a quant ladder, runs it live")
    p.add_argument("--headless", action="store_true", help="print progress instead of opening the app")
    p.add_argument("--chunks", type=int, default=None, metavar="N", help="chunks of the corpus to use (default 24)")
    p.add_argument("--tiny", action="store_true", help="use the tiny random test model instead of Gemma (seconds, numbers meaningless)")
    _add_common(p)

    p = sub.add_parser("paths", help="show where qtui keeps config, data and caches")
    _add_common(p)

    p = sub.add_parser("cache", help="list cached base log-prob files, or remove them (rm, prune)",
                       description="List the cached base log-prob files (model, corpus, ctx, chunks, size, last "
                       "used). A file a queued or running job needs is never removed. Exit status: 0 done, "
                       "1 refused (a job needs the file), 2 a name that matches no base file.")
    _add_common(p)
    csub = p.add_subparsers(dest="cache_action", metavar="ACTION")
    c = csub.add_parser("rm", help="remove base files by name or name prefix (with their metadata and windows)")
    c.add_argument("names", nargs="+", metavar="NAME", help="a base file's name as qtui cache lists it, or its start")
    _add_common(c)
    c = csub.add_parser("prune", help="remove base files unused for some days")
    c.add_argument("--older-than", type=float, required=True, metavar="DAYS", help="unused for this many days")
    _add_common(c)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    llama_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, llama_args = argv[:i], argv[i + 1:]
    ap = build_parser()
    args = ap.parse_args(argv)
    args.llama_args = llama_args
    if llama_args and args.command != "run":
        ap.error("arguments after -- are passed to llama-perplexity and only make sense with `qtui run`")
    if getattr(args, "data_dir", None):
        os.environ["QTUI_DATA_DIR"] = str(args.data_dir)  # the scheduler and the app see the same store
    try:
        if args.command is None:
            if args.results is not None and not args.results.exists():
                ap.error(f"--results {args.results}: no such file or folder")
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                # Without a terminal the app cannot draw or read keys (and would spin): say so.
                ap.error("the app needs a terminal; from scripts use the headless commands "
                         "(qtui run / results / export / jobs; see qtui --help)")
            # The app: straight to Textual, without the headless commands' imports (startup time).
            from qtui.ui.app import run_app

            return run_app(args)
        from qtui import headless  # late: `qtui --help` stays instant

        return headless.dispatch(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
