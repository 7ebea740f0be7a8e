"""All settings, read from environment variables in this one place.

`Settings.from_env(environ)` is a pure function of a mapping so tests pass a dict. Every
problem is collected, so one run names every missing or invalid variable at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.accounts import DEFAULT, Account, valid_account_name

DEFAULT_KLING_API_BASE = "https://api-singapore.klingai.com"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite:///kling-bot.db"
# Each account is polled in parallel and has its own limit; a few dozen is plenty.
MAX_ACCOUNTS = 20
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class ConfigError(Exception):
    """One or more settings are missing or invalid; `problems` has one line per setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    def __str__(self) -> str:
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"Settings need attention (see README, 'Settings'):\n{lines}"


@dataclass(frozen=True)
class KlingAccountSettings:
    """How to reach one Kling account: its keys and its region's host."""

    account: Account
    api_base: str = DEFAULT_KLING_API_BASE
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)


def _inherit_default(accounts: list[KlingAccountSettings]) -> list[KlingAccountSettings]:
    """One account keeps the state stored for the single, unnamed account of a bot without
    KLING_ACCOUNTS (its history, warnings already given, subscriptions): the one named
    `default` if any, else the first listed. Going from one account to several then repeats
    nothing and loses no history."""
    if not accounts or any(a.account.key == DEFAULT.key for a in accounts):
        return accounts
    first = accounts[0]
    heir = dataclasses.replace(first, account=Account(DEFAULT.key, first.account.name))
    return [heir, *accounts[1:]]


