"""The balance cache: one upstream call per TTL however many callers, stale answers on failure."""

from __future__ import annotations

import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.domain.packs import PackStatus, ResourcePack
from bot.kling.cache import DEFAULT_WAIT_S, PackCache
from bot.kling.errors import KlingBusyError, KlingConnectionError, UnavailableError
from tests.fake_clock import FakeClock


def pack(remaining: float = 10.0) -> ResourcePack:
    return ResourcePack(
        "Video Generation - A", "id1", "decreasing_total", 100.0, remaining, None, None, None, PackStatus.ONLINE
    )


def outage() -> UnavailableError:
    return UnavailableError("Kling: maintenance", http_status=503, code=5001)


class GatedFetch:
    """A Kling fetch that blocks until released, taking `takes_s` of the fake clock."""

    def __init__(self, clock: FakeClock, takes_s: float = 0.0) -> None:
        self.clock, self.takes_s = clock, takes_s
        self.started, self.release = threading.Event(), threading.Event()
        self.calls = 0

    def __call__(self) -> list[ResourcePack]:
        self.calls += 1
        self.started.set()
        self.release.wait(10)
        self.clock.advance(self.takes_s)
        return [pack()]


def burst(cache: PackCache, fetch: GatedFetch, callers: int) -> list[object]:
    """One caller starts a fetch, the rest arrive while it is in flight."""
    with ThreadPoolExecutor(max_workers=callers) as pool:
        first = pool.submit(cache.get)
        fetch.started.wait(10)
        rest = [pool.submit(cache.get) for _ in range(callers - 1)]
        fetch.release.set()
        return [f.result(timeout=10) for f in [first, *rest]]


def test_concurrent_callers_share_one_fetch() -> None:
    """Twenty callers arriving while a fetch is in flight all get its answer: one upstream call."""
    clock = FakeClock()
    fetch = GatedFetch(clock)
    results = burst(PackCache(fetch, ttl_s=300, clock=clock), fetch, 20)
    assert fetch.calls == 1
    assert all(r.packs == (pack(),) for r in results)


def test_answer_is_reused_until_the_ttl_passes() -> None:
    """Within the TTL the cached answer is served; after it, Kling is asked again."""
    clock = FakeClock()
    answers = iter([[pack(10)], [pack(5)]])
    cache = PackCache(lambda: next(answers), ttl_s=300, clock=clock)
    assert cache.get().packs[0].remaining == 10
    clock.advance(299)
    assert cache.get().packs[0].remaining == 10
    clock.advance(2)
    assert cache.get().packs[0].remaining == 5


def test_refresh_skips_the_cache() -> None:
    """`refresh` asks Kling again even within the TTL."""
    clock = FakeClock()
    answers = iter([[pack(10)], [pack(5)]])
    cache = PackCache(lambda: next(answers), ttl_s=300, clock=clock)
    cache.get()
    clock.advance(5)
    assert cache.get(refresh=True).packs[0].remaining == 5


def test_failed_refresh_serves_the_earlier_answer_marked_stale() -> None:
    """When Kling fails after an earlier success, that answer comes back stale, with its age and reason."""
    clock = FakeClock()
    results: list[object] = [[pack(10)], outage()]

    def fetch() -> list[ResourcePack]:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result  # type: ignore[return-value]

    cache = PackCache(fetch, ttl_s=60, clock=clock)
    fresh = cache.get()
    clock.advance(600)
    stale = cache.get()
    assert stale.stale and not fresh.stale
    assert stale.packs == fresh.packs
    assert stale.age(clock.now()).total_seconds() == pytest.approx(600)
    assert isinstance(stale.error, UnavailableError)


def test_failure_without_earlier_answer_raises() -> None:
    """With nothing to fall back on, the Kling error reaches the caller."""

    def fetch() -> list[ResourcePack]:
        raise outage()

    with pytest.raises(UnavailableError):
        PackCache(fetch, ttl_s=60, clock=FakeClock()).get()


def test_callers_right_after_a_failure_do_not_each_retry() -> None:
    """A failure is remembered briefly, so a burst during an outage costs one round of retries."""
    clock = FakeClock()
    calls = []

    def fetch() -> list[ResourcePack]:
        calls.append(1)
        raise outage()

    cache = PackCache(fetch, ttl_s=60, clock=clock)
    for _ in range(5):
        with pytest.raises(UnavailableError):
            cache.get()
    assert len(calls) == 1
    clock.advance(31)
    with pytest.raises(UnavailableError):
        cache.get()
    assert len(calls) == 2


