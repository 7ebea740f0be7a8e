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
    select,
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

pack_state = Table(
    "pack_state",
    metadata,
    Column("pack_id", String(128), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("remaining", Float, nullable=False),
    Column("total", Float, nullable=False),
    Column("invalid_time", BigInteger),
    Column("first_seen", BigInteger, nullable=False),
    # When any stored field last changed (not written on polls where nothing did).
    Column("last_changed", BigInteger, nullable=False),
    Column("status_changed_at", BigInteger, nullable=False),
)

# One row per change of a pack's remaining quantity (not per poll): enough for trends and
# "used since the last digest", and the table grows with use, not with time.
snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pack_id", String(128), nullable=False),
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
    Index("ix_outbox_due", "sent_at", "next_attempt_at"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), nullable=False),
    # "" means every family, each on its own.
    Column("family", String(255), nullable=False, default=""),
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
    Column("family", String(255), primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("crossings", Integer, nullable=False, default=0),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[meta, pack_state, snapshots, outbox, subscriptions, subscription_state])


# Append only. Each step takes the schema from version i to i+1.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "meta"):
        return 0
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0
