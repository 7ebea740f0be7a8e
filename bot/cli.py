"""`kling-bot`: the one console script. Exit 0 on success, 2 on bad settings, 1 when Kling
or Slack fails (`doctor`: 1 when any check fails, a setting included)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from bot import __version__
from bot.config import ConfigError, Settings
from bot.domain.accounts import find_account
from bot.kling.errors import KlingError
from bot.logs import setup_logging

if TYPE_CHECKING:
    # Imported when a command needs them: `balance --demo` never loads SQLAlchemy or Slack's SDK.
    from datetime import datetime

    from bot.domain.forecast import FamilyForecast
    from bot.domain.packs import ResourcePack
    from bot.notify import DeliveryReport
    from bot.services import Services
    from bot.slack.server import ServerThread
    from bot.store.db import Store

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
DEMO_LABEL = ":test_tube: Sample data from `kling-bot --demo`, not a real account."
log = logging.getLogger("bot.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kling-bot",
        description="Kling AI resource-pack balances in Slack. Settings come from environment "
        "variables (or a .env file in the working directory); see the README.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the Slack app and the scheduler (Socket Mode if SLACK_APP_TOKEN is set, else HTTP on $PORT)",
        description="Run the Slack app. With SLACK_APP_TOKEN set it connects over Socket Mode; "
        "otherwise it serves HTTP on $PORT: POST /slack/events for Slack, GET /healthz for health checks, "
        "GET /metrics and /readyz (Socket Mode: on METRICS_PORT when set). "
        "It also polls Kling, posts warnings and the daily digest, unless --web-only.",
    )
    serve.add_argument("--demo", action="store_true", help="answer from a built-in sample account instead of Kling")
    serve.add_argument(
        "--host",
        default="0.0.0.0",
        help="address to listen on, for PORT (HTTP mode) or METRICS_PORT (Socket Mode); default 0.0.0.0",
    )
    serve.add_argument(
        "--web-only", action="store_true", help="answer Slack only; leave polling and the digest to `kling-bot worker`"
    )

    balance = sub.add_parser(
        "balance", help="print the balances in the terminal", description="Print every active pack's balance."
    )
    balance.add_argument("--all", action="store_true", help="include expired and used-up packs")
    balance.add_argument(
        "--json", action="store_true", help="print JSON with Kling's field names, times in ISO 8601 UTC"
    )
    balance.add_argument("--demo", action="store_true", help="use a built-in sample account instead of Kling")
    balance.add_argument(
        "--account", metavar="NAME", help="only this account (one of KLING_ACCOUNTS); the default is every account"
    )

    check = sub.add_parser(
        "check",
        help="poll Kling once: post warnings and threshold DMs that are due, send anything still owed",
        description="One poll, as the scheduler runs every POLL_INTERVAL_MINUTES. The first check ever only "
        "records a baseline. Exits 1 if Kling could not be asked or anything owed could not be delivered.",
    )
    check.add_argument(
        "--demo",
        action="store_true",
        help="check the built-in sample account in a throwaway database and print what would be posted; post nothing",
    )
    digest = sub.add_parser(
        "digest",
        help="post today's digest to DIGEST_CHANNEL now (for cron-style platforms)",
        description="Post today's digest now. It is posted once per local day (DIGEST_TIMEZONE) whoever asks.",
    )
    digest.add_argument(
        "--dry-run", action="store_true", help="print the Slack payload {channel, text, blocks} as JSON; post nothing"
    )
    digest.add_argument(
        "--demo", action="store_true", help="print the sample account's digest (as --dry-run); post nothing"
    )
    sub.add_parser(
        "worker",
        help="run only the scheduler: polls, warnings, DMs and the digest (a Procfile `worker` process)",
        description="Run the scheduler without the Slack app, for platforms with separate web and worker processes "
        "(then run `serve --web-only` as the web process). With METRICS_PORT set it serves GET /metrics, "
        "/readyz and /healthz on that port.",
    )
    manifest = sub.add_parser(
        "manifest",
        help="print the Slack app manifest, ready to paste (needs no settings)",
        description="Print the Slack app manifest to paste at https://api.slack.com/apps -> Create New App -> "
        "From an app manifest. Without options the two URLs keep the YOUR-HOST placeholder.",
    )
    mode = manifest.add_mutually_exclusive_group()
    mode.add_argument(
        "--url",
        help="HTTP mode: the bot's public address, e.g. https://kling-bot.example.com; "
        "the slash command and interactivity then use URL/slack/events",
    )
    mode.add_argument(
        "--socket-mode",
        action="store_true",
        help="Socket Mode: switch it on and leave out the URLs, which it does not use",
    )
    doctor = sub.add_parser(
        "doctor",
        help="check settings, Kling, Slack, the channels and the database; one line per check",
        description="Check every setting; each Kling account with one call (keys, region, the clock for the "
        "signed token); the Slack token and its scopes against the manifest; the Socket Mode app token when "
        "SLACK_APP_TOKEN is set; DIGEST_CHANNEL and ALERT_CHANNEL, and whether deliveries to them (and DMs) "
        "are failing and why; the database (reachable, schema version, owed, stuck and given-up messages, the "
        "last successful poll). One line per check, with what to do when it fails. Posts nothing unless "
        "--post-test, never creates or migrates the database (it only notes its Kling call there, so a running "
        "bot keeps a second after it), prints no secret. Exit 0 when every check passes (warnings included), "
        "1 otherwise.",
    )
    doctor.add_argument(
        "--post-test",
        action="store_true",
        help="also post a short test message to DIGEST_CHANNEL and ALERT_CHANNEL, and report Slack's answer",
    )
    return parser


def _load_dotenv() -> None:
    # Only for local runs: a .env file in the working directory; real variables win.
    from dotenv import load_dotenv

    load_dotenv(dotenv_path=os.path.join(os.getcwd(), ".env"), override=False)


def _settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    command = args.command
    demo = getattr(args, "demo", False)
    # A demo posts nothing: `check --demo` and `digest --demo` print what would be posted.
    posts = not getattr(args, "dry_run", False) and not (demo and command in ("check", "digest"))
    return Settings.from_env(
        environ,
        need_kling=not demo,
        need_slack=command in ("serve", "worker") or (command in ("check", "digest") and posts),
        need_slack_requests=command == "serve",
        need_digest_channel=command == "digest" and posts,
        demo_hint=command in ("balance", "serve", "check", "digest"),
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    args = _parser().parse_args(argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if args.command == "manifest":  # before any settings: it needs none
        return _manifest(args, stdout, stderr)
    if environ is None:
        _load_dotenv()
        environ = os.environ
    if args.command == "doctor":  # it reads the settings itself, reporting each problem as a check
        return _doctor(args, environ, stdout, stderr)
    try:
        settings = _settings(args, environ)
    except ConfigError as exc:
        print(f"kling-bot: {exc}", file=stderr)
        return EXIT_CONFIG
    # Every handler redacts response URLs, Socket Mode tickets and tokens (bot.logs).
    setup_logging(settings.log_level, stderr)
    if args.command == "balance":
        return _balance(settings, args, stdout, stderr)
    identity: dict[str, object] = {}
    if args.command in ("serve", "worker"):
        # Check the Slack token before anything else, so a wrong one is the first thing said.
        found = _slack_identity(settings, stderr)
        if isinstance(found, int):
            return found
        identity = found
    from sqlalchemy.exc import SQLAlchemyError

    from bot.services import build_services

    try:
        # Every command but `balance` uses the database (serve: subscriptions and the scheduler).
        services = build_services(
            settings,
            demo=getattr(args, "demo", False),
            with_store=True,
            # Only the long-running commands serve /metrics.
            with_metrics=args.command in ("serve", "worker"),
        )
    except (SQLAlchemyError, ImportError, RuntimeError, OSError) as exc:  # unreachable, no driver, newer schema
        print(f"kling-bot: could not open the database at DATABASE_URL ({_db_reason(exc)}).", file=stderr)
        return EXIT_FAILED
    try:
        if args.command == "serve":
            return _serve(services, args, identity, stderr)
        if args.command == "check":
            return _check_demo(services, stdout) if args.demo else _check(services, stdout, stderr)
        if args.command == "digest":
            return _digest(services, args, stdout, stderr)
        return _worker(services, stderr, history_granted=_history_granted(identity))
    except SQLAlchemyError as exc:
        # The database failing mid-way (a read-only file, a dropped connection): one line.
        log.debug("Database failure", exc_info=True)
        print(f"kling-bot: the database failed during `{args.command}` ({_db_reason(exc)}).", file=stderr)
        return EXIT_FAILED
    finally:
        services.close()


def _db_reason(exc: BaseException) -> str:
    # SQLAlchemy's message can carry the URL with its password; keep only the first line of
    # the driver's own complaint.
    lines = str(getattr(exc, "orig", None) or exc).splitlines()
    text = lines[0] if lines and lines[0].strip() else type(exc).__name__
    return text[:200]


def _manifest(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from bot.views.manifest import manifest_text

    try:
        text = manifest_text(args.url, socket_mode=args.socket_mode)
    except ValueError as exc:
        print(f"kling-bot: {exc}", file=stderr)
        return EXIT_CONFIG
    print(text, end="", file=stdout)
    return EXIT_OK


def _doctor(args: argparse.Namespace, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    from bot.ops.doctor import run

    # Doctor's lines say what went wrong; the libraries' own warnings (Kling retries) would
    # only interleave with them. LOG_LEVEL=DEBUG still shows everything.
    debug = environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"
    setup_logging("DEBUG" if debug else "ERROR", stderr)
    return EXIT_OK if run(environ, post_test=args.post_test, stdout=stdout) else EXIT_FAILED


def _kling_failed(exc: KlingError, stderr: TextIO) -> int:
    print(f"kling-bot: {exc.describe()}. {exc.advice}", file=stderr)
    return EXIT_FAILED


def _balance(settings: Settings, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from bot.services import build_services
    from bot.views.terminal import balance_json, balance_table

    # The running bot's database, when there is one at this bot's schema: the forecast reads
    # its history, and Kling's answer is shared with the bot (one call per KLING_CACHE_TTL,
    # a second apart). `balance` never creates or upgrades it; without it, it asks alone.
    store = _existing_store(settings) if not args.demo else None
    try:
        services = build_services(settings, demo=args.demo, share_through=store)
        try:
            chosen = None
            if args.account:
                account = find_account(args.account, services.settings.account_list)
                if account is None:
                    known = ", ".join(a.name for a in services.settings.account_list)
                    print(f"kling-bot: --account {args.account!r} is not one of the accounts ({known}).", file=stderr)
                    return EXIT_CONFIG
                chosen = [account]
            # The terminal waits for Kling as long as it takes; only Slack users get a bounded wait.
            balances = services.balances.get(wait_s=None, accounts=chosen)
        finally:
            services.close()
        if not balances.multi and balances.failed:
            error = balances.failed[0].error
            assert error is not None
            return _kling_failed(error, stderr)
        now = services.clock.now()
        forecasts = _balance_forecasts(settings, balances.packs, now, store)
    finally:
        if store is not None:
            store.close()
    if args.json:
        print(balance_json(balances, include_inactive=args.all, forecasts=forecasts), file=stdout)
    else:
        print(balance_table(balances, now, include_inactive=args.all, forecasts=forecasts), file=stdout)
    # Every account that could be read was printed; one that could not makes the run a failure.
    for answer in balances.failed:
        error = answer.error
        reason = f"{error.describe()}. {error.advice}" if error else "no answer"
        print(f"kling-bot: account {answer.account.name} could not be read: {reason}", file=stderr)
    return EXIT_FAILED if balances.failed else EXIT_OK


def _existing_store(settings: Settings) -> Store | None:
    if not _database_exists(settings.database_url):
        return None
    from bot.store.db import Store

    store = Store.open_existing(settings.database_url)
    if store is None:
        log.info("No usable database (absent, unreachable or another schema): no history for the forecast")
    return store


def _balance_forecasts(
    settings: Settings, packs: Sequence[ResourcePack], now: datetime, store: Store | None
) -> list[FamilyForecast]:
    """The forecast, with the history the database holds when there is one; without it the
    rates are averages since purchase."""
    from bot.domain.forecast import forecast

    if store is not None:
        from sqlalchemy.exc import SQLAlchemyError

        from bot.foresight import forecasts as with_history

        try:
            return with_history(store, packs, now, window_days=settings.forecast_window_days)
        except (SQLAlchemyError, OSError) as exc:
            log.info("No history for the forecast (%s): using averages since purchase", _db_reason(exc))
    return forecast(packs, {}, now, window_days=settings.forecast_window_days)


def _database_exists(url: str) -> bool:
    if url.startswith("sqlite:///"):
        return os.path.exists(url.removeprefix("sqlite:///"))
    return True


def _check(services: Services, stdout: TextIO, stderr: TextIO) -> int:
    from bot.jobs import Jobs

    jobs = Jobs.for_services(services)
    try:
        report = jobs.check()
    except KlingError as exc:
        return _kling_failed(exc, stderr)
    failed = _report_undelivered(services, jobs.last_delivery, stderr)
    if report is None:
        reasons = "; ".join(e.describe() for e in jobs.last_kling_errors.values()) or "it did not answer"
        print(
            f"kling-bot: Kling could not be asked ({reasons}), so nothing was checked; owed messages were retried.",
            file=stderr,
        )
        return EXIT_FAILED
    assert services.store is not None
    with services.store.transaction() as tx:
        counts = tx.outbox_counts()
    baseline = " (first check: baseline recorded, nothing already over is announced)" if report.baseline else ""
    print(
        f"Checked {report.packs} pack(s){baseline}: {len(report.warnings_queued)} warning(s) and "
        f"{len(report.dms_queued)} DM(s) newly due; {counts['owed']} message(s) still owed.",
        file=stdout,
    )
    if not services.settings.alert_channel:
        print("Note: ALERT_CHANNEL and DIGEST_CHANNEL are unset, so no channel warnings are posted.", file=stdout)
    for account, error in jobs.last_kling_errors.items():
        print(f"kling-bot: account {account.name} was not checked: {error.describe()}. {error.advice}", file=stderr)
    return EXIT_FAILED if failed or jobs.last_kling_errors else EXIT_OK


def _report_undelivered(services: Services, delivery: DeliveryReport | None, stderr: TextIO) -> bool:
    """Say, one line per cause, what is owed and could not be delivered; True if anything is."""
    from bot.notify import slack_fix

    assert services.store is not None
    with services.store.transaction() as tx:
        failing = tx.failing()
    for group in failing:
        where = f"DM(s) to {group['target']}" if group["target_is_user"] else f"message(s) to {group['target']}"
        fix = slack_fix(group["error"], group["target"], to_user=group["target_is_user"])
        then = f": {fix}" if fix else "; it is retried with backoff"
        print(f"kling-bot: {group['count']} {where} still owed, not delivered ({group['error']}){then}.", file=stderr)
    given_up = delivery.given_up if delivery else {}
    if given_up:
        days = services.settings.outbox_give_up_days
        with services.store.transaction() as tx:
            rows = [r for r in tx.given_up() if r["key"] in given_up]
        groups: dict[tuple[str, bool, str], int] = {}
        for r in rows:
            key = (r["target"], r["target_is_user"], r["last_error"] or "never delivered")
            groups[key] = groups.get(key, 0) + 1
        for (target, to_user, error), count in groups.items():
            where = f"DM(s) to {target}" if to_user else f"message(s) to {target}"
            fix = slack_fix(error, target, to_user=to_user)
            print(
                f"kling-bot: {count} {where} given up after {days} days owed ({error})"
                + (f": {fix}" if fix else "")
                + ". They are kept in the outbox, not sent; `kling-bot doctor` lists them.",
                file=stderr,
            )
    return bool(failing) or bool(delivery and (delivery.failed or delivery.given_up))


def _check_demo(services: Services, stdout: TextIO) -> int:
    """One check on the sample account in its own throwaway database: print, post nothing."""
    import dataclasses

    from bot.alerting import run_check

    assert services.store is not None
    settings = dataclasses.replace(services.settings, alert_channel="C0DEMO")
    balances = services.balances.get(refresh=True)
    accounts = [a.account.key for a in balances.readable]
    report = run_check(services.store, balances.packs, services.clock.now(), settings, accounts=accounts)
    print(f"[Sample data: --demo] Checked {report.packs} sample pack(s); nothing is posted in demo mode.", file=stdout)
    with services.store.transaction() as tx:
        owed = tx.payload_texts(report.warnings_queued)
    for text in owed:
        print(f"Would post: {_for_terminal(text)}", file=stdout)
    if not owed:
        print("Nothing would be posted now.", file=stdout)
    return EXIT_OK


def _for_terminal(text: str) -> str:
    """Slack's date tokens as their UTC fallback, and its escapes undone, for a terminal."""
    import re

    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _digest(services: Services, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from bot.jobs import Jobs

    jobs = Jobs.for_services(services)
    try:
        if args.dry_run or args.demo:
            payload = jobs.digest_payload()
            if args.demo:
                label = {"type": "context", "elements": [{"type": "mrkdwn", "text": DEMO_LABEL}]}
                payload = {
                    "channel": "(demo: not posted)",
                    "text": "[Sample data] " + payload["text"],
                    "blocks": [label, *payload["blocks"]],
                }
            print(json.dumps(payload, indent=2, ensure_ascii=False), file=stdout)
            return EXIT_OK
        outcome = jobs.digest()
    except KlingError as exc:
        return _kling_failed(exc, stderr)
    assert services.store is not None
    with services.store.transaction() as tx:
        status = tx.outbox_status(outcome.key)
    channel = services.settings.digest_channel
    if status is not None and status["sent_at"] is None:
        error = status["last_error"] or "not tried yet"
        fix = slack_fix_for(status)
        print(
            f"kling-bot: today's digest ({outcome.key}) is still owed, not posted to {channel} ({error})"
            + (f": {fix}" if fix else "")
            + ". The next `check`, `worker`, `serve` or `digest` retries it.",
            file=stderr,
        )
        return EXIT_FAILED
    if outcome.delivery and outcome.key in outcome.delivery.sent:
        print(f"Posted today's digest to {channel}.", file=stdout)
    else:
        print(f"Today's digest ({outcome.key}) was already posted to {channel}; nothing new posted.", file=stdout)
    return EXIT_OK


def slack_fix_for(status: dict[str, object]) -> str | None:
    from bot.notify import slack_fix

    error = status.get("last_error")
    if not isinstance(error, str):
        return None
    return slack_fix(error, str(status["target"]), to_user=bool(status["target_is_user"]))


def _history_granted(identity: dict[str, object]) -> bool | None:
    granted = identity.get("_history_granted")
    return granted if isinstance(granted, bool) else None


def _worker(services: Services, stderr: TextIO | None = None, *, history_granted: bool | None = None) -> int:
    from bot.jobs import Jobs
    from bot.scheduler import blocking_scheduler
    from bot.slack.server import ListenError

    stderr = stderr or sys.stderr
    try:
        # Take the port before anything starts, so a taken port stops everything at once.
        ops = _metrics_server(services, METRICS_HOST)
    except ListenError as exc:
        print(f"kling-bot: {exc}", file=stderr)
        return EXIT_FAILED
    scheduler = blocking_scheduler(Jobs.for_services(services, history_granted=history_granted), services.settings)
    log.info(_schedule_summary(services.settings))
    stop = _Stop()
    try:
        if ops is not None:
            ops.start()
        with contextlib.suppress(KeyboardInterrupt):
            scheduler.start()
    finally:
        stop.stopping()
        # Let a check that is running finish its transaction before the database closes.
        if scheduler.running:
            scheduler.shutdown(wait=True)
        if ops is not None:
            ops.stop()
        stop.restore()
    print(f"kling-bot worker stopped ({stop.reason})", file=stderr)
    return EXIT_OK


# Where `worker` serves METRICS_PORT: every interface, for a scraper on another machine.
METRICS_HOST = "0.0.0.0"


def _metrics_server(services: Services, host: str) -> ServerThread | None:
    """/metrics, /readyz and /healthz on METRICS_PORT, bound but not started; None when
    METRICS_PORT is unset. Raises ListenError when the port cannot be had."""
    from bot.ops.http import metrics_server

    port = services.settings.metrics_port
    if port is None or services.metrics is None:
        return None
    server = metrics_server(services.metrics, host=host, port=port)
    log.info("Metrics: %s/metrics, /readyz and /healthz", server.url)
    return server


class _Stop:
    """SIGTERM (docker stop, systemd, Heroku) stops `serve` and `worker` the way Ctrl-C does:
    as a KeyboardInterrupt in the main thread, so running work finishes and the exit is 0."""

    def __init__(self) -> None:
        self.reason = "Ctrl-C"
        self._stopping = False
        self._previous: object = None
        if threading.current_thread() is threading.main_thread():  # signals only go there
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # A second signal while stopping must not interrupt the clean stop itself.
        if not self._stopping:
            self._stopping = True
            self.reason = "SIGTERM"
            raise KeyboardInterrupt

    def stopping(self) -> None:
        self._stopping = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]


