"""`kling-bot doctor`: one line per check against the Kling and Slack stand-ins, exit 0 only
when every check passes, and never a secret in its output."""

from __future__ import annotations

import io
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.cli import main
from bot.store import schema
from bot.store.db import Store, to_ms
from tests.conftest import bot_env
from tests.stand_ins.kling import ACCESS_KEY, SECRET_KEY, FakeKling, make_pack
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.stand_ins.socket_mode import APP_TOKEN, FakeSocketMode

RELEASE_DB = Path(__file__).parent / "fixtures" / "release-0.1.0.db"


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def line(out: str, name: str) -> str:
    """The one line whose check is `name` (the text between the status and the first ': ')."""
    found = [text for text in out.splitlines() if text[6:].split(": ", 1)[0] == name]
    assert len(found) == 1, f"expected one {name!r} line in:\n{out}"
    return found[0]


def failures(out: str) -> list[str]:
    return [text for text in out.splitlines() if text.startswith("FAIL  ")]


def make_db(tmp_path: Path, *, polled_ago: timedelta | None = timedelta(0)) -> str:
    """A database at this bot's schema, with a successful poll `polled_ago` (None: never)."""
    url = f"sqlite:///{tmp_path / 'kling-bot.db'}"
    store = Store(url)
    store.migrate()
    if polled_ago is not None:
        with store.transaction() as tx:
            tx.record_poll(datetime.now(UTC) - polled_ago, ["default"])
    store.close()
    return url


def owe(url: str, key: str, target: str, error: str | None, *, to_user: bool = False, age: timedelta | None = None):
    """An owed message to `target`, its last try failed with `error` (None: never tried)."""
    store = Store(url)
    now = datetime.now(UTC)
    try:
        with store.transaction() as tx:
            tx.enqueue(key, "warning", target, {"text": "owed"}, now - (age or timedelta(0)), to_user=to_user)
            if error is not None:
                [row_id] = tx.conn.execute(schema.outbox.select().where(schema.outbox.c.key == key)).scalars()
                tx.mark_failed([row_id], error, now + timedelta(minutes=5))
    finally:
        store.close()


