"""Kling's answers and turns shared through the database: caches of different processes
(here: separate PackCache objects on one store) make one call per TTL, keep a second between
calls whoever makes them, wait for the holder's answer, take over a dead holder's turn, and
fall back to asking alone when the database fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from bot.domain.packs import PackStatus, ResourcePack
from bot.kling.cache import TURN, PackCache
from bot.kling.errors import KlingBusyError, KlingError, UnavailableError
from bot.store.db import Store
from bot.store.kling_calls import MIN_GAP, StoredKlingCalls
from tests.fake_clock import FakeClock


def pack(remaining: float = 10.0) -> ResourcePack:
    return ResourcePack(
        "Video Generation - A", "id1", "decreasing_total", 100.0, remaining, None, None, None, PackStatus.ONLINE
    )


class Kling:
    """Counts calls and records when each began (by the shared fake clock)."""

    def __init__(self, clock: FakeClock, remaining: float = 10.0) -> None:
        self.clock, self.remaining = clock, remaining
        self.calls: list[float] = []
        self.gate: threading.Event | None = None
        self.fail = False

    def __call__(self) -> list[ResourcePack]:
        self.calls.append(self.clock.now().timestamp())
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise UnavailableError("Kling: maintenance", http_status=503, code=5001)
        return [pack(self.remaining)]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()


def process(store: Store, kling: Kling, clock: FakeClock, *, ttl_s: float = 300, name: str = "p") -> PackCache:
    """One process's cache for the default account."""
    return PackCache(kling, ttl_s=ttl_s, clock=clock, shared=StoredKlingCalls(store), holder=name)


def test_an_answer_fetched_by_one_process_serves_the_others_within_the_ttl(store: Store) -> None:
    """Three processes asking in turn within the TTL: one Kling call, the same answer everywhere."""
    clock = FakeClock()
    kling = Kling(clock)
    web, worker, cron = (process(store, kling, clock, name=n) for n in ("web", "worker", "cron"))
    first = web.get()
    clock.advance(100)
    assert worker.get().packs == first.packs
    assert cron.get(wait_s=None).packs == first.packs
    assert len(kling.calls) == 1
    clock.advance(201)  # past the TTL
    kling.remaining = 4
    assert cron.get().packs[0].remaining == 4
    assert len(kling.calls) == 2


def test_a_refresh_asks_now_but_a_second_after_the_last_call_whoever_made_it(store: Store) -> None:
    """A refresh in another process right after a call waits out the second before asking Kling."""
    clock = FakeClock()
    kling = Kling(clock)
    web, worker = process(store, kling, clock, name="web"), process(store, kling, clock, name="worker")
    web.get()
    clock.advance(0.2)
    kling.remaining = 3
    assert worker.get(refresh=True).packs[0].remaining == 3
    assert len(kling.calls) == 2
    assert kling.calls[1] - kling.calls[0] >= 1.0  # Kling's limit (the gap kept is 1.05 s from a stored ms)


class StillClock(FakeClock):
    """Time that does not run while threads wait: here several waiters each sleeping on one
    fake clock would push it past the holder's turn in no real time at all."""

    def sleep(self, seconds: float) -> None:
        time.sleep(min(max(seconds, 0.0), 0.01))


