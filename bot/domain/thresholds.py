"""Threshold subscriptions ("DM me below 20%") as a small state machine with hysteresis.

A subscription fires once when a family's level falls below its threshold, then stays
quiet until the level recovers above the threshold plus a margin (say a new pack was
bought); only then can the next fall fire again. Without the margin a level wobbling
around the threshold would DM on every poll.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.accounts import DEFAULT_ACCOUNT
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


# "20%", "20 %", "500", "500 units", "1,500 unit"; digits bounded so nothing overflows.
_THRESHOLD = re.compile(r"^(\d{1,15}(?:\.\d{1,6})?)\s*(%|units?)?$", re.IGNORECASE)
# No account holds more than this; a larger threshold is a typo, not a wish.
MAX_ABSOLUTE = 1e12


class ThresholdSyntaxError(ValueError):
    pass


def parse_threshold(text: str) -> Threshold:
    """ "20%" -> 20 percent; "500" or "500 units" -> 500 units. Raises ThresholdSyntaxError
    saying what is wrong."""
    cleaned = text.strip().replace(",", "")
    match = _THRESHOLD.match(cleaned)
    if not match:
        if re.fullmatch(r"\d[\d.]*\s*(%|units?)?", cleaned, re.IGNORECASE):
            raise ThresholdSyntaxError(
                f"“{_short(text)}” is too large a number: use a percent under 100% or up to {MAX_ABSOLUTE:,.0f} units."
            )
        raise ThresholdSyntaxError(
            f"“{_short(text)}” is not a threshold: use a percent like 20% or a quantity like 500."
        )
    value = float(match.group(1))
    if match.group(2) == "%":
        if not 0 < value < 100:
            raise ThresholdSyntaxError(f"{_short(text)} is not a useful percent: use more than 0% and less than 100%.")
        return Threshold(ThresholdKind.PERCENT, value)
    if value <= 0:
        raise ThresholdSyntaxError("An absolute threshold must be more than 0.")
    if value > MAX_ABSOLUTE:
        raise ThresholdSyntaxError(f"{_short(text)} is more than any account holds: use up to {MAX_ABSOLUTE:,.0f}.")
    return Threshold(ThresholdKind.ABSOLUTE, value)


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= 40 else text[:39] + "…"


def usable(threshold: Threshold) -> bool:
    """A stored threshold the bot can evaluate (rows from before values were bounded may not be)."""
    if not math.isfinite(threshold.value) or threshold.value <= 0:
        return False
    if threshold.kind == ThresholdKind.PERCENT:
        return threshold.value < 100
    return threshold.value <= MAX_ABSOLUTE


@dataclass(frozen=True, slots=True)
class Level:
    """A family's usable balance: the sum over its online packs."""

    family: str
    remaining: float
    total: float
    account: str = DEFAULT_ACCOUNT

    @property
    def percent(self) -> float:
        return 0.0 if self.total <= 0 else max(0.0, min(100.0, 100.0 * self.remaining / self.total))

    def measure(self, kind: ThresholdKind) -> float:
        return self.percent if kind == ThresholdKind.PERCENT else self.remaining


def family_levels(packs: Iterable[ResourcePack]) -> dict[tuple[str, str], Level]:
    """Every family's usable balance: the sum over its online packs, keyed by (account,
    family), never summed across accounts.

    A family with nothing online but a pack bought and not yet effective has no level: it is
    not "below" anything until that pack is online, so it neither fires nor re-arms a
    threshold. A family whose packs have all ended is at 0: it ran out.
    """
    sums: dict[tuple[str, str], tuple[float, float]] = {}
    pending: set[tuple[str, str]] = set()
    for pack in packs:
        key = (pack.account, pack.family)
        remaining, total = sums.get(key, (0.0, 0.0))
        if pack.status == PackStatus.ONLINE:
            remaining, total = remaining + pack.remaining, total + pack.total
        elif pack.status == PackStatus.TO_BE_ONLINE:
            pending.add(key)
        sums[key] = (remaining, total)
    return {
        (account, family): Level(family, r, t, account)
        for (account, family), (r, t) in sums.items()
        if t > 0 or (account, family) not in pending
    }


def known_families(packs: Iterable[ResourcePack]) -> list[str]:
    # Names only: the same family in two accounts is one name to type.
    """Every family the account has, whatever its packs' status, sorted for people."""
    return sorted({p.family for p in packs}, key=str.casefold)


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