@pytest.fixture
def env(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> dict[str, str]:
    return bot_env(kling, slack, DATABASE_URL=make_db(tmp_path), DIGEST_CHANNEL="C0DIGEST", ALERT_CHANNEL="C0ALERTS")


@pytest.fixture
def socket_slack() -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        yield fake


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_all_good_exits_0_one_ok_line_per_check(env: dict[str, str], slack: FakeSlack) -> None:
    """Good settings, Kling, Slack and database: every line is ok, a summary, exit 0, nothing posted."""
    code, out, err = run(["doctor"], env)
    assert code == 0, out + err
    lines = out.splitlines()
    assert all(text.startswith("ok    ") for text in lines[:-1]), out
    for name in ("Settings", "Kling", "Slack", "Slack scopes", "Database", "Database schema", "Outbox", "Last poll"):
        line(out, name)
    assert "Test Team" in line(out, "Slack") and "kling-bot" in line(out, "Slack")
    assert "1 pack(s)" in line(out, "Kling")
    assert "nothing owed to it is failing" in line(out, "ALERT_CHANNEL C0ALERTS")
    assert lines[-1] == f"All {len(lines) - 1} checks passed."
    assert slack.calls_to("chat.postMessage") == []
    assert err == ""


def test_rejected_kling_key_fails_its_line_and_the_rest_still_runs(env: dict[str, str]) -> None:
    """Kling refusing the keys: a FAIL line with Kling's reason and the settings to check; exit 1."""
    code, out, _ = run(["doctor"], {**env, "KLING_SECRET_KEY": "a-wrong-secret-a-wrong-secret-1234"})
    assert code == 1
    kling_line = line(out, "Kling")
    assert kling_line.startswith("FAIL  Kling: Authorization is invalid")
    assert "KLING_ACCESS_KEY" in kling_line and "KLING_API_BASE" in kling_line
    assert line(out, "Slack").startswith("ok    ")
    assert "1 of" in out.splitlines()[-1] and "failed" in out.splitlines()[-1]


def test_clock_skew_says_the_machine_clock_is_off(env: dict[str, str], kling: FakeKling) -> None:
    """Kling refusing even a freshly signed token as expired: the line blames this machine's clock, not the keys."""
    kling.fail_next(2, 401, 1004, "Authorization has expired")
    code, out, _ = run(["doctor"], env)
    assert code == 1
    kling_line = line(out, "Kling")
    assert kling_line.startswith("FAIL  ") and "clock" in kling_line and "NTP" in kling_line


def test_several_accounts_are_each_asked_and_named(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """With KLING_ACCOUNTS each account gets its own line, named, with its own setting names in the fix."""
    env = {
        k: v
        for k, v in bot_env(kling, slack, DATABASE_URL=make_db(tmp_path), ALERT_CHANNEL="C0ALERTS").items()
        if not k.startswith("KLING_")
    }
    env.update(
        {
            "KLING_ACCOUNTS": "studio,lab",
            "KLING_STUDIO_API_BASE": kling.url,
            "KLING_STUDIO_ACCESS_KEY": ACCESS_KEY,
            "KLING_STUDIO_SECRET_KEY": SECRET_KEY,
            "KLING_LAB_API_BASE": kling.url,
            "KLING_LAB_ACCESS_KEY": ACCESS_KEY,
            "KLING_LAB_SECRET_KEY": "wrong-wrong-wrong-wrong-wrong-12",
        }
    )
    code, out, _ = run(["doctor"], env)
    assert code == 1
    assert line(out, "Kling account studio").startswith("ok    ")
    lab = line(out, "Kling account lab")
    assert lab.startswith("FAIL  ") and "KLING_LAB_ACCESS_KEY" in lab and "KLING_ACCESS_KEY" not in lab


def test_rejected_slack_token_fails_with_where_to_find_the_right_one(env: dict[str, str]) -> None:
    """Slack refusing SLACK_BOT_TOKEN: a FAIL line with Slack's error and the page to copy the token from."""
    code, out, _ = run(["doctor"], {**env, "SLACK_BOT_TOKEN": "xoxb-revoked-0000"})
    assert code == 1
    slack_line = line(out, "Slack")
    assert slack_line.startswith("FAIL  ") and "invalid_auth" in slack_line
    assert "OAuth & Permissions" in slack_line and "SLACK_BOT_TOKEN" in slack_line
    assert "Slack scopes" not in out


def test_missing_history_scopes_fail_saying_what_is_lost(env: dict[str, str], slack: FakeSlack) -> None:
    """Scopes granted short of the manifest: each missing one named, the exactly-once cost, and the reinstall fix."""
    slack.scopes -= {"im:history", "groups:history"}
    code, out, _ = run(["doctor"], env)
    assert code == 1
    scopes = line(out, "Slack scopes")
    assert scopes.startswith("FAIL  Slack scopes: missing groups:history, im:history")
    assert "sent twice" in scopes and "manifest.yml" in scopes and "kling-bot manifest" in scopes
    assert "channels:history" not in scopes


def test_channel_the_bot_is_not_in_is_listed_with_the_invite_fix(env: dict[str, str]) -> None:
    """Messages owed to ALERT_CHANNEL failing with not_in_channel: a FAIL line with the count and /invite; DMs too."""
    owe(env["DATABASE_URL"], "w1", "C0ALERTS", "Slack: not_in_channel")
    owe(env["DATABASE_URL"], "w2", "C0ALERTS", "Slack: not_in_channel")
    owe(env["DATABASE_URL"], "dm1", "U0GONE", "Slack: user_not_found", to_user=True)
    code, out, _ = run(["doctor"], env)
    assert code == 1
    alert = line(out, "ALERT_CHANNEL C0ALERTS")
    assert alert.startswith("FAIL  ALERT_CHANNEL C0ALERTS: 2 message(s) owed, not delivered (Slack: not_in_channel)")
    assert "/invite @Kling Balance" in alert
    assert line(out, "DIGEST_CHANNEL C0DIGEST").startswith("ok    ")
    dm = line(out, "DMs to U0GONE")
    assert dm.startswith("FAIL  ") and "user_not_found" in dm


def test_channel_refused_in_a_real_check_is_listed(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """After `check` could not post a new-pack warning (not_in_channel), doctor lists ALERT_CHANNEL with the fix."""
    # TTL 0: the second check is a later poll, not a reuse of the first one's answer.
    env = bot_env(
        kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'k.db'}", ALERT_CHANNEL="C0ALERTS", KLING_CACHE_TTL="0"
    )
    assert run(["check"], env)[0] == 0  # the baseline
    kling.packs.append(make_pack("Image Generation - 500 entries", total=500, remaining=500))
    slack.fail("chat.postMessage", error="not_in_channel", times=10)
    code, _, err = run(["check"], env)
    assert code == 1 and "not_in_channel" in err
    code, out, _ = run(["doctor"], env)
    assert code == 1
    alert = line(out, "ALERT_CHANNEL C0ALERTS")
    assert alert.startswith("FAIL  ") and "not_in_channel" in alert and "/invite" in alert


def test_post_test_posts_once_per_channel_and_only_when_asked(env: dict[str, str], slack: FakeSlack) -> None:
    """Without --post-test nothing is posted; with it, one test message per configured channel, each reported."""
    assert run(["doctor"], env)[0] == 0
    assert slack.calls_to("chat.postMessage") == []
    code, out, _ = run(["doctor", "--post-test"], env)
    assert code == 0, out
    posts = slack.calls_to("chat.postMessage")
    assert sorted(p["channel"] for p in posts) == ["C0ALERTS", "C0DIGEST"]
    assert line(out, "Test post to ALERT_CHANNEL C0ALERTS").startswith("ok    ")
    assert line(out, "Test post to DIGEST_CHANNEL C0DIGEST").startswith("ok    ")


def test_post_test_to_one_channel_used_for_both_posts_once(env: dict[str, str], slack: FakeSlack) -> None:
    """DIGEST_CHANNEL alone (ALERT_CHANNEL follows it): one test post, one line naming both settings."""
    env = {k: v for k, v in env.items() if k != "ALERT_CHANNEL"}
    code, out, _ = run(["doctor", "--post-test"], env)
    assert code == 0, out
    assert [p["channel"] for p in slack.calls_to("chat.postMessage")] == ["C0DIGEST"]
    assert "ALERT_CHANNEL is not set" in line(out, "DIGEST_CHANNEL and ALERT_CHANNEL C0DIGEST")


def test_post_test_refused_reports_slack_error_with_fix(env: dict[str, str], slack: FakeSlack) -> None:
    """A test post Slack refuses (not_in_channel): a FAIL line with the error and the /invite fix."""
    slack.fail("chat.postMessage", error="not_in_channel", times=1)
    code, out, _ = run(["doctor", "--post-test"], env)
    assert code == 1
    [refused] = [text for text in out.splitlines() if text.startswith("FAIL  Test post to ")]
    assert "not_in_channel" in refused and "/invite @Kling Balance" in refused


def test_unreachable_database_is_one_failing_line_without_the_password(env: dict[str, str]) -> None:
    """A PostgreSQL URL to a closed port: exactly one FAIL line naming the host, never the password."""
    url = f"postgresql://kbot:pg-pass-SECRET-4242@127.0.0.1:{closed_port()}/kling"
    code, out, err = run(["doctor"], {**env, "DATABASE_URL": url})
    assert code == 1
    [failed] = failures(out)
    assert failed.startswith("FAIL  Database: could not open PostgreSQL on 127.0.0.1:")
    assert "pg-pass-SECRET-4242" not in out + err and "kbot:" not in out + err


def test_stale_last_poll_fails_saying_nothing_polls(env: dict[str, str], tmp_path: Path) -> None:
    """A last successful poll older than 3 × POLL_INTERVAL_MINUTES fails, saying no serve/worker seems to run."""
    (tmp_path / "old").mkdir()
    url = make_db(tmp_path / "old", polled_ago=timedelta(hours=2))
    code, out, _ = run(["doctor"], {**env, "DATABASE_URL": url, "POLL_INTERVAL_MINUTES": "30"})
    assert code == 1
    poll = line(out, "Last poll")
    assert poll.startswith("FAIL  Last poll: the last successful poll was 2 h ago")
    assert "no `kling-bot serve` or `worker` seems to be running" in poll
    # Within three intervals it is fine.
    code, out, _ = run(["doctor"], {**env, "DATABASE_URL": url, "POLL_INTERVAL_MINUTES": "60"})
    assert code == 0 and line(out, "Last poll").startswith("ok    ")


def test_never_polled_database_fails_last_poll(env: dict[str, str], tmp_path: Path) -> None:
    """A database with no successful poll recorded: the Last poll line fails."""
    (tmp_path / "fresh").mkdir()
    url = make_db(tmp_path / "fresh", polled_ago=None)
    code, out, _ = run(["doctor"], {**env, "DATABASE_URL": url})
    assert code == 1 and line(out, "Last poll").startswith("FAIL  Last poll: no successful poll")


def test_stuck_and_given_up_messages_fail(env: dict[str, str]) -> None:
    """Owed messages nobody tried for hours fail the Outbox line; a given-up one is listed with its last error."""
    url = env["DATABASE_URL"]
    owe(url, "old", "C0ALERTS", None, age=timedelta(hours=3))
    owe(url, "gone", "C0ARCHIVED", "Slack: is_archived")
    store = Store(url)
    with store.transaction() as tx:
        tx.conn.execute(
            update(schema.outbox).where(schema.outbox.c.key == "gone").values(given_up_at=to_ms(datetime.now(UTC)))
        )
    store.close()
    code, out, _ = run(["doctor"], env)
    assert code == 1
    outbox = line(out, "Outbox")
    assert outbox.startswith("FAIL  ") and "1 owed message(s) due for over" in outbox and "1 given up" in outbox
    given_up = line(out, "Given up")
    assert given_up.startswith("FAIL  ") and "gone" in given_up and "C0ARCHIVED" in given_up
    assert "Slack: is_archived" in given_up and "unarchive" in given_up


def test_missing_sqlite_file_is_a_warning_and_not_created(env: dict[str, str], tmp_path: Path) -> None:
    """A SQLite file that does not exist yet: a warning that the bot creates it; doctor does not create it."""
    path = tmp_path / "not-yet.db"
    code, out, _ = run(["doctor"], {**env, "DATABASE_URL": f"sqlite:///{path}"})
    assert code == 0, out
    database = line(out, "Database")
    assert database.startswith("warn  ") and "does not exist yet" in database
    assert "creates it on first start" in database
    assert not path.exists()


def test_schema_newer_or_older_fails_and_is_not_migrated(env: dict[str, str], tmp_path: Path) -> None:
    """A schema ahead fails ('older than the database'), one behind ('start the bot once'); neither is migrated."""
    store = Store(env["DATABASE_URL"])
    with store.transaction() as tx:
        tx.set_meta("schema_version", str(schema.SCHEMA_VERSION + 1))
    store.close()
    code, out, _ = run(["doctor"], env)
    assert code == 1 and "older than the database" in line(out, "Database schema")

    old = tmp_path / "release.db"
    shutil.copy(RELEASE_DB, old)
    code, out, _ = run(["doctor"], {**env, "DATABASE_URL": f"sqlite:///{old}"})
    assert code == 1
    assert line(out, "Database schema").startswith("FAIL  ") and "start the bot once" in out
    store = Store(f"sqlite:///{old}")
    with store.engine.connect() as conn:
        assert schema.current_version(conn) < schema.SCHEMA_VERSION
    store.close()


def test_settings_problems_are_each_a_failing_line_and_other_checks_run(env: dict[str, str]) -> None:
    """Invalid settings: one FAIL line per problem, no traceback, exit 1, and Kling and Slack still checked."""
    broken = {**env, "KLING_LOOKBACK_DAYS": "many", "DIGEST_TIMEZONE": "Mars/Olympus", "ALERT_CHANNEL": "#general"}
    broken.pop("SLACK_SIGNING_SECRET")
    code, out, err = run(["doctor"], broken)
    assert code == 1
    settings = [text for text in failures(out) if text.startswith("FAIL  Settings: ")]
    assert len(settings) == 4
    for name in ("KLING_LOOKBACK_DAYS", "DIGEST_TIMEZONE", "ALERT_CHANNEL", "SLACK_SIGNING_SECRET"):
        assert any(name in text for text in settings), name
    assert line(out, "Kling").startswith("ok    ") and line(out, "Slack").startswith("ok    ")
    assert "ALERT_CHANNEL C0" not in out  # an invalid setting is not checked as if it were another value
    assert "Traceback" not in out + err


def test_socket_mode_app_token_is_checked(kling: FakeKling, socket_slack: FakeSocketMode, tmp_path: Path) -> None:
    """With SLACK_APP_TOKEN set, doctor opens a Socket Mode URL with it: ok if Slack accepts, else FAIL with the fix."""
    env = bot_env(kling, socket_slack, DATABASE_URL=make_db(tmp_path), SLACK_APP_TOKEN=APP_TOKEN, ALERT_CHANNEL="C0A")
    code, out, _ = run(["doctor"], env)
    assert code == 0, out
    assert line(out, "Slack app token").startswith("ok    ")
    code, out, _ = run(["doctor"], {**env, "SLACK_APP_TOKEN": "xapp-1-A0TEST-1-revoked"})
    assert code == 1
    token = line(out, "Slack app token")
    assert token.startswith("FAIL  ") and "invalid_auth" in token and "App-Level Tokens" in token


def test_no_secret_is_ever_printed(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """Recognisable tokens, keys, signing secret and database password never appear, on good or bad settings."""
    db_password = "db-pass-SECRET-9d8c7b"
    good = bot_env(
        kling,
        slack,
        DATABASE_URL=f"postgresql://kbot:{db_password}@127.0.0.1:{closed_port()}/kling",
        SLACK_APP_TOKEN="xapp-1-SECRET-app-token-31415",
        ALERT_CHANNEL="C0ALERTS",
    )
    wrong = {
        **good,
        "KLING_ACCESS_KEY": "ak-SECRET-wrong-access-2718",
        "KLING_SECRET_KEY": "sk-SECRET-wrong-secret-2718281828459045",
        "SLACK_BOT_TOKEN": "xoxb-SECRET-wrong-bot-1618",
    }
    misshapen = {**good, "SLACK_BOT_TOKEN": "SECRET-not-a-bot-token-1414", "KLING_API_KEY": "kling-SECRET-api-1732"}
    secrets = [
        ACCESS_KEY,
        SECRET_KEY,
        BOT_TOKEN,
        SIGNING_SECRET,
        db_password,
        *(v for v in (*wrong.values(), *misshapen.values(), *good.values()) if "SECRET" in v),
    ]
    for env in (good, wrong, misshapen):
        code, out, err = run(["doctor", "--post-test"], env)
        assert code == 1 and out
        for secret in secrets:
            assert secret not in out and secret not in err, secret


def test_doctor_help_names_post_test(capsys: pytest.CaptureFixture[str]) -> None:
    """`kling-bot doctor --help` describes the checks, --post-test and the exit codes."""
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--post-test" in text and "Exit 0" in text
