"""Resource packs as the bot understands them, and pure functions over them.

Nothing here knows about HTTP or Slack: the Kling client builds these objects, the views
and alerting read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.domain.accounts import DEFAULT_ACCOUNT


class PackStatus(StrEnum):
    TO_BE_ONLINE = "toBeOnline"
    ONLINE = "online"
    EXPIRED = "expired"
    RUN_OUT = "runOut"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    PackStatus.TO_BE_ONLINE: "Not yet active",
    PackStatus.ONLINE: "Active",
    PackStatus.EXPIRED: "Expired",
    PackStatus.RUN_OUT: "Used up",
}


class PackType(StrEnum):
    DECREASING_TOTAL = "decreasing_total"
    CONSTANT_PERIOD = "constant_period"


# Kling may add values the bot does not know yet; those are kept as the raw string so they
# can still be shown rather than crashing the parse.
Status = PackStatus | str
Type = PackType | str

ACTIVE_STATUSES = frozenset({PackStatus.ONLINE, PackStatus.TO_BE_ONLINE})


def parse_status(value: str) -> Status:
    try:
        return PackStatus(value)
    except ValueError:
        return value


def parse_type(value: str) -> Type:
    try:
        return PackType(value)
    except ValueError:
        return value


def status_label(status: Status) -> str:
    return status.label if isinstance(status, PackStatus) else f"Unknown status “{status}”"


def family_of(name: str) -> str:
    """The pack family: the part of the name before " - " ("Video Generation")."""
    head, sep, _ = name.partition(" - ")
    return head.strip() if sep and head.strip() else name.strip()


def matching_families(typed: str, families: Iterable[str]) -> list[str]:
    """The families a person may have meant: an exact match in any case, else every family
    whose name contains the text (several means the text is ambiguous)."""
    names = list(families)
    needle = typed.strip().casefold()
    exact = [f for f in names if f.casefold() == needle]
    if exact:
        return exact[:1]
    return sorted((f for f in names if needle in f.casefold()), key=str.casefold)


def resolve_family(typed: str, families: Iterable[str]) -> str | None:
    """The family a person meant, or None when nothing or several match."""
    found = matching_families(typed, families)
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True, slots=True)
class ResourcePack:
    name: str
    pack_id: str
    pack_type: Type
    total: float
    remaining: float
    purchase_time: datetime | None
    effective_time: datetime | None
    invalid_time: datetime | None
    status: Status
    # The Kling account (its key) the pack belongs to; ids are unique only within one.
    account: str = DEFAULT_ACCOUNT

    @property
    def family(self) -> str:
        return family_of(self.name)

    @property
    def is_active(self) -> bool:
        """Online or bought-but-not-yet-effective: the packs shown by default."""
        return self.status in ACTIVE_STATUSES

    @property
    def fraction_left(self) -> float | None:
        if self.total <= 0:
            return None
        return max(0.0, min(1.0, self.remaining / self.total))


def pack_to_dict(pack: ResourcePack) -> dict[str, Any]:
    """A pack as plain JSON values (times as Unix milliseconds), for storing Kling's answer."""

    def ms(when: datetime | None) -> int | None:
        return None if when is None else int(when.timestamp() * 1000)

    return {
        "name": pack.name,
        "pack_id": pack.pack_id,
        "pack_type": str(pack.pack_type),
        "total": pack.total,
        "remaining": pack.remaining,
        "purchase_time": ms(pack.purchase_time),
        "effective_time": ms(pack.effective_time),
        "invalid_time": ms(pack.invalid_time),
        "status": str(pack.status),
        "account": pack.account,
    }


def pack_from_dict(data: Mapping[str, Any]) -> ResourcePack:
    """The inverse of `pack_to_dict`."""

    def when(ms: Any) -> datetime | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)

    return ResourcePack(
        name=str(data["name"]),
        pack_id=str(data["pack_id"]),
        pack_type=parse_type(str(data["pack_type"])),
        total=float(data["total"]),
        remaining=float(data["remaining"]),
        purchase_time=when(data.get("purchase_time")),
        effective_time=when(data.get("effective_time")),
        invalid_time=when(data.get("invalid_time")),
        status=parse_status(str(data["status"])),
        account=str(data.get("account") or DEFAULT_ACCOUNT),
    )


@dataclass(frozen=True, slots=True)
class FamilyTotal:
    """What one family of packs has left. Only online packs count as usable;
    packs not yet effective are summed apart so the two are never confused."""

    family: str
    remaining: float
    total: float
    online_packs: int
    pending_remaining: float = 0.0
    pending_packs: int = 0
    next_expiry: datetime | None = field(default=None)
    account: str = DEFAULT_ACCOUNT

    @property
    def fraction_left(self) -> float | None:
        if self.total <= 0:
            return None
        return max(0.0, min(1.0, self.remaining / self.total))


@dataclass(slots=True)
class _FamilyAcc:
    remaining: float = 0.0
    total: float = 0.0
    online: int = 0
    pending_remaining: float = 0.0
    pending: int = 0
    next_expiry: datetime | None = None


def family_totals(packs: Iterable[ResourcePack]) -> list[FamilyTotal]:
    """Totals per account and family (never summed across accounts), sorted by account, then
    family name; families with no active pack are left out."""
    acc: dict[tuple[str, str], _FamilyAcc] = {}
    for pack in packs:
        if not pack.is_active:
            continue
        row = acc.setdefault((pack.account, pack.family), _FamilyAcc())
        if pack.status == PackStatus.ONLINE:
            row.remaining += pack.remaining
            row.total += pack.total
            row.online += 1
            if pack.invalid_time and (row.next_expiry is None or pack.invalid_time < row.next_expiry):
                row.next_expiry = pack.invalid_time
        else:
            row.pending_remaining += pack.remaining
            row.pending += 1
    return [
        FamilyTotal(
            family=name,
            remaining=row.remaining,
            total=row.total,
            online_packs=row.online,
            pending_remaining=row.pending_remaining,
            pending_packs=row.pending,
            next_expiry=row.next_expiry,
            account=account,
        )
        for (account, name), row in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1].casefold()))
    ]


def _sort_key(pack: ResourcePack) -> tuple[int, float, str]:
    # Active packs first, soonest expiry first; a pack with no expiry goes last in its group.
    group = 0 if pack.status == PackStatus.ONLINE else 1 if pack.is_active else 2
    expiry = pack.invalid_time.timestamp() if pack.invalid_time else float("inf")
    return (group, expiry, pack.name.casefold())


def select_packs(
    packs: Sequence[ResourcePack], *, include_inactive: bool = False, name_filter: str = ""
) -> list[ResourcePack]:
    """The packs a user asked to see, in display order."""
    needle = name_filter.strip().casefold()
    chosen = [p for p in packs if (include_inactive or p.is_active) and (not needle or needle in p.name.casefold())]
    return sorted(chosen, key=_sort_key)
