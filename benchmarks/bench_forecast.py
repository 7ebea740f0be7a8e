"""The forecast over 1,000 packs with a year of snapshots: how long it takes and which SQL
statements it needs (SQLite; PostgreSQL too when TEST_POSTGRES_URL names a server).

    python3 benchmarks/bench_forecast.py                 # 1,000 packs, a snapshot every 6 h for a year
    python3 benchmarks/bench_forecast.py --packs 200 --every-hours 24

It prints figures and asserts nothing: machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.domain.packs import PackStatus, ResourcePack  # noqa: E402
from bot.foresight import forecasts  # noqa: E402
from bot.store import schema  # noqa: E402
from bot.store.db import Store, normalize_url, to_ms  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make_packs(count: int) -> list[ResourcePack]:
    packs = []
    for i in range(count):
        total = 10000.0 * (1 + i % 5)
        packs.append(
            ResourcePack(
                f"Family {i % 10} - pack {i}", f"p{i:05d}", "decreasing_total", total, total * 0.4,
                NOW - timedelta(days=300), NOW - timedelta(days=300), NOW + timedelta(days=10 + i % 200),
                PackStatus.ONLINE,
            )
        )  # fmt: skip
    return packs


def pack_state_rows(packs: list[ResourcePack], first_seen: datetime) -> list[dict[str, Any]]:
    """The stored state of each pack, first seen at `first_seen` (shared with bench_metrics)."""
    return [
        {
            "account": "default",
            "pack_id": p.pack_id,
            "name": p.name,
            "status": str(p.status),
            "remaining": p.remaining,
            "total": p.total,
            "invalid_time": to_ms(p.invalid_time) if p.invalid_time else None,
            "first_seen": to_ms(first_seen),
            "last_changed": to_ms(NOW),
            "status_changed_at": to_ms(first_seen),
            "identity": p.pack_id,
        }
        for p in packs
    ]


def fill(store: Store, packs: list[ResourcePack], every: timedelta) -> int:
    """A year of snapshots per pack, falling steadily to today's remaining quantity."""
    start = NOW - timedelta(days=365)
    steps = int(timedelta(days=365) / every)
    rows = 0
    with store.transaction() as tx:
        tx.set_meta("baseline_at", str(to_ms(start)))
        batch: list[dict[str, Any]] = []
        tx.conn.execute(insert(schema.pack_state), pack_state_rows(packs, start))
        for pack in packs:
            previous = None
            for step in range(steps + 1):
                left = pack.total - (pack.total - pack.remaining) * step / steps
                batch.append(
                    {
                        "account": "default",
                        "pack_id": pack.pack_id,
                        "at": to_ms(start + step * every),
                        "remaining": left,
                        "previous": previous,
                    }
                )
                previous = left
                if len(batch) >= 20000:
                    tx.conn.execute(insert(schema.snapshots), batch)
                    rows += len(batch)
                    batch = []
        if batch:
            tx.conn.execute(insert(schema.snapshots), batch)
            rows += len(batch)
    return rows


@contextmanager
def counted(store: Store) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        counts[" ".join(words[:2]) if words else "?"] += 1

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield counts
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def run(url: str, label: str, packs: list[ResourcePack], every: timedelta, reps: int) -> None:
    store = Store(url)
    store.migrate()
    began = time.perf_counter()
    rows = fill(store, packs, every)
    print(f"  {label}: {rows:,} snapshot rows written in {time.perf_counter() - began:.1f} s")
    times = []
    for rep in range(reps):
        with counted(store) as counts:
            began = time.perf_counter()
            result = forecasts(store, packs, NOW, window_days=7)
            times.append(time.perf_counter() - began)
        if rep == 0:
            statements = dict(counts)
    soonest = result[0]
    print(
        f"    forecast of {len(packs):,} packs in {len(result)} families: first {times[0] * 1000:.0f} ms, "
        f"median {statistics.median(times) * 1000:.0f} ms over {reps} runs; SQL statements: {statements}"
    )
    print(
        f"    riskiest: {soonest.family}, {soonest.rate_per_day:,.0f}/day ({soonest.rate_basis}), "
        f"runs out {soonest.runs_out_at:%Y-%m-%d}"
        if soonest.runs_out_at
        else "    riskiest: no run-out"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=1000)
    parser.add_argument("--every-hours", type=float, default=6.0, help="one snapshot per pack this often")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    packs = make_packs(args.packs)
    every = timedelta(hours=args.every_hours)
    print(f"Forecast benchmark: {args.packs:,} packs, a snapshot every {args.every_hours:g} h for a year")
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", packs, every, args.reps)
    admin_url = os.environ.get("TEST_POSTGRES_URL")
    if admin_url:
        admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
        name = f"kling_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
            run(url, "PostgreSQL", packs, every, args.reps)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        print("  PostgreSQL: skipped (set TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/postgres)")


if __name__ == "__main__":
    main()
