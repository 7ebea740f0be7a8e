"""Upgrading keeps everything: a database written by release 0.1.0 (schema version 1) is
migrated in place, the first check after it sends nothing new, and the next real transition
warns exactly once."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, select, text

from bot.store import schema
from bot.store.db import normalize_url
from tests.fake_clock import FakeClock
from tests.fixtures.make_release_db import T0, final_packs
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import FakeSlack
from tests.world import ALERTS, DIGEST, World

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1.0.db"


def release_database(database_url: str, tmp_path: Path) -> str:
    """The fixture as `database_url`: the file itself for SQLite; on PostgreSQL, release
    0.1.0's schema (version 1) filled with the fixture's rows, as that release left them."""
    if database_url.startswith("sqlite"):
        db = tmp_path / "kling-bot.db"
        shutil.copy(FIXTURE, db)
        return f"sqlite:///{db}"
    source = create_engine(f"sqlite:///{FIXTURE}")
    target = create_engine(normalize_url(database_url))
    with source.connect() as src, target.begin() as dst:
        schema.MIGRATIONS[0](dst)  # version 1, exactly as released
        for table in ("meta", "pack_state", "snapshots", "outbox", "subscriptions", "subscription_state"):
            rows = [dict(r) for r in src.execute(text(f"SELECT * FROM {table}")).mappings()]
            for row in rows:  # SQLite keeps booleans as 0/1
                for column in ("target_is_user", "armed"):
                    if column in row:
                        row[column] = bool(row[column])
            if rows:
                columns = ", ".join(rows[0])
                values = ", ".join(f":{c}" for c in rows[0])
                dst.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), rows)
        for table in ("snapshots", "outbox", "subscriptions"):  # serial ids go on after the copied ones
            dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    source.dispose()
    target.dispose()
    return database_url


def upgraded_world(kling: FakeKling, slack: FakeSlack, tmp_path: Path, database_url: str = "sqlite") -> World:
    url = release_database(database_url, tmp_path)
    kling.packs = final_packs()
    return World(kling, slack, url, clock=FakeClock(T0 + timedelta(hours=1)), KLING_LOOKBACK_DAYS="3650")


def test_release_database_upgrades_without_repeating_anything(
    kling: FakeKling, slack: FakeSlack, tmp_path: Path, database_url: str
) -> None:
    """After the upgrade, checks send no warning, DM or digest already sent by the old release."""
    world = upgraded_world(kling, slack, tmp_path, database_url)
    try:
        report = world.check()
        world.check()
        assert report is not None and not report.baseline
        assert world.posts(ALERTS) == [] and world.posts(DIGEST) == [] and world.dms("U_ALICE") == []
        engine = create_engine(normalize_url(world.env["DATABASE_URL"]))
        with engine.connect() as conn:
            assert schema.current_version(conn) == schema.SCHEMA_VERSION
            subs = conn.execute(select(schema.subscriptions)).all()
        engine.dispose()
        assert len(subs) == 1
        # A new subscription after the upgrade gets a fresh id (PostgreSQL's sequence too).
        assert "I'll DM you" in str(world.command("subscribe 10%", user_id="U_BOB"))
    finally:
        world.close()


def test_next_real_transition_after_the_upgrade_warns_once(
    kling: FakeKling, slack: FakeSlack, tmp_path: Path, database_url: str
) -> None:
    """A pack used up after the upgrade is warned once; the expiring pack gets its one-day reminder once."""
    world = upgraded_world(kling, slack, tmp_path, database_url)
    try:
        world.check()
        packs = final_packs()
        packs[5] = {**packs[5], "status": "runOut", "remaining_quantity": 0}
        kling.packs = packs
        world.check()
        world.check()
        [used_up] = world.posts(ALERTS)
        assert "Image Generation - 5,000 entries" in used_up["text"] and "used up" in used_up["text"]
        world.set_time(T0 + timedelta(days=4, hours=12))  # rel-b: 12 hours left
        world.check()
        world.check()
        posts = [p["text"] for p in world.posts(ALERTS)]
        # Days later the forecast has history: Image Generation, at its pace, runs out within
        # the week, which is news (a warning of its own) and not a repeat.
        expiring = [t for t in posts if "Video Generation - 1,000 entries" in t and "expires" in t]
        assert len(expiring) == 1 and len([t for t in posts if "used up" in t]) == 1
        assert all("At this pace" in t for t in posts if t not in expiring and "used up" not in t)
    finally:
        world.close()
