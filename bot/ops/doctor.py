"""`kling-bot doctor`: the checks an operator would otherwise make by hand, one line each.

Every check yields a `Result`: ok, warn (worth knowing, not a failure) or FAIL, with a
one-line detail and, when it is not ok, what to do. Doctor changes nothing that matters: the
database is read, never created or migrated (its Kling calls take the account's turn and note
when they ended, so a running bot keeps its second after them), and nothing is posted unless
`--post-test` asks for it.

No secret is printed. The checks only ever name settings and hosts, and every line is also
passed through `Doctor.redact`, which masks the value of each secret setting (tokens, keys,
the signing secret, the database password) wherever it appears, so a library's error text
that echoes one cannot leak it either.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import unquote, urlparse

from bot.config import ConfigError, KlingAccountSettings, Settings
from bot.kling.errors import ClockSkewError, KlingError

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from sqlalchemy.engine import URL

    from bot.domain.packs import ResourcePack
    from bot.kling.client import KlingClient
    from bot.store.db import Store, Tx
    from bot.store.kling_calls import StoredKlingCalls

log = logging.getLogger(__name__)

# A poll is overdue after this many intervals: one missed poll is a blip, three are not.
STALE_POLLS = 3
# Kling checks the signed token's `nbf` against its own clock, and the bot backdates it by
# 5 s (bot.kling.auth); Slack's Date header has whole seconds, so allow one more.
CLOCK_TOLERANCE_S = 6
# A database server that drops packets would otherwise hold doctor for the OS's TCP timeout.
DB_CONNECT_TIMEOUT_S = 10
# Given-up messages listed one per line, at most; the rest are counted.
MAX_GIVEN_UP_LISTED = 10
# Kling accounts asked at once (each account has its own one-call-a-second limit).
MAX_PARALLEL_KLING = 8
SLACK_TIMEOUT_S = 15
TEST_MESSAGE = ":wrench: Test message from `kling-bot doctor --post-test`: Kling Balance Bot can post in this channel."
NO_BOT_RUNNING = (
    "no `kling-bot serve` or `worker` seems to be running against this database: start one "
    "(or schedule `kling-bot check` every POLL_INTERVAL_MINUTES), or read its log"
)
# Environment variables whose values are secrets, by how their names end.
_SECRET_SUFFIXES = ("_KEY", "_SECRET", "_TOKEN", "_PASSWORD")
_UPPER_WORD = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
_ACCOUNT_SETTING = re.compile(r"\bKLING_(ACCESS_KEY|SECRET_KEY|API_KEY|API_BASE)\b")
_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
_REINSTALL = (
    "reinstall the app with the scopes in manifest.yml (`kling-bot manifest` prints it): the app's "
    "OAuth & Permissions page, then Reinstall to Workspace"
)


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Result:
    """One check's outcome: `fix` says what to do when it is not ok."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def line(self) -> str:
        text = f"{self.status.value:<6}{self.name}: {self.detail}"
        if self.fix and self.status is not Status.OK:
            text += f" — {self.fix}"
        return text


def ok(name: str, detail: str) -> Result:
    return Result(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str = "") -> Result:
    return Result(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str = "") -> Result:
    return Result(name, Status.FAIL, detail, fix)


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsRead:
    """The settings as far as they could be read. `problems` are ConfigError's lines;
    `broken` the variables they name that are set (to something invalid): checks that need
    one of those are left out, since the default that replaced it is not what was meant."""

    settings: Settings | None
    problems: tuple[str, ...] = ()
    broken: frozenset[str] = frozenset()


