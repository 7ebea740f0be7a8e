"""Exactly once through a lost answer or a crash (the attempt id in the message's metadata,
looked up in the channel's history), at-least-once said plainly without the history scopes,
and messages given up after OUTBOX_GIVE_UP_DAYS, reported, never dropped."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.cli import _slack_identity
from bot.config import Settings
from bot.notify import DELIVERY_EVENT
from bot.store import schema
from bot.store.db import Store, to_ms
from bot.views.manifest import HISTORY_SCOPES
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import FakeSlack
from tests.world import ALERTS, DIGEST, World


@pytest.fixture
def world(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    w = World(kling, slack, database_url)
    yield w
    w.close()


def store_of(world: World) -> Store:
    assert world.services.store is not None
    return world.services.store


def owe(world: World, key: str, text: str, target: str = DIGEST, *, to_user: bool = False) -> None:
    with store_of(world).transaction() as tx:
        tx.enqueue(key, "digest", target, {"text": text}, world.clock.now(), to_user=to_user)


def kept(world: World, channel: str) -> list[str]:
    """The texts Slack holds in a channel (what people see), whatever the bot was told."""
    return [str(m["text"]) for m in world.slack.messages[channel]]


def test_every_post_carries_its_attempt_id_in_metadata(world: World) -> None:
    """Each message the bot posts has metadata naming its delivery attempt, so it can be found again."""
    owe(world, "note:1", "hello")
    world.jobs.deliver()
    [message] = world.slack.messages[DIGEST]
    assert message["metadata"]["event_type"] == DELIVERY_EVENT
    assert len(message["metadata"]["event_payload"]["attempt"]) == 32


def test_a_post_slack_took_whose_answer_was_lost_is_not_sent_again(world: World) -> None:
    """Slack keeps the post but the answer is cut off: the retry finds it in the history and marks it sent."""
    owe(world, "note:1", "hello")
    world.slack.fail("chat.postMessage", cut_off=True, accepted=True)
    first = world.jobs.deliver()
    assert first.failed == {"note:1": "network: IncompleteRead"}
    world.clock.advance(120)
    second = world.jobs.deliver()
    assert second.recovered and "note:1" in second.sent
    assert kept(world, DIGEST) == ["hello"]
    assert len(world.slack.calls_to("conversations.history")) == 1
    with store_of(world).transaction() as tx:
        status = tx.outbox_status("note:1")
    assert status is not None and status["sent_at"] is not None and status["last_error"] is None


def test_a_post_that_never_reached_slack_is_sent_after_the_lookup(world: World) -> None:
    """The answer was lost before Slack took the post: the lookup finds nothing and it is sent, once."""
    owe(world, "note:1", "hello")
    world.slack.fail("chat.postMessage", cut_off=True)  # not kept by Slack
    world.jobs.deliver()
    world.clock.advance(120)
    second = world.jobs.deliver()
    assert second.sent == ["note:1"] and not second.recovered
    assert kept(world, DIGEST) == ["hello"]


def test_a_crashed_process_s_dm_is_found_in_the_dm_history(world: World) -> None:
    """A DM whose process died after Slack took it (attempt recorded, claim lapsed) is marked sent, not re-sent."""
    owe(world, "dm:1", "you crossed 20%", "U1", to_user=True)
    store = store_of(world)
    # The crashed process: it claimed the row, recorded its attempt, and Slack kept the post.
    with store.transaction() as tx:
        [row] = tx.claim_due(world.clock.now(), lease_ms=60_000, limit=10)
        tx.begin_posting([row.id], "a" * 32, world.clock.now())
    world.slack.messages["DU1"].append(
        {
            "type": "message",
            "ts": f"{world.clock.now().timestamp():.6f}",
            "text": "you crossed 20%",
            "metadata": {"event_type": DELIVERY_EVENT, "event_payload": {"attempt": "a" * 32}},
        }
    )
    assert world.jobs.deliver().sent == []  # still claimed by the dead process
    world.clock.advance(61)
    report = world.jobs.deliver()
    assert report.recovered == {"dm:1": world.slack.messages["DU1"][0]["ts"]}
    assert kept(world, "DU1") == ["you crossed 20%"]
    [lookup] = world.slack.calls_to("conversations.history")
    assert lookup["channel"] == "DU1" and lookup["include_all_metadata"] in (True, "true", "1")


def test_without_history_scopes_it_is_sent_again_and_says_at_least_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the history scopes an unresolved attempt is sent again (at-least-once), and the log says why."""
    world.slack.scopes -= HISTORY_SCOPES
    owe(world, "note:1", "hello")
    world.slack.fail("chat.postMessage", cut_off=True, accepted=True)
    world.jobs.deliver()
    world.clock.advance(120)
    with caplog.at_level(logging.WARNING, logger="bot.notify"):
        report = world.jobs.deliver()
    assert report.sent == ["note:1"]
    assert kept(world, DIGEST) == ["hello", "hello"]
    assert "at-least-once" in caplog.text
    assert world.slack.calls_to("conversations.history") == []


