"""The alert state machine: what changed between two polls, as events with stable keys.

Pure functions over packs, the stored state and the clock. Each event has a `key` that is
the same however many times the same fact is seen, so the outbox (unique on the key)
sends it exactly once, across polls, restarts and replicas.

A fact that ends and happens again is a new event, as Alertmanager treats an alert that
fires again after resolving: a pack reported used up by mistake for one poll and really used
up later is warned twice; an expiry that moves later and comes close again is reminded
again. Each such episode has a number that goes into the key. Against flapping, leaving a
state must hold for a poll before it counts: one good poll between two bad ones is the
same episode, not a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.accounts import DEFAULT_ACCOUNT, scoped
from bot.domain.packs import PackStatus, ResourcePack


class EventKind(StrEnum):
    RUN_OUT = "run_out"
    EXPIRED = "expired"
    EXPIRING = "expiring"
    NEW_PACK = "new_pack"
    CAME_ONLINE = "came_online"


# Statuses a pack can leave only by a correction (Kling reporting it wrongly for a while).
ENDED_STATUSES = frozenset({str(PackStatus.RUN_OUT), str(PackStatus.EXPIRED)})
# A recovery (leaving an ended status) or an expiry moving out of the warning window counts
# once it has been seen at this many polls in a row.
HOLD_POLLS = 2
# Pack ids longer than this are hashed inside event keys, so a key always fits its column
# and its index whatever Kling sends. 128 was release 0.1.0's longest pack id, so every
# key it wrote keeps its form and an upgrade repeats nothing.
MAX_ID_IN_KEY = 128


@dataclass(frozen=True, slots=True)
class PackState:
    """What the bot last saw of a pack, and where its alert episodes stand (kept between polls)."""

    pack_id: str
    name: str
    # The status alerts go by: an ended status stays until leaving it has held for a poll.
    status: str
    remaining: float
    total: float
    invalid_time: datetime | None
    purchase_time: datetime | None = None
    # The id that event keys use. Kling re-issuing a pack under a new id keeps the old one,
    # so the pack is neither announced again nor warned twice.
    identity: str = ""
    # Bumped each time the pack recovers from an ended status: a later end is a new event.
    episode: int = 0
    # A status seen at the last poll that differs from `status` and still has to hold.
    pending_status: str | None = None
    # Bumped each time a warned expiry moves back out of the warning window (and holds).
    expiry_episode: int = 0
    # The most urgent reminder given in this episode, in days (0: none yet).
    expiry_level: int = 0
    expiry_outside: int = 0
    # When the pack was first missing from Kling's reply (None while it is there).
    absent_since: datetime | None = None
    account: str = DEFAULT_ACCOUNT

    @property
    def key_id(self) -> str:
        return scoped(self.account, key_part(self.identity or self.pack_id))


def key_part(text: str, limit: int = MAX_ID_IN_KEY) -> str:
    """`text` as it goes into an event key: itself, or a hash when it is long."""
    if len(text) <= limit:
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class PackEvent:
    key: str
    kind: EventKind
    pack: ResourcePack
    # For EXPIRING: the warning level in days (EXPIRY_WARNING_DAYS, or 1 for the last call).
    days: int | None = None


@dataclass(frozen=True)
class Detection:
    events: list[PackEvent]
    # The state to store for every pack seen now, and for packs missing from this reply.
    states: dict[str, PackState]
    # Packs that came back under a new id: (old id, new id).
    reissued: list[tuple[str, str]]


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


def fresh_state(pack: ResourcePack) -> PackState:
    return PackState(
        pack.pack_id,
        pack.name,
        str(pack.status),
        pack.remaining,
        pack.total,
        pack.invalid_time,
        pack.purchase_time,
        identity=pack.pack_id,
        account=pack.account,
    )


def detect_pack_events(
    previous: Mapping[str, PackState] | None,
    packs: Sequence[ResourcePack],
    now: datetime,
    *,
    warning_days: int,
) -> Detection:
    """Events between the stored state and what Kling says now, and the state to store.

    `previous is None` means the very first poll: it only records a baseline, so nothing
    that was already expired, used up or bought is announced (no storm on install). Packs
    about to expire are still announced then: that is news, and exactly what the bot is for.
    All of `packs` and `previous` belong to one account.
    """
    stored = dict(previous or {})
    seen_ids = {p.pack_id for p in packs}
    # Stored packs missing from this reply, by what identifies a purchase: a "new" pack that
    # matches one of them is the same purchase under a new id (Kling rotating ids).
    missing: dict[tuple[str, float, datetime | None], PackState] = {}
    for state in stored.values():
        if state.pack_id not in seen_ids and state.purchase_time is not None:
            missing.setdefault((state.name, state.total, state.purchase_time), state)

    events: list[PackEvent] = []
    states: dict[str, PackState] = {}
    reissued: list[tuple[str, str]] = []
    for pack in packs:
        before = stored.get(pack.pack_id)
        if before is None and previous is not None and pack.purchase_time is not None:
            match = missing.pop((pack.name, pack.total, pack.purchase_time), None)
            if match is not None:
                reissued.append((match.pack_id, pack.pack_id))
                before = replace(match, pack_id=pack.pack_id)
        if before is None:
            state = fresh_state(pack)
            if previous is not None and pack.is_active:
                # A pack never seen before; one that arrives already dead (an old pack that
                # only now falls inside a widened look-back window) is not news.
                events.append(PackEvent(f"new:{state.key_id}", EventKind.NEW_PACK, pack))
        else:
            state, transition = _status_step(before, pack)
            events.extend(transition)
        state, expiring = _expiry_step(state, pack, now, warning_days)
        events.extend(expiring)
        states[pack.pack_id] = state
    matched = {old for old, _ in reissued}
    for pack_id, state in stored.items():
        if pack_id in seen_ids:
            continue
        if pack_id in matched:
            continue  # moved to its new id; the old row goes
        states[pack_id] = state if state.absent_since is not None else replace(state, absent_since=now)
    return Detection(events, states, reissued)


def _episode_key(kind: str, state: PackState, suffix: str = "", episode: int = 0) -> str:
    # Episode 0 keeps the key format of earlier releases, so an upgrade repeats nothing.
    return f"{kind}:{state.key_id}{suffix}" + (f":{episode}" if episode else "")


def _status_step(before: PackState, pack: ResourcePack) -> tuple[PackState, list[PackEvent]]:
    seen = str(pack.status)
    state = replace(
        before,
        name=pack.name,
        remaining=pack.remaining,
        total=pack.total,
        invalid_time=pack.invalid_time,
        purchase_time=pack.purchase_time,
        absent_since=None,
    )
    if seen == before.status:
        return replace(state, pending_status=None), []
    if before.status in ENDED_STATUSES and seen not in ENDED_STATUSES:
        # Leaving an ended status: only once it holds, so a one-poll glitch does not re-arm.
        if before.pending_status == seen:
            return replace(state, status=seen, pending_status=None, episode=before.episode + 1), []
        return replace(state, pending_status=seen), []
    state = replace(state, status=seen, pending_status=None)
    if seen == PackStatus.RUN_OUT:
        return state, [PackEvent(_episode_key("run_out", state, episode=state.episode), EventKind.RUN_OUT, pack)]
    if seen == PackStatus.EXPIRED:
        return state, [PackEvent(_episode_key("expired", state, episode=state.episode), EventKind.EXPIRED, pack)]
    if seen == PackStatus.ONLINE and before.status == PackStatus.TO_BE_ONLINE:
        return state, [PackEvent(_episode_key("online", state, episode=state.episode), EventKind.CAME_ONLINE, pack)]
    return state, []


def _expiry_step(
    state: PackState, pack: ResourcePack, now: datetime, warning_days: int
) -> tuple[PackState, list[PackEvent]]:
    level = expiry_level(pack, now, warning_days)
    warned = state.expiry_level
    if level is not None and (not warned or level < warned):
        # A reminder not yet given in this episode; the most urgent level only (a pack first
        # seen 20 hours from expiry gets the one-day reminder, not both at once). Recorded in
        # the state, so it is not detected again even after the outbox forgets it.
        key = _episode_key("expiring", state, f":{level}d", state.expiry_episode)
        event = PackEvent(key, EventKind.EXPIRING, pack, days=level)
        return replace(state, expiry_level=level, expiry_outside=0), [event]
    if level is not None and level == warned:
        return (replace(state, expiry_outside=0) if state.expiry_outside else state), []
    # Less urgent than the reminder already given: the expiry moved later (back out of the
    # last-day window, or out of the window altogether). Once that holds, the next approach
    # is a new episode with its own reminders.
    moved_later = bool(warned) and (
        level is not None
        or (
            pack.status == PackStatus.ONLINE
            and pack.invalid_time is not None
            and pack.invalid_time - now > timedelta(days=warning_days)
        )
    )
    if moved_later:
        count = state.expiry_outside + 1
        if count >= HOLD_POLLS:
            return replace(state, expiry_episode=state.expiry_episode + 1, expiry_level=0, expiry_outside=0), []
        return replace(state, expiry_outside=count), []
    return (replace(state, expiry_outside=0) if state.expiry_outside else state), []
