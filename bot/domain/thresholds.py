"""Threshold subscriptions ("DM me below 20%") as a small state machine with hysteresis.

A subscription fires once when a family's level falls below its threshold, then stays
quiet until the level recovers above the threshold plus a margin (say a new pack was
bought); only then can the next fall fire again. Without the margin a level wobbling
around the threshold would DM on every poll.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.packs import PackStatus, ResourcePack

# Re-arm only this far above the threshold: 5 percentage points, or 10% of an absolute one.
PERCENT_REARM_POINTS = 5.0
ABSOLUTE_REARM_FACTOR = 1.10


class ThresholdKind(StrEnum):
    PERCENT = "percent"
    ABSOLUTE = "absolute"


@dataclass(frozen=True, slots=True)
class Threshold:
    kind: ThresholdKind
    value: float

    @property
    def rearm_at(self) -> float:
        if self.kind == ThresholdKind.PERCENT:
            return self.value + PERCENT_REARM_POINTS
        return self.value * ABSOLUTE_REARM_FACTOR


_THRESHOLD = re.compile(r"^(\d+(?:\.\d+)?)\s*(%?)$")


class ThresholdSyntaxError(ValueError):
    pass


def parse_threshold(text: str) -> Threshold:
    """ "20%" -> 20 percent; "500" -> 500 units. Raises ThresholdSyntaxError saying what is wrong."""
    match = _THRESHOLD.match(text.strip().replace(",", ""))
    if not match:
        raise ThresholdSyntaxError(f"“{text}” is not a threshold: use a percent like 20% or a quantity like 500.")
    value = float(match.group(1))
    if match.group(2):
        if not 0 < value < 100:
            raise ThresholdSyntaxError(f"{text} is not a useful percent: use more than 0% and less than 100%.")
        return Threshold(ThresholdKind.PERCENT, value)
    if value <= 0:
        raise ThresholdSyntaxError("An absolute threshold must be more than 0.")
    return Threshold(ThresholdKind.ABSOLUTE, value)


@dataclass(frozen=True, slots=True)
class Level:
    """A family's usable balance: the sum over its online packs."""

    family: str
    remaining: float
    total: float

    @property
    def percent(self) -> float:
        return 0.0 if self.total <= 0 else max(0.0, min(100.0, 100.0 * self.remaining / self.total))

    def measure(self, kind: ThresholdKind) -> float:
        return self.percent if kind == ThresholdKind.PERCENT else self.remaining


def family_levels(packs: Iterable[ResourcePack]) -> dict[str, Level]:
    """Every family the account has, with the balance of its online packs (0 if none is online)."""
    sums: dict[str, tuple[float, float]] = {}
    for pack in packs:
        remaining, total = sums.get(pack.family, (0.0, 0.0))
        if pack.status == PackStatus.ONLINE:
            remaining, total = remaining + pack.remaining, total + pack.total
        sums[pack.family] = (remaining, total)
    return {family: Level(family, r, t) for family, (r, t) in sums.items()}


@dataclass(frozen=True, slots=True)
class ThresholdStep:
    fire: bool
    armed: bool


def step(threshold: Threshold, level: Level, *, armed: bool) -> ThresholdStep:
    """One poll of one subscription for one family."""
    value = level.measure(threshold.kind)
    if armed and value < threshold.value:
        return ThresholdStep(fire=True, armed=False)
    if not armed and value >= threshold.rearm_at:
        return ThresholdStep(fire=False, armed=True)
    return ThresholdStep(fire=False, armed=armed)
