"""llama-perplexity stream parser, tested on recorded real output.

Expected values are pulled out of the transcripts by the simple regexes in
this file (independently of the parser), never typed in."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest

from qtui.core.llama.parser import (
    BaseEstimate,
    Finished,
    Progress,
    Started,
    StreamParser,
    Warning,
    explain_exit,
    parse_transcript,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures"
IK = FIX / "ik"
IK_KLD = ["ik-tiny-kld-q4_0", "ik-tiny-kld-q8_0"]

# label printed by llama-perplexity -> FinalStats field (value, and "<field>_err" after ±)
LABELS = {
    "Mean PPL(Q)": "ppl_q", "Mean PPL(base)": "ppl_base", "Cor(ln(PPL(Q)), ln(PPL(base)))": "cor_ln_ppl",
    "Mean ln(PPL(Q)/PPL(base))": "ln_ratio", "Mean PPL(Q)/PPL(base)": "ppl_ratio",
    "Mean PPL(Q)-PPL(base)": "ppl_diff",
    "Mean    KLD": "kld_mean", "Maximum KLD": "kld_max", "99.9%   KLD": "kld_p999", "99.0%   KLD": "kld_p99",
    "95.0%   KLD": "kld_p95", "90.0%   KLD": "kld_p90", "Median  KLD": "kld_median", "10.0%   KLD": "kld_p10",
    " 5.0%   KLD": "kld_p05", " 1.0%   KLD": "kld_p01", " 0.1%   KLD": "kld_p001", "Minimum KLD": "kld_min",
    "Mean    Δp": "dp_mean", "Maximum Δp": "dp_max", "99.9%   Δp": "dp_p999", "99.0%   Δp": "dp_p99",
    "95.0%   Δp": "dp_p95", "90.0%   Δp": "dp_p90", "75.0%   Δp": "dp_p75", "Median  Δp": "dp_median",
    "25.0%   Δp": "dp_p25", "10.0%   Δp": "dp_p10", " 5.0%   Δp": "dp_p05", " 1.0%   Δp": "dp_p01",
    " 0.1%   Δp": "dp_p001", "Minimum Δp": "dp_min", "RMS Δp    ": "dp_rms", "Same top p": "same_top",
}

NORMALIZED = {" ".join(k.split()): v for k, v in LABELS.items()}


def load(name: str, base: Path = IK) -> tuple[bytes, bytes]:
    return (base / f"{name}.out").read_bytes(), (base / f"{name}.err").read_bytes()


def expected_final(text: str) -> dict[str, float]:
    """Independent reading of the final blocks: first occurrence of each label."""
    want: dict[str, float] = {}
    for line in text.splitlines():
        label, sep, rest = line.partition(":")
        key = NORMALIZED.get(" ".join(label.split()))
        if not sep or key is None:
            continue
        nums = re.findall(r"-?(?:nan|inf|\d+\.\d+)", rest)
        if key in want:
            continue
        want[key] = float(nums[0])
        if len(nums) > 1:
            want[key + "_err"] = float(nums[1])
    return want


def expected_rows(text: str) -> list[list[float]]:
    rows = []
    for line in text.splitlines():
        if re.match(r"^\s+\d+\s+\d", line):
            rows.append([float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", line)])
    return rows


def check_stats(stats, want: dict[str, float]) -> None:
    assert stats is not None
    got = {k: v for k, v in stats.to_dict().items() if v is not None}
    assert got == want


def feed_split(out: bytes, err: bytes, sizes, exit_code=0, interleave: bool = False, **kw):
    """Feed both streams in pieces of the given sizes: stderr first, then stdout
    (the order parse_transcript uses), or alternating piece by piece."""
    p = StreamParser(**kw)
    events: list = []
    data = {"out": out, "err": err}
    pos = {"out": 0, "err": 0}
    order = [("err", "out")] if interleave else [("err",), ("out",)]
    for streams in order:
        while any(pos[s] < len(data[s]) for s in streams):
            for stream in streams:
                n = next(sizes)
                chunk = data[stream][pos[stream]:pos[stream] + n]
                pos[stream] += n
                if chunk:
                    events += p.feed(stream, chunk)
    return events + p.close(exit_code), p


# ---- ik_llama.cpp, KLD mode ---------------------------------------------------

@pytest.mark.parametrize("name", IK_KLD)
def test_ik_kld_final_stats_equal_transcript(name: str) -> None:
    out, err = load(name)
    r = parse_transcript(out, err, 0)
    want = expected_final(out.decode())
    assert len(want) == 43  # every FinalStats field is printed by this build
    check_stats(r.stats, want)
    assert r.failed is None and r.mode == "kld" and r.stats.is_complete
    assert isinstance(r.events[-1], Finished) and r.events[-1].stats is r.stats


@pytest.mark.parametrize("name", IK_KLD)
def test_ik_kld_progress_rows(name: str) -> None:
    out, err = load(name)
    r = parse_transcript(out, err, 0)
    rows = expected_rows(out.decode())
    assert [p.chunk for p in r.progress] == [int(row[0]) for row in rows] == list(range(1, 41))
    for p, row in zip(r.progress, rows):
        assert [p.ppl, p.ppl_err, p.ln_ratio, p.ln_ratio_err, p.kld, p.kld_err, p.dp_rms, p.dp_rms_err,
                p.same_top, p.same_top_err] == row[1:]
    # ik prints no "computing over" line: mode inferred, chunk count back-filled at the end
    assert r.started == Started("kld", n_chunks=40)


def test_ik_kld_hints_fill_started_and_eta() -> None:
    out, err = load("ik-tiny-kld-q4_0")
    r = parse_transcript(out, err, 0, expected_mode="kld", expected_chunks=40, expected_n_ctx=128)
    assert r.started == Started("kld", 40, 128)
    assert all(p.n_chunks == 40 for p in r.progress)
    # ETA line: "kl_divergence: 0.01 seconds per pass - ETA 0.00 minutes" -> 0.01 s per remaining chunk
    spp = float(re.search(r"([\d.]+) seconds per pass", err.decode()).group(1))
    assert r.progress[0].eta_s == pytest.approx(39 * spp) and r.progress[-1].eta_s == 0


@pytest.mark.parametrize("name", IK_KLD + ["ik-tiny-base"])
@pytest.mark.parametrize("sizes", ["1", "7", "random"])
def test_byte_splits_give_identical_events(name: str, sizes: str) -> None:
    out, err = load(name)
    whole, _ = feed_split(out, err, iter(lambda: 1 << 30, None))
    assert whole == parse_transcript(out, err, 0).events
    split, _ = feed_split(out, err, pieces(name, sizes))
    assert split == whole


def pieces(seed: str, sizes: str):
    if sizes == "random":
        rng = random.Random(seed)
        return iter(lambda: rng.randint(1, 97), None)
    return iter(lambda: int(sizes), None)


@pytest.mark.parametrize("name", IK_KLD + ["ik-tiny-base"])
@pytest.mark.parametrize("sizes", ["1", "random"])
def test_interleaved_streams_give_the_same_results(name: str, sizes: str) -> None:
    """Live, stdout may be read before stderr's "calculating perplexity" line: an
    inferred Started is then refined by a second one; results are unchanged."""
    out, err = load(name)
    ref = parse_transcript(out, err, 0)
    events, p = feed_split(out, err, pieces(name, sizes), interleave=True)
    assert p.started.mode == ref.started.mode and p.mode == ref.mode
    assert [(e.chunk, e.ppl, e.kld, e.same_top) for e in events if isinstance(e, Progress)] == \
        [(e.chunk, e.ppl, e.kld, e.same_top) for e in ref.progress]
    assert p.stats == ref.stats and p.base_estimate == ref.base_estimate
    assert type(events[-1]) is Finished and events[-1].mode == ref.mode
    starts = [e for e in events if isinstance(e, Started)]
    assert 1 <= len(starts) <= 2 and starts[-1] == p.started
    if name == "ik-tiny-base":
        assert p.started == ref.started  # refined from the real log line


def test_split_inside_plus_minus_sign() -> None:
    out, err = load("ik-tiny-kld-q4_0")
    cut = out.index("±".encode()) + 1  # between 0xC2 and 0xB1
    p = StreamParser()
    events = p.feed("err", err) + p.feed("out", out[:cut]) + p.feed("out", out[cut:]) + p.close(0)
    assert events == parse_transcript(out, err, 0).events


@pytest.mark.parametrize("sep", ["+/-", "_"])
def test_windows_separators(sep: str) -> None:
    out, err = load("ik-tiny-kld-q8_0")
    mangled = out.replace("±".encode(), sep.encode()).replace("Δ".encode(), b"_")
    r = parse_transcript(mangled, err, 0)
    ref = parse_transcript(out, err, 0)
    assert r.stats == ref.stats and r.progress == ref.progress


def test_header_before_every_row_and_blank_lines() -> None:
    out, err = load("ik-tiny-kld-q4_0")
    text = out.decode()
    header = next(line for line in text.splitlines() if line.startswith("chunk"))
    repeated = re.sub(r"(?m)^(\s+\d+\s+\d.*)$", lambda m: f"\n{header}\n{m.group(1)}\n", text)
    r = parse_transcript(repeated.encode(), err, 0)
    assert r.progress == parse_transcript(out, err, 0).progress


def test_old_format_duplicate_99_percent_line() -> None:
    """Builds before llama.cpp #15999 / ik #817 print `99.0%   KLD` twice (same value,
    a copy-paste bug) and no 95/90/0.1% lines: those stay None."""
    out, err = load("ik-tiny-kld-q4_0")
    text = out.decode()
    p99 = re.search(r"(?m)^99\.0%   KLD:.*$", text).group(0)
    old = re.sub(r"(?m)^(95\.0|90\.0| 0\.1)%   KLD:.*\n", "", text).replace(p99, p99 + "\n" + p99)
    r = parse_transcript(old.encode(), err, 0)
    want = expected_final(text)
    for key in ("kld_p95", "kld_p90", "kld_p001"):
        del want[key]
    check_stats(r.stats, want)
    assert r.stats.is_complete and r.failed is None


def test_nan_values() -> None:
    out, err = load("ik-tiny-kld-q4_0")
    text = out.decode()
    text = re.sub(r"(?m)^(Mean    KLD:)\s+\S+ ± \s*\S+", r"\1       -nan ±        nan", text)
    text = re.sub(r"(?m)^(  40)\s+\S+ ± \s*\S+", r"\1          inf ±       -nan", text)
    r = parse_transcript(text.encode(), err, 0)
    assert math.isnan(r.stats.kld_mean) and math.isnan(r.stats.kld_mean_err)
    assert r.progress[-1].ppl == math.inf and math.isnan(r.progress[-1].ppl_err)
    assert r.failed is None


# ---- ik_llama.cpp, base generation --------------------------------------------

def test_ik_base_generation() -> None:
    out, err = load("ik-tiny-base")
    r = parse_transcript(out, err, 0)
    items = re.findall(r"\[(\d+)\]([\d.]+),", out.decode())
    assert [(p.chunk, p.ppl) for p in r.progress] == [(int(i), float(v)) for i, v in items]
    assert all(p.kld is None for p in r.progress)
    m = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)",
                  err.decode())
    assert r.started == Started("base", *map(int, m.groups()))
    f = re.search(r"PPL over (\d+) chunks for n_ctx=(\d+) = ([\d.]+) \+/- ([\d.]+)", out.decode())
    assert r.base_estimate == BaseEstimate(float(f.group(3)), float(f.group(4)), int(f.group(1)), int(f.group(2)))
    assert r.failed is None and r.mode == "base" and r.stats is None
    assert isinstance(r.events[-1], Finished)


def test_base_stream_items_are_emitted_before_any_newline() -> None:
    out, err = load("ik-tiny-base")
    p = StreamParser()
    p.feed("err", err)
    first_line = out.split(b"\n")[0]
    cut = first_line.index(b"[4]") + 5  # mid-item
    events = p.feed("out", first_line[:cut])
    assert [e.chunk for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert len(p._pending["out"]) < 16  # consumed items are dropped, nothing re-scanned
    assert p.latest.chunk == 3 and p.latest.eta_s is not None


def test_base_without_final_estimate_fails() -> None:
    out, err = load("ik-tiny-base")
    cut = out[: out.index(b"[21]")]
    r = parse_transcript(cut, err, 137)
    assert r.failed is not None and "killed" in r.failed.reason and "out of memory" in r.failed.reason
    assert "chunk 20 of 40" in r.failed.reason
    assert r.failed.exit_code == 137 and "perplexity: calculating" in r.failed.stderr_tail
    assert len(r.failed.stderr_tail.splitlines()) <= 40


# ---- truncated / killed KLD runs ------------------------------------------------

def test_lost_stdout_tail_is_a_failure() -> None:
    out, err = load("ik-tiny-kld-q4_0")
    cut = out[: out.rindex(b"Same top p")]
    r = parse_transcript(cut, err, 0)
    assert r.failed is not None and "Same top p" in r.failed.reason and "run it again" in r.failed.reason
    assert r.stats is not None and not r.stats.is_complete and r.stats.kld_mean is not None


def test_killed_mid_rows() -> None:
    out, err = load("ik-tiny-kld-q8_0")
    cut = out[: out.index(b"\n  31 ") + 1]
    r = parse_transcript(cut, err, -9, expected_chunks=40)
    assert r.progress[-1].chunk == 30
    assert "SIGKILL" in r.failed.reason and "chunk 30 of 40" in r.failed.reason


@pytest.mark.parametrize("code,words", [
    (1, "status 1"), (134, "aborted"), (-6, "aborted"), (137, "out of memory"), (139, "segmentation fault"),
    (-11, "segmentation fault"), (143, "SIGTERM"), (0, "normally"), (None, "unknown"), (3, "status 3"),
])
def test_explain_exit(code, words) -> None:
    assert words in explain_exit(code)


def test_close_twice_and_latest_property() -> None:
    out, err = load("ik-tiny-kld-q8_0")
    p = StreamParser()
    p.feed("out", out)
    assert p.latest.chunk == 40 and p.mode == "kld" and p.stats.is_complete
    assert isinstance(p.close(0)[-1], Finished)
    assert p.close(0) == []


def test_warnings_skip_noise() -> None:
    out, err = load("ik-tiny-base")
    assert b"trained on only" in err  # printed on every batched run: deliberately not a warning
    assert parse_transcript(out, err, 0).warnings == []


# ---- llama.cpp transcripts recorded by tests/fixtures/record.py ------------------

LLAMA = FIX / "llama"


def llama_cases(prefix: str = "") -> list:
    cases = []
    for meta in sorted(LLAMA.glob("*/*.json")) if LLAMA.is_dir() else []:
        case = meta.stem
        if not (meta.with_suffix(".out").is_file() and meta.with_suffix(".err").is_file()):
            continue
        if case.startswith(("version", "help", "bench", "SUMMARY")) or not case.startswith(prefix):
            continue
        cases.append(pytest.param(meta, id=f"{meta.parent.name}/{case}"))
    assert cases, f"no recorded llama.cpp transcripts{' named ' + prefix + '*' if prefix else ''} under {LLAMA}"
    return cases


def load_llama(meta: Path) -> tuple[bytes, bytes, dict]:
    import json
    return meta.with_suffix(".out").read_bytes(), meta.with_suffix(".err").read_bytes(), json.loads(meta.read_text())


def replay(out: bytes, err: bytes, info: dict, **kw) -> tuple[list, StreamParser]:
    """Feed the streams in the order and sizes the recorder read them."""
    p = StreamParser(**kw)
    events: list = []
    data, pos = {1: out, 2: err}, {1: 0, 2: 0}
    for stream, n, _ms in info.get("chunks", []):
        events += p.feed("out" if stream == 1 else "err", data[stream][pos[stream]:pos[stream] + n])
        pos[stream] += n
    for stream in (2, 1):  # anything past the recorder's chunk log
        if pos[stream] < len(data[stream]):
            events += p.feed("out" if stream == 1 else "err", data[stream][pos[stream]:])
    return events + p.close(info["exit_code"]), p


@pytest.mark.parametrize("meta", llama_cases())
def test_llama_outcome_is_decided_by_content(meta: Path) -> None:
    out, err, info = load_llama(meta)
    r = parse_transcript(out, err, info["exit_code"])
    if "--kl-divergence" in info["argv"]:
        success = b"Same top p:" in out
    else:
        success = b"Final estimate" in out + err
    assert (r.failed is None) == success, r.failed
    if r.failed is not None:
        assert r.failed.reason and "\n" not in r.failed.reason
        assert r.failed.exit_code == info["exit_code"]
        tail = err.decode("utf-8", "replace").strip().splitlines()
        if tail:  # the last stderr line (prefix stripped) ends the tail shown to the user
            assert r.failed.stderr_tail.splitlines()[-1].strip() in tail[-1]


@pytest.mark.parametrize("meta", llama_cases("kld"))
def test_llama_kld_stats_rows_and_start(meta: Path) -> None:
    out, err, info = load_llama(meta)
    r = parse_transcript(out, err, info["exit_code"])
    text, log = out.decode(), err.decode()
    check_stats(r.stats, expected_final(text))
    rows = expected_rows(text)
    assert rows and [p.chunk for p in r.progress] == [int(row[0]) for row in rows]
    assert [p.same_top for p in r.progress] == [row[-2] for row in rows]
    m = re.search(r"computing over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)", log)
    if m:
        assert r.started == Started("kld", *map(int, m.groups()))
    else:  # builds before batched KLD log no such line: inferred, chunk count back-filled
        assert "computing over" not in log and r.started == Started("kld", r.progress[-1].chunk)
    assert r.progress[-1].chunk == r.started.n_chunks
    p99 = re.findall(r"(?m)^99\.0%   KLD:\s+(\S+)", text)
    if len(p99) == 2:  # old builds: the same percentile printed twice (llama.cpp #15999)
        assert p99[0] == p99[1] and r.stats.kld_p99 == float(p99[0])
        assert r.stats.kld_p90 is None and r.stats.kld_p95 is None and r.stats.kld_p001 is None


@pytest.mark.parametrize("meta", llama_cases())
def test_llama_real_interleaving_gives_same_results(meta: Path) -> None:
    out, err, info = load_llama(meta)
    ref = parse_transcript(out, err, info["exit_code"])
    events, p = replay(out, err, info)
    assert p.stats == ref.stats and p.base_estimate == ref.base_estimate and p.mode == ref.mode
    assert [(e.chunk, e.ppl, e.kld) for e in events if isinstance(e, Progress)] == \
        [(e.chunk, e.ppl, e.kld) for e in ref.progress]
    assert type(events[-1]) is type(ref.events[-1])
    if ref.failed:
        assert events[-1].reason == ref.failed.reason


def eta_cases() -> list:
    """Only the runs that printed an ETA (early failures never get that far)."""
    return [c for c in llama_cases() if c.values[0] is not None
            and b"seconds per pass - ETA" in c.values[0].with_suffix(".err").read_bytes()]


def test_some_runs_print_an_eta() -> None:
    assert len(eta_cases()) >= 5


@pytest.mark.parametrize("meta", eta_cases())
def test_llama_eta(meta: Path) -> None:
    out, err, info = load_llama(meta)
    m = re.search(r"([\d.]+) seconds per pass - ETA", err.decode())
    assert m
    _, p = replay(out, err, info)
    assert p.seconds_per_pass == float(m.group(1))
    t = re.search(r"(?m)^(?:(\d+) hours )?([\d.]+) minutes$", out.decode())
    assert t, "the ETA's minutes go to stdout in llama.cpp"
    assert p.eta_total_s == pytest.approx(int(t.group(1) or 0) * 3600 + float(t.group(2)) * 60)


@pytest.mark.parametrize("meta", llama_cases("base") + llama_cases("ppl"))
def test_llama_base_and_ppl(meta: Path) -> None:
    out, err, info = load_llama(meta)
    r = parse_transcript(out, err, info["exit_code"])
    text, log = out.decode(), err.decode()
    items = re.findall(r"\[(\d+)\]([\d.]+),", text)
    lines = re.findall(r"(?m)^\s*\d+\s+([\d.]+)\s+[-\d.]+\s+[-\d.]+$", text)
    got = [(p.chunk, p.ppl) for p in r.progress]
    if items:
        assert got == [(int(i), float(v)) for i, v in items]
    else:
        assert got == [(i + 1, float(v)) for i, v in enumerate(lines)] and lines
    m = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)", log)
    mode = "base" if "--kl-divergence-base" in info["argv"] else "ppl"
    assert r.started == Started(mode, *map(int, m.groups())) and r.mode == mode
    f = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", log)
    assert r.base_estimate == BaseEstimate(float(f.group(1)), float(f.group(2)), r.started.n_chunks,
                                           r.started.n_ctx)


def _grab(pattern: str, text: str) -> tuple[str, ...]:
    m = re.search(pattern, text)
    assert m, f"fixture lacks {pattern!r}"
    return m.groups()


def _last_chunk(out: str) -> int:
    items = re.findall(r"\[(\d+)\]", out) or [r[0] for r in expected_rows(out)]
    return int(float(items[-1]))


# case -> (out, err) -> substrings the reason must contain, taken from the transcript itself
REASONS = {
    "fail-missing-base": lambda o, e: ["cannot open the base file", *_grab(r"failed to open (\S+)", e)],
    "fail-no-base-name": lambda o, e: ["--kl-divergence-base"],
    "fail-truncated-base": lambda o, e: [
        "truncated", "before chunk {}".format(int(_grab(r"log-probs for chunk (\d+)", e)[0]) + 1)],
    "fail-vocab-mismatch": lambda o, e: [
        "vocabulary of {} tokens but this model has {}".format(*_grab(r"inconsistent vocabulary \((\d+) vs (\d+)\)", e))],
    # the reason in brackets where the build printed one (b0316 prints none: no "(?)" then)
    "fail-missing-model": lambda o, e: [*_grab(r"failed to open GGUF file '(.+?)'", e), "cannot open the model",
                                        *(["(No such file or directory)"] if "(No such file" in e else [])],
    "fail-not-a-model": lambda o, e: ["not a GGUF file"],
    "fail-bad-arg": lambda o, e: [*_grab(r"invalid argument: (\S+)", e), "does not accept"],
    # older builds never print the chunk count: then only the last chunk seen can be told
    "fail-killed": lambda o, e: ["SIGKILL", "out of memory", f"stopped after chunk {_last_chunk(o)}" + (
        " of {}".format(*_grab(r"computing over (\d+) chunks", e)) if "computing over" in e else "")],
    "fail-killed-base": lambda o, e: ["SIGKILL", "chunk {} of {}".format(
        _last_chunk(o), *_grab(r"perplexity over (\d+) chunks", e))],
    "fail-ctx-smaller": lambda o, e: ["pass -c {}".format(*_grab(r"has been computed with (\d+)", e))],
    "ctx-smaller-default-b": lambda o, e: ["-c {}".format(*_grab(
        r"(?:computing over \d+ chunks, n_ctx=|has been computed with )(\d+)", e))],
    "lost-tail-fail-ctx-mismatch": lambda o, e: ["exited 0", "run it again"],
    "lost-tail-fail-no-base-name": lambda o, e: ["exited 0", "run it again"],
}


def reason_cases() -> list:
    cases = [c for c in llama_cases("fail") + llama_cases("lost") + llama_cases("ctx")
             if c.values[0] is not None and c.values[0].stem in REASONS]
    assert cases, f"no recorded failure transcripts under {LLAMA}"
    return cases


@pytest.mark.parametrize("meta", reason_cases())
def test_llama_failure_reasons(meta: Path) -> None:
    out, err, info = load_llama(meta)
    r = parse_transcript(out, err, info["exit_code"])
    assert r.failed is not None
    for words in REASONS[meta.stem](out.decode(), err.decode()):
        assert words in r.failed.reason
    assert "(?)" not in r.failed.reason  # a part the build did not print is left out, not shown as "(?)"
    if info["exit_code"] not in (0, 1):  # a crash after the real cause is told too (e.g. SIGABRT)
        assert explain_exit(info["exit_code"]) in r.failed.reason


def test_llama_ctx_mismatch_is_also_a_warning() -> None:
    metas = sorted(LLAMA.glob("*/fail-ctx-smaller.json")) if LLAMA.is_dir() else []
    assert metas, "the fail-ctx-smaller transcript is missing from tests/fixtures/llama"
    out, err, info = load_llama(metas[0])
    p = StreamParser()
    events = p.feed("err", err)
    (warning,) = [e for e in events if isinstance(e, Warning)]
    assert p.warnings == [warning.message]
    file_ctx, run_ctx = _grab(r"computed with (\d+), while the current context is (\d+)", err.decode())
    assert f"n_ctx={file_ctx} but this run used -c {run_ctx}" in warning.message


@pytest.mark.parametrize("meta", llama_cases())
@pytest.mark.parametrize("sizes", ["1", "7", "random"])
def test_llama_byte_splits_give_identical_events(meta: Path, sizes: str) -> None:
    """Prefixed stderr, the stderr/stdout-split ETA and `±` cut between its two bytes."""
    out, err, info = load_llama(meta)
    whole = parse_transcript(out, err, info["exit_code"]).events
    split, _ = feed_split(out, err, pieces(meta.stem, sizes), exit_code=info["exit_code"])
    assert split == whole


def test_eta_join_without_log_prefixes() -> None:
    """Builds without prefixes (or --no-log-prefix) join the next stderr entry onto
    `... - ETA ` the same way: strip the prefixes from a real recording."""
    metas = sorted(LLAMA.glob("*/fail-truncated-base.json")) if LLAMA.is_dir() else []
    assert metas, "the fail-truncated-base transcript is missing from tests/fixtures/llama"
    out, err, info = load_llama(metas[0])
    plain = re.sub(rb"\d+\.\d\d\.\d{3}\.\d{3} [IWED] ", b"", err)
    assert b"- ETA kl_divergence: failed reading" in plain
    a, b = parse_transcript(out, err, 0), parse_transcript(out, plain, 0)
    assert a.failed.reason == b.failed.reason and a.progress == b.progress
    assert a.failed.stderr_tail == b.failed.stderr_tail


@pytest.mark.parametrize("meta", llama_cases())
def test_llama_combined_log(meta: Path) -> None:
    """A `2>&1` log: both streams in one, in the order the recorder read them."""
    out, err, info = load_llama(meta)
    data, pos, merged = {1: out, 2: err}, {1: 0, 2: 0}, bytearray()
    for stream, n, _ms in info["chunks"]:
        merged += data[stream][pos[stream]:pos[stream] + n]
        pos[stream] += n
    merged += err[pos[2]:] + out[pos[1]:]
    ref, r = parse_transcript(out, err, info["exit_code"]), parse_transcript(bytes(merged), None, info["exit_code"])
    assert r.stats == ref.stats and r.base_estimate == ref.base_estimate and r.mode == ref.mode
    assert [(p.chunk, p.ppl, p.kld) for p in r.progress] == [(p.chunk, p.ppl, p.kld) for p in ref.progress]
    assert (r.failed and r.failed.reason) == (ref.failed and ref.failed.reason)
    if r.failed and ref.failed.stderr_tail.strip():  # a combined log's tail: its last lines
        assert r.failed.stderr_tail.strip() and len(r.failed.stderr_tail.splitlines()) <= 40


def test_eta_with_hours_and_eta_per_row() -> None:
    metas = [m for m in sorted(LLAMA.glob("*/kld-q*_0.json")) if b"n_seq=" in m.with_suffix(".err").read_bytes()]
    assert metas, "no batched KLD transcript (n_seq > 1) in tests/fixtures/llama"
    out, err, info = load_llama(metas[0])
    minutes = re.search(rb"(?m)^[\d.]+ minutes$", out).group(0)
    hours = out.replace(minutes, b"1 hours 5.50 minutes", 1)
    p = StreamParser()
    events = p.feed("err", err) + p.feed("out", hours) + p.close(0)
    assert p.eta_total_s == 3600 + 5.5 * 60
    spp = float(re.search(rb"([\d.]+) seconds per pass", err).group(1))
    n_chunks, n_seq = map(int, re.search(rb"computing over (\d+) chunks, .*n_seq=(\d+)", err).groups())
    rows = [e for e in events if isinstance(e, Progress)]
    for row in rows:
        assert row.eta_s == pytest.approx(spp * -(-(n_chunks - row.chunk) // n_seq))
    assert rows[-1].eta_s == 0
