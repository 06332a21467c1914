"""The events the llama-perplexity parser emits: what happened in a run, in order.

Small dataclasses with no behaviour, shared by the parser, the job tail (qtui.core.jobs.tail),
the live views and the TUI's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from qtui.core.llama.stats import FinalStats

Mode = Literal["kld", "base", "ppl"]
Stream = Literal["out", "err"]


@dataclass
class Started:
    mode: Mode
    n_chunks: int | None = None
    n_ctx: int | None = None
    n_batch: int | None = None
    n_seq: int | None = None


@dataclass
class Progress:
    chunk: int
    n_chunks: int | None = None
    ppl: float | None = None
    ppl_err: float | None = None
    ln_ratio: float | None = None
    ln_ratio_err: float | None = None
    kld: float | None = None
    kld_err: float | None = None
    dp_rms: float | None = None
    dp_rms_err: float | None = None
    same_top: float | None = None
    same_top_err: float | None = None
    eta_s: float | None = None


@dataclass
class BaseEstimate:
    ppl: float
    ppl_err: float | None
    n_chunks: int | None
    n_ctx: int | None


@dataclass
class Finished:
    stats: FinalStats | None
    mode: Mode | None


@dataclass
class Failed:
    reason: str
    stderr_tail: str
    exit_code: int | None
    retryable: bool = False
    """True when the run itself probably went fine but llama.cpp lost its output tail: run again."""


@dataclass
class Warning:  # noqa: A001 -- the brief's name; only shadows the builtin in this module
    message: str


Event = Started | Progress | BaseEstimate | Finished | Failed | Warning