def read_settings(environ: Mapping[str, str]) -> SettingsRead:
    """Read every setting as `serve` needs them; on problems, read again without the broken
    variables and without requiring anything, so the checks that can still run do."""
    try:
        return SettingsRead(Settings.from_env(environ, need_kling=True, need_slack=True, need_slack_requests=True))
    except ConfigError as exc:
        problems = tuple(exc.problems)
    named = set(_UPPER_WORD.findall(" ".join(problems)))
    broken = frozenset(name for name in environ if name in named)
    rest = {name: value for name, value in environ.items() if name not in broken}
    try:
        lenient: Settings | None = Settings.from_env(rest, need_kling=False, need_slack=False)
    except ConfigError:  # a problem naming no variable: nothing more can be read
        lenient = None
    return SettingsRead(lenient, problems, broken)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values no line may show, longest first (so a secret containing another is masked whole)."""
    found = {v.strip() for name, v in environ.items() if name.upper().endswith(_SECRET_SUFFIXES)}
    database_url = environ.get("DATABASE_URL", "")
    try:
        password = urlparse(database_url).password
    except ValueError:
        password = None
    if password:
        found.update({password, unquote(password)})
    return sorted((v for v in found if len(v) >= 4), key=len, reverse=True)


# -- the checks -----------------------------------------------------------------------------


class Doctor:
    """Runs the checks in order; later checks use what earlier ones learnt (the Slack token
    works, Kling refused, which deliveries fail)."""

    def __init__(self, environ: Mapping[str, str], *, post_test: bool = False) -> None:
        self._environ = environ
        self._post_test = post_test
        self._read = read_settings(environ)
        self._secrets = secret_values(environ)
        self._slack_ok = False
        # Kling accounts that answered, and that refused or failed, in this run.
        self._kling_answered = 0
        self._kling_failed = 0
        # When a bot last asked Kling, read before doctor's own calls (which are recorded too,
        # to keep the second between calls) so they are not taken for a running bot's.
        self._own_kling_calls = False
        self._bot_kling_call: datetime | None = None
        # Owed messages whose last try failed, by target and error; None: the database was not read.
        self._failing: list[dict[str, Any]] | None = None

    def redact(self, text: str) -> str:
        from bot.logs import redact

        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def results(self) -> Iterator[Result]:
        yield from self._settings()
        settings = self._read.settings
        if settings is None:
            return
        checks: Sequence[tuple[str, Callable[[Settings], Iterator[Result]]]] = (
            ("Kling", self._kling),
            ("Slack", self._slack),
            ("Database", self._database),
            ("Channels", self._channels),
        )
        for name, check in checks:
            yield from _guarded(name, functools.partial(check, settings))

    # -- settings

    def _settings(self) -> Iterator[Result]:
        read = self._read
        for problem in read.problems:
            yield fail("Settings", problem, "see README, 'Settings'")
        if read.settings is None:
            yield fail("Settings", "nothing else can be checked until the settings above are fixed")
        elif not read.problems:
            s = read.settings
            slack = "Socket Mode" if s.socket_mode else f"HTTP on port {s.port}"
            yield ok(
                "Settings",
                f"every setting is valid: {len(s.accounts)} Kling account(s), Slack over {slack}, "
                f"a poll every {s.poll_interval_minutes} min",
            )

    # -- Kling

    def _kling(self, settings: Settings) -> Iterator[Result]:
        if "KLING_ACCOUNTS" in self._read.broken:
            return
        # An account without usable keys was already named by a Settings line.
        accounts = [a for a in settings.accounts if _has_keys(a) and not self._uses_broken(a)]
        if not accounts:
            return
        from bot.services import build_services
        from bot.store.db import Store
        from bot.store.kling_calls import StoredKlingCalls

        services = build_services(settings)
        # With the bot's database at hand, each call waits for its account's turn, so it is
        # never the second request within a second beside a running bot.
        store = Store.open_existing(settings.database_url) if "DATABASE_URL" not in self._read.broken else None
        shared = StoredKlingCalls(store) if store is not None else None
        if store is not None:
            self._bot_kling_call = _last_kling_call(store)
            self._own_kling_calls = True
        try:
            # One call per account, all at once: each account has its own rate limit.
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_KLING, len(accounts))) as pool:
                answers = [
                    pool.submit(_ask_kling, services.clients[a.account], shared, a.account.key) for a in accounts
                ]
                for account, answer in zip(accounts, answers, strict=True):
                    yield self._kling_result(settings, account, answer.result())
        finally:
            services.close()
            if store is not None:
                store.close()

    def _prefix(self, account: KlingAccountSettings) -> str:
        # Named accounts (KLING_ACCOUNTS) take KLING_<NAME>_…; the single unnamed one KLING_….
        return account.account.env_prefix if self._environ.get("KLING_ACCOUNTS", "").strip() else "KLING_"

    def _uses_broken(self, account: KlingAccountSettings) -> bool:
        prefix = self._prefix(account)
        names = {f"{prefix}{s}" for s in ("ACCESS_KEY", "SECRET_KEY", "API_KEY", "API_BASE")}
        return bool(names & self._read.broken)

    def _kling_result(
        self, settings: Settings, account: KlingAccountSettings, answer: list[ResourcePack] | KlingError
    ) -> Result:
        name = f"Kling account {account.account.name}" if settings.multi_account else "Kling"
        host = urlparse(account.api_base).netloc or account.api_base
        if isinstance(answer, KlingError):
            self._kling_failed += 1
            prefix = self._prefix(account)
            # The advice names KLING_ACCESS_KEY and the like: this account's own names instead.
            advice = _ACCOUNT_SETTING.sub(lambda m: prefix + m.group(1), answer.advice)
            # describe() starts "Kling: …", which the line's name already says.
            detail = f"{answer.describe().removeprefix('Kling: ')} (asked {host})"
            if isinstance(answer, ClockSkewError):
                detail += f"; this machine's clock says {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
            return fail(name, detail, advice)
        way = "the API key" if account.api_key else "the access and secret keys (the JWT's times fit Kling's clock)"
        self._kling_answered += 1
        return ok(
            name,
            f"{host} accepts {way}: {len(answer)} pack(s) bought in the last {settings.kling_lookback_days} days",
        )

    # -- Slack

    def _slack(self, settings: Settings) -> Iterator[Result]:
        broken = self._read.broken
        if settings.slack_bot_token and not {"SLACK_BOT_TOKEN", "SLACK_API_URL"} & broken:
            yield from self._slack_token(settings)
        if settings.socket_mode and not {"SLACK_APP_TOKEN", "SLACK_API_URL"} & broken:
            yield _app_token(settings)

    def _slack_token(self, settings: Settings) -> Iterator[Result]:
        from slack_sdk.errors import SlackApiError

        asked = datetime.now(UTC)
        try:
            response = _slack_client(settings).auth_test()
        except SlackApiError as exc:
            code = _slack_code(exc)
            if code in _TOKEN_ERRORS:
                fix = "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page "
                fix += "into SLACK_BOT_TOKEN"
            else:
                fix = "try again in a minute; if it persists, check SLACK_API_URL (default https://slack.com/api/)"
            yield fail("Slack", f"SLACK_BOT_TOKEN refused by Slack ({code})", fix)
            return
        except Exception as exc:  # urllib's network errors, and anything else on the way
            yield fail("Slack", *_unreachable(settings, exc))
            return
        answered = datetime.now(UTC)
        self._slack_ok = True
        yield ok("Slack", f"token works for workspace {response.get('team')} as {response.get('user')}")
        yield _scopes(response.headers)
        if any(a.access_key and not a.api_key for a in settings.accounts):
            clock = _clock(response.headers, asked + (answered - asked) / 2)
            if clock is not None:
                yield clock

    # -- the database

    def _database(self, settings: Settings) -> Iterator[Result]:
        if "DATABASE_URL" in self._read.broken:
            return
        from sqlalchemy.engine import make_url

        from bot.store.db import Store

        url = make_url(settings.database_url)
        if url.get_backend_name() == "sqlite":
            path = url.database
            if not path or path == ":memory:":
                yield warn(
                    "Database",
                    "an in-memory SQLite database: nothing is kept between runs, and no other process sees it",
                    "set DATABASE_URL to a file (sqlite:///kling-bot.db) or to PostgreSQL",
                )
                return
            where = f"SQLite file {os.path.abspath(path)}"
            if not os.path.exists(path):
                # Opening it would create it: doctor only looks.
                yield _missing_sqlite(where, path)
                return
            store = Store(settings.database_url)
        else:
            where = f"PostgreSQL on {url.host or 'localhost'}" + (f":{url.port}" if url.port else "")
            store = Store(_with_connect_timeout(url))
        try:
            yield from self._database_contents(settings, store, where)
        finally:
            store.close()

    def _database_contents(self, settings: Settings, store: Store, where: str) -> Iterator[Result]:
        from sqlalchemy.exc import SQLAlchemyError

        from bot.cli import _db_reason
        from bot.store import schema

        try:
            with store.engine.connect() as conn:
                version = schema.current_version(conn)
        except (SQLAlchemyError, ImportError, OSError) as exc:  # unreachable, refused, no driver
            yield fail(
                "Database",
                f"could not open {where} ({_db_reason(exc)})",
                "check DATABASE_URL (host, port, user, password, database name) and that the server runs "
                "and can be reached from here",
            )
            return
        yield ok("Database", f"{where} is reachable")
        schema_line = _schema(version, schema.SCHEMA_VERSION)
        yield schema_line
        if schema_line.status is not Status.OK:
            return  # the tables are not the shape this bot reads
        now = datetime.now(UTC)
        overdue = timedelta(minutes=STALE_POLLS * settings.poll_interval_minutes)
        try:
            with store.reading() as tx:
                facts = _read_facts(tx, settings, now, overdue)
            if self._own_kling_calls:
                facts = dataclasses.replace(facts, last_kling_call=self._bot_kling_call)
        except SQLAlchemyError as exc:
            yield fail("Database", f"could not read {where} ({_db_reason(exc)})", "see the bot's logs")
            return
        self._failing = facts.failing
        yield _outbox(facts, overdue, _nobody_delivers(facts, now, overdue))
        yield from _given_up(facts)
        yield from self._last_polls(settings, facts, now, overdue)

    def _last_polls(self, settings: Settings, facts: Facts, now: datetime, overdue: timedelta) -> Iterator[Result]:
        every = f"one is due every {settings.poll_interval_minutes} min"
        last = facts.last_poll
        if last is None:
            why = self._nobody_polls(facts, now, overdue)
            yield fail("Last poll", "no successful poll is recorded in this database", why)
            return
        if now - last > overdue:
            yield fail(
                "Last poll",
                f"the last successful poll was {_ago(now - last)} ago ({last:%Y-%m-%d %H:%M} UTC); {every}",
                self._nobody_polls(facts, now, overdue),
            )
            return
        yield ok("Last poll", f"{_ago(now - last)} ago ({last:%Y-%m-%d %H:%M} UTC); {every}")
        # With several accounts, one may fail while the others poll fine.
        for account in settings.accounts if settings.multi_account else ():
            when = facts.account_polls.get(account.account.key)
            if when is None or now - when > overdue:
                since = f"was {_ago(now - when)} ago" if when else "has not happened yet"
                yield fail(
                    f"Last poll of account {account.account.name}",
                    f"its last successful poll {since}, while the others poll",
                    "see its Kling line above, and the bot's log",
                )

    def _nobody_polls(self, facts: Facts, now: datetime, overdue: timedelta) -> str:
        """Why polls are not succeeding, as far as doctor can tell."""
        # A poll succeeds when any account answers, so Kling is the reason only if none did.
        if self._kling_failed and not self._kling_answered:
            return "Kling refuses the bot (see the Kling lines above): no poll succeeds until that is fixed"
        if facts.last_kling_call is not None and now - facts.last_kling_call <= overdue:
            return (
                f"a process asked Kling {_ago(now - facts.last_kling_call)} ago, but its checks do not finish: "
                "read the log of `kling-bot serve` / `worker`"
            )
        return NO_BOT_RUNNING

    # -- channels

    def _channels(self, settings: Settings) -> Iterator[Result]:
        broken = self._read.broken
        digest, alert = settings.digest_channel, settings.alert_channel
        if "ALERT_CHANNEL" in broken:
            alert = ""  # not DIGEST_CHANNEL's, which the lenient read put in its place
        if not digest and "DIGEST_CHANNEL" not in broken:
            yield warn(
                "DIGEST_CHANNEL", "not set: no daily digest is posted", "set it to a channel ID (C…) to get the digest"
            )
        if not alert and "ALERT_CHANNEL" not in broken:
            yield warn(
                "ALERT_CHANNEL",
                "not set, nor DIGEST_CHANNEL: no run-out or expiry warnings in a channel, only threshold DMs",
                "set ALERT_CHANNEL to a channel ID (C…)",
            )
        channels: dict[str, str] = {}  # channel -> the settings naming it
        if digest:
            channels[digest] = "DIGEST_CHANNEL"
        if alert:
            channels[alert] = "DIGEST_CHANNEL and ALERT_CHANNEL" if alert == digest else "ALERT_CHANNEL"
        inherited = bool(alert) and not self._environ.get("ALERT_CHANNEL", "").strip()
        for channel, label in channels.items():
            yield from self._channel(f"{label} {channel}", channel, inherited)
        yield from self._other_targets(set(channels))
        if self._post_test:
            yield from self._test_posts(settings, channels)

    def _channel(self, name: str, channel: str, inherited: bool) -> Iterator[Result]:
        note = " (ALERT_CHANNEL is not set: warnings go here too)" if inherited else ""
        if self._failing is None:
            yield ok(name, f"set{note}; deliveries not checked: the database was not read")
            return
        groups = [g for g in self._failing if g["target"] == channel and not g["target_is_user"]]
        for group in groups:
            yield _failing(name, group)
        if not groups:
            later = "" if self._post_test else "; `--post-test` posts a test message"
            yield ok(name, f"set{note}; nothing owed to it is failing{later}")

    def _other_targets(self, channels: set[str]) -> Iterator[Result]:
        """Deliveries failing elsewhere: DMs, and channels that thresholds post to."""
        for group in self._failing or ():
            if group["target_is_user"]:
                yield _failing(f"DMs to {group['target']}", group)
            elif group["target"] not in channels:
                yield _failing(f"Channel {group['target']}", group)

    def _test_posts(self, settings: Settings, channels: dict[str, str]) -> Iterator[Result]:
        from slack_sdk.errors import SlackApiError

        from bot.notify import slack_fix

        if not channels:
            yield warn("Test post", "nothing posted: neither DIGEST_CHANNEL nor ALERT_CHANNEL is set")
            return
        if not self._slack_ok:
            yield warn("Test post", "nothing posted: the Slack token does not work (see the Slack line above)")
            return
        client = _slack_client(settings)
        for channel, label in channels.items():
            name = f"Test post to {label} {channel}"
            try:
                client.chat_postMessage(channel=channel, text=TEST_MESSAGE, unfurl_links=False, unfurl_media=False)
            except SlackApiError as exc:
                code = _slack_code(exc)
                fix = slack_fix(f"Slack: {code}", channel, to_user=False) or "a passing problem at Slack: try again"
                yield fail(name, f"Slack refused it ({code})", fix)
            except Exception as exc:  # urllib's network errors
                yield fail(name, *_unreachable(settings, exc))
            else:
                yield ok(name, "posted a test message")


def _nobody_delivers(facts: Facts, now: datetime, overdue: timedelta) -> str:
    """Why owed messages are not even tried. Kling is not the reason: delivery runs whether
    or not Kling answers."""
    if facts.last_poll is not None and now - facts.last_poll <= overdue:
        return (
            f"a bot polls this database (last {_ago(now - facts.last_poll)} ago) but does not deliver: "
            "read the log of `kling-bot serve` / `worker`"
        )
    return NO_BOT_RUNNING


def _guarded(name: str, check: Callable[[], Iterator[Result]]) -> Iterator[Result]:
    """A check that breaks (a bug) is one failing line, and the others still run."""
    try:
        yield from check()
    except Exception as exc:
        log.debug("doctor: the %s check failed", name, exc_info=True)
        yield fail(
            name,
            f"the check itself failed ({type(exc).__name__})",
            "run it again with LOG_LEVEL=DEBUG to see why, and report it",
        )


# -- Kling helpers --------------------------------------------------------------------------


def _has_keys(account: KlingAccountSettings) -> bool:
    return bool(account.api_key or (account.access_key and account.secret_key))


def _ask_kling(client: KlingClient, shared: StoredKlingCalls | None, account: str) -> list[ResourcePack] | KlingError:
    try:
        if shared is not None:
            return shared.in_turn(account, client.fetch_packs)
        return client.fetch_packs()
    except KlingError as exc:
        return exc


# -- Slack helpers --------------------------------------------------------------------------


def _slack_client(settings: Settings) -> WebClient:
    from slack_sdk import WebClient

    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT_S)


def _slack_code(exc: SlackApiError) -> str:
    response = exc.response
    code = response.get("error") if isinstance(response.data, dict) else None
    return str(code or f"HTTP {response.status_code}")


def _unreachable(settings: Settings, exc: Exception) -> tuple[str, str]:
    return (
        f"could not reach Slack at {settings.slack_api_url} ({type(exc).__name__})",
        "check the network, and SLACK_API_URL (default https://slack.com/api/)",
    )


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A response header by name, whatever its case (urllib keeps the server's)."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list | tuple) and value else value)
    return None


def _scopes(headers: Mapping[str, Any] | None) -> Result:
    from bot.views.manifest import HISTORY_SCOPES, bot_scopes

    wanted = bot_scopes()
    raw = _header(headers, "x-oauth-scopes")
    if raw is None:
        return warn(
            "Slack scopes",
            "Slack did not say which scopes the token has (no x-oauth-scopes header)",
            "compare the app's OAuth & Permissions page with manifest.yml (`kling-bot manifest`)",
        )
    granted = {scope.strip() for scope in raw.split(",") if scope.strip()}
    missing = sorted(wanted - granted)
    if not missing:
        return ok("Slack scopes", f"all {len(wanted)} scopes the manifest asks for are granted")
    detail = f"missing {', '.join(missing)}"
    if HISTORY_SCOPES & set(missing):
        detail += (
            " (without the history scopes, exactly once through a crash is at-least-once: "
            "a message whose post was cut off by a crash may be sent twice)"
        )
    return fail("Slack scopes", detail, _REINSTALL)


def _clock(headers: Mapping[str, Any] | None, local: datetime) -> Result | None:
    """This machine's clock against Slack's Date header: Kling refuses a signed token (JWT)
    from a clock that is off, and this says so before Kling does."""
    raw = _header(headers, "date")
    try:
        server = parsedate_to_datetime(raw) if raw else None
    except (TypeError, ValueError):
        server = None
    if server is None or server.tzinfo is None:
        return None
    skew = (local - server).total_seconds()
    if abs(skew) <= CLOCK_TOLERANCE_S:
        return ok("Clock", "this machine's clock agrees with Slack's, as the signed Kling token (JWT) needs")
    way = "ahead of" if skew > 0 else "behind"
    return warn(
        "Clock",
        f"this machine's clock is about {abs(skew):.0f} s {way} Slack's: Kling refuses a signed token (JWT) "
        "whose times do not fit its own clock",
        "sync the clock (NTP, e.g. `timedatectl set-ntp true`)",
    )


def _app_token(settings: Settings) -> Result:
    from bot.cli import _app_token_problem

    problem = _app_token_problem(settings)
    if problem is None:
        return ok("Slack app token", "SLACK_APP_TOKEN opens a Socket Mode connection")
    message, _code = problem
    detail, _, fix = message.rstrip(".").partition(". ")
    return fail("Slack app token", detail, fix or "check the network, and SLACK_API_URL")


# -- database helpers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What doctor reads from the database, in one transaction."""

    counts: dict[str, int]
    failing: list[dict[str, Any]]
    given_up: list[dict[str, Any]]
    stuck: int
    last_poll: datetime | None
    account_polls: dict[str, datetime | None]
    last_kling_call: datetime | None


