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
    exists,
    literal,
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
    Column("expiry_warned", Boolean, nullable=False, default=False),
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
    UniqueConstraint("user_id", "family", "kind", "value", name="uq_subscription"),
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
    false = "FALSE" if postgres else "0"
    for column in (
        "purchase_time BIGINT",
        "identity TEXT",
        "episode INTEGER NOT NULL DEFAULT 0",
        "pending_status TEXT",
        "expiry_episode INTEGER NOT NULL DEFAULT 0",
        f"expiry_warned BOOLEAN NOT NULL DEFAULT {false}",
        "expiry_outside INTEGER NOT NULL DEFAULT 0",
        "absent_since BIGINT",
    ):
        conn.exec_driver_sql(f"ALTER TABLE pack_state ADD COLUMN {column}")
    # A pack already warned about expiring is marked so: an expiry moving later re-arms it.
    warned = literal("expiring:") + pack_state.c.pack_id + literal(":%")
    conn.execute(
        update(pack_state)
        .where(exists(select(outbox.c.id).where(outbox.c.key.like(warned))))
        .values(expiry_warned=True)
    )
    conn.exec_driver_sql("ALTER TABLE outbox ADD COLUMN skipped_reason TEXT")


# Append only. Each step takes the schema from version i to i+1.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "meta"):
        return 0
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0
