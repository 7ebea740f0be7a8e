"""Every message the views can produce keeps hostile pack names and typed words inert: no pings, no markup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from bot.domain.alerts import EventKind, PackEvent
from bot.domain.commands import UsageProblem, parse_command
from bot.domain.packs import PackStatus, ResourcePack, family_totals
from bot.domain.thresholds import Level, Threshold, ThresholdKind
from bot.kling.cache import Snapshot
from bot.kling.errors import AuthenticationError
from bot.store.db import SubscriptionRow
from bot.subscriptions import Subscribed, UnknownFamily, Unsubscribed
from bot.views.alerts import batch_messages, pack_event_message, threshold_dm
from bot.views.balance import balance_message, error_message, help_message, internal_error_message, refusal_message
from bot.views.digest import DigestData, FamilyUsage, digest_message
from bot.views.subscriptions import subscribed_message, subscriptions_message, unsubscribed_message, usage_message
from tests.blocks import assert_valid_message

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>")
HOSTILE = (*MENTIONS, "*bold*", "<family>", "_it_", "~gone~", "`code`", "a & b")
# Slack's date token, which the bot writes on purpose: the one place `<` and `>` are meant.
DATE_TOKEN = re.compile(r"<!date\^\d+\^[^<>|]*\|[^<>]*>")


def pack(name: str, status: PackStatus = PackStatus.ONLINE, remaining: float = 40, days: float = 5) -> ResourcePack:
    return ResourcePack(
        name, name, "decreasing_total", 100, remaining, NOW - timedelta(days=9), NOW - timedelta(days=9),
        NOW + timedelta(days=days), status,
    )  # fmt: skip


def hostile_packs() -> list[ResourcePack]:
    packs = []
    for i, word in enumerate(HOSTILE):
        packs.append(pack(f"{word} - pack {i}"))
        packs.append(pack(f"Video {word} {i}", status=PackStatus.TO_BE_ONLINE, remaining=100, days=40))
        packs.append(pack(f"{word} - ended {i}", status=PackStatus.RUN_OUT, remaining=0))
    return packs


def every_message() -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, message) for every reply, warning, DM and digest the views produce, fed hostile input."""
    packs = hostile_packs()
    snapshot = Snapshot(packs=tuple(packs), fetched_at=NOW - timedelta(minutes=2))
    error = AuthenticationError("Kling: authentication failed", http_status=401, code=1000)
    stale = Snapshot(packs=tuple(packs), fetched_at=NOW - timedelta(hours=2), stale=True, error=error)
    many = Snapshot(packs=tuple(pack(f"{w} - many {i}") for i in range(60) for w in HOSTILE[:1]), fetched_at=NOW)
    for what, snap in (("fresh", snapshot), ("stale", stale), ("many", many)):
        for include_inactive in (False, True):
            for name_filter in ("", "pack", "nothing matches", "ended", *HOSTILE):
                yield (
                    f"balance {what} all={include_inactive} filter={name_filter!r}",
                    balance_message(snap, NOW, include_inactive=include_inactive, name_filter=name_filter),
                )
    yield "balance no packs", balance_message(Snapshot(packs=(), fetched_at=NOW), NOW)
    yield "error", error_message(error)
    yield "refusal", refusal_message()
    yield "internal error", internal_error_message()
    yield "help", help_message()

    lines = []
    for p in packs:
        for kind in EventKind:
            message = pack_event_message(PackEvent(f"{p.name}/{kind}", kind, p, days=7), NOW)
            lines.append(message["line"])
            yield f"{kind} {p.name}", message
    threshold = Threshold(ThresholdKind.PERCENT, 20)
    for word in HOSTILE:
        dm = threshold_dm(threshold, Level(word, 10, 100), family_filter=word)
        lines.append(dm["line"])
        yield f"threshold dm {word}", dm
    for _, message in batch_messages(lines):
        yield "batch", message

    totals = family_totals(packs)
    data = DigestData(
        now=NOW, since=NOW - timedelta(days=1), first=False,
        usage=[FamilyUsage(t, 5) for t in totals], expiring=packs[::3], ended=packs[2::3],
        zone_name="Europe/Berlin", digest_time=time(9), stale_note="Kling: <!channel> *down*",
    )  # fmt: skip
    yield "digest", digest_message(data)

    for word in HOSTILE:
        for text in (
            f"subscribe {word}", f"subscribe 20% {word}", "subscribe 20% for", f"unsubscribe {word} for {word}",
            f"unsub {word} {word}", "subscribe", f"subscribe 250% for {word}",
        ):  # fmt: skip
            command = parse_command(text)
            if isinstance(command, UsageProblem):
                yield f"usage {text!r}", usage_message(command)
        yield f"usage problem {word}", usage_message(UsageProblem(word, word))
        rows = (SubscriptionRow(1, "U1", word, "percent", 20), SubscriptionRow(2, "U1", "", "absolute", 500))
        levels = (Level(word, 10, 100), Level("Video", 90, 100))
        for created in (True, False):
            yield f"subscribed {word}", subscribed_message(Subscribed(threshold, word, created, levels))
        yield f"unknown family {word}", subscribed_message(UnknownFamily(word, (word, "Video")))
        yield f"subscriptions {word}", subscriptions_message(rows)
        yield f"unsubscribed {word}", unsubscribed_message(Unsubscribed(removed=rows))
        yield f"ambiguous {word}", unsubscribed_message(Unsubscribed(removed=(), ambiguous=rows))
    yield "no subscriptions", subscriptions_message(())
    yield "nothing unsubscribed", unsubscribed_message(Unsubscribed(removed=()))


