"""The database tables, and the migrations that build them.

Migrations only ever add: a new table, a new column, a new index. They run in order at
start-up inside one transaction each, and the version reached is kept in `meta`, so an
upgrade never loses data and an interrupted one is simply retried.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    select,
    update,
)

metadata = MetaData()

# Times are Unix milliseconds (like Kling's): the same in SQLite and PostgreSQL, no time zone
# conversions hiding anywhere.
meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Text, not VARCHAR(n), wherever Kling or a person chooses the value: the same data must
# behave the same on SQLite (which ignores lengths) and PostgreSQL (which enforces them).
pack_state = Table(
    "pack_state",
    metadata,
    # Since version 3: pack ids are unique only within a Kling account.
    Column("account", Text, primary_key=True, default="default"),
    Column("pack_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("remaining", Float, nullable=False),
    Column("total", Float, nullable=False),
    Column("invalid_time", BigInteger),
    Column("first_seen", BigInteger, nullable=False),
    # When any stored field last changed (not written on polls where nothing did).
    Column("last_changed", BigInteger, nullable=False),
    Column("status_changed_at", BigInteger, nullable=False),
    # Since version 2: the alert episodes (see bot/domain/alerts.py PackState).
    Column("purchase_time", BigInteger),
    Column("identity", Text),
    Column("episode", Integer, nullable=False, default=0),
    Column("pending_status", Text),
    Column("expiry_episode", Integer, nullable=False, default=0),
    # The most urgent expiry reminder given in this episode, in days (0: none yet).
    Column("expiry_level", Integer, nullable=False, default=0),
    Column("expiry_outside", Integer, nullable=False, default=0),
    Column("absent_since", BigInteger),
)

# One row per change of a pack's remaining quantity (not per poll): enough for trends and
# "used since the last digest", and the table grows with use, not with time.
snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pack_id", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("account", Text, nullable=False, default="default"),  # since version 3
    # Since version 4: the value this snapshot replaced (None for a pack's first), so a window
    # of history is read from its own rows, however old the table.
    Column("previous", Float),
    Column("remaining", Float, nullable=False),
    Index("ix_snapshots_pack_at", "pack_id", "at"),
    Index("ix_snapshots_at", "at"),
)

# Every notification owed or sent. The unique key is the event's identity: inserting the
# same event twice is a no-op, so it is sent exactly once whoever detects it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("target", String(64), nullable=False),
    Column("target_is_user", Boolean, nullable=False, default=False),
    Column("payload", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("claimed_until", BigInteger),
    Column("sent_at", BigInteger),
    Column("slack_ts", String(32)),
    # Since version 2: set (with sent_at) when a notification was deliberately not sent,
    # e.g. a DM to someone no longer allowed to see balances.
    Column("skipped_reason", Text),
    # Since version 7: the delivery attempt under way (an id that is also put in the Slack
    # message's metadata) and when it began. Set before the post and cleared when Slack's
    # answer is known, so a row still carrying one after its claim lapsed may have reached
    # Slack: the channel's history is searched for that id before it is posted again.
    Column("posting", Text),
    Column("posting_at", BigInteger),
    # Since version 7: which process's claim this is (claimed_until says until when), so a
    # process whose claim lapsed cannot act on rows another process has taken since.
    Column("claimed_by", Text),
    # Since version 7: owed for longer than OUTBOX_GIVE_UP_DAYS and no longer retried (kept,
    # with last_error saying why, and reported; never silently dropped).
    Column("given_up_at", BigInteger),
    Index("ix_outbox_due", "sent_at", "next_attempt_at"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), nullable=False),
    # "" means every family, each on its own. Typed names are bounded before they get here.
    Column("family", Text, nullable=False, default=""),
    Column("kind", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Since version 3: "" means every account, each family of each on its own.
    Column("account", Text, nullable=False, default=""),
    # Since version 5: the channel it posts to ("" for a DM to user_id, who created it).
    Column("channel", Text, nullable=False, default=""),
    UniqueConstraint("user_id", "account", "family", "kind", "value", "channel", name="uq_subscription"),
)

# Only states that differ from the default (armed, no crossings yet) are stored.
subscription_state = Table(
    "subscription_state",
    metadata,
    Column("subscription_id", Integer, primary_key=True),
    # The family's name, hashed when long (bot.domain.alerts.key_part), so any name fits.
    Column("family", Text, primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("crossings", Integer, nullable=False, default=0),
)


# Since version 4: each family's run-out-ahead warning (only families that have been
# warned or re-armed have a row; none means armed, episode 0).
forecast_state = Table(
    "forecast_state",
    metadata,
    Column("account", Text, primary_key=True),
    # The family's name, hashed when long (bot.domain.alerts.key_part).
    Column("family", Text, primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("episode", Integer, nullable=False, default=0),
)


# Since version 6: warnings muted from Slack ("Mute this pack for 7 days"), with who and until when.
mutes = Table(
    "mutes",
    metadata,
    Column("scope", Text, primary_key=True),  # bot.domain.mutes: pack:… or family:…
    Column("label", Text, nullable=False),
    Column("muted_by", String(32), nullable=False),
    Column("until", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


# Since version 7: each Kling account's last answer and who may ask Kling next, shared by
# every process on the database (web, worker, cron `check`, replicas), so together they make
# one call per account per KLING_CACHE_TTL, at most one a second (bot/store/kling_calls.py).
kling_calls = Table(
    "kling_calls",
    metadata,
    Column("account", Text, primary_key=True),
    # The last good answer: its packs as JSON (bot.domain.packs) and when Kling gave it.
    Column("answer", Text),
    Column("fetched_at", BigInteger),
    # The process asking Kling now, and until when its turn lasts (a crashed one's lapses).
    Column("fetching_by", Text),
    Column("fetching_until", BigInteger),
    # When the last request to Kling ended: the next may start a second later.
    Column("last_call_at", BigInteger),
    # The last failed call (when no answer came since): when, what was said, and the error's
    # class, so the processes that waited for it do not each ask a failing Kling again.
    Column("failed_at", BigInteger),
    Column("failure", Text),
    Column("failure_kind", Text),
)


def _v1(conn: Connection) -> None:
    # Version 1 as it was released; later versions alter it. (The tables above are the
    # current shape, for queries.)
    v1 = MetaData()
    Table("meta", v1, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
    Table(
        "pack_state",
        v1,
        Column("pack_id", String(128), primary_key=True),
        Column("name", Text, nullable=False),
        Column("status", String(32), nullable=False),
        Column("remaining", Float, nullable=False),
        Column("total", Float, nullable=False),
        Column("invalid_time", BigInteger),
        Column("first_seen", BigInteger, nullable=False),
        Column("last_changed", BigInteger, nullable=False),
        Column("status_changed_at", BigInteger, nullable=False),
    )
    Table(
        "snapshots",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("pack_id", String(128), nullable=False),
        Column("at", BigInteger, nullable=False),
        Column("remaining", Float, nullable=False),
        Index("ix_snapshots_pack_at", "pack_id", "at"),
        Index("ix_snapshots_at", "at"),
    )
    Table(
        "outbox",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key", String(255), nullable=False, unique=True),
        Column("kind", String(32), nullable=False),
        Column("target", String(64), nullable=False),
        Column("target_is_user", Boolean, nullable=False, default=False),
        Column("payload", Text, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("next_attempt_at", BigInteger, nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text),
        Column("claimed_until", BigInteger),
        Column("sent_at", BigInteger),
        Column("slack_ts", String(32)),
        Index("ix_outbox_due", "sent_at", "next_attempt_at"),
    )
    Table(
        "subscriptions",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_id", String(32), nullable=False),
        Column("family", String(255), nullable=False, default=""),
        Column("kind", String(16), nullable=False),
        Column("value", Float, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        UniqueConstraint("user_id", "family", "kind", "value", name="uq_subscription"),
    )
    Table(
        "subscription_state",
        v1,
        Column("subscription_id", Integer, primary_key=True),
        Column("family", String(255), primary_key=True),
        Column("armed", Boolean, nullable=False),
        Column("crossings", Integer, nullable=False, default=0),
    )
    v1.create_all(conn)


def _v2(conn: Connection) -> None:
    """Alert episodes (re-arming, re-issued pack ids, absent packs), skipped notifications,
    and Text columns for values Kling or people choose."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        for table, column in (
            ("pack_state", "pack_id"),
            ("pack_state", "status"),
            ("snapshots", "pack_id"),
            ("subscriptions", "family"),
            ("subscription_state", "family"),
        ):
            conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT")
    for column in (
        "purchase_time BIGINT",
        "identity TEXT",
        "episode INTEGER NOT NULL DEFAULT 0",
        "pending_status TEXT",
        "expiry_episode INTEGER NOT NULL DEFAULT 0",
        "expiry_level INTEGER NOT NULL DEFAULT 0",
        "expiry_outside INTEGER NOT NULL DEFAULT 0",
        "absent_since BIGINT",
    ):
        conn.exec_driver_sql(f"ALTER TABLE pack_state ADD COLUMN {column}")
    # Record the expiry reminders earlier releases sent ("expiring:<pack id>:<days>d"), so
    # none is given again and an expiry moving later re-arms them.
    levels: dict[str, int] = {}
    for (key,) in conn.exec_driver_sql("SELECT key FROM outbox WHERE key LIKE 'expiring:%%'"):
        pack_id, _, days = key.removeprefix("expiring:").rpartition(":")
        if days.endswith("d") and days[:-1].isdigit():
            levels[pack_id] = min(levels.get(pack_id, 10**6), int(days[:-1]))
    if levels:
        conn.execute(
            update(pack_state).where(pack_state.c.pack_id == bindparam("b_id")).values(expiry_level=bindparam("lvl")),
            [{"b_id": k, "lvl": v} for k, v in levels.items()],
        )
    conn.exec_driver_sql("ALTER TABLE outbox ADD COLUMN skipped_reason TEXT")


