"""The Block Kit balance view: within Slack's limits for any account, and saying the right things."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.packs import PackStatus, ResourcePack
from bot.kling.cache import Snapshot
from bot.kling.errors import AuthenticationError
from bot.views.balance import balance_message, error_message, help_message
from tests.blocks import all_text, assert_valid_message

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def pack(
    name: str,
    remaining: float = 50,
    total: float = 100,
    status: str | PackStatus = PackStatus.ONLINE,
    expires_in_days: float = 10,
) -> ResourcePack:
    return ResourcePack(
        name,
        name.replace(" ", ""),
        "decreasing_total",
        total,
        remaining,
        NOW - timedelta(days=30),
        NOW - timedelta(days=30),
        NOW + timedelta(days=expires_in_days),
        status,
    )


def snap(*packs: ResourcePack, **kw: object) -> Snapshot:
    return Snapshot(packs=packs, fetched_at=NOW - timedelta(minutes=3), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, 1, 39, 40, 41, 300, 1000])
def test_any_number_of_packs_gives_a_valid_message(count: int) -> None:
    """From no packs to 1,000, the message keeps every Block Kit limit and has a fallback text."""
    packs = [
        pack(f"Family {i % 37} - a pack with a long name number {i}" * 2, expires_in_days=i % 50) for i in range(count)
    ]
    for include_inactive in (False, True):
        assert_valid_message(balance_message(snap(*packs), NOW, include_inactive=include_inactive))


def test_many_families_still_fit() -> None:
    """1,000 packs each in its own family still fit in 50 blocks, saying what was left out."""
    packs = [pack(f"Family number {i} - pack") for i in range(1000)]
    message = balance_message(snap(*packs), NOW)
    assert_valid_message(message)
    assert "more famil" in all_text(message)


def test_family_totals_sum_online_packs_only() -> None:
    """A family's total adds its online packs; packs not yet active are counted apart."""
    message = balance_message(
        snap(
            pack("Video Generation - A", 300, 1000),
            pack("Video Generation - B", 200, 500),
            pack("Video Generation - C", 900, 900, status=PackStatus.TO_BE_ONLINE),
            pack("Video Generation - D", 0, 800, status=PackStatus.RUN_OUT),
        ),
        NOW,
    )
    text = all_text(message)
    assert "500 / 1,500 left (33%)" in text
    assert "+900 in 1 pack(s) not yet active" in text
    assert "Video Generation: 500 / 1,500 left" in message["text"]


def test_pack_line_shows_balance_bar_expiry_and_status() -> None:
    """Each pack shows remaining / total, percent, a bar, a date token with "in N days", and status."""
    text = all_text(balance_message(snap(pack("Video Generation - A", 250, 1000, expires_in_days=12)), NOW))
    assert "250 / 1,000 (25%)" in text
    assert "▓" in text and "░" in text
    expiry = int((NOW + timedelta(days=12)).timestamp())
    assert f"<!date^{expiry}^" in text and "in 12 days" in text
    assert "Active" in text


def test_pack_not_yet_active_shows_start_before_expiry() -> None:
    """A bought pack that is not active yet says when it starts, then when it expires."""
    pending = pack("Video Generation - A", status=PackStatus.TO_BE_ONLINE, expires_in_days=40)
    text = all_text(balance_message(snap(pending), NOW))
    assert "starts" in text and text.index("starts") < text.index("expires")


def test_unknown_status_is_shown_as_is() -> None:
    """A status Kling added later is displayed, not hidden or crashing."""
    text = all_text(balance_message(snap(pack("Video Generation - A", status="paused")), NOW, include_inactive=True))
    assert "paused" in text


def test_names_cannot_inject_slack_markup() -> None:
    """A pack name with <, > or & is escaped so it cannot ping a channel or forge a link."""
    text = all_text(balance_message(snap(pack("Video <!channel> & co - A")), NOW))
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text


def test_stale_snapshot_is_labelled_with_age_and_reason() -> None:
    """A stale answer starts with a warning saying how old it is and why."""
    error = AuthenticationError("Kling: authentication failed", http_status=401, code=1000)
    message = balance_message(snap(pack("Video Generation - A"), stale=True, error=error), NOW)
    text = all_text(message)
    assert "3 min ago" in text and "could not be asked" in text and "rejected the bot's credentials" in text
    assert "(stale)" in message["text"]
    assert "KLING_" not in text and "401" not in text


def test_only_inactive_packs_points_to_all() -> None:
    """When every pack has expired or run out, the default view says so and suggests `all`."""
    text = all_text(balance_message(snap(pack("Video - A", status=PackStatus.EXPIRED, expires_in_days=-1)), NOW))
    assert "/kling-balance all" in text


def test_error_message_says_what_to_do() -> None:
    """A Kling error becomes what happened and what the user can do, with no setting names or codes."""
    message = error_message(AuthenticationError("Kling: authentication failed", http_status=401, code=1000))
    assert_valid_message(message)
    text = all_text(message)
    assert "rejected" in text and "whoever runs the bot" in text
    assert "KLING_" not in text and "1000" not in text


def test_help_is_valid() -> None:
    """The help message keeps Block Kit's limits."""
    assert_valid_message(help_message())
