"""Benchmark one check pass (the poll behind warnings and threshold DMs) and the database growth.

Prints (never asserts; timings are noisy):

1. Wall time and SQL statements of one `bot.alerting.run_check` pass over 1,000 packs and 1,000
   threshold subscriptions: (a) the first check ever (the baseline), (b) a steady-state check
   where nothing changed, (c) a check where every pack's remaining quantity dropped (snapshots
   are written, some thresholds cross and DMs are owed). On SQLite (a temporary file), and also
   on PostgreSQL when TEST_POSTGRES_URL names a server (a database with a random name is
   created there and dropped afterwards). A short table shows how the statement counts scale
   with the number of packs and of subscriptions.
2. Database growth over one simulated day of polls at the default interval (48 polls, one every
   30 minutes) on SQLite: file size and rows added per table, for a day where 10% of the packs
   change at each poll and for a day where nothing changes.
3. Optionally (on by default, `--no-jobs` skips it): the full `Jobs.check()` path once per
   scenario, against the Kling and Slack stand-ins from `tests/stand_ins` (fetch over HTTP,
   run_check, deliver the outbox to the Slack stand-in).

`run_check` is called directly for 1 and 2: it is what `Jobs.check` runs after fetching the
packs from Kling. Only 127.0.0.1 is used.

Run from anywhere:  python3 benchmarks/bench_check.py
or from the repo:   python3 -m benchmarks.bench_check
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import Engine, create_engine, event, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.alerting import CheckReport, run_check  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.domain.packs import PackStatus, PackType, ResourcePack  # noqa: E402
from bot.store import schema  # noqa: E402
from bot.store.db import Store, normalize_url  # noqa: E402

PACKS = 1000
FAMILIES = 10
SUBSCRIPTIONS = 1000
THRESHOLDS_PER_USER = 2
PACK_TOTAL = 10_000.0
START_REMAINING = 5_500.0  # 55% left in every family at the baseline
DROP_TO = 4_500.0  # 45% left after the drop: percent thresholds of 46-50% cross
EXPIRING_EVERY = 50  # every 50th pack expires within EXPIRY_WARNING_DAYS: 20 warnings at the baseline
POLL_INTERVAL = timedelta(minutes=30)
POLLS_PER_DAY = int(timedelta(days=1) / POLL_INTERVAL)
CHANGING_SHARE = 0.10
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TABLES = ("snapshots", "outbox", "pack_state", "subscription_state", "subscriptions", "meta")


# -- the account and the subscriptions --------------------------------------------------------------


def family_name(index: int) -> str:
    return f"Family {index % FAMILIES}"


class Account:
    """1,000 online packs in 10 families; `remaining` is what Kling would report now."""

    def __init__(self, packs: int = PACKS) -> None:
        self.count = packs
        self.remaining = [START_REMAINING] * packs

    def packs(self) -> list[ResourcePack]:
        out = []
        for i, remaining in enumerate(self.remaining):
            # Whole seconds: what the store keeps (milliseconds) compares equal on the next poll.
            expires = T0 + (timedelta(days=3) if i % EXPIRING_EVERY == 0 else timedelta(days=60 + i % 300))
            out.append(
                ResourcePack(
                    name=f"{family_name(i)} - pack {i}",
                    pack_id=f"pack-{i:05d}",
                    pack_type=PackType.DECREASING_TOTAL,
                    total=PACK_TOTAL,
                    remaining=remaining,
                    purchase_time=T0 - timedelta(days=30),
                    effective_time=T0 - timedelta(days=30),
                    invalid_time=expires,
                    status=PackStatus.ONLINE if remaining > 0 else PackStatus.RUN_OUT,
                )
            )
        return out


@dataclass(frozen=True)
class Subscription:
    user_id: str
    family: str
    kind: str
    value: float


def subscriptions(count: int = SUBSCRIPTIONS, packs: int = PACKS) -> list[Subscription]:
    """`count` thresholds, THRESHOLDS_PER_USER per user: every second one for all families (""),
    the others for one family; two in three are percents (10-50%), the rest absolute quantities
    between 20% and 54% of a family's total (none fires at the baseline's 55%)."""
    family_total = packs / FAMILIES * PACK_TOTAL
    subs = []
    for j in range(count):
        family = "" if j % 2 == 0 else family_name(j // 2)
        if j % 3 != 2:
            subs.append(Subscription(f"U{j // THRESHOLDS_PER_USER:05d}", family, "percent", 10 + (j * 7) % 41))
        else:
            value = round(family_total * (0.20 + 0.34 * ((j * 13) % 100) / 100))
            subs.append(Subscription(f"U{j // THRESHOLDS_PER_USER:05d}", family, "absolute", value))
    return subs


def subscription_states_expected(subs: Sequence[Subscription]) -> int:
    return sum(FAMILIES if not s.family else 1 for s in subs)


# run_check takes the store itself; from the settings it only reads channels and warning days.
SETTINGS = Settings.from_env({"KLING_API_KEY": "x", "ALERT_CHANNEL": "C0ALERTS"})


def open_store(url: str, subs: Sequence[Subscription]) -> Store:
    store = Store(url)
    store.migrate()
    with store.transaction() as tx:
        for sub in subs:
            tx.add_subscription(sub.user_id, sub.family, sub.kind, sub.value, T0 - timedelta(days=1))
    return store


# -- counting SQL statements --------------------------------------------------------------------------

_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)


def statement_kind(statement: str) -> str:
    """ "INSERT pack_state (upsert)", "SELECT subscriptions", "BEGIN IMMEDIATE", ..."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    if verb == "BEGIN":
        return " ".join(w.upper() for w in words[:2])
    table = _TABLE.search(statement)
    kind = f"{verb} {table.group(1) if table else '?'}"
    upper = statement.upper()
    if "ON CONFLICT" in upper:
        kind += " (upsert)" if "DO UPDATE" in upper else " (insert or ignore)"
    return kind