def _schedule_summary(settings: Settings) -> str:
    digest = (
        f"digest daily at {settings.digest_time:%H:%M} {settings.digest_timezone} to {settings.digest_channel}"
        if settings.digest_channel
        else "no digest (DIGEST_CHANNEL unset)"
    )
    alerts = f"warnings to {settings.alert_channel}" if settings.alert_channel else "no channel warnings"
    return f"Scheduler: check every {settings.poll_interval_minutes} min, {alerts}, {digest}"


def _slack_identity(settings: Settings, stderr: TextIO) -> dict[str, object] | int:
    """Who the bot token belongs to, or the exit code after saying what is wrong."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    try:
        answer = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url).auth_test()
        identity = dict(answer.data)
        # The granted scopes come with every answer; said now if exactly once cannot hold.
        from bot.notify import at_least_once_notice, scopes_of

        granted = scopes_of(answer.headers)
        if granted is not None:
            notice = at_least_once_notice(granted)
            identity["_history_granted"] = notice is None
            if notice is not None:
                log.warning(notice)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        print(
            f"kling-bot: Slack rejected SLACK_BOT_TOKEN ({error}). Copy the Bot User OAuth Token "
            "from the app's 'OAuth & Permissions' page.",
            file=stderr,
        )
        return (
            EXIT_CONFIG if error in ("invalid_auth", "not_authed", "token_revoked", "account_inactive") else EXIT_FAILED
        )
    except Exception as exc:  # network errors from urllib
        print(f"kling-bot: could not reach Slack at {settings.slack_api_url} ({type(exc).__name__}).", file=stderr)
        return EXIT_FAILED
    if settings.socket_mode and (problem := _app_token_problem(settings)) is not None:
        message, code = problem
        print(f"kling-bot: {message}", file=stderr)
        return code
    return identity


def _app_token_problem(settings: Settings) -> tuple[str, int] | None:
    """What is wrong with SLACK_APP_TOKEN and the exit code, or None. Asking for a Socket Mode
    URL is the only check Slack offers for an app-level token (the URL is simply not used).
    The same settings serve `serve` and `worker`, so whichever starts first says it."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    try:
        WebClient(base_url=settings.slack_api_url).apps_connections_open(app_token=settings.slack_app_token)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        if error in ("invalid_auth", "not_authed", "token_revoked", "account_inactive", "not_allowed_token_type"):
            return (
                f"Slack rejected SLACK_APP_TOKEN ({error}). Create an app-level token (xapp-…) with the "
                "connections:write scope under the app's 'Basic Information' → 'App-Level Tokens'.",
                EXIT_CONFIG,
            )
        return f"Slack could not check SLACK_APP_TOKEN ({error}).", EXIT_FAILED
    except Exception as exc:  # network errors from urllib
        return f"could not reach Slack at {settings.slack_api_url} ({type(exc).__name__}).", EXIT_FAILED
    return None