def test_zero_ttl_burst_still_makes_one_call() -> None:
    """With KLING_CACHE_TTL=0, callers queued behind a 2 s fetch take its answer instead of each fetching."""
    clock = FakeClock()
    fetch = GatedFetch(clock, takes_s=2)  # Kling took 2 s
    cache = PackCache(fetch, ttl_s=0, clock=clock)
    results = burst(cache, fetch, 10)
    assert fetch.calls == 1 and all(r.packs == (pack(),) for r in results)
    clock.advance(1)
    cache.get()
    assert fetch.calls == 2  # a caller after the answer arrived asks again (TTL 0)


def stuck_fetch_after_one_answer(clock: FakeClock, ttl_s: float = 60) -> tuple[PackCache, GatedFetch]:
    """A cache holding one good answer whose next fetch will block until released."""
    fetch = GatedFetch(clock)
    cache = PackCache(fetch, ttl_s=ttl_s, clock=clock)
    fetch.release.set()
    cache.get()
    fetch.started.clear()
    fetch.release.clear()
    return cache, fetch


def test_caller_stops_waiting_for_a_stuck_fetch_and_gets_the_last_answer_marked_stale() -> None:
    """While one caller's fetch hangs, another gets the last good answer after wait_s, marked stale: Kling is slow."""
    clock = FakeClock()
    cache, fetch = stuck_fetch_after_one_answer(clock)
    clock.advance(120)  # past the TTL: a fresh answer is needed
    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck = pool.submit(cache.get)
        try:
            assert fetch.started.wait(10)
            waited = cache.get(wait_s=0.05)
        finally:
            fetch.release.set()
        assert not stuck.result(timeout=10).stale
    assert waited.stale and waited.packs == (pack(),)
    assert isinstance(waited.error, KlingBusyError) and "slow to answer" in waited.error.describe()
    assert fetch.calls == 2  # the priming answer and the one stuck fetch: the waiter asked nothing


def test_caller_with_nothing_to_fall_back_on_gets_kling_busy_error() -> None:
    """With no earlier answer, a caller past wait_s gets KlingBusyError instead of waiting on."""
    clock = FakeClock()
    fetch = GatedFetch(clock)
    cache = PackCache(fetch, ttl_s=60, clock=clock)
    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck = pool.submit(cache.get)
        try:
            assert fetch.started.wait(10)
            with pytest.raises(KlingBusyError) as info:
                cache.get(wait_s=0.05)
        finally:
            fetch.release.set()
        stuck.result(timeout=10)
    assert isinstance(info.value, KlingConnectionError)  # callers catching KlingError need no change
    assert fetch.calls == 1


def test_caller_within_the_ttl_gets_the_cached_answer_while_a_refresh_is_stuck() -> None:
    """A plain caller behind someone's stuck `refresh` gets the still-fresh cached answer, not marked stale."""
    clock = FakeClock()
    cache, fetch = stuck_fetch_after_one_answer(clock, ttl_s=300)
    clock.advance(10)  # well within the TTL
    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck = pool.submit(cache.get, refresh=True)
        try:
            assert fetch.started.wait(10)
            waited = cache.get(wait_s=0.05)
            refreshed = cache.get(refresh=True, wait_s=0.05)
        finally:
            fetch.release.set()
        stuck.result(timeout=10)
    assert not waited.stale and waited.packs == (pack(),)
    assert refreshed.stale  # a caller who asked for a refresh is told it did not happen


def test_unbounded_wait_shares_the_fetch_in_flight() -> None:
    """wait_s=None (the scheduler) waits for the fetch in flight and takes its answer: still one upstream call."""
    clock = FakeClock()
    fetch = GatedFetch(clock)
    cache = PackCache(fetch, ttl_s=0, clock=clock)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(cache.get)
        assert fetch.started.wait(10)
        waiting = pool.submit(cache.get, refresh=True, wait_s=None)
        fetch.release.set()
        results = [first.result(timeout=10), waiting.result(timeout=10)]
    assert fetch.calls == 1 and not any(r.stale for r in results)


def test_interactive_callers_wait_a_bounded_time_by_default() -> None:
    """get() without wait_s waits at most DEFAULT_WAIT_S (a few seconds), never indefinitely."""
    default = inspect.signature(PackCache.get).parameters["wait_s"].default
    assert default == DEFAULT_WAIT_S and 0 < DEFAULT_WAIT_S <= 10
