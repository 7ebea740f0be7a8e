"""Delivering the outbox: a long pass never outlives its claim, and nothing is sent twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import FakeSlack
from tests.world import DIGEST, World


@pytest.fixture
def world(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    w = World(kling, slack, database_url)
    yield w
    w.close()


def test_long_pass_hands_back_what_it_could_not_send_in_time(world: World) -> None:
    """100 posts to one channel (1 s apart, Slack's pace) exceed a pass's time; the rest wait, each sent once."""
    store = world.services.store
    assert store is not None
    with store.transaction() as tx:
        for i in range(100):
            tx.enqueue(f"note:{i}", "digest", DIGEST, {"text": f"note {i:03d}"}, world.clock.now())
    first = world.jobs.deliver()
    assert 0 < len(first.sent) < 100
    with store.transaction() as tx:
        counts = tx.outbox_counts()
        assert (counts["sent"], counts["owed"]) == (len(first.sent), 100 - len(first.sent))
    for _ in range(5):
        if not world.jobs.deliver().sent:
            break
    texts = [p["text"] for p in world.posts(DIGEST)]
    assert sorted(texts) == [f"note {i:03d}" for i in range(100)]


def owe(world: World, key: str, text: str) -> None:
    store = world.services.store
    assert store is not None
    with store.transaction() as tx:
        tx.enqueue(key, "digest", DIGEST, {"text": text}, world.clock.now())


def test_a_permanent_slack_error_stays_owed_is_reported_once_and_sent_after_the_fix(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """not_in_channel stays owed with the fix (/invite), is logged once, and is retried with backoff until it works."""
    owe(world, "note:1", "hello")
    world.slack.fail("chat.postMessage", times=3, error="not_in_channel")
    with caplog.at_level("INFO", logger="bot.notify"):
        first = world.jobs.deliver()
        assert "note:1" in first.failed and "/invite @Kling Balance" in first.needs_fix["note:1"]
        world.clock.advance(31)
        world.jobs.deliver()
        world.clock.advance(61)
        world.jobs.deliver()
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "not_in_channel" in r.getMessage()]
    assert len(errors) == 1 and "/invite" in errors[0].getMessage()
    assert world.posts(DIGEST) == []
    world.clock.advance(30)  # not yet due: backing off (30 s, 60 s, 120 s)
    assert world.jobs.deliver().sent == []
    world.clock.advance(100)  # the bot was invited meanwhile
    assert world.jobs.deliver().sent == ["note:1"]
    assert [p["text"] for p in world.posts(DIGEST)] == ["hello"]


def test_an_answer_cut_off_mid_body_is_retried_and_does_not_stop_the_pass(world: World) -> None:
    """An IncompleteRead on one post is a transient failure: the other messages go out, it is retried later."""
    owe(world, "note:1", "first")
    owe(world, "note:2", "second")
    world.slack.fail("chat.postMessage", times=1, cut_off=True)
    report = world.jobs.deliver()
    assert report.failed == {"note:1": "network: IncompleteRead"} and report.sent == ["note:2"]
    assert report.needs_fix == {}
    world.clock.advance(31)
    assert world.jobs.deliver().sent == ["note:1"]
    store = world.services.store
    assert store is not None
    with store.transaction() as tx:
        assert tx.outbox_counts()["sent"] == 2 and tx.outbox_counts()["owed"] == 0
