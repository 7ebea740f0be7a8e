"""How long a `/metrics` scrape takes with 1,000 packs: the database read (Kling's stored
answer, the outbox, the last poll), the forecast from the stored history (computed by the
first scrape after each poll, then reused) and the text format, in-process and over HTTP
(SQLite; PostgreSQL too when TEST_POSTGRES_URL names a server).

    python3 benchmarks/bench_metrics.py                  # 1,000 packs in 10 families
    python3 benchmarks/bench_metrics.py --packs 200 --reps 10

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.bench_forecast import counted, pack_state_rows  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.domain.packs import PackStatus, ResourcePack  # noqa: E402
from bot.ops.http import metrics_server  # noqa: E402
from bot.ops.metrics import Metrics  # noqa: E402
from bot.store import schema  # noqa: E402
from bot.store.db import Store, normalize_url, to_ms  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
HISTORY = timedelta(days=8)  # the forecast window (7 days) and a day before it
SNAPSHOT_EVERY = timedelta(hours=6)
OWED, SENT = 50, 2000


class FixedClock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def make_packs(count: int) -> list[ResourcePack]:
    packs = []
    for i in range(count):
        total = 10000.0 * (1 + i % 5)
        status = PackStatus.ONLINE if i % 10 else PackStatus.EXPIRED
        packs.append(
            ResourcePack(
                f"Family {i % 10} - pack {i}", f"p{i:05d}", "decreasing_total", total, total * 0.4,
                NOW - timedelta(days=300), NOW - timedelta(days=300), NOW + timedelta(days=10 + i % 200), status,
            )
        )  # fmt: skip
    return packs


def fill(store: Store, packs: list[ResourcePack]) -> int:
    """Kling's stored answer, the history the forecast reads, an outbox and a recorded poll."""
    start = NOW - HISTORY
    steps = int(HISTORY / SNAPSHOT_EVERY)
    rows = []
    with store.transaction() as tx:
        tx.store_answer("default", packs, NOW)
        tx.record_poll(NOW, ["default"])
        tx.set_meta("baseline_at", str(to_ms(start)))
        tx.conn.execute(insert(schema.pack_state), pack_state_rows(packs, start))
        for pack in packs:
            previous = None
            for step in range(steps + 1):
                left = pack.remaining + 200 * (steps - step)  # falling 200 every 6 h to today's figure
                rows.append(
                    {
                        "account": "default",
                        "pack_id": pack.pack_id,
                        "at": to_ms(start + step * SNAPSHOT_EVERY),
                        "remaining": left,
                        "previous": previous,
                    }
                )
                previous = left
        tx.conn.execute(insert(schema.snapshots), rows)
        for i in range(OWED + SENT):
            tx.enqueue(f"bench:{i}", "alert", "C0ALERTS", {"text": f"message {i}"}, NOW)
        claimed = tx.claim_due(NOW, lease_ms=60_000, limit=OWED + SENT)
        tx.mark_sent([r.id for r in claimed[:SENT]], NOW, "1.0")
        tx.mark_failed([r.id for r in claimed[SENT:]], "Slack: not_in_channel", NOW + timedelta(minutes=5))
    return len(rows)


def ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"


def run(url: str, label: str, packs: list[ResourcePack], reps: int) -> None:
    store = Store(url)
    store.migrate()
    began = time.perf_counter()
    rows = fill(store, packs)
    print(f"  {label}: {len(packs):,} packs stored, {rows:,} snapshot rows, in {time.perf_counter() - began:.1f} s")
    metrics = Metrics(Settings(database_url=url), FixedClock())
    metrics.watch(store)
    # The first scrape after each poll computes the forecast; later ones reuse it.
    after_poll: list[float] = []
    for rep in range(reps):
        with store.transaction() as tx:
            tx.record_poll(NOW + timedelta(milliseconds=rep + 1), ["default"])
        with counted(store) as counts:
            began = time.perf_counter()
            body, _ = metrics.exposition()
            after_poll.append(time.perf_counter() - began)
        if rep == 0:
            cold = dict(counts)
    between: list[float] = []
    for rep in range(reps):
        with counted(store) as counts:
            began = time.perf_counter()
            body, _ = metrics.exposition()
            between.append(time.perf_counter() - began)
        if rep == 0:
            warm = dict(counts)
    families = list(text_string_to_metric_families(body.decode()))
    series = sum(len(f.samples) for f in families)
    remaining = sum(len(f.samples) for f in families if f.name == "kling_bot_pack_remaining_units")
    print(f"    first scrape after a poll (forecast computed), in-process: {ms(after_poll)} over {reps}")
    print(f"      SQL statements: {cold}")
    print(f"    later scrapes (forecast reused), in-process: {ms(between)} over {reps}")
    print(f"      SQL statements: {warm}")
    print(f"    body: {len(body) / 1024:.0f} KiB, {series:,} samples ({remaining:,} pack remaining series)")
    server = metrics_server(metrics, host="127.0.0.1", port=0).start()
    try:
        over_http = []
        with httpx.Client(timeout=60) as client:
            for _ in range(reps):
                began = time.perf_counter()
                response = client.get(f"{server.url}/metrics")
                over_http.append(time.perf_counter() - began)
                assert response.status_code == 200
            ready = []
            for _ in range(reps):
                began = time.perf_counter()
                client.get(f"{server.url}/readyz")
                ready.append(time.perf_counter() - began)
    finally:
        server.stop()
    print(f"    GET /metrics over HTTP (keep-alive, forecast reused): {ms(over_http)}")
    print(f"    GET /readyz over HTTP: {ms(ready)}")
    store.close()


def bench_hook(calls: int = 100_000) -> None:
    metrics = Metrics(Settings(), FixedClock())
    began = time.perf_counter()
    for i in range(calls):
        metrics.on_kling_request("default", "ok", 0.2 + (i % 10) / 100)
    each = (time.perf_counter() - began) / calls
    print(f"  The Kling request hook (a counter and a histogram): {each * 1e6:.1f} µs a call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    packs = make_packs(args.packs)
    print(
        f"Metrics benchmark: {args.packs:,} packs in 10 families (one in ten expired), a snapshot every "
        f"{SNAPSHOT_EVERY.total_seconds() / 3600:g} h for {HISTORY.days} days, {OWED} messages owed and {SENT:,} sent"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", packs, args.reps)
    admin_url = os.environ.get("TEST_POSTGRES_URL")
    if admin_url:
        admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
        name = f"kling_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
            run(url, "PostgreSQL", packs, args.reps)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        print("  PostgreSQL: skipped (set TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/postgres)")
    bench_hook()


if __name__ == "__main__":
    main()
