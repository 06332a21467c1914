"""Planning a showdown: argv for the base and each variant, and every check before a run.

Nothing here starts a process. `plan_showdown` either returns jobs that will work as far as
can be known before running them, or raises RunRefused with every reason at once, so the
user fixes them all in one go instead of meeting them one run at a time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtui.core import paths
from qtui.core.fsutil import file_sha256, human_bytes, read_json
from qtui.core.gguf.model_info import ModelInfo, model_info, model_summary
from qtui.core.gguf.reader import GGUFError
from qtui.core.jobs.queue import JobSpec
from qtui.core.llama.basefile import BaseFileError, check_base_file, estimate_size
from qtui.core.llama.bench import BenchArgsError, BenchStyle, probe_bench, speed_argv, split_speed_args
from qtui.core.llama.tools import BuildInfo, LlamaNotFound, LlamaTools, child_env
from qtui.core.showdown.request import DEFAULT_CTX

# An English BPE vocabulary averages about 4 bytes per token; 3 errs on the side of more
# chunks, i.e. of asking for more free disk than the base file will really take.
BYTES_PER_TOKEN_LOW = 3.0
DISK_MARGIN = 1.10
MIN_CTX = 16


class RunRefused(Exception):
    """A run that cannot work; `problems` lists every reason, each a full sentence."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class RunPlan:
    base_job: JobSpec | None
    kld_jobs: list[JobSpec]
    base_file: Path
    notes: list[str] = field(default_factory=list)
    base_note: str | None = None
    """with a base job: what it will make. Kept apart from `notes` because the showdown
    service may find, under the queue lock, that the base is being made or was made
    meanwhile, and then says that instead."""
    speed_jobs: list[JobSpec] = field(default_factory=list)
    """llama-bench per variant (`speed`): no dependency on the base or KLD jobs"""
    base_cmd: list[str] | None = None
    """on a cluster without a shared base folder: the command that makes the base file, for
    the nodes that lack it (showdown.service.with_cluster)"""

    @property
    def jobs(self) -> list[JobSpec]:
        return ([self.base_job] if self.base_job else []) + self.kld_jobs + self.speed_jobs


BUILTIN_CORPUS = "builtin"


def resolve_corpus(value: str | Path | None) -> Path | None:
    """The corpus file a setting names. `builtin` is qtui's own text, Python's standard-library
    docstrings (about 240 kB, written once into the cache): a showdown needs no download. Its
    figures compare quants with each other, not with published wikitext-2 numbers. A file
    really named `builtin` in the working folder wins."""
    if value is None or str(value).strip() == "":
        return None
    path = Path(value).expanduser()
    if str(value).strip() == BUILTIN_CORPUS and not path.exists():
        from qtui.core.llama.assets import stdlib_corpus

        return stdlib_corpus()
    return path


def corpus_info(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "sha256": file_sha256(path)}


def all_chunks(chunks: int | None) -> int | None:
    """One spelling of "every chunk of the corpus": None (never 0 or a negative number)."""
    return chunks if chunks is not None and chunks > 0 else None


