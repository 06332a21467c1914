"""Known llama-perplexity messages turned into what a person should do.

The substrings come from the printf formats of llama.cpp's perplexity.cpp,
arg.cpp, llama.cpp and gguf.cpp (and their ik_llama.cpp twins). llama-perplexity
exits 0 after most runtime failures, so these lines, not the exit code, carry the reason.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

# ---- known messages -> what a person should do ------------------------------
# (substring prefilter, regex, message template). First match wins per line;
# the first error of a run is the reason shown.
Template = str | Callable[[list[str]], str]
_ERRORS: list[tuple[str, re.Pattern[str], Template]] = [
    ("you must provide", re.compile(r"you must provide a name of a file containing the log prob"),
     "no base file given: pass --kl-divergence-base FILE"),
    ("for writing", re.compile(r"failed to open (.+?) for writing"),
     "cannot write the base file {0}: check that its folder exists and is writable"),
    ("GGUF file", re.compile(r"failed to open GGUF file '(.+?)'(?: \((.+)\))?"),
     # older builds print no reason in brackets: say none rather than "(?)"
     lambda g: f"cannot open the model file {g[0]}" + (f" ({g[1]})" if g[1] != "?" else "")),
    ("failed to open file", re.compile(r"error: failed to open file '(.+?)'"),
     "cannot open {0} (given on the command line): check the path"),
    ("does not look like", re.compile(r"(?:\w+: )?(.+) does not look like a file containing log-prob"),
     "{0} is not a llama-perplexity base file (wrong magic bytes): generate it with --kl-divergence-base"),
    ("failed to open", re.compile(r"kl_divergence: failed to open (.+)"),
     "cannot open the base file {0}: check the path"),
    ("has been computed with", re.compile(r"(?:\w+: )?(\S+) has been computed with (\d+), while the current context is (\d+)"),
     "base file {0} was computed with n_ctx={1} but this run used -c {2}: pass -c {1}"),
    ("inconsistent vocabulary", re.compile(r"inconsistent vocabulary \((\d+) vs (\d+)\)"),
     "the base file has a vocabulary of {0} tokens but this model has {1}: it comes from a different "
     "model or tokenizer; compare only quants of the same base model"),
    ("failed reading log-probs", re.compile(r"failed reading log-probs for chunk (\d+)"),
     lambda g: f"the base file ends before chunk {int(g[0]) + 1}: it is truncated (probably cut short "
     "by a killed run); delete it and generate it again"),
    ("failed reading", re.compile(r"failed reading (?:evaluation tokens|n_vocab, n_chunk) from (.+)"),
     "the base file {0} is truncated: delete it and generate it again"),
    ("invalid magic", re.compile(r"invalid magic characters: '(.*)', expected 'GGUF'"),
     "the model file is not a GGUF file (it starts with '{0}', not 'GGUF')"),
    ("error loading model", re.compile(r"error loading model: (?:llama_model_loader: )?(.+)"),
     "could not load the model: {0}"),
    ("unable to load model", re.compile(r"unable to load model"), "could not load the model (see the log)"),
    ("invalid argument", re.compile(r"error: invalid argument: (.+)"),
     "this llama-perplexity does not accept the argument {0} (unknown option or bad value for this build)"),
    ("error: ", re.compile(r"^error: (.+)"), "llama-perplexity rejected the command line: {0}"),
    ("out of memory", re.compile(r"(cudaMalloc failed: out of memory|out of memory)"),
     "out of memory ({0}): offload fewer layers (-ngl), use a smaller -b/-ub or -c, or free the GPU"),
    ("failed to allocate", re.compile(r"failed to allocate (.+)"),
     "could not allocate {0}: out of memory? offload fewer layers (-ngl) or lower -c/-b"),
    ("failed to create context", re.compile(r"failed to create context"),
     "could not create the llama context (out of memory, or a bad -c/-b/-ub combination)"),
    ("you need at least", re.compile(r"you need at least (\d+) tokens to evaluate perplexity with a context of (\d+)"),
     "the corpus is too short: it needs at least {0} tokens for -c {1}"),
    ("memory slot", re.compile(r"failed to find a memory slot for batch of size (\d+)"),
     "the context is too small for a batch of {0} tokens (no free memory slot)"),
    ("failed to eval", re.compile(r"failed to eval\b"),
     "the model failed to evaluate a batch (llama_decode failed); see the log"),
    ("failed to decode", re.compile(r"failed to decode"),
     "the model failed to evaluate a batch (llama_decode failed); see the log"),
    ("GGML_ASSERT", re.compile(r"GGML_ASSERT\((.+)\) failed"),
     "llama-perplexity stopped on an internal check: {0} (e.g. -b larger than -c and not a multiple of it)"),
    ("--ctx-size", re.compile(r"requires '--ctx-size' > 0"), "pass a context size: -c N (N > 0)"),
    ("negative standard deviation", re.compile(r"Unexpected negative standard deviation"),
     "the perplexity estimate failed (degenerate model output): no Final estimate"),
]
_WARNINGS = ("has been computed with", "inconsistent vocabulary")
_OTHER_WARNINGS: list[tuple[str, re.Pattern[str], Template]] = [
    ("exceeds context", re.compile(r"calculated n_seq=(\d+) exceeds context's n_seq_max=(\d+)"),
     "chunks per pass capped at {1} by the context (-b asked for {0})"),
]
# Not reported: "model was trained on only N context tokens (M specified)" -- M is
# -c times the chunks per pass, printed on every batched run: noise, not news.


def _match(rules: list[tuple[str, re.Pattern[str], Template]], s: str) -> str | None:
    for key, rx, template in rules:
        if key in s and (m := rx.search(s)):
            groups = [g or "?" for g in m.groups()]
            return template(groups) if callable(template) else template.format(*groups)
    return None


def match_error(s: str) -> str | None:
    return _match(_ERRORS, s)


def match_warning(s: str) -> str | None:
    """Messages after which llama-perplexity carries on (maybe into garbage)."""
    if any(k in s for k in _WARNINGS):
        return match_error(s)
    return _match(_OTHER_WARNINGS, s)


# By name: SIGKILL and friends do not exist on Windows.
_SIGNAL_TEXT = {
    "SIGABRT": "aborted (SIGABRT): an internal check failed",
    "SIGKILL": "was killed (SIGKILL): most likely out of memory (the OOM killer)",
    "SIGSEGV": "crashed (segmentation fault)",
    "SIGTERM": "was stopped (SIGTERM)",
    "SIGINT": "was interrupted (SIGINT)",
    "SIGBUS": "crashed (bus error: a file it had mapped changed or vanished?)",
}


def explain_exit(code: int | None) -> str:
    """Exit status -> words. Negative = killed by that signal (Popen style);
    128+N = the same as reported by a shell."""
    if code is None:
        return "ended with an unknown exit status"
    if code == 0:
        return "exited normally (status 0)"
    if code < 0 or code > 128:
        num = -code if code < 0 else code - 128
        try:
            sig = signal.Signals(num)
        except ValueError:
            return f"ended with status {code}"
        text = _SIGNAL_TEXT.get(sig.name, f"was killed by signal {sig.name}")
        return f"{text}, status {code}"
    if code == 1:
        return "exited with status 1 (an error; see the log)"
    return f"exited with status {code}"