def _last_kling_call(store: Store) -> datetime | None:
    from sqlalchemy import func, select

    from bot.store import schema
    from bot.store.db import from_ms

    try:
        with store.reading() as tx:
            return from_ms(tx.conn.execute(select(func.max(schema.kling_calls.c.last_call_at))).scalar())
    except Exception:  # the Database check says what is wrong with it
        return None


def _read_facts(tx: Tx, settings: Settings, now: datetime, overdue: timedelta) -> Facts:
    from sqlalchemy import func, or_, select

    from bot.store import schema
    from bot.store.db import from_ms, to_ms

    o = schema.outbox.c
    given_up = [
        dict(row)
        for row in tx.conn.execute(
            select(o.key, o.kind, o.target, o.target_is_user, o.last_error, o.created_at, o.given_up_at)
            .where(o.given_up_at.is_not(None))
            .order_by(o.given_up_at.desc())
        ).mappings()
    ]
    # Owed, due long ago, and nobody holding it: no process is delivering.
    stuck = tx.conn.execute(
        select(func.count()).where(
            o.sent_at.is_(None),
            o.given_up_at.is_(None),
            o.next_attempt_at < to_ms(now - overdue),
            or_(o.claimed_until.is_(None), o.claimed_until < to_ms(now)),
        )
    ).scalar()
    last_call = tx.conn.execute(select(func.max(schema.kling_calls.c.last_call_at))).scalar()
    return Facts(
        counts=tx.outbox_counts(),
        failing=tx.failing(),
        given_up=given_up,
        stuck=int(stuck or 0),
        last_poll=tx.last_poll_at(),
        account_polls={a.account.key: tx.last_poll_at(a.account.key) for a in settings.accounts},
        last_kling_call=from_ms(last_call),
    )


