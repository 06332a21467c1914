"""The shared formatters: the figures every front end prints."""

from __future__ import annotations

import math

import pytest

from qtui.core import formats


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0m00s"), (59.4, "0m59s"), (59.6, "1m00s"), (61, "1m01s"), (3599, "59m59s"), (3600, "1h00m"),
    (3600 + 62 * 60, "2h02m"), (30 * 3600, "30h00m"),
])
def test_duration(seconds: float, text: str) -> None:
    assert formats.duration(seconds) == text


@pytest.mark.parametrize("unknown", [None, math.nan, math.inf, -1.0])
def test_duration_unknown(unknown: float | None) -> None:
    assert formats.duration(unknown) == "?"


def test_progress_bar() -> None:
    assert formats.progress_bar(0.0, 4) == "░░░░"
    assert formats.progress_bar(0.5, 4) == "██░░"
    assert formats.progress_bar(1.0, 4) == "████"
    assert formats.progress_bar(2.0, 4) == "████"  # never wider than asked
    assert formats.progress_bar(-0.5, 4) == "░░░░"
    assert formats.progress_bar(None, 3) == "░░░"  # total not known yet
    assert formats.progress_bar(0.5, 0) == ""
    # an exact share fills exactly: 57/100 is not 56.99999999999999 cells
    assert formats.progress_bar(57 / 100, 100).count("█") == 57
    for done in range(41):
        assert formats.progress_bar(done / 40, 20).count("█") == 20 * done // 40


def test_plus_minus() -> None:
    assert formats.plus_minus(0.081234, 0.001111, 5) == "0.08123 ± 0.00111"
    assert formats.plus_minus(63.651, 1.918, 2, " %") == "63.65 ± 1.92 %"
    assert formats.plus_minus(7.5, None, 3) == "7.500"
    assert formats.plus_minus(None, 0.1, 3) == "?"
    # compact only drops the space: the digits are the same rule
    assert formats.plus_minus(0.081234, 0.001111, 5, compact=True) == "0.08123 ±0.00111"


def test_plus_minus_one_rule_for_small_errors() -> None:
    """One way to write ± (the Runs table showed ±8e-05 beside ±0.00016): fixed notation, value
    and error to the same decimals, enough for the error's two first significant digits."""
    assert formats.plus_minus(0.003202, 8e-05, 5, compact=True) == "0.003202 ±0.000080"
    assert formats.plus_minus(0.00492, 0.000158, 5, compact=True) == "0.00492 ±0.00016"
    assert formats.plus_minus(0.003202, 8e-05, 5) == "0.003202 ± 0.000080"
    assert formats.plus_minus(0.589575, 0.016323, 6) == "0.589575 ± 0.016323"  # digits already enough
    assert formats.plus_minus(0.0, 0.0, 5) == "0.00000 ± 0.00000"
    assert formats.plus_minus(4e-7, 3e-8, 6) == "0.000000400 ± 0.000000030"
    for err in (1e-9, 3.3e-6, 8e-05, 0.00016, 0.0123, 1.9, 320.0):
        text = formats.plus_minus(1.0, err, 3, compact=True)
        assert "e" not in text
        value, shown = text.split(" ±")
        assert len(value.split(".")[1]) == len(shown.split(".")[1])  # same decimals
        digits = shown.replace(".", "").lstrip("0")
        assert len(digits) >= 2 or err < 1e-8, (err, text)  # two significant digits (to 9 decimals)


def test_error_alone() -> None:
    assert formats.error(8e-05, 6) == "0.000080"
    assert formats.error(0.016323, 6) == "0.016323"
    assert formats.error(4e-7, 6) == "0.00000040"
    assert formats.error(None, 6) == "?"


def test_shorten_keeps_the_end() -> None:
    name = "Qwen3.5-35B-A3B-UD-Q4_K_XL-00001-of-00002.gguf"
    assert formats.shorten(name, 100) == name
    for width in range(1, len(name)):
        short = formats.shorten(name, width)
        assert len(short) == width and "…" in short
        assert len(short) < 4 or len(short.split("…")[1]) >= len(short.split("…")[0])  # the end keeps more
    assert formats.shorten(name, 20).endswith("00002.gguf")


def test_kld() -> None:
    assert formats.kld(0.0812345, 0.0011) == "0.08123 ± 0.00110"
    assert formats.kld(0.0812345, 0.0011, compact=True) == "0.08123 ±0.00110"
    assert formats.kld(None, None) == "?"


def test_chunks() -> None:
    assert formats.chunks(12, 40) == "12/40"
    assert formats.chunks(12, None) == "12/?"
    assert formats.chunks(0, 0) == "0/?"


def test_align_words_left_numbers_right() -> None:
    assert [formats.align(k) for k in ("model", "quantizer", "quant")] == ["left"] * 3
    assert [formats.align(k) for k in ("kld", "size_gib", "duration_s", "pareto")] == ["right"] * 4