def test_a_rate_limited_lookup_keeps_it_owed_and_unsent_until_slack_can_be_asked(world: World) -> None:
    """A lookup Slack rate-limits is retried later; meanwhile nothing is re-posted (no duplicate)."""
    owe(world, "note:1", "hello")
    world.slack.fail("chat.postMessage", cut_off=True, accepted=True)
    world.jobs.deliver()
    world.clock.advance(120)
    world.slack.fail("conversations.history", status=429, retry_after=60)
    waiting = world.jobs.deliver()
    assert waiting.failed == {"note:1": "Slack: ratelimited"} and not waiting.sent
    world.clock.advance(120)
    assert world.jobs.deliver().recovered
    assert kept(world, DIGEST) == ["hello"]


def test_start_up_says_at_least_once_without_the_history_scopes(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve` and `worker` say at start when the token lacks the history scopes, naming them and the fix."""
    settings = Settings(slack_bot_token="xoxb-test-bot-token", slack_api_url=slack.api_url)
    with caplog.at_level(logging.WARNING, logger="bot.cli"):
        identity = _slack_identity(settings, io.StringIO())
    assert isinstance(identity, dict) and identity["_history_granted"] is True
    assert "at-least-once" not in caplog.text
    slack.scopes -= {"im:history"}
    with caplog.at_level(logging.WARNING, logger="bot.cli"):
        identity = _slack_identity(settings, io.StringIO())
    assert isinstance(identity, dict) and identity["_history_granted"] is False
    assert "im:history" in caplog.text and "at-least-once" in caplog.text and "manifest.yml" in caplog.text


def test_a_message_owed_past_the_give_up_days_is_given_up_kept_and_reported(world: World) -> None:
    """Owed past OUTBOX_GIVE_UP_DAYS (not_in_channel all along): given up once, kept, not retried, not deleted."""
    owe(world, "warn:1", "pack ran out", ALERTS)
    world.slack.fail("chat.postMessage", error="not_in_channel", times=1000)
    first = world.jobs.deliver()
    assert first.needs_fix and not first.given_up
    world.clock.advance(timedelta(days=7, minutes=1).total_seconds())
    report = world.jobs.deliver()
    assert report.given_up == {"warn:1": "Slack: not_in_channel"}
    tries = len(world.slack.calls_to("chat.postMessage"))
    world.clock.advance(3600)
    again = world.jobs.deliver()
    assert not again.given_up and not again.failed
    assert len(world.slack.calls_to("chat.postMessage")) == tries  # no longer retried
    with store_of(world).transaction() as tx:
        [row] = tx.given_up()
        counts = tx.outbox_counts()
    assert row["key"] == "warn:1" and row["last_error"] == "Slack: not_in_channel"
    assert counts["given_up"] == 1 and counts["owed"] == 0


def test_a_message_being_sent_is_not_given_up_under_its_sender(world: World) -> None:
    """A message claimed by a live process is not given up while that claim holds."""
    owe(world, "note:1", "hello")
    store = store_of(world)
    with store.transaction() as tx:
        tx.claim_due(world.clock.now(), lease_ms=10 * 86_400_000, limit=10)
        tx.conn.execute(update(schema.outbox).values(created_at=to_ms(world.clock.now() - timedelta(days=8))))
    assert world.jobs.deliver().given_up == {}


def test_a_slack_internal_error_after_it_kept_the_post_is_looked_up_not_reposted(world: World) -> None:
    """Slack answers 500 internal_error though it kept the post: the retry finds it instead of posting again."""
    owe(world, "note:1", "hello")
    world.slack.fail("chat.postMessage", status=500, error="internal_error", accepted=True)
    assert world.jobs.deliver().failed == {"note:1": "Slack: internal_error"}
    world.clock.advance(120)
    assert world.jobs.deliver().recovered
    assert kept(world, DIGEST) == ["hello"]


def test_a_lapsed_claim_cannot_post_nor_undo_the_process_that_took_the_rows(world: World) -> None:
    """Once another process claimed the rows, the first one's begin_posting and release do nothing."""
    owe(world, "note:1", "hello")
    store = store_of(world)
    now = world.clock.now()
    with store.transaction() as tx:
        [row] = tx.claim_due(now, lease_ms=1_000, limit=10, claimer="slow")
    later = now + timedelta(seconds=2)
    with store.transaction() as tx:
        assert [r.id for r in tx.claim_due(later, lease_ms=60_000, limit=10, claimer="next")] == [row.id]
        assert not tx.begin_posting([row.id], "x" * 32, later, claimer="slow", lease_ms=60_000)
        tx.release([row.id], claimer="slow")
        tx.mark_failed([row.id], "network: TimeoutError", later, claimer="slow")
        assert tx.claim_due(later, lease_ms=60_000, limit=10, claimer="third") == []
        assert tx.begin_posting([row.id], "y" * 32, later, claimer="next", lease_ms=60_000)
        status = tx.outbox_status("note:1")
    assert status is not None and status["attempts"] == 0 and status["last_error"] is None