def _with_connect_timeout(url: URL) -> str:
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(DB_CONNECT_TIMEOUT_S)})
    return url.render_as_string(hide_password=False)


def _missing_sqlite(where: str, path: str) -> Result:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return fail(
            "Database",
            f"{where}: its folder does not exist, so the bot cannot create it",
            "create the folder, or point DATABASE_URL elsewhere (a relative path is relative to the working directory)",
        )
    return warn(
        "Database",
        f"{where} does not exist yet: the bot creates it on first start, so nothing has been polled or sent here",
        "start the bot (`kling-bot serve` or `worker`) from this directory, or point DATABASE_URL at its database",
    )


def _schema(version: int, expected: int) -> Result:
    if version == expected:
        return ok("Database schema", f"version {version}, as this bot expects")
    if version == 0:
        return warn(
            "Database schema",
            "the database is empty: the bot creates its tables on first start",
            "start the bot (`kling-bot serve` or `worker`)",
        )
    if version < expected:
        return fail(
            "Database schema",
            f"version {version}, this bot expects {expected}",
            "start the bot once to upgrade it (`serve`, `worker` and `check` migrate it at start; doctor never does)",
        )
    return fail(
        "Database schema",
        f"version {version}, newer than this bot knows ({expected})",
        "this bot is older than the database: run the release that wrote it, or upgrade this installation",
    )