def base_key(base: ModelInfo, corpus_sha: str, ctx: int, chunks: int | None) -> str:
    """The identity of a base log-prob file: same model file, same tokens, same shape."""
    chunks = all_chunks(chunks)
    ident = {
        "model": str(base.path.resolve()),
        "size": base.size_bytes,
        "mtime": round(base.mtime, 3),
        "corpus": corpus_sha,
        "ctx": ctx,
        "chunks": chunks,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def cached_base_path(base: ModelInfo, key: str, ctx: int, chunks: int | None) -> Path:
    stem = base.path.name.removesuffix(".gguf")
    chunks = all_chunks(chunks)
    return paths.bases_dir() / f"{stem}.c{ctx}.n{chunks if chunks else 'all'}.{key}.kld"


def base_argv(tools: LlamaTools, model: Path, corpus: Path, ctx: int, chunks: int | None, out: Path, extra: Sequence[str]) -> list[str]:
    argv = [*tools.perplexity_argv(), "-m", str(model), "-f", str(corpus), "-c", str(ctx)]
    if chunks:
        argv += ["--chunks", str(chunks)]
    return argv + ["--kl-divergence-base", str(out), *extra]


def kld_argv(tools: LlamaTools, model: Path, base_file: Path, ctx: int, extra: Sequence[str]) -> list[str]:
    # -f is not needed: the tokens come from the base file. --chunks would be ignored.
    return [*tools.perplexity_argv(), "-m", str(model), "--kl-divergence-base", str(base_file),
            "--kl-divergence", "-c", str(ctx), *extra]


DEFAULT_BATCH, DEFAULT_UBATCH = 2048, 512
"""llama.cpp's default -b and -ub"""
FLOOR_LABEL = "noise floor"


def _last_int(args: Sequence[str], names: tuple[str, ...], default: int) -> int:
    """The value of the last of `names` in `args` (as llama.cpp's parser reads it: last wins)."""
    found = default
    for flag, value in zip(args, list(args[1:]) + [""]):
        if flag in names and value.isdigit() and int(value) > 0:
            found = int(value)
    return found


def pass_chunks(argv: Sequence[str]) -> int:
    """Chunks llama-perplexity evaluates in one pass for this command line: max(1, batch // ctx),
    as its KL-divergence mode computes it (-b and -c as its parser reads them: last wins)."""
    ctx = _last_int(argv, ("-c", "--ctx-size"), DEFAULT_CTX)
    return max(1, _last_int(argv, ("-b", "--batch-size"), DEFAULT_BATCH) // max(1, ctx))


def floor_args(extra: Sequence[str]) -> list[str]:
    """What the noise-floor job adds to the user's arguments: half the batch (-b) and half the
    micro-batch (-ub) they run with. The logits are the same maths, summed in another order;
    the KLD of the base against its own log-probs under that change is what the measurement
    itself moves, the floor under which two quants cannot be told apart."""
    batch = _last_int(extra, ("-b", "--batch-size"), DEFAULT_BATCH)
    ubatch = min(_last_int(extra, ("-ub", "--ubatch-size"), DEFAULT_UBATCH), batch)
    return ["-b", str(max(1, batch // 2)), "-ub", str(max(1, ubatch // 2))]


# What the base run and the KLD runs must agree on: the base file holds log-probs for this
# context, and batch (-b, -ub) sums the logits in another order (the noise floor is made that
# way). Placement (-ngl, -ot, -ncmoe, -fa ...) does not change what is computed.
_SHARED_FLAGS: tuple[tuple[tuple[str, ...], str, int | None], ...] = (
    (("-c", "--ctx-size"), "-c", None),
    (("-b", "--batch-size"), "-b", DEFAULT_BATCH),
    (("-ub", "--ubatch-size"), "-ub", DEFAULT_UBATCH),
)


def _last_value(args: Sequence[str], names: tuple[str, ...]) -> str | None:
    """The value after the last of `names` in `args` (llama.cpp's parser: last wins), or None."""
    found = None
    for flag, value in zip(args, list(args[1:]) + [""]):
        if flag in names:
            found = value
    return found


def base_run_args(base_args: Sequence[str], extra: Sequence[str], ctx: int, chunks: int | None) -> list[str]:
    """The base run's own llama arguments (`base_args`, e.g. fewer layers on the GPU: a BF16
    base rarely fits where its quants do) with what the KLD runs set for context and batch
    carried over where base_args leave them out, so both runs compute the same thing.

    Raises RunRefused (one sentence) if base_args set context, batch or chunks otherwise than
    the KLD runs do."""
    out = list(base_args)
    clashes: list[str] = []
    for names, flag, default in _SHARED_FLAGS:
        theirs = _last_value(base_args, names)
        ours = _last_value(extra, names)
        kld_value = ours if ours is not None else (str(ctx) if default is None else str(default))
        if theirs is None:
            if ours is not None:
                out += [flag, ours]
        elif theirs != kld_value:
            clashes.append(f"{flag} {theirs} where the KLD runs use {flag} {kld_value}")
    theirs = _last_value(base_args, ("--chunks",))
    if theirs is not None and theirs != str(all_chunks(chunks) or ""):
        clashes.append(f"--chunks {theirs} where the run uses {chunks or 'every chunk'}")
    if clashes:
        raise RunRefused([f"the base args set {' and '.join(clashes)}: context, batch and chunks must be the same "
                          "for the base and its variants, so leave them out of the base args (only placement "
                          "such as -ngl, -ot, -ncmoe may differ)."])
    return out


def estimated_base_bytes(corpus_bytes: int, ctx: int, n_vocab: int, chunks: int | None) -> int:
    est_chunks = max(1, int(corpus_bytes / BYTES_PER_TOKEN_LOW) // max(1, ctx))
    if chunks and chunks > 0:
        est_chunks = min(est_chunks, chunks)
    return estimate_size(ctx, n_vocab, est_chunks)


def cached_base_problem(path: Path, n_vocab: int | None) -> str | None:
    """Why a base file in the cache cannot be reused (None: it can). A finished base file
    always has its metadata (.json) beside it, written after the file itself: a file
    without one may be left from a run whose bookkeeping never finished."""
    try:
        check_base_file(path, n_vocab=n_vocab)
    except BaseFileError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if _read_meta(path) is None:
        return f"its metadata {path.name}.json is missing or unreadable, so the run that made it may not have finished"
    return None


def _read_models(paths_: Sequence[Path], problems: list[str]) -> list[ModelInfo]:
    out = []
    for p in paths_:
        try:
            out.append(model_info(Path(p)))
        except GGUFError as exc:
            problems.append(f"{p}: {exc}")
        except OSError as exc:
            problems.append(f"{p}: cannot read ({exc.strerror or exc})")
    return out


def plan_showdown(
    *,
    base_model: Path,
    variants: Sequence[Path],
    corpus: Path | None,
    ctx: int,
    chunks: int | None,
    extra_args: Sequence[str],
    tools: LlamaTools,
    build: BuildInfo | None = None,
    base_file: Path | None = None,
    gpu_name: str | None = None,
    hash_models: bool = False,
    floor: bool = False,
    base_args: Sequence[str] = (),
    speed: bool = False,
    speed_args: Sequence[str] = (),
) -> RunPlan:
    """`base_args`, when given, replace `extra_args` for the base run only (see base_run_args);
    the KLD runs and the noise floor keep `extra_args`. The base file's key does not depend on
    either: log-probs do not depend on where the layers run."""
    # Jobs run later, from their own folder: every path in their argv must be absolute.
    base_model = Path(base_model).absolute()
    variants = [Path(v).absolute() for v in variants]
    corpus = Path(corpus).absolute() if corpus is not None else None
    base_file = Path(base_file).absolute() if base_file is not None else None
    problems: list[str] = []
    notes: list[str] = []
    base_extra = list(extra_args)
    style = _bench_style(tools, speed_args, problems) if speed else None
    if base_args:
        try:
            base_extra = base_run_args(base_args, extra_args, ctx, chunks)
        except RunRefused as exc:
            problems += exc.problems
    if ctx < MIN_CTX:
        problems.append(f"-c {ctx} is too small: llama-perplexity needs a context of at least {MIN_CTX} tokens "
                        f"({DEFAULT_CTX} is usual).")
    if chunks is not None and chunks <= 0:
        problems.append(f"--chunks {chunks} is not a number of chunks: give 1 or more, or leave it out "
                        "to use every chunk of the corpus.")
        chunks = None
    bases = _read_models([base_model], problems)
    models = _read_models(list(variants), problems)
    if not variants:
        problems.append("no variants to compare: name at least one quantized .gguf file.")
    base = bases[0] if bases else None
    if base is not None:
        for m in models:
            if base.n_vocab and m.n_vocab and m.n_vocab != base.n_vocab:
                problems.append(f"{m.path.name}: vocabulary of {m.n_vocab} tokens, but the base {base.path.name} has {base.n_vocab}: "
                                "they are not the same model and KLD would be meaningless.")
            if m.path.resolve() == base.path.resolve():
                notes.append(f"{m.path.name} is the base itself: its KLD will be ~0 (a sanity check).")

    llama = {"binary": str(tools.perplexity), "source": tools.source, "gpu": gpu_name}
    if build is not None:
        llama.update({"fork": build.fork, "version": build.version, "commit": build.commit})
    env = {k: v for k, v in child_env(tools, base_env={}).items()}

    base_job: JobSpec | None = None
    base_note: str | None = None
    corpus_meta: dict[str, Any] = {}
    bfile: Path | None = None
    bkey: str | None = None
    kld_ctx = ctx
    if base is not None and base_file is not None and base_file.exists():
        # The user names an existing base file: trust it only after checking its header.
        try:
            hdr = check_base_file(base_file, n_vocab=base.n_vocab)
            kld_ctx, bfile = hdr.n_ctx, base_file
            if hdr.n_ctx != ctx:
                notes.append(f"using -c {hdr.n_ctx} from the base file {base_file.name} (not {ctx}).")
            meta = _read_meta(base_file)
            corpus_meta = meta.get("corpus", {}) if meta else {}
            bkey = (meta.get("base") or {}).get("key") if meta else None
        except BaseFileError as exc:
            problems.append(str(exc))
    elif base is not None:
        if corpus is None:
            problems.append("no corpus: pass --corpus FILE (e.g. wiki.test.raw) or set one in qtui's settings; "
                            f"'{BUILTIN_CORPUS}' uses qtui's own text (Python docstrings, no download).")
        elif not corpus.is_file():
            problems.append(f"corpus {corpus} does not exist or is not a file.")
        else:
            corpus_meta = corpus_info(corpus)
            key = bkey = base_key(base, corpus_meta["sha256"], ctx, chunks)
            bfile = base_file or cached_base_path(base, key, ctx, chunks)
            reusable = False
            if bfile.exists():
                why_not = cached_base_problem(bfile, base.n_vocab)
                if why_not is None:
                    reusable = True
                    notes.append(f"reusing the base log-probs {bfile} ({human_bytes(bfile.stat().st_size)}).")
                else:
                    notes.append(f"regenerating the cached base file: {why_not}")
            if not reusable:
                need = estimated_base_bytes(corpus_meta["bytes"], ctx, base.n_vocab or 0, chunks)
                try:
                    bfile.parent.mkdir(parents=True, exist_ok=True)
                    free: int | None = shutil.disk_usage(bfile.parent).free
                except OSError as exc:
                    free = None
                    problems.append(f"cannot write the base log-probs into {bfile.parent}: {exc.strerror or exc}.")
                if free is not None and free < need * DISK_MARGIN:
                    problems.append(f"not enough disk for the base log-probs: about {human_bytes(need)} needed in {bfile.parent}, "
                                    f"{human_bytes(free)} free. Free some space, use fewer --chunks or a smaller -c.")
                base_job = JobSpec(
                    kind="base",
                    argv=base_argv(tools, base.path, corpus, ctx, chunks, Path(str(bfile) + ".partial"), base_extra),
                    env=env, model=model_summary(base), base={"key": key, "file": str(bfile)},
                    corpus=corpus_meta, ctx=ctx, chunks=chunks, llama=llama, output=str(bfile),
                    label=f"base {base.path.name}",
                )
                base_note = f"generating base log-probs into {bfile} (about {human_bytes(need)})."
    if problems:
        raise RunRefused(problems)
    assert base is not None and bfile is not None
    base_meta = {"path": str(base.path), "label": base.path.name.removesuffix(".gguf"), "size_bytes": base.size_bytes,
                 "mtime": base.mtime, "quant": base.quant, "file": str(bfile)}
    if base.upcast_from:
        base_meta["upcast_from"] = base.upcast_from  # a row of that type is near the base by construction
    if bkey:
        base_meta["key"] = bkey  # part of a measurement's setup: see showdown.service
    if base_job is not None:
        base_job.base.update(base_meta)
    kld_jobs = [
        JobSpec(
            kind="kld", argv=kld_argv(tools, m.path, bfile, kld_ctx, extra_args), env=env,
            model=model_summary(m, sha256=hash_models), base=base_meta, corpus=corpus_meta, ctx=kld_ctx, chunks=chunks,
            llama=llama, depends_on=base_job.id if base_job else None, label=m.path.name,
        )
        for m in largest_first(models)
    ]
    if floor:
        # First in line: it says, before the variants finish, how small a difference can be trusted.
        kld_jobs.insert(0, JobSpec(
            kind="kld", argv=kld_argv(tools, base.path, bfile, kld_ctx, [*extra_args, *floor_args(extra_args)]),
            env=env, model={**model_summary(base, sha256=hash_models), "floor": True}, base=base_meta,
            corpus=corpus_meta, ctx=kld_ctx, chunks=chunks, llama=llama,
            depends_on=base_job.id if base_job else None, label=f"{FLOOR_LABEL} {base.path.name}",
        ))
    speed_jobs = []
    if style is not None:
        dropped: dict[str, None] = {}
        for m in models:
            argv, lost = speed_argv(tools, m.path, extra_args, speed_args, style)
            dropped.update(dict.fromkeys(lost))
            speed_jobs.append(JobSpec(
                kind="speed", argv=argv, env=env, model=model_summary(m, sha256=hash_models),
                # what the speed depends on besides the file: the same arguments give the same test
                llama={**llama, "binary": str(tools.bench), "bench_args": argv[argv.index("-m") + 2:]},
                label=f"speed {m.path.name}",
            ))
        if dropped:
            notes.append(f"speed: llama-bench has no {', '.join(dropped)}: the speed runs without "
                         f"{'it' if len(dropped) == 1 else 'them'}.")
    return RunPlan(base_job, kld_jobs, bfile, notes, base_note, speed_jobs=speed_jobs)


def largest_first(models: Sequence[ModelInfo]) -> list[ModelInfo]:
    """The variants in the order their KLD jobs queue: largest file first (ties keep the
    user's order). Where several GPUs share the queue, each takes the next job as it frees,
    so the run then ends on the short jobs: no GPU waits idle while the last big one runs.
    A file's size stands for its job's time: each pass reads every weight once. On one GPU
    the order changes nothing but which row arrives first."""
    return sorted(models, key=lambda m: -m.size_bytes)


def _bench_style(tools: LlamaTools, speed_args: Sequence[str], problems: list[str]) -> BenchStyle | None:
    """How this build's llama-bench spells its options, or None with the reason in `problems`."""
    try:
        split_speed_args(speed_args)
        return probe_bench(tools)
    except (BenchArgsError, LlamaNotFound) as exc:
        problems.append(str(exc) if str(exc).endswith(".") else f"{exc}.")
        return None


def _read_meta(base_file: Path) -> dict[str, Any] | None:
    try:
        meta = read_json(Path(str(base_file) + ".json"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
