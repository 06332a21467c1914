"""The events the llama-perplexity parser emits: what happened in a run, in order.

Small dataclasses with no behaviour, shared by the parser, the job monitor, the CLI's live
view and the TUI's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from qtui.core.stats import FinalStats

Mode = Literal["kld", "base", "ppl"]
Stream = Literal["out", "err"]


@dataclass
class Started:
    mode: Mode
    n_chunks: Optional[int] = None
    n_ctx: Optional[int] = None
    n_batch: Optional[int] = None
    n_seq: Optional[int] = None


@dataclass
class Progress:
    chunk: int
    n_chunks: Optional[int] = None
    ppl: Optional[float] = None
    ppl_err: Optional[float] = None
    ln_ratio: Optional[float] = None
    ln_ratio_err: Optional[float] = None
    kld: Optional[float] = None
    kld_err: Optional[float] = None
    dp_rms: Optional[float] = None
    dp_rms_err: Optional[float] = None
    same_top: Optional[float] = None
    same_top_err: Optional[float] = None
    eta_s: Optional[float] = None


@dataclass
class BaseEstimate:
    ppl: float
    ppl_err: Optional[float]
    n_chunks: Optional[int]
    n_ctx: Optional[int]


@dataclass
class Finished:
    stats: Optional[FinalStats]
    mode: Optional[Mode]


@dataclass
class Failed:
    reason: str
    stderr_tail: str
    exit_code: Optional[int]
    retryable: bool = False
    """True when the run itself probably went fine but llama.cpp lost its output tail: run again."""


@dataclass
class Warning:  # noqa: A001 -- the brief's name; only shadows the builtin in this module
    message: str


Event = Union[Started, Progress, BaseEstimate, Finished, Failed, Warning]