class StatementCounter:
    """Counts what reaches the database driver (`before_cursor_execute`): every statement, with
    an executemany counted once (and its parameter sets apart). COMMIT is not a cursor call, so
    it is not counted; SQLite's BEGIN IMMEDIATE is (the store issues it as SQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.kinds: Counter[str] = Counter()
        self.executemany_rows = 0
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        self.kinds[statement_kind(statement)] += 1
        if executemany:
            self.executemany_rows += len(parameters)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def reset(self) -> None:
        self.kinds = Counter()
        self.executemany_rows = 0

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


@dataclass
class Pass:
    seconds: float
    statements: int
    kinds: Counter[str]
    report: CheckReport
    dms_per_user: Counter[str] = field(default_factory=Counter)


def timed_check(store: Store, counter: StatementCounter, packs: Sequence[ResourcePack], now: datetime) -> Pass:
    settings = SETTINGS
    counter.reset()
    started = time.perf_counter()
    report = run_check(store, packs, now, settings)
    seconds = time.perf_counter() - started
    result = Pass(seconds, counter.total, Counter(counter.kinds), report)
    if report.dms_queued:  # after the clock stopped: who the DMs go to (key threshold:<sub id>:<family>:<n>)
        with store.transaction() as tx:
            users = {sub.id: sub.user_id for sub in tx.subscriptions()}
        result.dms_per_user = Counter(users[int(key.split(":")[1])] for key in report.dms_queued)
    return result


# -- databases ----------------------------------------------------------------------------------------


@contextmanager
def sqlite_urls() -> Iterator[Callable[[], str]]:
    """Hands out fresh SQLite file URLs in one temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kling-bench-check-") as tmp:
        counter = iter(range(1_000_000))
        yield lambda: f"sqlite:///{Path(tmp) / f'bench-{next(counter)}.db'}"