def _serve(
    services: Services, args: argparse.Namespace, identity: dict[str, object], stderr: TextIO | None = None
) -> int:
    from slack_sdk.errors import SlackApiError

    from bot.jobs import Jobs
    from bot.ops.http import ops_app
    from bot.scheduler import background_scheduler
    from bot.slack.app import build_app
    from bot.slack.server import ListenError, http_server, serve_http, serve_socket_mode

    stderr = stderr or sys.stderr
    settings = services.settings
    app = build_app(services)
    server = None
    ops = None
    try:
        # Take the port before anything starts, so a taken port stops everything at once.
        if not settings.socket_mode:
            endpoints = ops_app(services.metrics) if services.metrics is not None else None
            server = http_server(app, host=args.host, port=settings.port, ops=endpoints)
            if settings.metrics_port is not None:
                log.info("METRICS_PORT is not used in HTTP mode: /metrics and /readyz are served on PORT")
        else:
            ops = _metrics_server(services, args.host)
    except ListenError as exc:
        print(f"kling-bot: {exc}", file=stderr)
        return EXIT_FAILED
    log.info(
        "Connected to Slack workspace %s as %s%s",
        identity.get("team"),
        identity.get("user"),
        " (demo data)" if args.demo else "",
    )
    stop = _Stop()
    scheduler = None
    if args.demo:
        # Sample data never drives warnings, DMs or a digest: nothing is posted as if real.
        log.info("Demo mode: answering slash commands from sample data; no polling, warnings, DMs or digest")
    try:
        if ops is not None:
            ops.start()
        if not args.web_only and not args.demo:
            jobs = Jobs.for_services(services, history_granted=_history_granted(identity))
            scheduler = background_scheduler(jobs, settings)
            scheduler.start()
            log.info(_schedule_summary(settings))
        if server is not None:
            serve_http(server)  # returns on Ctrl-C / SIGTERM
        else:
            serve_socket_mode(app, settings.slack_app_token)
    except KeyboardInterrupt:
        pass
    except (SlackApiError, OSError) as exc:  # Socket Mode's first connection, after the check passed
        reason = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        print(f"kling-bot: could not connect to Slack over Socket Mode ({reason}).", file=stderr)
        return EXIT_FAILED
    finally:
        stop.stopping()
        if scheduler is not None:
            # Let a check that is running finish its transaction before the database closes.
            scheduler.shutdown(wait=True)
        if ops is not None:
            ops.stop()
        stop.restore()
    print(f"kling-bot serve stopped ({stop.reason})", file=stderr)
    return EXIT_OK
