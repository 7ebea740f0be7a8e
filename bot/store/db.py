"""The durable state: pack states, snapshots, the outbox and subscriptions.

SQLite by default, PostgreSQL when DATABASE_URL names it. Everything a poll decides is
written in one transaction, so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from bot.domain.accounts import DEFAULT_ACCOUNT
from bot.domain.alerts import PackState
from bot.domain.forecast import Point, RunOutState
from bot.domain.mutes import Mute
from bot.domain.packs import ResourcePack, pack_from_dict, pack_to_dict
from bot.store import schema as s

log = logging.getLogger(__name__)


# The execution option that marks a read-only transaction (Store.reading).
READ_ONLY_OPTION = "kling_read_only"
# Any fixed number: the advisory lock that serialises schema migrations across replicas.
MIGRATION_LOCK_ID = 0x6B6C696E67


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def normalize_url(url: str) -> str:
    """Heroku-style `postgres://` and bare `postgresql://` use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" hook below issue BEGIN itself (SQLAlchemy's documented
            # recipe): pysqlite's own transaction handling would start transactions too late.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            # WAL lets the HTTP threads read while a poll writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock at the start, so two writers queue instead of deadlocking;
            # a read-only transaction (Store.reading) takes none and runs beside a writer (WAL).
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def _baseline_key(account: str) -> str:
    # The default account keeps the key earlier releases wrote, so an upgrade is no new start.
    return "baseline_at" if account == DEFAULT_ACCOUNT else f"baseline_at:{account}"


def _state_row(state: PackState) -> dict[str, Any]:
    """The stored columns of a pack state (all but the id and the bookkeeping times)."""
    return {
        "name": state.name,
        "status": state.status,
        "remaining": state.remaining,
        "total": state.total,
        "invalid_time": to_ms(state.invalid_time) if state.invalid_time else None,
        "purchase_time": to_ms(state.purchase_time) if state.purchase_time else None,
        "identity": state.identity or state.pack_id,
        "episode": state.episode,
        "pending_status": state.pending_status,
        "expiry_episode": state.expiry_episode,
        "expiry_level": state.expiry_level,
        "expiry_outside": state.expiry_outside,
        "absent_since": to_ms(state.absent_since) if state.absent_since else None,
    }


