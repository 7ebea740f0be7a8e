"""The database: created or migrated at start, never losing data, one owner per notification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.store import schema
from bot.store.db import Store, normalize_url

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_schema_is_created_and_migrating_again_keeps_data(database_url: str) -> None:
    """A new database gets the schema; starting again migrates nothing and keeps what was stored."""
    store = Store(database_url)
    assert store.migrate() == schema.SCHEMA_VERSION
    with store.transaction() as tx:
        assert tx.enqueue("k1", "run_out", "C1", {"text": "hi"}, NOW)
        tx.add_subscription("U1", "", "percent", 20, NOW)
    store.close()
    again = Store(database_url)
    again.migrate()
    with again.transaction() as tx:
        assert tx.outbox_counts()["owed"] == 1 and tx.outbox_counts()["sent"] == 0
        assert [s.user_id for s in tx.subscriptions()] == ["U1"]
    again.close()


def test_newer_schema_is_refused_with_a_clear_message(database_url: str) -> None:
    """An older bot started on a database a newer one migrated refuses instead of damaging it."""
    store = Store(database_url)
    store.migrate()
    with store.transaction() as tx:
        tx.set_meta("schema_version", str(schema.SCHEMA_VERSION + 1))
    with pytest.raises(RuntimeError, match="newer than this bot"):
        store.migrate()
    store.close()


def test_same_event_is_owed_once(database_url: str) -> None:
    """Enqueuing an event key twice leaves one owed notification."""
    store = Store(database_url)
    store.migrate()
    with store.transaction() as tx:
        assert tx.enqueue("run_out:p1", "run_out", "C1", {"text": "a"}, NOW)
        assert not tx.enqueue("run_out:p1", "run_out", "C1", {"text": "a"}, NOW)
        assert tx.outbox_counts()["owed"] == 1
    store.close()


def test_a_claimed_notification_is_not_claimed_again_until_its_lease_lapses(database_url: str) -> None:
    """Two processes asking for due notifications never both get the same one."""
    store = Store(database_url)
    store.migrate()
    with store.transaction() as tx:
        tx.enqueue("k", "x", "C1", {"text": "a"}, NOW)
    with store.transaction() as tx:
        assert len(tx.claim_due(NOW, lease_ms=60_000, limit=10)) == 1
    with store.transaction() as tx:
        assert tx.claim_due(NOW, lease_ms=60_000, limit=10) == []
    later = datetime.fromtimestamp(NOW.timestamp() + 61, tz=UTC)
    with store.transaction() as tx:
        assert len(tx.claim_due(later, lease_ms=60_000, limit=10)) == 1
    store.close()


def test_heroku_style_postgres_urls_use_psycopg() -> None:
    """`postgres://` (Heroku) and `postgresql://` both select the psycopg driver."""
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_runs_in_wal_mode(database_url: str) -> None:
    """SQLite uses write-ahead logging so Slack commands can read while a poll writes."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    store = Store(database_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()