def texts(message: dict[str, Any], *, only: str | None = None) -> list[str]:
    """The fallback `text` and every text in the blocks (header included), or only the block texts of type `only`."""
    found = [] if only else [message["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str) and only in (None, node.get("type")):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message["blocks"])
    return found


MESSAGES = list(every_message())


@pytest.mark.parametrize(("what", "message"), MESSAGES, ids=[what for what, _ in MESSAGES])
def test_no_raw_angle_brackets_outside_date_tokens(what: str, message: dict[str, Any]) -> None:
    """No `<` or `>` reaches Slack unescaped except the date tokens the bot writes on purpose."""
    assert_valid_message(message)
    for text in texts(message):
        bare = DATE_TOKEN.sub("", text)
        assert "<" not in bare and ">" not in bare, f"{what}: {text!r}"


@pytest.mark.parametrize(("what", "message"), MESSAGES, ids=[what for what, _ in MESSAGES])
def test_nothing_the_bot_posts_can_ping(what: str, message: dict[str, Any]) -> None:
    """Neither the fallback text (what notifications show) nor the blocks hold a mention."""
    for text in texts(message):
        for mention in (*MENTIONS, "<@", "<!subteam"):
            assert mention not in text, f"{what}: {text!r}"


def test_placeholders_are_written_as_entities() -> None:
    """The bot's own placeholders such as `<family>` reach Slack as `&lt;family&gt;`."""
    assert "&lt;part of a name&gt;" in help_message()["blocks"][0]["text"]["text"]
    usage = usage_message(UsageProblem("Say which threshold to stop.", "`unsubscribe 20%` (add `for <family>`)"))
    assert "`for &lt;family&gt;`" in usage["blocks"][0]["text"]["text"]
    listing = subscriptions_message((SubscriptionRow(1, "U1", "", "percent", 20),))
    assert "unsubscribe &lt;threshold&gt;" in listing["blocks"][0]["text"]["text"]


@pytest.mark.parametrize("typed", ["*bold*", "_it_", "~gone~", "`code`"])
def test_typed_words_echoed_back_are_not_formatted(typed: str) -> None:
    """A filter or family a person typed is shown as typed, never as bold, italic, strike or code."""
    snapshot = Snapshot(packs=(pack("Video - A"),), fetched_at=NOW)
    echoes = [
        balance_message(snapshot, NOW, name_filter=typed),
        subscribed_message(UnknownFamily(typed, ("Video",))),
        usage_message(UsageProblem(f"“{typed}” is not a threshold.", "`subscribe 20%`")),
    ]
    for message in echoes:
        mrkdwn = texts(message, only="mrkdwn")
        assert mrkdwn and not any(typed in text for text in mrkdwn), mrkdwn
