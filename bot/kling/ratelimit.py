"""Keep the whole process to at most one Kling request per interval (Kling asks QPS <= 1)."""

from __future__ import annotations

import threading

from bot.clock import Clock


class MinIntervalLimiter:
    """Callers get consecutive slots `interval` seconds apart, first come first served.

    The lock is held only to reserve a slot, never while sleeping, so waiting callers queue
    in order without blocking each other's bookkeeping.
    """

    def __init__(self, interval_s: float, clock: Clock) -> None:
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free = float("-inf")

    def acquire(self) -> None:
        with self._lock:
            now = self._clock.monotonic()
            slot = max(now, self._next_free)
            self._next_free = slot + self._interval
        self._clock.sleep(slot - now)