def test_waiting_processes_take_the_holder_s_answer_instead_of_calling(store: Store) -> None:
    """While one process asks Kling, the others wait for its answer (refreshes too): one call."""
    clock = StillClock()
    kling = Kling(clock)
    kling.gate = threading.Event()
    caches = [process(store, kling, clock, ttl_s=0, name=f"p{i}") for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(caches[0].get, wait_s=None)
        while not kling.calls:
            threading.Event().wait(0.01)
        rest = [pool.submit(c.get, refresh=True, wait_s=None) for c in caches[1:]]
        threading.Event().wait(0.1)
        kling.gate.set()
        answers = [f.result(timeout=20) for f in [first, *rest]]
    assert len(kling.calls) == 1
    assert all(a.packs == (pack(),) and not a.stale for a in answers)


def test_a_dead_holder_s_turn_lapses_and_another_process_asks(store: Store) -> None:
    """A process that died holding the turn blocks nobody past the turn's length."""
    clock = FakeClock()
    kling = Kling(clock)
    shared = StoredKlingCalls(store)
    assert shared.take_turn("default", "dead", clock.now(), TURN) is not None
    cache = process(store, kling, clock, name="alive")
    # A person waits a few seconds, then gets a plain "Kling is slow" (nothing is known yet).
    with pytest.raises(KlingBusyError):
        cache.get(wait_s=2)
    assert kling.calls == []
    clock.advance(TURN.total_seconds())
    assert cache.get(wait_s=None).packs == (pack(),)
    assert len(kling.calls) == 1


def test_a_failed_call_frees_the_turn_and_others_get_the_last_answer_marked_stale(store: Store) -> None:
    """Kling failing: the turn is given back, and a process that never fetched shows the stored answer, stale."""
    clock = FakeClock()
    kling = Kling(clock)
    process(store, kling, clock, name="worker").get()
    clock.advance(400)
    kling.fail = True
    web = process(store, kling, clock, name="web")
    answer = web.get(wait_s=None)
    assert answer.stale and answer.packs == (pack(),)
    clock.advance(2)
    before = clock.monotonic()
    process(store, kling, clock, name="cron").get(refresh=True, wait_s=None)
    assert len(kling.calls) == 3
    # The failed holder gave the turn back: nobody waited for it to lapse.
    assert clock.monotonic() - before < TURN.total_seconds() / 4


def test_the_database_failing_leaves_each_process_asking_alone(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """With the database gone, a process still answers from Kling (its own limits hold) and says so once."""
    clock = FakeClock()
    kling = Kling(clock)
    broken = Store("postgresql://nobody@127.0.0.1:1/none")
    cache = PackCache(kling, ttl_s=300, clock=clock, shared=StoredKlingCalls(broken), holder="alone")
    with caplog.at_level("WARNING", logger="bot.store.kling_calls"):
        assert cache.get().packs == (pack(),)
        clock.advance(400)
        assert cache.get().packs == (pack(),)
    assert len(kling.calls) == 2
    assert caplog.text.count("asking Kling from this process alone") == 1
    broken.close()


def test_a_failure_is_shared_with_the_processes_that_waited_for_it(store: Store) -> None:
    """Kling failing for the holder: a process asking just after gets that failure, not another call."""
    clock = FakeClock()
    kling = Kling(clock)
    kling.fail = True
    with pytest.raises(UnavailableError):
        process(store, kling, clock, name="worker").get(wait_s=None)
    clock.advance(1)
    with pytest.raises(KlingError) as raised:
        process(store, kling, clock, name="cron").get(wait_s=None)
    assert len(kling.calls) == 1
    assert "maintenance" in str(raised.value) and "Kling" in raised.value.public_message
    # After FAILURE_REUSE_S a poll asks again; a person's refresh asks at once.
    clock.advance(2)
    with pytest.raises(KlingError):
        process(store, kling, clock, name="web").get(refresh=True, wait_s=None)
    assert len(kling.calls) == 2


def test_an_older_answer_never_replaces_a_newer_one(store: Store) -> None:
    """A slow process storing its answer after a newer one was stored leaves the newer one."""
    clock = FakeClock()
    with store.transaction() as tx:
        tx.store_answer("default", [pack(5)], clock.now())
        tx.store_answer("default", [pack(9)], clock.now() - timedelta(seconds=30))
    answer = StoredKlingCalls(store).answer("default")
    assert answer is not None and answer[1] == [pack(5)]


def test_a_turn_stamped_by_a_clock_far_ahead_does_not_block(store: Store) -> None:
    """A turn whose end lies further ahead than a whole turn (another machine's clock) counts as lapsed."""
    clock = FakeClock()
    shared = StoredKlingCalls(store)
    assert shared.take_turn("default", "ahead", clock.now() + timedelta(hours=1), TURN) is not None
    assert shared.take_turn("default", "here", clock.now(), TURN) is not None


def test_turns_are_per_account(store: Store) -> None:
    """One account's turn never holds up another's."""
    clock = FakeClock()
    shared = StoredKlingCalls(store)
    assert shared.take_turn("default", "a", clock.now(), TURN) is not None
    assert shared.take_turn("studio", "b", clock.now(), TURN) is not None
    assert shared.take_turn("default", "c", clock.now(), TURN) is None
    shared.end_turn("default", "a", clock.now(), called=True)
    start = shared.take_turn("default", "c", clock.now(), TURN)
    assert start is not None and MIN_GAP - timedelta(milliseconds=1) <= start - clock.now() <= MIN_GAP
