"""Incremental parser for llama-perplexity output (llama.cpp and ik_llama.cpp).

Feed it raw bytes from the child's stdout/stderr as they arrive, in any
split; it returns events. The formats it reads are the printf strings of
tools/perplexity/perplexity.cpp (llama.cpp and its ik_llama.cpp twin).

Work per feed is proportional to the new bytes: each stream keeps only its
unfinished last line, and the no-newline `[1]17.6880,[2]9.4037,` stream of
base/ppl runs is consumed item by item so that buffer never grows.

Old-format note: builds before llama.cpp PR #15999 (Sep 2025) and ik_llama.cpp
before PR #817 (Oct 2025) print `99.0%   KLD` twice. That was a copy-paste bug:
both lines are percentile(kld_values, 0.99) (same value; the 90% line was
intended). The duplicate is therefore ignored and kld_p90/p95/p001 stay None.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field, replace
from typing import overload

# The events live in their own module (small, shared with the UI's messages); re-exported here.
from qtui.core.llama.events import (  # noqa: F401
    BaseEstimate,
    Event,
    Failed,
    Finished,
    Mode,
    Progress,
    Started,
    Stream,
    Warning,
)
from qtui.core.llama.failures import explain_exit, match_error, match_warning
from qtui.core.llama.stats import FinalStats

_NUM = r"[-+]?(?:nan(?:\([a-z]*\))?|inf(?:inity)?|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+)"
# `±` as UTF-8, as mojibake, as the replacement char, or the ASCII stand-ins
# seen in Windows logs.
_SEP = r"(?:Â?±|\+/-|_|\ufffd{1,2}|\?)"
_PAIR = rf"({_NUM})\s*{_SEP}\s*({_NUM})"

_PREFIX = re.compile(r"^(?:\d+\.\d{2}\.\d{3}\.\d{3} [IWEDT] |[IWED] (?=\w+:))")
_PREFIX_TS = re.compile(r"\d+\.\d{2}\.\d{3}\.\d{3} [IWEDT] ")
_EMBEDDED = re.compile(r"(?<=\S )(?=\d+\.\d{2}\.\d{3}\.\d{3} [IWEDT] )")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ROW = re.compile(
    rf"^\s*(\d+)\s+{_PAIR}\s+{_PAIR}\s+{_PAIR}\s+{_PAIR}\s*%\s+{_PAIR}\s*%\s*$", re.I
)
_PPL_LINE = re.compile(rf"^(\d+)\s+({_NUM})\s+({_NUM})\s+({_NUM})$", re.I)
_ITEM = re.compile(rb"\[(\d+)\]([^,\[\]\s]*),")
_ITEM_TEXT = re.compile(r"\[(\d+)\]([^,\[\]\s]*),")
_KLD_START = re.compile(
    r"computing over (\d+) chunks(?:, n_ctx=(\d+))?(?:,? (?:with )?batch_size[= ](\d+))?(?:, n_seq=(\d+))?"
)
_PPL_START = re.compile(
    r"calculating perplexity over (\d+) chunks(?:, n_ctx=(\d+))?(?:,? batch_size[= ](\d+))?(?:, n_seq=(\d+))?"
)
_ETA = re.compile(
    rf"(\w+): ({_NUM}) seconds per pass - ETA\s*(?:(\d+) hours\s*)?(?:({_NUM}) minutes)?", re.I
)
_ETA_TAIL = re.compile(rf"^\s*(?:(\d+) hours\s*)?({_NUM}) minutes\s*$", re.I)
_FINAL_NEW = re.compile(rf"Final estimate: PPL\s*=\s*{_PAIR}", re.I)
_FINAL_IK = re.compile(rf"Final estimate: PPL over (\d+) chunks for n_ctx=(\d+)\s*=\s*{_PAIR}", re.I)
_STAT = re.compile(rf"^([^:]+?)\s*:\s*({_NUM})\s*%?\s*(?:{_SEP}\s*({_NUM})\s*%?)?\s*$", re.I)

_PPL_LABELS = {
    "MeanPPL(Q)": "ppl_q",
    "MeanPPL(base)": "ppl_base",
    "Cor(ln(PPL(Q)),ln(PPL(base)))": "cor_ln_ppl",
    "Meanln(PPL(Q)/PPL(base))": "ln_ratio",
    "MeanPPL(Q)/PPL(base)": "ppl_ratio",
    "MeanPPL(Q)-PPL(base)": "ppl_diff",
}
_PCT_KEYS = {
    "Mean": "mean", "Maximum": "max", "Minimum": "min", "Median": "median",
    "99.9%": "p999", "99.0%": "p99", "95.0%": "p95", "90.0%": "p90", "75.0%": "p75",
    "25.0%": "p25", "10.0%": "p10", "5.0%": "p05", "1.0%": "p01", "0.1%": "p001",
}
_FIELDS = frozenset(FinalStats().field_names())
_MAX_PENDING = 1 << 20  # a "line" this long without a newline is not output we know
_TAIL_LINES = 40


@overload
def _num(text: str) -> float: ...
@overload
def _num(text: str | None) -> float | None: ...
def _num(text: str | None) -> float | None:
    if text is None:
        return None
    low = text.lower()
    if "nan" in low:
        return math.nan
    if "inf" in low:
        return -math.inf if low.startswith("-") else math.inf
    return float(text)




class StreamParser:
    def __init__(self, expected_mode: Mode | None = None, expected_chunks: int | None = None,
                 expected_n_ctx: int | None = None, merged: bool = False) -> None:
        # What the caller launched / read from the base file header. Used only
        # where the output does not say (ik/old builds print no "computing
        # over" line); the tool's own numbers win.
        self._expected = expected_mode
        self._hint_chunks = expected_chunks
        self._hint_n_ctx = expected_n_ctx
        self._pending: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._events: list[Event] = []
        self._saving_logits = False
        self._inferred = False
        self._merged = merged  # one stream holding both (a `2>&1` log): log lines on "out" too
        self._errors: list[str] = []
        self._closed_events: list[Event] | None = None
        self.started: Started | None = None
        self.latest: Progress | None = None
        self.stats: FinalStats | None = None
        self.base_estimate: BaseEstimate | None = None
        self.warnings: list[str] = []
        self.seconds_per_pass: float | None = None
        self.eta_total_s: float | None = None

    @property
    def mode(self) -> Mode | None:
        return self.started.mode if self.started else self._expected

    # ---- input -------------------------------------------------------------
    def feed(self, stream: Stream, data: bytes) -> list[Event]:
        self._events = []
        pend = self._pending[stream]
        start = len(pend)
        pend += data
        pos = 0
        nl = pend.find(b"\n", start)
        while nl != -1:
            self._line(stream, bytes(pend[pos:nl]))
            pos = nl + 1
            nl = pend.find(b"\n", pos)
        if pos:
            del pend[:pos]
        if stream == "out" and pend[:1] == b"[":
            self._consume_items(pend)
        elif stream == "err" and pend.endswith(b"- ETA "):
            # The rest of this ETA goes to stdout, so this stderr line ends
            # only when the next log line arrives: handle it now.
            self._line(stream, bytes(pend))
            pend.clear()
        if len(pend) > _MAX_PENDING:
            self._line(stream, bytes(pend))
            pend.clear()
        return self._events

    def close(self, exit_code: int | None = None) -> list[Event]:
        if self._closed_events is not None:
            return []
        self._events = []
        for stream in ("err", "out"):
            pend = self._pending[stream]
            if pend:
                self._line(stream, bytes(pend))
                pend.clear()
        mode = self.mode
        if mode is None:
            mode = "kld" if self.stats else ("base" if self.base_estimate else None)
        if mode == "kld":
            ok = self.stats is not None and self.stats.is_complete
        else:
            ok = self.base_estimate is not None
        if ok:
            if exit_code not in (None, 0):
                self._warn(f"results are complete, but llama-perplexity then {explain_exit(exit_code)}")
            self._emit(Finished(self.stats, mode))
        else:
            reason = self._failure_reason(mode, exit_code)
            self._emit(Failed(reason, self.stderr_tail(), exit_code, retryable=reason.endswith(LOST_TAIL)))
        self._closed_events = list(self._events)
        return self._events

    def stderr_tail(self) -> str:
        lines = list(self._tail)
        if self._pending["err"]:
            lines.append(self._pending["err"].decode("utf-8", "replace"))
        return "\n".join(lines)

    # ---- dispatch ----------------------------------------------------------
    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self._emit(Warning(message))

    def _start(self, mode: Mode, n_chunks: int | None = None, n_ctx: int | None = None,
               n_batch: int | None = None, n_seq: int | None = None, *, inferred: bool = False) -> None:
        """Emit Started once -- or a second time when the real log line (or the
        "saving all logits" line) arrives after one inferred from stdout: the
        two pipes are read independently, so stdout can be seen first."""
        if self.started is not None and not (self._inferred and not inferred):
            return
        self._inferred = inferred
        self.started = Started(mode, n_chunks if n_chunks is not None else self._hint_chunks,
                               n_ctx if n_ctx is not None else self._hint_n_ctx, n_batch, n_seq)
        self._emit(self.started)

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        if stream == "err" or self._merged:
            if _PREFIX_TS.match(text) and (parts := _EMBEDDED.split(text)) and len(parts) > 1:
                # `... - ETA ` never gets its newline on stderr (the rest went to
                # stdout): the next log entry, with its own prefix, continues the line.
                for part in parts:
                    self._line(stream, part.encode())
                return
            text = _PREFIX.sub("", text, count=1)
            if "- ETA " in text:  # the same join in builds without prefixes
                head, _, rest = text.partition("- ETA ")
                if rest.strip() and not _ETA_TAIL.match(rest):
                    self._line(stream, (head + "- ETA ").encode())
                    self._line(stream, rest.encode())
                    return
            self._tail.append(text)
        s = text.strip()
        if not s:
            return
        c = s[0]
        if c.isdigit() and (self._row(s) or self._ppl_line(s)):
            return
        if c == "[":
            self._items(s)
            return
        if s.startswith("chunk") and "PPL" in s:
            self._start_kld_inferred()
            return
        if s.startswith("=="):
            return
        if "minutes" in s and (m := _ETA_TAIL.match(s)):
            self._eta_total(m.group(1), m.group(2))
            return
        if ":" in s:
            self._colon_line(stream, s)

    def _colon_line(self, stream: str, s: str) -> None:
        if "seconds per pass" in s and (m := _ETA.search(s)):
            if m.group(1) == "kl_divergence":
                self._start_kld_inferred()
            self.seconds_per_pass = _num(m.group(2))
            if m.group(4) is not None:
                self._eta_total(m.group(3), m.group(4))
            return
        if "Final estimate" in s:
            self._final_estimate(s)
            return
        if "computing over" in s and "kl_divergence" in s and (m := _KLD_START.search(s)):
            self._start("kld", *(int(g) if g else None for g in m.groups()))
            return
        if "calculating perplexity over" in s and (m := _PPL_START.search(s)):
            mode: Mode = "base" if self._saving_logits or self._expected == "base" else "ppl"
            self._start(mode, *(int(g) if g else None for g in m.groups()))
            return
        if "saving all logits to" in s:
            self._saving_logits = True
            if self.started is not None and self._inferred and self.started.mode == "ppl":
                st = self.started
                self._start("base", st.n_chunks, st.n_ctx, st.n_batch, st.n_seq, inferred=True)
            return
        if (m := _STAT.match(s)) and self._stat(m):
            return
        self._check_problems(s)

    # ---- pieces ------------------------------------------------------------
    def _start_kld_inferred(self) -> None:
        if self.started is None:
            self._start("kld", inferred=True)

    def _eta_total(self, hours: str | None, minutes: str) -> None:
        self.eta_total_s = (int(hours) * 3600 if hours else 0) + float(minutes) * 60.0

    def _eta_for(self, chunk: int) -> float | None:
        st = self.started
        n_chunks = st.n_chunks if st else None
        if n_chunks is None:
            return None
        n_seq = (st.n_seq if st else None) or 1
        passes_left = max(0, -(-(n_chunks - chunk) // n_seq))
        per_pass = self.seconds_per_pass
        if per_pass is None and self.eta_total_s is not None:
            per_pass = self.eta_total_s / max(1, -(-n_chunks // n_seq))
        return None if per_pass is None else per_pass * passes_left

    def _progress(self, p: Progress) -> None:
        if self.latest is not None and p.chunk <= self.latest.chunk:
            return  # repeated header+row builds can't repeat rows, but be safe
        p.n_chunks = self.started.n_chunks if self.started else None
        p.eta_s = self._eta_for(p.chunk)
        self.latest = p
        self._emit(p)

    def _row(self, s: str) -> bool:
        m = _ROW.match(s)
        if not m:
            return False
        self._start_kld_inferred()
        v = [_num(g) for g in m.groups()[1:]]
        self._progress(Progress(int(m.group(1)), None, *v))
        return True

    def _ppl_line(self, s: str) -> bool:
        """--ppl-output-type 1: `%8d  %.4lf  %4lf  %4lf` per chunk. The first number
        is the token offset of the *pass* (the same for every chunk of a batched
        pass), so the chunk number is the count of such lines."""
        if self.mode == "kld" or not (m := _PPL_LINE.match(s)):
            return False
        if self.started is None:
            self._start("base" if self._saving_logits or self._expected == "base" else "ppl", inferred=True)
        self._progress(Progress((self.latest.chunk if self.latest else 0) + 1, None, _num(m.group(2))))
        return True

    def _items(self, s: str) -> None:
        for m in _ITEM_TEXT.finditer(s):
            self._item(m.group(1), m.group(2))

    def _consume_items(self, pend: bytearray) -> None:
        pos = 0
        while (m := _ITEM.match(pend, pos)) is not None:
            self._item(m.group(1).decode(), m.group(2).decode("ascii", "replace"))
            pos = m.end()
        if pos:
            del pend[:pos]

    def _item(self, idx: str, value: str) -> None:
        if self.started is None:
            self._start("base" if self._saving_logits or self._expected == "base" else "ppl", inferred=True)
        try:
            ppl = _num(value)
        except ValueError:
            ppl = None
        self._progress(Progress(int(idx), None, ppl))

    def _final_estimate(self, s: str) -> None:
        st = self.started
        if m := _FINAL_IK.search(s):
            est = BaseEstimate(_num(m.group(3)), _num(m.group(4)), int(m.group(1)), int(m.group(2)))
        elif m := _FINAL_NEW.search(s):
            est = BaseEstimate(_num(m.group(1)), _num(m.group(2)),
                               st.n_chunks if st else None, st.n_ctx if st else None)
        else:
            return
        if est.n_chunks is None and self.latest is not None:
            est.n_chunks = self.latest.chunk
        if self.started is None:
            self._start(self._expected or "ppl", est.n_chunks, est.n_ctx, inferred=True)
        self.base_estimate = est
        self._emit(est)

    def _stat(self, m: re.Match[str]) -> bool:
        label = m.group(1).strip()
        compact = re.sub(r"\s+", "", label)
        key = _PPL_LABELS.get(compact)
        if key is None:
            words = label.split()
            if compact == "Sametopp":
                key = "same_top"
            elif words[0] == "RMS" and len(words) == 2:
                key = "dp_rms"
            elif len(words) == 2 and words[0] in _PCT_KEYS:
                prefix = "kld" if words[1] == "KLD" else "dp"
                if prefix == "dp" and not words[1].endswith("p"):
                    return False
                key = f"{prefix}_{_PCT_KEYS[words[0]]}"
            else:
                return False
        if key not in _FIELDS:
            return False  # e.g. "75.0% KLD": not a line any build prints
        if self.stats is None:
            self.stats = FinalStats()
        if key == "kld_p99" and self.stats.kld_p99 is not None:
            return True  # the old builds' duplicate 99.0% line (see module doc)
        setattr(self.stats, key, _num(m.group(2)))
        if m.group(3) is not None and key + "_err" in _FIELDS:
            setattr(self.stats, key + "_err", _num(m.group(3)))
        return True

    def _check_problems(self, s: str) -> None:
        warning = match_warning(s)
        if warning is not None:
            self._warn(warning)
        reason = match_error(s)
        if reason is not None and reason not in self._errors:
            self._errors.append(reason)

    def _failure_reason(self, mode: Mode | None, exit_code: int | None) -> str:
        how = explain_exit(exit_code)
        if self._errors:
            reason = self._errors[0]
            n_ctx = self.started.n_ctx if self.started else None
            if mode == "kld" and n_ctx and "batch" in reason and "n_ctx=" not in reason:
                # A base file made at a larger -c than this run's fails to decode
                # without the "has been computed with" line when -b is large.
                reason += f"; the base file was computed with n_ctx={n_ctx}: run with -c {n_ctx}"
            if exit_code not in (None, 0, 1):
                reason += f" (then llama-perplexity {how})"
            return reason
        last = self.latest
        n_chunks = self.started.n_chunks if self.started else None
        if mode == "kld" and self.stats is not None:
            what = "the final statistics were cut off before `Same top p:`"
        elif last is not None and n_chunks is not None and last.chunk < n_chunks:
            what = f"the output stopped after chunk {last.chunk} of {n_chunks}"
        elif last is not None and exit_code not in (None, 0):
            # killed or crashed without a known chunk count (older builds don't print it)
            what = f"the output stopped after chunk {last.chunk}"
        elif last is not None and mode == "kld":
            what = self._too_few_tokens(last.chunk)
        elif last is not None:
            what = f"no `Final estimate` line after chunk {last.chunk}"
        else:
            what = "llama-perplexity printed no results"
        if exit_code is None:  # e.g. an imported log: nothing known about how it ended
            return what
        if exit_code == 0:
            if mode == "kld" and self.stats is not None or "stopped after" in what or last is None:
                # Exit 0 with output missing: llama.cpp's log thread is not drained at
                # exit (the logger is leaked on purpose, llama.cpp #22142/#25504), so
                # a busy machine loses the tail. Recorded here on a 2-core box.
                return what + LOST_TAIL
            return what
        return f"llama-perplexity {how}; {what}"

    def _too_few_tokens(self, chunks: int) -> str:
        n_ctx = self.started.n_ctx if self.started else None
        if n_ctx:
            scored = chunks * (n_ctx - 1 - n_ctx // 2)
            if scored < 100:
                return (f"only {scored} tokens were scored ({chunks} chunks at -c {n_ctx}); "
                        "llama-perplexity prints final statistics from 100 tokens: use a base file with more chunks")
        return (f"all {chunks} chunks ran but no final statistics were printed "
                "(fewer than 100 scored tokens, or stdout was lost)")


LOST_TAIL = (" although it exited 0: llama.cpp lost the end of its output "
             "(a race in its logging at exit, common under CPU load); run it again")


@dataclass
class ParseResult:
    events: list[Event] = field(default_factory=list)
    started: Started | None = None
    progress: list[Progress] = field(default_factory=list)
    stats: FinalStats | None = None
    failed: Failed | None = None
    base_estimate: BaseEstimate | None = None
    mode: Mode | None = None
    warnings: list[str] = field(default_factory=list)


def parse_transcript(out: bytes, err: bytes | None = None, exit_code: int | None = None,
                     expected_mode: Mode | None = None, expected_chunks: int | None = None,
                     expected_n_ctx: int | None = None) -> ParseResult:
    """Parse a whole recorded run (log import, finalisation). err=None: `out`
    is a combined log (stdout and stderr in one file, `2>&1`).

    stderr goes first so that Started (a log line) precedes the stdout rows,
    as it does live. For ik/old builds without a "computing over" line the
    chunk count is filled in from the last row of a finished run."""
    p = StreamParser(expected_mode, expected_chunks, expected_n_ctx, merged=err is None)
    events: list[Event] = []
    if err:
        events += p.feed("err", err)
    events += p.feed("out", out)
    events += p.close(exit_code)
    started = p.started
    failed = next((e for e in events if isinstance(e, Failed)), None)
    if started and started.n_chunks is None and failed is None and p.latest is not None:
        started = replace(started, n_chunks=p.latest.chunk)
    return ParseResult(
        events=events, started=started,
        progress=[e for e in events if isinstance(e, Progress)],
        stats=p.stats, failed=failed, base_estimate=p.base_estimate,
        mode=p.mode or (next((e.mode for e in events if isinstance(e, Finished)), None)),
        warnings=list(p.warnings),
    )


__all__ = [
    "BaseEstimate", "Event", "Failed", "Finished", "Mode", "ParseResult", "Progress",
    "Started", "StreamParser", "Warning", "explain_exit", "parse_transcript",
]
