"""`kling-bot`: the one console script. Exit 0 on success, 2 on bad settings, 1 when Kling
or Slack fails."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from bot import __version__
from bot.config import ConfigError, Settings
from bot.kling.errors import KlingError
from bot.services import build_services

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


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
        help="run the Slack app (Socket Mode if SLACK_APP_TOKEN is set, else HTTP on $PORT)",
        description="Run the Slack app. With SLACK_APP_TOKEN set it connects over Socket Mode; "
        "otherwise it serves HTTP on $PORT: POST /slack/events for Slack, GET /healthz for health checks.",
    )
    serve.add_argument("--demo", action="store_true", help="answer from a built-in sample account instead of Kling")
    serve.add_argument("--host", default="0.0.0.0", help="HTTP mode: address to listen on (default 0.0.0.0)")

    balance = sub.add_parser(
        "balance",
        help="print the balances in the terminal",
        description="Print every active resource pack's balance and expiry.",
    )
    balance.add_argument("--all", action="store_true", help="include expired and used-up packs")
    balance.add_argument(
        "--json", action="store_true", help="print JSON with Kling's field names, times in ISO 8601 UTC"
    )
    balance.add_argument("--demo", action="store_true", help="use a built-in sample account instead of Kling")
    return parser


def _load_dotenv() -> None:
    # Only for local runs: a .env file in the working directory; real variables win.
    from dotenv import load_dotenv

    load_dotenv(dotenv_path=os.path.join(os.getcwd(), ".env"), override=False)


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
    if environ is None:
        _load_dotenv()
        environ = os.environ
    need_kling = not args.demo
    try:
        settings = Settings.from_env(environ, need_kling=need_kling, need_slack=args.command == "serve")
    except ConfigError as exc:
        print(f"kling-bot: {exc}", file=stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=stderr
    )
    if settings.log_level != "DEBUG":
        # httpx logs every request at INFO; that is noise for a terminal user.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "balance":
        return _balance(settings, args, stdout, stderr)
    return _serve(settings, args, stderr)


def _balance(settings: Settings, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from bot.views.terminal import balance_json, balance_table

    services = build_services(settings, demo=args.demo)
    try:
        snapshot = services.balances.get()
    except KlingError as exc:
        print(f"kling-bot: {exc.describe()}. {exc.advice}", file=stderr)
        return EXIT_FAILED
    finally:
        services.close()
    if args.json:
        print(balance_json(snapshot, include_inactive=args.all), file=stdout)
    else:
        print(balance_table(snapshot, services.clock.now(), include_inactive=args.all), file=stdout)
    return EXIT_OK


def _serve(settings: Settings, args: argparse.Namespace, stderr: TextIO) -> int:
    from slack_sdk.errors import SlackApiError

    from bot.slack.app import build_app
    from bot.slack.server import serve_http, serve_socket_mode

    services = build_services(settings, demo=args.demo)
    app = build_app(services)
    try:
        identity = app.client.auth_test()
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
    logging.getLogger(__name__).info(
        "Connected to Slack workspace %s as %s%s",
        identity.get("team"),
        identity.get("user"),
        " (demo data)" if args.demo else "",
    )
    try:
        if settings.socket_mode:
            serve_socket_mode(app, settings.slack_app_token)
        else:
            serve_http(app, host=args.host, port=settings.port)
    except KeyboardInterrupt:
        pass
    finally:
        services.close()
    return EXIT_OK
