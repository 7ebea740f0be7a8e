"""Several `kling-bot` processes on one database, as real processes: together they make one
Kling call and never two within a second, say every warning once, and deliver every DM
exactly once even when one of them is killed with SIGKILL after Slack took its post and
before the answer came back."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bot.notify import DELIVERY_EVENT
from bot.store import schema
from bot.store.db import Store, to_ms
from tests.conftest import bot_env
from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import FakeSlack
from tests.test_cli import run
from tests.test_processes import finish, spawn

ALERTS = "C0ALERTS"


def traceback_free(output: str) -> bool:
    return "Traceback" not in output


def test_three_checks_started_together_make_one_kling_call_and_say_each_warning_once(
    kling: FakeKling, slack: FakeSlack, database_url: str, tmp_path: Path
) -> None:
    """Three `check`s at once, Kling refusing a 2nd call within 1 s: one call, no refusal, each warning once."""
    kling.qps_interval_s = 1.0
    runs_out = make_pack("Video Generation - A", remaining=10, pack_id="w1")
    expires = make_pack("Image Generation - B", remaining=300, pack_id="w2")
    kling.packs = [runs_out, expires, make_pack("Video Generation - C", pack_id="w3")]
    env = bot_env(kling, slack, DATABASE_URL=database_url, ALERT_CHANNEL=ALERTS, KLING_CACHE_TTL="300")
    code, out = finish(spawn(["check"], env, tmp_path))  # the baseline
    assert code == 0, out
    # The baseline's answer is from long ago (its TTL has passed): the next checks need a new one.
    store = Store(database_url)
    with store.transaction() as tx:
        tx.conn.execute(update(schema.kling_calls).values(fetched_at=schema.kling_calls.c.fetched_at - 600_000))
    store.close()
    kling.packs = [
        {**runs_out, "status": "runOut", "remaining_quantity": 0},
        {**expires, "status": "expired"},
        kling.packs[2],
    ]
    calls_before = len(kling.calls)
    procs = [spawn(["check"], env, tmp_path) for _ in range(3)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert all(traceback_free(out) for _, out in results)
    assert len(kling.calls) - calls_before == 1
    assert kling.rate_limited == 0
    texts = [str(m["text"]) for m in slack.messages[ALERTS]]
    assert len(texts) == 2, texts
    assert sum("Video Generation - A" in t for t in texts) == 1
    assert sum("Image Generation - B" in t for t in texts) == 1


def owe_dms(database_url: str, users: list[str]) -> None:
    store = Store(database_url)
    store.migrate()
    now = datetime.now(UTC)
    with store.transaction() as tx:
        for user in users:
            tx.enqueue(f"dm:{user}", "threshold", user, {"text": f"threshold crossed for {user}"}, now, to_user=True)
    store.close()


def test_a_process_killed_mid_send_leaves_every_dm_sent_exactly_once(
    kling: FakeKling, slack: FakeSlack, database_url: str, tmp_path: Path
) -> None:
    """120 DMs, three processes, one SIGKILLed after Slack took its post: the rest and a later check send each once."""
    users = [f"U{i:03d}" for i in range(120)]
    owe_dms(database_url, users)
    # Claims that outlast any slow machine: the victim's rows move only when the test lapses them.
    env = bot_env(kling, slack, DATABASE_URL=database_url, KLING_CACHE_TTL="300", OUTBOX_CLAIM_SECONDS="3600")
    slack.post_delay_s = 0.05  # a slow Slack
    taken = threading.Event()
    released = threading.Event()

    def hold_the_first_post(_args: dict[str, Any]) -> None:
        # Slack has kept this post; its answer waits until the poster is dead.
        if not taken.is_set():
            taken.set()
            released.wait(60)

    slack.post_hook = hold_the_first_post
    victim = spawn(["check"], env, tmp_path)
    assert taken.wait(60), "the first process never posted"
    others = [spawn(["check"], env, tmp_path) for _ in range(2)]
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    released.set()
    for proc in others:
        code, out = finish(proc)
        assert code == 0 and traceback_free(out), out

    store = Store(database_url)
    with store.transaction() as tx:
        owed = tx.outbox_counts()["owed"]
        # The dead process's claim, OUTBOX_CLAIM_SECONDS later: lapsed.
        tx.conn.execute(
            update(schema.outbox)
            .where(schema.outbox.c.sent_at.is_(None))
            .values(claimed_until=to_ms(datetime.now(UTC)) - 1)
        )
    assert 0 < owed < len(users)  # the victim's claimed rows, the held one among them
    code, out = finish(spawn(["check"], env, tmp_path))
    assert code == 0, out
    assert "was posted by an earlier attempt" in out
    with store.transaction() as tx:
        counts = tx.outbox_counts()
    store.close()
    assert counts["owed"] == 0 and counts["sent"] == len(users)
    for user in users:
        messages = slack.messages[f"D{user}"]
        assert len(messages) == 1, (user, messages)
        assert messages[0]["metadata"]["event_type"] == DELIVERY_EVENT


def test_balance_in_a_terminal_shares_the_running_bot_s_answer(
    kling: FakeKling, slack: FakeSlack, database_url: str, tmp_path: Path
) -> None:
    """`kling-bot balance` beside a bot uses the answer the bot stored within the TTL; `doctor` waits for the turn."""
    env = bot_env(kling, slack, DATABASE_URL=database_url, KLING_CACHE_TTL="300")
    assert run(["check"], env)[0] == 0
    calls = len(kling.calls)
    code, out, _ = run(["balance"], env)
    assert code == 0 and "Video Generation" in out
    assert len(kling.calls) == calls
    # doctor makes its own call (it checks the keys), in turn: never within a second of the last.
    kling.qps_interval_s = 1.0
    run(["doctor"], env)
    assert len(kling.calls) == calls + 1 and kling.rate_limited == 0
    assert kling.calls[-1].at - kling.calls[-2].at >= 1.0