def _pack_state(r: Any) -> PackState:
    return PackState(
        r["pack_id"],
        r["name"],
        r["status"],
        r["remaining"],
        r["total"],
        from_ms(r["invalid_time"]),
        from_ms(r["purchase_time"]),
        identity=r["identity"] or r["pack_id"],
        episode=r["episode"] or 0,
        pending_status=r["pending_status"],
        expiry_episode=r["expiry_episode"] or 0,
        expiry_level=r["expiry_level"] or 0,
        expiry_outside=r["expiry_outside"] or 0,
        absent_since=from_ms(r["absent_since"]),
        account=r["account"],
    )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    kind: str
    target: str
    target_is_user: bool
    payload: dict[str, Any]
    attempts: int
    last_error: str | None = None
    # An earlier attempt whose outcome is unknown (its process died mid-post, or the answer
    # was lost): the id put in that message's metadata, and when it began.
    posting: str | None = None
    posting_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: int
    user_id: str
    family: str
    kind: str
    value: float
    # "" for every account.
    account: str = ""
    # The channel it posts to; "" for a DM to user_id.
    channel: str = ""


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    @classmethod
    def open_existing(cls, url: str) -> Store | None:
        """The database when it exists, answers within a few seconds and has this bot's
        schema; None otherwise (never created nor migrated here). For commands that only make
        use of it when it is there (`balance`, `doctor`)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        parsed = make_url(normalize_url(url))
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database or parsed.database == ":memory:" or not os.path.exists(parsed.database):
                return None
        elif "connect_timeout" not in parsed.query:
            parsed = parsed.update_query_dict({"connect_timeout": "5"})
        store = cls(parsed.render_as_string(hide_password=False))
        try:
            with store.engine.connect() as conn:
                if s.current_version(conn) == s.SCHEMA_VERSION:
                    return store
        except (SQLAlchemyError, OSError, ImportError) as exc:
            log.debug("No database to share Kling's answers through (%s)", type(exc).__name__)
        store.close()
        return None

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> int:
        """Create or upgrade the schema; return the version reached."""
        with self.engine.connect() as conn:
            version = s.current_version(conn)
        if version > s.SCHEMA_VERSION:
            raise RuntimeError(
                f"The database schema is version {version}, newer than this bot knows ({s.SCHEMA_VERSION}): "
                "upgrade the bot instead of running an older one against this database."
            )
        for index in range(version, s.SCHEMA_VERSION):
            with self.transaction() as tx:
                # Another replica may be migrating too (web and worker start together): take
                # the lock first (SQLite's BEGIN IMMEDIATE already holds it; PostgreSQL needs
                # an advisory lock), then re-read the version inside it.
                if tx.conn.dialect.name == "postgresql":
                    tx.conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
                if s.current_version(tx.conn) > index:
                    continue
                s.MIGRATIONS[index](tx.conn)
                tx.set_meta("schema_version", str(index + 1))
                # A new database is no news; an upgrade of one in use is.
                (log.info if version else log.debug)("Database schema migrated to version %d", index + 1)
        return s.SCHEMA_VERSION

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.engine.begin() as conn:
            yield Tx(conn)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A transaction that only reads: on SQLite it takes no write lock, so a scrape, a
        health probe or a look at Kling's shared answer never waits behind a check."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                yield Tx(conn)


class Tx:
    """Operations inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        return self.conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        self._upsert_many(s.meta, [{"key": key, "value": value}], ["key"])

    def record_poll(self, now: datetime, accounts: Iterable[str]) -> None:
        """A check asked Kling and decided on its answer, for these accounts (read by
        `/readyz`, `/metrics` and `doctor`)."""
        now_ms = str(to_ms(now))
        self._upsert_many(
            s.meta,
            [{"key": "last_poll_at", "value": now_ms}]
            + [{"key": f"last_poll_at:{a}", "value": now_ms} for a in accounts],
            ["key"],
        )

    def last_poll_at(self, account: str | None = None) -> datetime | None:
        """When the last successful check was (of any account, or of this one)."""
        value = self.get_meta("last_poll_at" if account is None else f"last_poll_at:{account}")
        return from_ms(int(value)) if value else None

    # -- packs ------------------------------------------------------------------------------

    def pack_states(self, account: str = DEFAULT_ACCOUNT) -> dict[str, PackState] | None:
        """One account's state after its last poll, or None before its first poll (no baseline:
        an account added later is baselined on its own)."""
        if self.get_meta(_baseline_key(account)) is None:
            return None
        rows = self.conn.execute(select(s.pack_state).where(s.pack_state.c.account == account)).mappings()
        return {r["pack_id"]: _pack_state(r) for r in rows}

    def save_packs(
        self,
        states: dict[str, PackState],
        previous: dict[str, PackState] | None,
        now: datetime,
        *,
        reissued: Sequence[tuple[str, str]] = (),
        account: str = DEFAULT_ACCOUNT,
    ) -> int:
        """Store each pack's state where it changed, and a snapshot where its remaining
        quantity changed; `reissued` packs (old id, new id) move to their new id.

        Only new and changed packs are written, each kind in one batched statement, so a
        poll where nothing changed writes nothing here. Returns the snapshot rows written.
        """
        now_ms = to_ms(now)
        previous = previous or {}
        mine = s.pack_state.c.account == account
        if reissued:
            # Re-keyed in place, so first_seen and status_changed_at (which the digest reads)
            # stay what they were: it is the same pack.
            self.conn.execute(
                update(s.pack_state)
                .where(mine, s.pack_state.c.pack_id == bindparam("old"))
                .values(pack_id=bindparam("new")),
                [{"old": old, "new": new} for old, new in reissued],
            )
            # The pack's history follows it to its new id: trends and usage stay continuous.
            self.conn.execute(
                update(s.snapshots)
                .where(s.snapshots.c.account == account, s.snapshots.c.pack_id == bindparam("old"))
                .values(pack_id=bindparam("new")),
                [{"old": old, "new": new} for old, new in reissued],
            )
        moved = {new: old for old, new in reissued}
        new_rows: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        status_changed: list[dict[str, Any]] = []
        snapshot_rows = []
        for pack_id, state in states.items():
            before = previous.get(moved.get(pack_id, pack_id))
            values = _state_row(state)
            if before is None:
                new_rows.append(
                    {
                        "account": account,
                        "pack_id": pack_id,
                        **values,
                        "last_changed": now_ms,
                        "first_seen": now_ms,
                        "status_changed_at": now_ms,
                    }
                )
            elif _state_row(before) != values:
                row = {"b_pack_id": pack_id, **values, "last_changed": now_ms}
                if before.status != state.status:
                    status_changed.append({**row, "status_changed_at": now_ms})
                else:
                    changed.append(row)
            if state.absent_since is None and (before is None or before.remaining != state.remaining):
                # (A re-issued pack's snapshots moved with it: a snapshot only if it changed.)
                snapshot_rows.append(
                    {
                        "account": account,
                        "pack_id": pack_id,
                        "at": now_ms,
                        "remaining": state.remaining,
                        "previous": before.remaining if before is not None else None,
                    }
                )
        if new_rows:
            # Upsert, not insert: another replica may have stored the same new pack meanwhile.
            self._upsert_many(s.pack_state, new_rows, ["account", "pack_id"])
        for rows in (changed, status_changed):
            if rows:
                columns = [k for k in rows[0] if k != "b_pack_id"]
                self.conn.execute(
                    update(s.pack_state)
                    .where(mine, s.pack_state.c.pack_id == bindparam("b_pack_id"))
                    .values({c: bindparam(c) for c in columns}),
                    rows,
                )
        if snapshot_rows:
            self.conn.execute(insert(s.snapshots), snapshot_rows)
        if self.get_meta(_baseline_key(account)) is None:
            self.set_meta(_baseline_key(account), str(now_ms))
        return len(snapshot_rows)

    def baseline_at(self, account: str = DEFAULT_ACCOUNT) -> datetime | None:
        """When the bot first polled this account: its history starts there."""
        value = self.get_meta(_baseline_key(account))
        return from_ms(int(value)) if value else None

    def prune(
        self,
        now: datetime,
        *,
        sent_older_than: timedelta,
        snapshots_older_than: timedelta,
        absent_longer_than: timedelta = timedelta(days=7),
    ) -> dict[str, int]:
        """Forget notifications sent long ago, snapshots too old for any digest or trend, and
        packs Kling has stopped reporting for a while (so state stays bounded).

        Safe for exactly-once: an old event is never detected again (the pack's stored state
        has moved on, and threshold keys count crossings), so its outbox row is not needed.
        """
        self.conn.execute(
            delete(s.pack_state).where(
                s.pack_state.c.absent_since.is_not(None), s.pack_state.c.absent_since < to_ms(now - absent_longer_than)
            )
        )
        old = to_ms(now - sent_older_than)
        sent = self.conn.execute(
            delete(s.outbox).where(
                or_(
                    and_(s.outbox.c.sent_at.is_not(None), s.outbox.c.sent_at < old),
                    # Given up long enough ago to have been reported everywhere (doctor, check).
                    and_(s.outbox.c.given_up_at.is_not(None), s.outbox.c.given_up_at < old),
                )
            )
        ).rowcount
        snaps = self.conn.execute(
            delete(s.snapshots).where(s.snapshots.c.at < to_ms(now - snapshots_older_than))
        ).rowcount
        self.set_meta("last_prune_at", str(to_ms(now)))
        return {"outbox": sent, "snapshots": snaps}

    def packs_changed_status_since(self, since: datetime, statuses: Iterable[str]) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(s.pack_state)
            .where(s.pack_state.c.status_changed_at >= to_ms(since), s.pack_state.c.status.in_(list(statuses)))
            .order_by(s.pack_state.c.status_changed_at)
        ).mappings()
        return [dict(r) for r in rows]

    def remaining_since(self, when: datetime) -> dict[tuple[str, str], float]:
        """Each (account, pack)'s remaining quantity at `when`, or for a pack first seen
        later, its first snapshot."""
        return {key: points[0].remaining for key, points in self.histories(when).items() if points}

    def histories(self, since: datetime) -> dict[tuple[str, str], list[Point]]:
        """Each (account, pack)'s remaining quantity from `since` on: its value at `since`
        and every change after (for a pack first seen later, from its first snapshot).

        Reads only the rows after `since`, whatever the age of the database: a snapshot keeps
        the value it replaced (`previous`), so the value at `since` of a pack that changed
        later is the first later row's `previous`; one that has not changed since is what the
        pack state holds now.
        """
        snap = s.snapshots.c
        since_ms = to_ms(since)
        out: dict[tuple[str, str], list[Point]] = {}
        legacy: list[tuple[str, str]] = []
        rows = self.conn.execute(
            select(snap.account, snap.pack_id, snap.at, snap.remaining, snap.previous)
            .where(snap.at > since_ms)
            .order_by(snap.account, snap.pack_id, snap.at, snap.id)
        )
        for account, pack_id, at, remaining, previous in rows:
            points = out.get((account, pack_id))
            if points is None:
                points = out[(account, pack_id)] = []
                if previous is not None:
                    points.append(Point(since, previous))
                else:
                    legacy.append((account, pack_id))
            points.append(Point(from_ms(at) or since, remaining))
        state = s.pack_state.c
        seen_before = set()
        for account, pack_id, remaining in self.conn.execute(
            select(state.account, state.pack_id, state.remaining).where(state.first_seen <= since_ms)
        ):
            seen_before.add((account, pack_id))
            out.setdefault((account, pack_id), [Point(since, remaining)])
        # Only packs known before `since` have a value then (the others start later).
        legacy = [key for key in legacy if key in seen_before]
        if legacy:
            self._legacy_starts(out, legacy, since)
        return out

    def _legacy_starts(
        self, out: dict[tuple[str, str], list[Point]], keys: list[tuple[str, str]], since: datetime
    ) -> None:
        # Snapshots written before `previous` existed (release 0.1.0): the value at `since` is
        # the last row before it, looked up for these few packs only.
        snap = s.snapshots.c
        for account, pack_id in keys:
            before = self.conn.execute(
                select(snap.remaining)
                .where(snap.account == account, snap.pack_id == pack_id, snap.at <= to_ms(since))
                .order_by(snap.at.desc())
                .limit(1)
            ).scalar()
            if before is not None:
                out[(account, pack_id)].insert(0, Point(since, before))

    def run_out_states(self) -> dict[tuple[str, str], RunOutState]:
        rows = self.conn.execute(select(s.forecast_state))
        return {(r.account, r.family): RunOutState(bool(r.armed), r.episode) for r in rows}

    def set_run_out_states(self, states: Mapping[tuple[str, str], RunOutState]) -> None:
        if states:
            self._upsert_many(
                s.forecast_state,
                [
                    {"account": account, "family": family, "armed": st.armed, "episode": st.episode}
                    for (account, family), st in states.items()
                ],
                ["account", "family"],
            )

    # -- Kling's answers, shared by every process ---------------------------------------------

    def latest_answers(self, account: str | None = None) -> dict[str, tuple[datetime, list[ResourcePack]]]:
        """Each account's (or one account's) last good answer from Kling, fetched by any
        process: {account: (fetched_at, packs)}. What `/metrics` reports without asking Kling."""
        query = select(s.kling_calls.c.account, s.kling_calls.c.fetched_at, s.kling_calls.c.answer).where(
            s.kling_calls.c.answer.is_not(None)
        )
        if account is not None:
            query = query.where(s.kling_calls.c.account == account)
        rows = self.conn.execute(query)
        out: dict[str, tuple[datetime, list[ResourcePack]]] = {}
        for account, fetched_at, answer in rows:
            out[account] = (from_ms(fetched_at) or datetime.now(UTC), [pack_from_dict(p) for p in json.loads(answer)])
        return out

    def ensure_kling_calls_row(self, account: str) -> None:
        self._insert_ignore(s.kling_calls, {"account": account}, ["account"])

    def store_answer(self, account: str, packs: Sequence[ResourcePack], fetched_at: datetime) -> None:
        """Keep an account's fresh answer for the other processes (the newest wins)."""
        answer = json.dumps([pack_to_dict(p) for p in packs], ensure_ascii=False)
        c = s.kling_calls.c
        stmt = self._dialect_insert(s.kling_calls).values(account=account, answer=answer, fetched_at=to_ms(fetched_at))
        # A slow process whose turn lapsed must not put an older answer over a newer one.
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["account"],
                set_={"answer": stmt.excluded.answer, "fetched_at": stmt.excluded.fetched_at},
                where=or_(c.fetched_at.is_(None), c.fetched_at < stmt.excluded.fetched_at),
            )
        )

    # -- mutes ------------------------------------------------------------------------------

    def add_mute(self, scope: str, label: str, muted_by: str, until: datetime, now: datetime) -> None:
        self._upsert_many(
            s.mutes,
            [{"scope": scope, "label": label, "muted_by": muted_by, "until": to_ms(until), "created_at": to_ms(now)}],
            ["scope"],
        )

    def remove_mute(self, scope: str) -> bool:
        return bool(self.conn.execute(delete(s.mutes).where(s.mutes.c.scope == scope)).rowcount)

    def active_mutes(self, now: datetime) -> list[Mute]:
        rows = self.conn.execute(select(s.mutes).where(s.mutes.c.until > to_ms(now)).order_by(s.mutes.c.until))
        return [Mute(r.scope, r.label, r.muted_by, from_ms(r.until) or now) for r in rows]

    # -- outbox -----------------------------------------------------------------------------

    def existing_keys(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            found.update(self.conn.execute(select(s.outbox.c.key).where(s.outbox.c.key.in_(chunk))).scalars())
        return found

    def enqueue(
        self, key: str, kind: str, target: str, payload: dict[str, Any], now: datetime, *, to_user: bool = False
    ) -> bool:
        """Owe a notification; False if one with this key is already owed or sent."""
        now_ms = to_ms(now)
        row = {
            "key": key,
            "kind": kind,
            "target": target,
            "target_is_user": to_user,
            "payload": json.dumps(payload, ensure_ascii=False),
            "created_at": now_ms,
            "next_attempt_at": now_ms,
            "attempts": 0,
        }
        return self._insert_ignore(s.outbox, row, ["key"])

    def claim_due(self, now: datetime, *, lease_ms: int, limit: int, claimer: str = "") -> list[OutboxRow]:
        """Take up to `limit` due notifications for this process, for `lease_ms`.

        A row claimed by another process (a replica) and not yet released is skipped; a
        claim that lapsed (its process died) is taken over. The claim is one UPDATE whose
        WHERE repeats the test, so two processes can never both win the same row.
        """
        now_ms = to_ms(now)
        unclaimed = or_(s.outbox.c.claimed_until.is_(None), s.outbox.c.claimed_until < now_ms)
        due = and_(
            s.outbox.c.sent_at.is_(None),
            s.outbox.c.given_up_at.is_(None),
            s.outbox.c.next_attempt_at <= now_ms,
            unclaimed,
        )
        # PostgreSQL: rows another process is claiming right now are skipped, not waited on
        # (waiting, then re-checking the condition, would find them taken and claim nothing,
        # ending that process's pass while work is left). SQLite claims one process at a time.
        candidates = (
            self.conn.execute(
                select(s.outbox.c.id)
                .where(due)
                .order_by(s.outbox.c.next_attempt_at, s.outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        if not candidates:
            return []
        claimed = self.conn.execute(
            update(s.outbox)
            .where(s.outbox.c.id.in_(candidates), due)
            .values(claimed_until=now_ms + lease_ms, claimed_by=claimer or None)
            .returning(*s.outbox.c)
        ).mappings()
        rows = sorted(claimed, key=lambda r: (r["next_attempt_at"], r["id"]))
        return [
            OutboxRow(
                r["id"],
                r["key"],
                r["kind"],
                r["target"],
                bool(r["target_is_user"]),
                json.loads(r["payload"]),
                r["attempts"],
                r["last_error"],
                r["posting"],
                from_ms(r["posting_at"]),
            )
            for r in rows
        ]

    def begin_posting(
        self, row_ids: Sequence[int], attempt: str, now: datetime, *, claimer: str = "", lease_ms: int = 0
    ) -> bool:
        """Record, before the post, that these rows are being posted as the message carrying
        `attempt` in its metadata: if the process dies before Slack's answer is recorded, the
        next one to claim them looks for that message before posting again.

        With `claimer`, only while its claim holds, which is renewed for `lease_ms` so the post
        ends inside it; False (nothing recorded) when any row is no longer this claimer's."""
        o = s.outbox.c
        now_ms = to_ms(now)
        ids = list(row_ids)
        values: dict[str, Any] = {"posting": attempt, "posting_at": now_ms}
        query = update(s.outbox).where(o.id.in_(ids))
        if claimer:
            query = query.where(o.claimed_by == claimer, o.claimed_until >= now_ms, o.sent_at.is_(None))
            values["claimed_until"] = now_ms + lease_ms
        done = len(self.conn.execute(query.values(values).returning(o.id)).all())
        if done == len(ids):
            return True
        if done:
            # Some rows were taken by another process: give back what was marked here.
            self.conn.execute(
                update(s.outbox).where(o.id.in_(ids), o.posting == attempt).values(posting=None, posting_at=None)
            )
        return False

    def clear_posting(self, row_ids: Sequence[int], *, claimer: str = "") -> None:
        """The earlier attempt is known not to have reached Slack."""
        self.conn.execute(
            self._mine(update(s.outbox).where(s.outbox.c.id.in_(list(row_ids))), claimer).values(
                posting=None, posting_at=None
            )
        )

    @staticmethod
    def _mine(query: Any, claimer: str) -> Any:
        """Only rows still claimed by `claimer` (when given): a process whose claim lapsed
        must not undo what the process that took the rows over has done."""
        return query.where(s.outbox.c.claimed_by == claimer) if claimer else query

    def give_up_overdue(self, now: datetime, owed_since: datetime) -> list[dict[str, Any]]:
        """Mark messages owed since before `owed_since` (and not being sent now) as given up;
        return them ({key, target, target_is_user, last_error}). Kept, never deleted."""
        o = s.outbox.c
        now_ms = to_ms(now)
        rows = self.conn.execute(
            update(s.outbox)
            .where(
                o.sent_at.is_(None),
                o.given_up_at.is_(None),
                o.created_at < to_ms(owed_since),
                or_(o.claimed_until.is_(None), o.claimed_until < now_ms),
            )
            .values(given_up_at=now_ms, claimed_until=None)
            .returning(o.key, o.target, o.target_is_user, o.last_error, o.posting)
        ).mappings()
        return [dict(r) for r in rows]

    def given_up(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Messages given up (since `since`): {key, target, target_is_user, last_error, given_up_at}."""
        o = s.outbox.c
        query = select(o.key, o.target, o.target_is_user, o.last_error, o.given_up_at).where(o.given_up_at.is_not(None))
        if since is not None:
            query = query.where(o.given_up_at >= to_ms(since))
        return [
            {**dict(r), "target_is_user": bool(r["target_is_user"]), "given_up_at": from_ms(r["given_up_at"])}
            for r in self.conn.execute(query.order_by(o.given_up_at)).mappings()
        ]

    def release(self, row_ids: Sequence[int], *, claimer: str = "") -> None:
        """Give claimed rows back unsent and untried, for the next pass (of any process)."""
        self.conn.execute(
            self._mine(update(s.outbox).where(s.outbox.c.id.in_(list(row_ids))), claimer).values(
                claimed_until=None, claimed_by=None
            )
        )

    def mark_sent(self, row_ids: Sequence[int], now: datetime, slack_ts: str | None) -> None:
        """Sent (whoever holds the rows now: a message that went out is sent, full stop)."""
        self.conn.execute(
            update(s.outbox)
            .where(s.outbox.c.id.in_(list(row_ids)))
            .values(
                claimed_by=None,
                sent_at=to_ms(now),
                slack_ts=slack_ts,
                claimed_until=None,
                attempts=s.outbox.c.attempts + 1,
                last_error=None,
                posting=None,
                posting_at=None,
            )
        )

    def mark_failed(
        self,
        row_ids: Sequence[int],
        error: str,
        retry_at: datetime,
        *,
        maybe_posted: bool = False,
        claimer: str = "",
    ) -> None:
        """Owed again from `retry_at`. `maybe_posted`: the attempt may have reached Slack (the
        answer was lost), so its id stays for the next try to look for."""
        values: dict[str, Any] = {
            "next_attempt_at": to_ms(retry_at),
            "claimed_until": None,
            "claimed_by": None,
            "attempts": s.outbox.c.attempts + 1,
            "last_error": error[:1000],
        }
        if not maybe_posted:
            values.update(posting=None, posting_at=None)
        self.conn.execute(self._mine(update(s.outbox).where(s.outbox.c.id.in_(list(row_ids))), claimer).values(values))

    def mark_skipped(self, row_ids: Sequence[int], now: datetime, reason: str) -> None:
        """Done without sending, on purpose; kept (with the reason) like a sent row."""
        self.conn.execute(
            update(s.outbox)
            .where(s.outbox.c.id.in_(list(row_ids)))
            .values(sent_at=to_ms(now), claimed_until=None, skipped_reason=reason[:1000])
        )

    def payload_texts(self, keys: Sequence[str]) -> list[str]:
        """The fallback text of these notifications, in the order given."""
        found = self.conn.execute(select(s.outbox.c.key, s.outbox.c.payload).where(s.outbox.c.key.in_(list(keys))))
        rows = {key: payload for key, payload in found}
        return [json.loads(rows[k]).get("text", "") for k in keys if k in rows]

    def outbox_status(self, key: str) -> dict[str, Any] | None:
        """One notification's state: {"sent_at", "skipped_reason", "last_error", "attempts", "target"}."""
        row = (
            self.conn.execute(
                select(
                    s.outbox.c.sent_at,
                    s.outbox.c.skipped_reason,
                    s.outbox.c.last_error,
                    s.outbox.c.attempts,
                    s.outbox.c.target,
                    s.outbox.c.target_is_user,
                ).where(s.outbox.c.key == key)
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None

    def failing(self) -> list[dict[str, Any]]:
        """Owed notifications whose last attempt failed, grouped: {target, target_is_user, error, count}."""
        rows = self.conn.execute(
            select(s.outbox.c.target, s.outbox.c.target_is_user, s.outbox.c.last_error, func.count())
            .where(s.outbox.c.sent_at.is_(None), s.outbox.c.given_up_at.is_(None), s.outbox.c.last_error.is_not(None))
            .group_by(s.outbox.c.target, s.outbox.c.target_is_user, s.outbox.c.last_error)
        )
        return [{"target": t, "target_is_user": bool(u), "error": e, "count": int(n)} for t, u, e, n in rows]

    def outbox_counts(self) -> dict[str, int]:
        """{"sent", "skipped", "owed", "failing", "given_up"}: sent includes skipped (done on
        purpose without a post); owed excludes given up; failing is owed whose last try failed."""
        o = s.outbox.c
        rows = self.conn.execute(
            select(
                func.count().filter(o.sent_at.is_not(None)),
                func.count().filter(o.skipped_reason.is_not(None)),
                func.count().filter(o.sent_at.is_(None), o.given_up_at.is_(None)),
                func.count().filter(o.sent_at.is_(None), o.given_up_at.is_(None), o.last_error.is_not(None)),
                func.count().filter(o.given_up_at.is_not(None)),
            )
        ).one()
        return dict(zip(("sent", "skipped", "owed", "failing", "given_up"), (int(n or 0) for n in rows), strict=True))

    # -- subscriptions ----------------------------------------------------------------------

    def add_subscription(
        self,
        user_id: str,
        family: str,
        kind: str,
        value: float,
        now: datetime,
        *,
        account: str = "",
        channel: str = "",
    ) -> bool:
        return self._insert_ignore(
            s.subscriptions,
            {
                "user_id": user_id,
                "account": account,
                "family": family,
                "kind": kind,
                "value": value,
                "created_at": to_ms(now),
                "channel": channel,
            },
            ["user_id", "account", "family", "kind", "value", "channel"],
        )

    def subscriptions(self, user_id: str | None = None) -> list[SubscriptionRow]:
        query = select(s.subscriptions).order_by(s.subscriptions.c.id)
        if user_id is not None:
            query = query.where(s.subscriptions.c.user_id == user_id)
        return [
            SubscriptionRow(r["id"], r["user_id"], r["family"], r["kind"], r["value"], r["account"], r["channel"])
            for r in self.conn.execute(query).mappings()
        ]

    def remove_subscriptions(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        self.conn.execute(delete(s.subscription_state).where(s.subscription_state.c.subscription_id.in_(list(ids))))
        return self.conn.execute(delete(s.subscriptions).where(s.subscriptions.c.id.in_(list(ids)))).rowcount

    def subscription_states(self) -> dict[tuple[int, str], tuple[bool, int]]:
        rows = self.conn.execute(select(s.subscription_state))
        return {(r.subscription_id, r.family): (bool(r.armed), r.crossings) for r in rows}

    def set_subscription_states(self, rows: Sequence[tuple[int, str, bool, int]]) -> None:
        """Store (subscription_id, family, armed, crossings) rows in one batched upsert."""
        if rows:
            self._upsert_many(
                s.subscription_state,
                [{"subscription_id": i, "family": f, "armed": a, "crossings": c} for i, f, a, c in rows],
                ["subscription_id", "family"],
            )

    # -- dialect helpers --------------------------------------------------------------------

    def _dialect_insert(self, table: Any) -> Any:
        if self.conn.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _insert_ignore(self, table: Any, row: dict[str, Any], conflict: list[str]) -> bool:
        # RETURNING says whether a row went in on both dialects; rowcount does not (psycopg
        # reports -1 for an INSERT that SQLAlchemy gave an implicit RETURNING).
        stmt = (
            self._dialect_insert(table)
            .values(row)
            .on_conflict_do_nothing(index_elements=conflict)
            .returning(table.c[conflict[0]])
        )
        return self.conn.execute(stmt).first() is not None

    def _upsert_many(self, table: Any, rows: list[dict[str, Any]], conflict: list[str]) -> None:
        stmt = self._dialect_insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=conflict, set_={k: stmt.excluded[k] for k in rows[0] if k not in conflict}
        )
        self.conn.execute(stmt, rows)
