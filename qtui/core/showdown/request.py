"""What a front end asks the showdown service for: a plain, typed value (no heavy imports, so
the app can hold one from its first screen on)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qtui.core.results.store import ResultRecord

DEFAULT_CTX = 512


@dataclass(frozen=True)
class ShowdownRequest:
    """What to measure, as every front end asks for it (settings already merged in)."""

    base: Path
    variants: Sequence[Path]
    corpus: str | Path | None = None
    """a file, 'builtin' (qtui's own text) or None (only with an existing base_file)"""
    ctx: int = DEFAULT_CTX
    chunks: int | None = None
    """None: every chunk of the corpus"""
    llama_args: Sequence[str] = ()
    """appended to llama-perplexity's command line, e.g. ("-ngl", "99")"""
    base_args: Sequence[str] = ()
    """when not empty, the base run's arguments instead of llama_args (a BF16 base rarely fits
    where its quants do: its own -ngl/-ot/-ncmoe); context and batch must agree (plan.base_run_args)"""
    base_file: Path | None = None
    """an existing base log-prob file to use, or where to write one"""
    again: bool = False
    """measure variants already measured (or queued) on the same setup once more"""
    hash_models: bool = False
    """record each variant's sha256 (slow for big files)"""
    screen: bool = False
    """adaptive screening: every variant on a first window of chunks, then on growing windows
    only while its place in the ranking is not settled (jobs/screening.py)"""
    top: int | None = None
    """with screen: settle only who is in the top N, not the whole order"""
    floor: bool = False
    """also measure the noise floor: the base against its own log-probs with half the batch"""
    speed: bool = False
    """also measure each variant's speed with llama-bench (pp512 and tg128 by default, with the
    llama_args that matter for speed translated: -ngl, -fa, -t, -ot...): a job per variant"""
    speed_args: Sequence[str] = ()
    """llama-bench's own options for the speed jobs (e.g. ("-p", "1024", "-n", "256", "-r", "3")):
    they replace the defaults and any translated option of the same name"""
    gpus_per_run: int | str | None = None
    """GPUs each of its jobs takes: a number, or "auto" (the fewest whose free memory holds the
    run's estimate from the GGUF header); None: one. Recorded on each job (JobSpec.gpus_per_run)"""
    cluster: str | None = None
    """run the jobs on this Ray cluster ("auto", "ray://HOST:PORT", "HOST:PORT"); None: here"""
    cluster_base_dir: Path | None = None
    """with a cluster: a folder every node and this machine see (NFS...): base files are made
    there by a node and read from there; None: each node makes its own (see with_cluster)"""

    def __post_init__(self) -> None:
        # Frozen and comparable whatever sequence types the caller used.
        object.__setattr__(self, "base", Path(self.base))
        object.__setattr__(self, "variants", tuple(Path(v) for v in self.variants))
        object.__setattr__(self, "llama_args", tuple(self.llama_args))
        object.__setattr__(self, "base_args", tuple(self.base_args))
        object.__setattr__(self, "speed_args", tuple(self.speed_args))


class NoFullRun(ValueError):
    """A record that cannot be measured again here; the message says why in one sentence."""


def full_run_request(record: ResultRecord, llama_args: Sequence[str] = (),
                     base_args: Sequence[str] = ()) -> ShowdownRequest:
    """A full KLD run of a record's variant on the record's own setup: the same base log-prob
    file (so the same base, corpus, context and chunks), every chunk, measured again even when
    a run of it exists (a screened variant ran only some chunks; `again` makes a finished one
    run once more on purpose). `llama_args`, `base_args`: the configured extra flags, as for any
    start (the base runs again only if its file is gone)."""
    model, base = record.model.get("path"), record.base.get("path")
    if not model or not base:
        raise NoFullRun(f"{record.model.get('label') or record.id} has no local model file "
                        "(a published or imported result): qtui cannot run it.")
    base_file = record.base.get("file")
    corpus = (record.corpus or {}).get("path")
    return ShowdownRequest(base=Path(str(base)), variants=[Path(str(model))], corpus=corpus,
                           ctx=record.ctx or DEFAULT_CTX, chunks=record.chunks, llama_args=llama_args,
                           base_args=base_args,
                           base_file=Path(str(base_file)) if base_file else None, again=True)
