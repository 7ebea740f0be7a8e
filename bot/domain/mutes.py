"""Mutes: "stop warning about this pack for 7 days", recorded with who and until when.

A warning about a muted pack (or a muted family's run-out warning) is recorded as skipped
when it would be sent: not sent then, and not later either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.accounts import scoped
from bot.domain.alerts import key_part

MUTE_FOR = timedelta(days=7)


def pack_scope(account: str, pack_id: str) -> str:
    return "pack:" + scoped(account, key_part(pack_id))


def family_scope(account: str, family: str) -> str:
    return "family:" + scoped(account, key_part(family))


@dataclass(frozen=True, slots=True)
class Mute:
    scope: str
    label: str
    muted_by: str
    until: datetime