@contextmanager
def postgres_urls(server_url: str) -> Iterator[Callable[[], str]]:
    """Hands out fresh PostgreSQL databases (random names) on the server; drops them all afterwards."""
    admin_url = normalize_url(server_url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def fresh() -> str:
        name = f"kling_bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield fresh
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- 1. one check pass --------------------------------------------------------------------------------


@dataclass
class Scenarios:
    baseline: list[Pass] = field(default_factory=list)
    steady: list[Pass] = field(default_factory=list)
    drop: list[Pass] = field(default_factory=list)


def check_scenarios(fresh_url: Callable[[], str], reps: int, steady_runs: int, packs: int, subs: int) -> Scenarios:
    """Each repetition on a fresh database: the baseline, `steady_runs` unchanged polls, one drop."""
    out = Scenarios()
    sub_rows = subscriptions(subs, packs)
    for _ in range(reps):
        store = open_store(fresh_url(), sub_rows)
        counter = StatementCounter(store.engine)
        try:
            account = Account(packs)
            now = T0
            out.baseline.append(timed_check(store, counter, account.packs(), now))
            unchanged = account.packs()
            for _ in range(steady_runs):
                now += POLL_INTERVAL
                out.steady.append(timed_check(store, counter, unchanged, now))
            account.remaining = [DROP_TO] * packs
            dropped = account.packs()
            now += POLL_INTERVAL
            out.drop.append(timed_check(store, counter, dropped, now))
        finally:
            counter.close()
            store.close()
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def print_scenarios(title: str, result: Scenarios, subs: int) -> None:
    print(title)
    header = f"  {'check':<34}{'first run':>12}{'median':>12}{'min':>11}{'max':>11}  {'runs':>4}  {'SQL stmts':>9}"
    print(header + f"  {'snapshots':>9}  {'warnings':>8}  {'DMs':>5}")
    rows = (
        ("(a) first check ever (baseline)", result.baseline),
        ("(b) steady state, nothing changed", result.steady),
        ("(c) every pack's remaining dropped", result.drop),
    )
    for label, passes in rows:
        times = [p.seconds for p in passes]
        statements = sorted({p.statements for p in passes})
        stmt = f"{statements[0]:,}" if len(statements) == 1 else f"{statements[0]:,}-{statements[-1]:,}"
        last = passes[-1].report
        print(
            f"  {label:<34}{ms(times[0]):>12}{ms(statistics.median(times)):>12}{ms(min(times)):>11}"
            f"{ms(max(times)):>11}  {len(times):>4}  {stmt:>9}  {last.snapshots_written:>9,}"
            f"  {len(last.warnings_queued):>8}  {len(last.dms_queued):>5,}"
        )
    per_user = result.drop[-1].dms_per_user
    if per_user:
        spread = Counter(per_user.values())
        print(
            f"  (c) owes {sum(per_user.values()):,} DMs to {len(per_user):,} users: "
            + ", ".join(f"{users:,} users get {n}" for n, users in sorted(spread.items()))
            + " in this one poll (one outbox row per subscription and family; the notifier sends each person one"
            + " batched DM)"
        )
    print("  SQL statements per pass, by kind (an executemany counts once):")
    for label, passes in rows:
        kinds = ", ".join(f"{kind} ×{n:,}" for kind, n in sorted(passes[-1].kinds.items(), key=lambda kv: -kv[1]))
        print(f"    {label.split(' ', 1)[0]} {kinds}")
    print(
        f"  ({subs:,} subscriptions here make {subscription_states_expected(subscriptions(subs)):,} "
        "(subscription, family) states: one per family for those on all families)"
    )
    print()


def print_scaling(fresh_url: Callable[[], str]) -> None:
    """Statements per pass at other sizes, to see what grows with packs or subscriptions."""
    sizes = ((100, 100), (1000, 100), (100, 1000), (1000, 1000), (2000, 2000))
    print("  SQL statements per pass by size (SQLite; one run each):")
    print(f"    {'packs':>6} {'subs':>6}   {'baseline':>8} {'steady':>7} {'drop':>6}   {'steady time':>11}")
    for packs, subs in sizes:
        result = check_scenarios(fresh_url, reps=1, steady_runs=2, packs=packs, subs=subs)
        print(
            f"    {packs:>6,} {subs:>6,}   {result.baseline[0].statements:>8,} {result.steady[-1].statements:>7,}"
            f" {result.drop[0].statements:>6,}   {ms(result.steady[-1].seconds):>11}"
        )
    print()


# -- 2. growth per day --------------------------------------------------------------------------------


def row_counts(store: Store) -> dict[str, int]:
    with store.transaction() as tx:
        return {
            name: tx.conn.execute(select(func.count()).select_from(schema.metadata.tables[name])).scalar() or 0
            for name in TABLES
        }


def table_bytes(store: Store) -> dict[str, int]:
    """Bytes of pages per table, its indexes included (SQLite's dbstat; empty if not compiled in)."""
    raw = store.engine.raw_connection()
    try:
        rows = raw.driver_connection.execute(
            "SELECT COALESCE(m.tbl_name, d.name), SUM(d.pgsize) FROM dbstat AS d"
            " LEFT JOIN sqlite_master AS m ON m.name = d.name GROUP BY 1"
        ).fetchall()
    except Exception:
        return {}
    finally:
        raw.close()
    return {name: int(size) for name, size in rows}


def checkpointed_size(store: Store, path: Path) -> int:
    """The main file's size once the WAL is folded in (and truncated).

    On a raw DBAPI connection: through SQLAlchemy the store's "begin" hook would open a
    transaction (BEGIN IMMEDIATE) first, and SQLite refuses to checkpoint inside one."""
    raw = store.engine.raw_connection()
    try:
        busy, _, _ = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        raw.close()
    if busy:
        print("    (warning: the WAL checkpoint was blocked; the size below leaves part of the WAL out)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@dataclass
class Day:
    label: str
    size_before: int
    size_after: int
    bytes_before: dict[str, int]
    bytes_after: dict[str, int]
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    poll_seconds: list[float]
    statements: list[int]
    dms: int
    warnings: int
    family_percent_end: float


def simulate_day(fresh_url: Callable[[], str], *, changing_share: float, seed: int = 42) -> Day:
    url = fresh_url()
    path = Path(make_url(url).database or "")
    store = open_store(url, subscriptions())
    counter = StatementCounter(store.engine)
    rng = random.Random(seed)
    try:
        account = Account()
        now = T0
        run_check(store, account.packs(), now, SETTINGS)  # the baseline, before the day starts
        size_before, rows_before, bytes_before = checkpointed_size(store, path), row_counts(store), table_bytes(store)
        seconds, statements, dms, warnings = [], [], 0, 0
        for _ in range(POLLS_PER_DAY):
            now += POLL_INTERVAL
            for i in rng.sample(range(account.count), round(account.count * changing_share)):
                account.remaining[i] = max(0.0, account.remaining[i] - rng.randint(100, 300))
            result = timed_check(store, counter, account.packs(), now)
            seconds.append(result.seconds)
            statements.append(result.statements)
            dms += len(result.report.dms_queued)
            warnings += len(result.report.warnings_queued)
        size_after, rows_after, bytes_after = checkpointed_size(store, path), row_counts(store), table_bytes(store)
    finally:
        counter.close()
        store.close()
    label = f"{changing_share:.0%} of packs change each poll" if changing_share else "nothing changes"
    percent = 100 * sum(account.remaining) / (account.count * PACK_TOTAL)
    return Day(
        label,
        size_before,
        size_after,
        bytes_before,
        bytes_after,
        rows_before,
        rows_after,
        seconds,
        statements,
        dms,
        warnings,
        percent,
    )


def print_day(day: Day) -> None:
    grown = day.size_after - day.size_before
    added = {t: day.rows_after[t] - day.rows_before[t] for t in TABLES}
    print(f"  Day where {day.label} ({POLLS_PER_DAY} polls, one every {POLL_INTERVAL.seconds // 60} min):")
    print(f"    file size {day.size_before:,} -> {day.size_after:,} bytes: {grown:+,} bytes/day")
    print("    rows added: " + ", ".join(f"{t} {added[t]:+,}" for t in TABLES[:4]))
    print(
        "    rows now:   "
        + ", ".join(f"{t} {day.rows_after[t]:,}" for t in TABLES[:4])
        + f" (pack_state rows are updated in place: {day.rows_after['pack_state']:,} packs)"
    )
    if day.bytes_after:
        parts = []
        for t in TABLES[:4]:
            delta = day.bytes_after.get(t, 0) - day.bytes_before.get(t, 0)
            per_row = f" ≈ {delta / added[t]:,.0f} B/row" if added[t] else ""
            parts.append(f"{t} {delta:+,} B{per_row}")
        print("    pages by table, indexes included (dbstat): " + ", ".join(parts))
        snapshot_bytes = day.bytes_after.get("snapshots", 0) - day.bytes_before.get("snapshots", 0)
        if snapshot_bytes:
            print(
                f"    snapshots alone, if every day were like this: ≈ {snapshot_bytes * 365 / 1e6:,.0f} MB/year"
                f" ({added['snapshots'] * 365:,} rows); the check prunes snapshots after 400 days and sent"
                " outbox rows after 90 days, so that is a ceiling of about 13 months' worth"
            )
    print(
        f"    DMs owed {day.dms:,}, channel warnings owed {day.warnings}; account level at day end"
        f" {day.family_percent_end:.1f}% (started at {100 * START_REMAINING / PACK_TOTAL:.0f}%)"
    )
    print(
        f"    per poll: median {ms(statistics.median(day.poll_seconds))}, max {ms(max(day.poll_seconds))};"
        f" SQL statements median {statistics.median(day.statements):,.0f}, max {max(day.statements):,}"
    )


# -- 3. the whole Jobs.check() path against the stand-ins ---------------------------------------------


def jobs_check_path(fresh_url: Callable[[], str]) -> None:
    from tests.stand_ins.kling import FakeKling, make_pack
    from tests.stand_ins.slack import FakeSlack
    from tests.world import World

    sub_rows = subscriptions()
    with FakeKling() as kling, FakeSlack() as slack:
        world = World(kling, slack, fresh_url(), DIGEST_CHANNEL="")
        counter = StatementCounter(world.services.store.engine)  # type: ignore[union-attr]
        try:
            now = world.clock.now()
            kling.packs = [
                make_pack(
                    f"{family_name(i)} - pack {i}",
                    total=PACK_TOTAL,
                    remaining=START_REMAINING,
                    expires_in_days=3 if i % EXPIRING_EVERY == 0 else 60 + i % 300,
                    pack_id=f"pack-{i:05d}",
                    now=now,
                )
                for i in range(PACKS)
            ]
            with world.services.store.transaction() as tx:  # type: ignore[union-attr]
                for sub in sub_rows:
                    tx.add_subscription(sub.user_id, sub.family, sub.kind, sub.value, now)

            def one(label: str) -> None:
                posts_before = len(slack.calls_to("chat.postMessage"))
                counter.reset()
                started = time.perf_counter()
                report = world.check()
                seconds = time.perf_counter() - started
                posts = len(slack.calls_to("chat.postMessage")) - posts_before
                assert report is not None
                print(
                    f"    {label:<34}{ms(seconds):>12}  {counter.total:>7,} SQL statements,"
                    f" {len(report.warnings_queued)} warnings and {len(report.dms_queued):,} DMs owed,"
                    f" {posts:,} Slack posts"
                )

            print(f"  Jobs.check() once each ({PACKS:,} packs served over HTTP by the Kling stand-in, Slack stand-in,")
            print("  fake clock so the notifier's 1 s pacing per channel costs nothing; includes sending the outbox):")
            one("(a) first check ever (baseline)")
            one("(b) steady state, nothing changed")
            for pack in kling.packs:
                pack["remaining_quantity"] = DROP_TO
            one("(c) every pack's remaining dropped")
            one("(d) the next poll, nothing changed")
        finally:
            counter.close()
            world.close()
    print()


# -- main ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="fresh databases per backend (default 5)")
    parser.add_argument("--steady-runs", type=int, default=5, help="unchanged polls per database (default 5)")
    parser.add_argument("--no-jobs", action="store_true", help="skip the Jobs.check() path against the stand-ins")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    import sqlalchemy

    print(
        f"kling-balance-bot check benchmark (python {sys.version.split()[0]}, SQLAlchemy {sqlalchemy.__version__},"
        f" {os.cpu_count()} CPUs)"
    )
    print(
        f"run_check() is called directly: it is what Jobs.check runs after fetching the packs from Kling.\n"
        f"{PACKS:,} online packs in {FAMILIES} families ({PACKS // EXPIRING_EVERY} expire within 7 days),"
        f" {SUBSCRIPTIONS:,} thresholds ({SUBSCRIPTIONS // THRESHOLDS_PER_USER:,} users × {THRESHOLDS_PER_USER}:"
        " half on all families, half on one; 2/3 percent 10-50%, 1/3 absolute).\n"
        f"Levels go from {100 * START_REMAINING / PACK_TOTAL:.0f}% to {100 * DROP_TO / PACK_TOTAL:.0f}% in (c)."
        " 'first run' is the first pass of its kind in this process (cold caches); the median is over"
        " fresh databases (steady: every unchanged poll)."
    )
    print()

    with sqlite_urls() as fresh_sqlite:
        result = check_scenarios(fresh_sqlite, args.reps, args.steady_runs, PACKS, SUBSCRIPTIONS)
        print_scenarios("1. One check pass, SQLite (temporary file, WAL)", result, SUBSCRIPTIONS)
        print_scaling(fresh_sqlite)

        postgres = os.environ.get("TEST_POSTGRES_URL", "").strip()
        if postgres:
            host = make_url(normalize_url(postgres)).render_as_string(hide_password=True)
            with postgres_urls(postgres) as fresh_pg:
                result = check_scenarios(fresh_pg, max(1, args.reps - 2), args.steady_runs, PACKS, SUBSCRIPTIONS)
                print_scenarios(f"1. One check pass, PostgreSQL (fresh databases on {host})", result, SUBSCRIPTIONS)
        else:
            print("1. PostgreSQL: skipped (set TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/postgres)")
            print()

        print(f"2. Database growth per day of polling (SQLite, {PACKS:,} packs, {SUBSCRIPTIONS:,} thresholds,")
        print("   measured after the baseline check; PRAGMA wal_checkpoint(TRUNCATE) before each size)")
        for share in (CHANGING_SHARE, 0.0):
            print_day(simulate_day(fresh_sqlite, changing_share=share))
        print()

        if not args.no_jobs:
            print("3. The full path, for comparison")
            jobs_check_path(fresh_sqlite)

    print(f"Total benchmark time {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
