"""The `kling-bot balance` table: every column has a header, and totals match what Slack shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.domain.packs import PackStatus, ResourcePack
from bot.kling.accounts import AllBalances
from bot.kling.cache import Snapshot
from bot.views.terminal import balance_table

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def pack(name: str, status: PackStatus = PackStatus.ONLINE, remaining: float = 300) -> ResourcePack:
    return ResourcePack(
        name, name, "decreasing_total", 1000, remaining, NOW - timedelta(days=1), NOW + timedelta(days=1),
        NOW + timedelta(days=12), status,
    )  # fmt: skip


def table(*packs: ResourcePack) -> list[str]:
    balances = AllBalances.of(Snapshot(packs=packs, fetched_at=NOW))
    return balance_table(balances, NOW, include_inactive=False).splitlines()


def test_every_column_has_a_header() -> None:
    """The "in N days" column is headed too: as many header words as dash groups under them."""
    lines = table(pack("Video Generation - A"))
    header, dashes, row = lines[0], lines[1], lines[2]
    assert "in 12 days" in row
    for group in re.finditer(r"-+", dashes):
        assert header[group.start() : group.end()].strip(), f"no header over columns {group.span()}"


def test_totals_include_families_with_only_pending_packs() -> None:
    """A family whose only pack is not yet active is in the totals, as in Slack, not silently left out."""
    lines = table(pack("Video Generation - A"), pack("Lip Sync - B", PackStatus.TO_BE_ONLINE, 500))
    totals = lines[lines.index("Totals of active packs per family:") + 1 :]
    assert "  Lip Sync: nothing active yet, +500 in 1 pack(s) not yet active" in totals
    assert "  Video Generation: 300 / 1,000 left (30%)" in totals
