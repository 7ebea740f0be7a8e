"""The alert state machine: what changed between two polls, as events with stable keys.

Pure functions over packs, the stored state and the clock. Each event has a `key` that is
the same however many times the same fact is seen, so the outbox (unique on the key)
sends it exactly once, across polls, restarts and replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.packs import PackStatus, ResourcePack


class EventKind(StrEnum):
    RUN_OUT = "run_out"
    EXPIRED = "expired"
    EXPIRING = "expiring"
    NEW_PACK = "new_pack"
    CAME_ONLINE = "came_online"


@dataclass(frozen=True, slots=True)
class PackState:
    """What the bot last saw of a pack (kept in the database between polls)."""

    pack_id: str
    name: str
    status: str
    remaining: float
    total: float
    invalid_time: datetime | None


def state_of(pack: ResourcePack) -> PackState:
    return PackState(pack.pack_id, pack.name, str(pack.status), pack.remaining, pack.total, pack.invalid_time)


@dataclass(frozen=True, slots=True)
class PackEvent:
    key: str
    kind: EventKind
    pack: ResourcePack
    # For EXPIRING: the warning level in days (EXPIRY_WARNING_DAYS, or 1 for the last call).
    days: int | None = None


def expiry_level(pack: ResourcePack, now: datetime, warning_days: int) -> int | None:
    """Which expiry warning is due for a pack: 1 (within a day), `warning_days`, or none.

    Only packs that can still be used and have quantity left are worth a warning.
    """
    if pack.status != PackStatus.ONLINE or pack.remaining <= 0 or pack.invalid_time is None:
        return None
    left = pack.invalid_time - now
    if left <= timedelta(0):
        return None
    if left <= timedelta(days=1):
        return 1
    if left <= timedelta(days=warning_days):
        return warning_days
    return None


def detect_pack_events(
    previous: Mapping[str, PackState] | None,
    packs: Sequence[ResourcePack],
    now: datetime,
    *,
    warning_days: int,
) -> list[PackEvent]:
    """Events between the stored state and what Kling says now.

    `previous is None` means the very first poll: it only records a baseline, so nothing
    that was already expired, used up or bought is announced (no storm on install). Packs
    about to expire are still announced then: that is news, and exactly what the bot is for.
    """
    events: list[PackEvent] = []
    for pack in packs:
        before = previous.get(pack.pack_id) if previous is not None else None
        if previous is not None:
            events.extend(_transition_events(before, pack))
        level = expiry_level(pack, now, warning_days)
        if level is not None:
            # The most urgent level only: a pack first seen 20 hours from expiry gets the
            # one-day warning, not both at once.
            events.append(PackEvent(f"expiring:{pack.pack_id}:{level}d", EventKind.EXPIRING, pack, days=level))
    return events


def _transition_events(before: PackState | None, pack: ResourcePack) -> Iterable[PackEvent]:
    status = str(pack.status)
    if before is None:
        # A pack never seen before: announce it unless it arrives already dead (an old pack
        # that only now falls inside a widened look-back window).
        if pack.is_active:
            yield PackEvent(f"new:{pack.pack_id}", EventKind.NEW_PACK, pack)
        return
    if before.status == status:
        return
    if status == PackStatus.RUN_OUT:
        yield PackEvent(f"run_out:{pack.pack_id}", EventKind.RUN_OUT, pack)
    elif status == PackStatus.EXPIRED:
        yield PackEvent(f"expired:{pack.pack_id}", EventKind.EXPIRED, pack)
    elif status == PackStatus.ONLINE and before.status == PackStatus.TO_BE_ONLINE:
        yield PackEvent(f"online:{pack.pack_id}", EventKind.CAME_ONLINE, pack)