@dataclass(frozen=True)
class Settings:
    # One entry per Kling account (KLING_ACCOUNTS), or the `default` one.
    accounts: tuple[KlingAccountSettings, ...] = (KlingAccountSettings(DEFAULT),)
    kling_lookback_days: int = 365
    kling_cache_ttl_s: int = 300
    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    # Who may create thresholds that post to a channel; empty: anyone allowed to see balances.
    admin_users: frozenset[str] = frozenset()
    slack_bot_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    log_level: str = "INFO"
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    poll_interval_minutes: int = 30
    digest_channel: str = ""
    alert_channel: str = ""
    expiry_warning_days: int = 7
    # Burn rates use this many days of history; a family projected to run out within
    # forecast_warning_days is warned.
    forecast_window_days: int = 7
    forecast_warning_days: int = 7
    digest_time: time = time(9, 0)
    digest_timezone: str = "UTC"
    # A message owed this long (its errors need a person) is marked given up and reported.
    outbox_give_up_days: int = 7
    # How long a process's claim on owed messages lasts: a process that dies mid-send hands
    # its messages to the others this long after it took them.
    outbox_claim_s: int = 60
    # Serve GET /metrics (and /healthz, /readyz) on this port in Socket Mode and `worker`;
    # None: off (HTTP mode serves them on PORT).
    metrics_port: int | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        need_kling: bool = True,
        need_slack: bool = False,
        need_slack_requests: bool | None = None,
        need_digest_channel: bool = False,
        demo_hint: bool = False,
    ) -> Settings:
        """Read settings; raise `ConfigError` naming every missing or invalid one.

        `need_kling` / `need_slack` say which credentials this command cannot run without;
        `need_slack_requests` (default: as `need_slack`) whether it receives requests from
        Slack, and so needs the signing secret or the app token. `demo_hint`: the command has
        a --demo, so missing Kling keys can suggest it.
        """
        if need_slack_requests is None:
            need_slack_requests = need_slack
        problems: list[str] = []

        def text(name: str) -> str:
            return environ.get(name, "").strip()

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = text(name)
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a whole number (default {default})")
                return default
            if not low <= value <= high:
                problems.append(f"{name}={value} is out of range: use {low} to {high} (default {default})")
                return default
            return value

        def url(name: str, default: str) -> str:
            raw = text(name) or default
            parsed = urlparse(raw)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(f"{name}={raw!r} is not an http(s) URL (default {default})")
                return default
            return raw

        def id_list(name: str) -> frozenset[str]:
            return frozenset(part.strip() for part in text(name).split(",") if part.strip())

        def kling_account(account: Account, prefix: str) -> KlingAccountSettings:
            """One account's keys from `<prefix>ACCESS_KEY` and the like, every problem named."""
            access, secret = text(f"{prefix}ACCESS_KEY"), text(f"{prefix}SECRET_KEY")
            api_key = text(f"{prefix}API_KEY")
            if not api_key:
                if access and not secret:
                    problems.append(f"{prefix}SECRET_KEY is missing: it is needed with {prefix}ACCESS_KEY")
                elif secret and not access:
                    problems.append(f"{prefix}ACCESS_KEY is missing: it is needed with {prefix}SECRET_KEY")
                elif need_kling and not access:
                    where = "" if account == DEFAULT else f" for account {account.name}"
                    problems.append(
                        f"Kling credentials are missing{where}: set {prefix}ACCESS_KEY and {prefix}SECRET_KEY, "
                        f"or {prefix}API_KEY" + (" (or use --demo to try the bot without keys)" if demo_hint else "")
                    )
            return KlingAccountSettings(
                account,
                api_base=url(f"{prefix}API_BASE", DEFAULT_KLING_API_BASE).rstrip("/"),
                access_key=access,
                secret_key=secret,
                api_key=api_key,
            )

        names = [n.strip() for n in text("KLING_ACCOUNTS").split(",") if n.strip()]
        if not names:
            accounts: tuple[KlingAccountSettings, ...] = (kling_account(DEFAULT, "KLING_"),)
        else:
            seen: set[str] = set()
            found = []
            for name in names:
                if not valid_account_name(name):
                    problems.append(
                        f"KLING_ACCOUNTS: {name[:40]!r} is not an account name: use letters, digits, - and _ "
                        "(up to 40), e.g. KLING_ACCOUNTS=studio,china-lab"
                    )
                    continue
                if name.casefold() in seen:
                    problems.append(f"KLING_ACCOUNTS names {name!r} twice (names are case-insensitive)")
                    continue
                seen.add(name.casefold())
                account = Account.named(name)
                found.append(kling_account(account, account.env_prefix))
            found = _inherit_default(found)
            accounts = tuple(found) or (KlingAccountSettings(DEFAULT),)
            if len(names) > MAX_ACCOUNTS:
                problems.append(f"KLING_ACCOUNTS names {len(names)} accounts: at most {MAX_ACCOUNTS}")

        bot_token, signing_secret = text("SLACK_BOT_TOKEN"), text("SLACK_SIGNING_SECRET")
        app_token = text("SLACK_APP_TOKEN")
        if need_slack:
            if not bot_token:
                problems.append("SLACK_BOT_TOKEN is missing: the bot token (xoxb-...) from the Slack app's OAuth page")
            elif not bot_token.startswith("xoxb-"):
                problems.append("SLACK_BOT_TOKEN does not look like a bot token: it should start with xoxb-")
            if app_token and not app_token.startswith("xapp-"):
                problems.append("SLACK_APP_TOKEN does not look like an app-level token: it should start with xapp-")
            if need_slack_requests and not app_token and not signing_secret:
                problems.append(
                    "SLACK_SIGNING_SECRET is missing: HTTP mode needs it to verify requests "
                    "(or set SLACK_APP_TOKEN for Socket Mode)"
                )

        level = (text("LOG_LEVEL") or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append(f"LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR (default INFO)")
            level = "INFO"

        def channel(name: str) -> str:
            value = text(name).lstrip("#")
            if value and not _CHANNEL_ID.match(value):
                problems.append(
                    f"{name}={value!r} is not a channel ID: use the ID (C…), found under the channel's "
                    "name → About, and invite the bot to the channel"
                )
                return ""
            return value

        digest_time = time(9, 0)
        raw_time = text("DIGEST_TIME")
        if raw_time:
            match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw_time)
            if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
                digest_time = time(int(match.group(1)), int(match.group(2)))
            else:
                problems.append(f"DIGEST_TIME={raw_time!r} is not a time of day: use HH:MM, 24-hour (default 09:00)")

        zone = text("DIGEST_TIMEZONE") or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f"DIGEST_TIMEZONE={zone!r} is not an IANA time zone name: use one like Europe/Berlin or "
                "America/New_York (default UTC)"
            )
            zone = "UTC"

        database_url = text("DATABASE_URL") or DEFAULT_DATABASE_URL
        if not re.match(r"^(sqlite|postgres(ql)?)(\+\w+)?://", database_url):
            problems.append("DATABASE_URL must start with sqlite:/// or postgresql:// (default sqlite:///kling-bot.db)")
            database_url = DEFAULT_DATABASE_URL
        else:
            try:
                urlparse(database_url).port  # noqa: B018  (raises on a port that is not a number in range)
            except ValueError:
                # Never echo the URL: it may hold a password.
                problems.append("DATABASE_URL has an invalid port: use a number from 1 to 65535, e.g. :5432")
                database_url = DEFAULT_DATABASE_URL

        digest_channel = channel("DIGEST_CHANNEL")
        if need_digest_channel and not digest_channel and "DIGEST_CHANNEL" not in " ".join(problems):
            problems.append("DIGEST_CHANNEL is missing: the ID (C…) of the channel the digest goes to")
        alert_channel = channel("ALERT_CHANNEL") or digest_channel

        slack_api_url = url("SLACK_API_URL", DEFAULT_SLACK_API_URL)
        if not slack_api_url.endswith("/"):
            slack_api_url += "/"

        settings = cls(
            accounts=accounts,
            kling_lookback_days=integer("KLING_LOOKBACK_DAYS", 365, 1, 3650),
            kling_cache_ttl_s=integer("KLING_CACHE_TTL", 300, 0, 86400),
            allowed_users=id_list("KLING_ALLOWED_USERS"),
            allowed_channels=id_list("KLING_ALLOWED_CHANNELS"),
            admin_users=id_list("KLING_ADMIN_USERS"),
            slack_bot_token=bot_token,
            slack_signing_secret=signing_secret,
            slack_app_token=app_token,
            slack_api_url=slack_api_url,
            port=integer("PORT", 3000, 0, 65535),
            log_level=level,
            database_url=database_url,
            poll_interval_minutes=integer("POLL_INTERVAL_MINUTES", 30, 1, 1440),
            digest_channel=digest_channel,
            alert_channel=alert_channel,
            expiry_warning_days=integer("EXPIRY_WARNING_DAYS", 7, 1, 365),
            forecast_window_days=integer("FORECAST_WINDOW_DAYS", 7, 1, 90),
            forecast_warning_days=integer("FORECAST_WARNING_DAYS", 7, 1, 365),
            digest_time=digest_time,
            digest_timezone=zone,
            outbox_give_up_days=integer("OUTBOX_GIVE_UP_DAYS", 7, 1, 365),
            outbox_claim_s=integer("OUTBOX_CLAIM_SECONDS", 60, 40, 3600),
            metrics_port=integer("METRICS_PORT", 0, 1, 65535) if text("METRICS_PORT") else None,
        )
        if problems:
            raise ConfigError(problems)
        return settings

    @property
    def multi_account(self) -> bool:
        """Several accounts: only then is an account named anywhere."""
        return len(self.accounts) > 1

    @property
    def account_names(self) -> dict[str, str] | None:
        """Display names by account key when there are several (views name accounts only
        then); None with one account."""
        if not self.multi_account:
            return None
        return {a.account.key: a.account.name for a in self.accounts}

    @property
    def account_list(self) -> tuple[Account, ...]:
        return tuple(a.account for a in self.accounts)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.digest_timezone)