def _outbox(facts: Facts, overdue: timedelta, why: str) -> Result:
    c = facts.counts
    detail = f"{c['sent']} sent ({c['skipped']} skipped on purpose), {c['owed']} owed"
    if c["failing"]:
        detail += f" ({c['failing']} failing: see the channel lines)"
    if c["given_up"]:
        detail += f", {c['given_up']} given up"
    if facts.stuck:
        return fail(
            "Outbox",
            f"{detail}; {facts.stuck} owed message(s) due for over {_ago(overdue)} and not tried: "
            "nothing is delivering them",
            why,
        )
    return ok("Outbox", detail)


def _given_up(facts: Facts) -> Iterator[Result]:
    from bot.notify import slack_fix

    for row in facts.given_up[:MAX_GIVEN_UP_LISTED]:
        target, to_user = row["target"], bool(row["target_is_user"])
        error = row["last_error"] or "no error recorded"
        created = _when(row["created_at"])
        given_up = _when(row["given_up_at"])
        fix = slack_fix(error, target, to_user=to_user) or "the cause was passing"
        yield fail(
            "Given up",
            f"{row['kind']} {row['key']} to {'user' if to_user else 'channel'} {target}, owed since {created} "
            f"and given up {given_up}: last error {error}",
            f"{fix}; this message is no longer retried",
        )
    more = len(facts.given_up) - MAX_GIVEN_UP_LISTED
    if more > 0:
        yield fail("Given up", f"and {more} more message(s) given up", "fix the causes above")