def _v3(conn: Connection) -> None:
    """Several Kling accounts: the account in pack_state's key, in snapshots and in
    subscriptions. Everything stored so far belongs to the `default` account."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE pack_state ADD COLUMN account TEXT NOT NULL DEFAULT 'default'")
        conn.exec_driver_sql("ALTER TABLE pack_state DROP CONSTRAINT pack_state_pkey")
        conn.exec_driver_sql("ALTER TABLE pack_state ADD PRIMARY KEY (account, pack_id)")
        conn.exec_driver_sql("ALTER TABLE subscriptions ADD COLUMN account TEXT NOT NULL DEFAULT ''")
        conn.exec_driver_sql("ALTER TABLE subscriptions DROP CONSTRAINT uq_subscription")
        conn.exec_driver_sql(
            "ALTER TABLE subscriptions ADD CONSTRAINT uq_subscription UNIQUE (user_id, account, family, kind, value)"
        )
    else:
        # SQLite cannot change a key or a constraint in place: copy into the new shape. (The
        # tables above are that shape today; a later version changing them must freeze this.)
        _sqlite_rebuild(conn, pack_state, {"account": "'default'"})
        _sqlite_rebuild(conn, subscriptions, {"account": "''"})
    conn.exec_driver_sql("ALTER TABLE snapshots ADD COLUMN account TEXT NOT NULL DEFAULT 'default'")


def _sqlite_rebuild(conn: Connection, table: Table, new_columns: dict[str, str]) -> None:
    """Copy `table` into its current shape. Columns the old table lacks take the SQL value in
    `new_columns`, else their declared default, so a rebuild written for one version still
    works when a later version adds columns."""
    old = f"{table.name}_before_rebuild"
    conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {old}")
    existing = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({old})")}
    table.create(conn)
    names: list[str] = []
    values: list[str] = []
    for column in table.columns:
        if column.name in existing and column.name not in new_columns:
            names.append(column.name)
            values.append(column.name)
        elif column.name in new_columns:
            names.append(column.name)
            values.append(new_columns[column.name])
        elif column.default is not None and isinstance(column.default.arg, str | int | float | bool):
            names.append(column.name)
            arg = column.default.arg
            values.append(f"'{arg}'" if isinstance(arg, str) else str(int(arg) if isinstance(arg, bool) else arg))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(values)} FROM {old}")
    conn.exec_driver_sql(f"DROP TABLE {old}")


def _v4(conn: Connection) -> None:
    """Where each family's run-out-ahead warning stands, and the value each snapshot replaced."""
    forecast_state.create(conn)
    conn.exec_driver_sql("ALTER TABLE snapshots ADD COLUMN previous FLOAT")


def _v5(conn: Connection) -> None:
    """Thresholds that post to a channel instead of a DM."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE subscriptions ADD COLUMN channel TEXT NOT NULL DEFAULT ''")
        conn.exec_driver_sql("ALTER TABLE subscriptions DROP CONSTRAINT uq_subscription")
        conn.exec_driver_sql(
            "ALTER TABLE subscriptions ADD CONSTRAINT uq_subscription "
            "UNIQUE (user_id, account, family, kind, value, channel)"
        )
    else:
        _sqlite_rebuild(conn, subscriptions, {"channel": "''"})


def _v6(conn: Connection) -> None:
    """Mutes."""
    mutes.create(conn)


def _v7(conn: Connection) -> None:
    """Exactly once through a crash (the attempt id in the message), giving up after days,
    and Kling's answers shared between processes."""
    for column in ("posting TEXT", "posting_at BIGINT", "claimed_by TEXT", "given_up_at BIGINT"):
        conn.exec_driver_sql(f"ALTER TABLE outbox ADD COLUMN {column}")
    kling_calls.create(conn)


# Append only. Each step takes the schema from version i to i+1.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "meta"):
        return 0
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0
