"""The setups a set of results spans, and the results of one: a ranking is always of one setup.

The app shows one setup at a time and `qtui results` / `qtui export` take `--setup`: this module
is what they share, so that the three pick, number and name setups the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qtui.core.results.ranking import Setup, SetupKey, setup_key
from qtui.core.results.store import ResultRecord, file_identity

__all__ = ["SetupGroup", "SetupNotFound", "find_setup", "group_setups", "setup_keys"]


class SetupNotFound(ValueError):
    """`--setup` named no setup, or more than one; the message says which exist."""


@dataclass(frozen=True)
class SetupGroup:
    """One setup and its KLD records (finished ones ranked, the others shown apart)."""

    number: int
    """1, 2, ...: most results first (1 is the default)"""
    setup: Setup
    records: tuple[ResultRecord, ...]
    speed: tuple[ResultRecord, ...] = ()
    """finished speed runs (llama-bench) of the setup's model files: a speed belongs to a file,
    not to a setup, so each setup showing the file carries it"""

    @property
    def board(self) -> tuple[ResultRecord, ...]:
        """What the setup's rows are built from: its KLD records and their files' speeds."""
        return self.records + self.speed

    @property
    def ranked(self) -> int:
        """Finished runs: what the setup's ranking holds."""
        return sum(1 for r in self.records if r.status == "done")

    @property
    def unranked(self) -> int:
        """Failed and cancelled runs: shown apart, never ranked."""
        return len(self.records) - self.ranked

    @property
    def id(self) -> str:
        return self.setup.id

    @property
    def label(self) -> str:
        return self.setup.label


def _base_file(rec: ResultRecord) -> object:
    return rec.base.get("key") or rec.base.get("file")


def setup_keys(records: Sequence[ResultRecord]) -> list[SetupKey]:
    """setup_key of each record, with the chunk count of a failed or cancelled run taken from
    the finished runs on the same base file: a run cancelled after 7 of 30 chunks belongs to
    the 30-chunk setup, shown apart from its ranking, not to a setup of its own."""
    keys = [setup_key(r) for r in records]
    chunks_of: dict[object, int] = {}
    for rec, key in zip(records, keys):
        if key[3] is not None and _base_file(rec):
            chunks_of.setdefault(_base_file(rec), key[3])
    out: list[SetupKey] = []
    for rec, key in zip(records, keys):
        found = chunks_of.get(_base_file(rec)) if key[3] is None and _base_file(rec) else None
        out.append((*key[:3], found, *key[4:]) if found is not None else key)
    return out


def group_setups(records: Sequence[ResultRecord]) -> list[SetupGroup]:
    """The KLD records by setup, numbered: the setup with the most finished runs first (the
    default one to show), then the one with the latest run."""
    kld = [r for r in records if r.kind == "kld"]
    members: dict[SetupKey, list[ResultRecord]] = {}
    for rec, key in zip(kld, setup_keys(kld)):
        members.setdefault(key, []).append(rec)

    def order(key: SetupKey) -> tuple[int, float, str]:
        recs = members[key]
        done = sum(1 for r in recs if r.status == "done")
        latest = max((r.ended_at or 0.0 for r in recs), default=0.0)
        return -done, -latest, Setup.of(recs[0], key).id

    ranked = sorted(members, key=order)
    speed = [r for r in records if r.kind == "speed" and r.status == "done" and file_identity(r.model) is not None]

    def speeds(recs: list[ResultRecord]) -> tuple[ResultRecord, ...]:
        files = {file_identity(r.model) for r in recs}
        return tuple(r for r in speed if file_identity(r.model) in files)

    return [SetupGroup(n, Setup.of(members[k][0], k), tuple(members[k]), speeds(members[k]))
            for n, k in enumerate(ranked, 1)]


def find_setup(groups: Sequence[SetupGroup], wanted: str) -> SetupGroup:
    """The setup `wanted` names: its number, or a unique prefix of its id or of its label
    (case-insensitive). Raises SetupNotFound with a sentence that says what exists."""
    text = wanted.strip()
    if not groups:
        raise SetupNotFound("there are no results yet, so no setup to choose")
    if text.isdigit():
        n = int(text)
        if 1 <= n <= len(groups):
            return groups[n - 1]
        raise SetupNotFound(f"there is no setup {n}: the results hold {_count(len(groups))} (--setup all lists them)")
    low = text.lower()
    matches = [g for g in groups if low and (g.id.startswith(low) or g.label.lower().startswith(low))]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SetupNotFound(f"no setup matches {wanted!r}: give its number, id or the start of its name "
                            "(--setup all lists them)")
    shown = ", ".join(f"{g.number} ({g.id})" for g in matches[:8])
    raise SetupNotFound(f"{wanted!r} matches {len(matches)} setups ({shown}); give its number or id")


def _count(n: int) -> str:
    return f"{n} setup{'s' if n != 1 else ''}"
