"""The one source of time for the bot, so tests can inject a fake one.

`now()` is wall-clock time (aware, UTC) for what users see and what Kling is asked;
`monotonic()` and `sleep()` are for intervals (rate limits, cache ages, backoff), which
must not jump when the wall clock is adjusted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
