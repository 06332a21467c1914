"""The fake llama-perplexity (tests/fakes) replays what the real one did: the recorded
interleaving of stdout and stderr, its exit code, and its recorded --version / --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtui.core.llama.tools import parse_help_flags, parse_version

TESTS = Path(__file__).resolve().parents[1]
FAKE = TESTS / "fakes" / "fake_llama_perplexity.py"
B0336 = TESTS / "fixtures" / "llama" / "b0336"
IK = TESTS / "fixtures" / "ik"


def fake(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the fake with stderr joined to stdout: one pipe keeps the order the fake wrote in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_LLAMA_")}
    return subprocess.run([sys.executable, str(FAKE), *args], env={**clean, **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)


def recorded_order(case: Path) -> bytes:
    """The case's two streams merged in the order the recorder read them."""
    streams = {1: case.with_suffix(".out").read_bytes(), 2: case.with_suffix(".err").read_bytes()}
    pos = {1: 0, 2: 0}
    merged = b""
    for fd, n, _ in json.loads(case.with_suffix(".json").read_text())["chunks"]:
        merged += streams[fd][pos[fd]:pos[fd] + n]
        pos[fd] += n
    assert pos == {1: len(streams[1]), 2: len(streams[2])}  # the record covers every byte
    return merged


@pytest.mark.parametrize("case", ["kld-q4_0", "base", "fail-truncated-base", "fail-vocab-mismatch"])
def test_replays_the_recorded_interleaving_and_exit_code(case: str, tmp_path: Path) -> None:
    path = B0336 / case
    meta = json.loads(path.with_suffix(".json").read_text())
    res = fake("-m", "x.gguf", "--kl-divergence-base", str(tmp_path / "b.kld"), "--kl-divergence",
               FAKE_LLAMA_CASE=str(path))
    assert res.stdout == recorded_order(path)
    assert res.returncode == meta["exit_code"]
    streams = [fd for fd, _, _ in meta["chunks"]]
    first_out = streams.index(1) if 1 in streams else len(streams)
    if 2 in streams[first_out:]:  # stderr written after stdout began
        out, err = path.with_suffix(".out").read_bytes(), path.with_suffix(".err").read_bytes()
        assert res.stdout != err + out  # the point: not all of stderr first


def test_the_recordings_do_interleave() -> None:
    """Base generation prints its last log lines after its results: the order is worth replaying."""
    streams = [fd for fd, _, _ in json.loads((B0336 / "base.json").read_text())["chunks"]]
    assert 2 in streams[streams.index(1):]


def test_a_case_without_a_recorded_order_is_stderr_then_stdout() -> None:
    case = IK / "ik-tiny-kld-q8_0"
    res = fake(FAKE_LLAMA_CASE=str(case))
    assert res.returncode == 0
    assert res.stdout == case.with_suffix(".err").read_bytes() + case.with_suffix(".out").read_bytes()


def test_speed_replays_the_recorded_times() -> None:
    case = B0336 / "kld-q4_0"
    last_ms = json.loads(case.with_suffix(".json").read_text())["chunks"][-1][2]
    t0 = time.monotonic()
    res = fake(FAKE_LLAMA_CASE=str(case), FAKE_LLAMA_SPEED="0.5")  # twice as slow as recorded
    assert res.stdout == recorded_order(case)
    assert time.monotonic() - t0 >= 2 * last_ms / 1000


def test_delay_stretches_the_replay_to_a_known_length() -> None:
    t0 = time.monotonic()
    res = fake(FAKE_LLAMA_CASE=str(IK / "ik-tiny-kld-q4_0"), FAKE_LLAMA_DELAY="0.05")
    assert res.returncode == 0
    assert time.monotonic() - t0 >= 20 * 0.05


def test_version_and_help_are_the_recorded_ones() -> None:
    ver = fake("--version")
    assert ver.returncode == 0
    assert ver.stdout == (B0336 / "version.out").read_bytes() + (B0336 / "version.err").read_bytes()
    version, commit, _ = parse_version(ver.stdout.decode())
    meta = json.loads((B0336 / "version.json").read_text())
    assert (version, commit) == (meta["version"], meta["commit"])
    hlp = fake("--help", FAKE_LLAMA_CASE=str(B0336 / "kld-q4_0"))
    assert hlp.stdout == (B0336 / "help.out").read_bytes()
    assert {"--kl-divergence", "--kl-divergence-base", "--chunks"} <= parse_help_flags(hlp.stdout.decode())
    old = fake("--version", FAKE_LLAMA_BUILD=str(TESTS / "fixtures" / "llama" / "b0316"))
    assert parse_version(old.stdout.decode())[0] != version  # the folder asked for, not a fixed text


def test_base_mode_writes_a_base_file(tmp_path: Path) -> None:
    from qtui.core.llama.basefile import read_base_header

    target = tmp_path / "base.kld"
    res = fake("-m", "x.gguf", "--kl-divergence-base", str(target), FAKE_LLAMA_CASE=str(B0336 / "base"))
    assert res.returncode == 0 and b"Final estimate" in res.stdout
    assert read_base_header(target).n_chunk >= 1


def test_without_a_case_it_says_so() -> None:
    res = fake("-m", "x.gguf")
    assert res.returncode == 2 and b"FAKE_LLAMA_CASE" in res.stdout
