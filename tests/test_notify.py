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
        assert tx.outbox_counts() == {"sent": len(first.sent), "owed": 100 - len(first.sent)}
    world.jobs.deliver()
    texts = [p["text"] for p in world.posts(DIGEST)]
    assert sorted(texts) == [f"note {i:03d}" for i in range(100)]