def _failing(name: str, group: dict[str, Any]) -> Result:
    from bot.notify import slack_fix

    detail = f"{group['count']} message(s) owed, not delivered ({group['error']})"
    fix = slack_fix(group["error"], group["target"], to_user=group["target_is_user"])
    if fix is None:
        return warn(name, detail, "retried with backoff: it clears by itself")
    return fail(name, detail, fix)


def _when(ms: int | None) -> str:
    from bot.store.db import from_ms

    when = from_ms(ms)
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else "an unknown time"


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# -- running --------------------------------------------------------------------------------


def summary(results: Sequence[Result]) -> str:
    failed = sum(1 for r in results if r.failed)
    warned = sum(1 for r in results if r.status is Status.WARN)
    if failed:
        also = f" and {warned} warned" if warned else ""
        return f"{failed} of {len(results)} checks failed{also}: fix the FAIL lines, then run `kling-bot doctor` again."
    if warned:
        return f"All {len(results)} checks passed, {warned} with a warning."
    return f"All {len(results)} checks passed."


def run(environ: Mapping[str, str], *, post_test: bool, stdout: TextIO) -> bool:
    """Print one line per check as it finishes, then a summary; True when none failed."""
    doctor = Doctor(environ, post_test=post_test)
    results: list[Result] = []
    for result in doctor.results():
        results.append(result)
        print(doctor.redact(result.line()), file=stdout, flush=True)
    print(doctor.redact(summary(results)), file=stdout, flush=True)
    return not any(r.failed for r in results)
