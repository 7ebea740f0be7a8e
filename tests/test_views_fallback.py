"""Fallback `text` (what notifications show) reads cleanly, and grouped warnings say what each single one says."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from bot.domain.alerts import EventKind, PackEvent
from bot.domain.packs import PackStatus, ResourcePack, family_totals
from bot.views.alerts import batch_messages, pack_event_message
from bot.views.blocks import plain
from bot.views.digest import DigestData, FamilyUsage, digest_message
from tests.blocks import all_text, assert_valid_message

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def pack(name: str, status: PackStatus = PackStatus.ONLINE, remaining: float = 750, days: float = 30) -> ResourcePack:
    return ResourcePack(
        name, name, "decreasing_total", 1000, remaining, NOW - timedelta(days=1), NOW + timedelta(days=2),
        NOW + timedelta(days=days), status,
    )  # fmt: skip


def test_plain_drops_markup_but_keeps_underscores_in_names() -> None:
    """Bold, italics, strike and code marks go; underscores inside words and entities stay."""
    text = plain("*my_pack_v2 - A* is used up. _Said once._ ~old~ `/kling-balance all` &lt;x&gt; :white_check_mark:")
    assert text == "my_pack_v2 - A is used up. Said once. old /kling-balance all &lt;x&gt; :white_check_mark:"


def test_plain_escapes_what_was_left_raw() -> None:
    """A raw `<`, `>` or `&` reaching plain() is escaped, so a fallback can never ping; date tokens stay."""
    date = "<!date^1796040000^{date_short_pretty}|2026-12-01 12:00 UTC>"
    assert plain(f"<!channel> & <@U1> {date} &amp;") == f"&lt;!channel&gt; &amp; &lt;@U1&gt; {date} &amp;"


def test_grouped_warnings_fallback_has_no_stray_markup() -> None:
    """A batch's fallback has no `_Said once._` underscores or `*` marks, yet keeps `_` inside pack names."""
    packs = [pack("my_pack_v2 - A", PackStatus.RUN_OUT, 0), pack("Video - B", PackStatus.EXPIRED, 10, -1)]
    lines = [pack_event_message(PackEvent(p.name, k, p), NOW)["line"] for p in packs for k in EventKind]
    [(count, message)] = batch_messages(lines)
    assert count == len(lines)
    assert_valid_message(message)
    assert "my_pack_v2" in message["text"] and "Said once." in message["text"]
    assert "_Said" not in message["text"] and "*" not in message["text"] and "`" not in message["text"]


def test_grouped_warnings_fallback_has_one_line_per_warning() -> None:
    """Each warning in a batch's fallback starts on its own line."""
    events = [PackEvent(f"k{i}", EventKind.RUN_OUT, pack(f"P{i} - x")) for i in range(3)]
    lines = [pack_event_message(event, NOW)["line"] for event in events]
    [(_, message)] = batch_messages(lines)
    assert len(message["text"].splitlines()) == 4


def test_new_pack_lines_say_size_and_expiry() -> None:
    """A grouped "new pack" or "now active" line gives the pack's balance and expiry, like the single message."""
    for kind in (EventKind.NEW_PACK, EventKind.CAME_ONLINE):
        message = pack_event_message(PackEvent("k", kind, pack("Video Generation - B")), NOW)
        assert "750 / 1,000 left" in message["line"] and "in 30 days" in message["line"], message["line"]
        assert "750 / 1,000 left" in all_text(message) and "in 30 days" in all_text(message)


def test_digest_fallback_has_one_line_per_item() -> None:
    """The digest's fallback puts its title, each family and each summary on separate lines, unmarked."""
    packs = [pack("Video_Gen - A"), pack("Image - B", days=3), pack("Audio - C", PackStatus.RUN_OUT, 0)]
    data = DigestData(
        now=NOW, since=NOW - timedelta(days=1), first=False,
        usage=[FamilyUsage(t, 50) for t in family_totals(packs)], expiring=packs[1:2], ended=packs[2:],
        zone_name="UTC", digest_time=time(9),
    )  # fmt: skip
    message = digest_message(data)
    assert_valid_message(message)
    lines = message["text"].splitlines()
    assert lines[0].startswith("Kling daily digest")
    assert "Image: 750 left, used 50 since the last digest (24 hours ago)" in lines
    assert "Video_Gen: 750 left, used 50 since the last digest (24 hours ago)" in lines
    assert "1 pack(s) expiring soon." in lines and "1 pack(s) ended." in lines
