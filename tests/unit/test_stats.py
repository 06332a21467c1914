"""FinalStats: JSON round trip (nan/inf included), completeness, tolerance of old/new dicts."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

from qtui.core.llama.parser import parse_transcript
from qtui.core.llama.stats import FinalStats

IK = Path(__file__).resolve().parent.parent / "fixtures" / "ik"


def _real_stats() -> FinalStats:
    stats = parse_transcript((IK / "ik-tiny-kld-q4_0.out").read_bytes(), None, 0).stats
    assert stats is not None
    return stats


def test_every_field_is_optional_float_and_defaults_to_none() -> None:
    empty = FinalStats()
    assert all(getattr(empty, f.name) is None for f in fields(FinalStats))
    assert not empty.is_complete


def test_round_trip_through_json_of_a_real_result() -> None:
    stats = _real_stats()
    assert stats.is_complete
    back = FinalStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert back == stats


def test_nan_and_inf_survive_json() -> None:
    stats = _real_stats()
    stats.kld_mean, stats.kld_max, stats.kld_min, stats.dp_p01 = math.nan, math.inf, -math.inf, None
    text = json.dumps(stats.to_dict(), allow_nan=False)  # raises if a bare nan leaked
    back = FinalStats.from_dict(json.loads(text))
    assert math.isnan(back.kld_mean)
    assert back.kld_max == math.inf and back.kld_min == -math.inf and back.dp_p01 is None
    assert back.same_as(stats) and not back.same_as(_real_stats())


def test_from_dict_ignores_unknown_and_fills_missing() -> None:
    back = FinalStats.from_dict({"kld_mean": 0.5, "some_future_field": 3, "same_top": "95.0"})
    assert back.kld_mean == 0.5 and back.same_top == 95.0 and back.kld_p90 is None
    assert back.is_complete
