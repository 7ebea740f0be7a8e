"""The command line after a new user's and an adversarial tester's report (issue 6): exit
codes that match what happened, one line for every failure, demo data kept apart."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import BOT_TOKEN, FakeSlack
from tests.test_cli import kling_env, run


def slack_env(kling: FakeKling, slack: FakeSlack, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
        "ALERT_CHANNEL": "C0ALERTS",
        "DIGEST_CHANNEL": "C0DIGEST",
        # Each `check` here stands for a later poll, so none reuses the previous one's answer.
        "KLING_CACHE_TTL": "0",
        **extra,
    }
    return kling_env(kling, **env)


def test_check_with_a_wrong_slack_token_exits_1_saying_so(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """A warning owed but refused by Slack (invalid_auth) makes `check` exit 1 naming the token, not 0."""
    pack = make_pack("Video Generation - A", remaining=10, pack_id="w1")
    kling.packs = [pack]
    assert run(["check"], slack_env(kling, slack, tmp_path))[0] == 0
    kling.packs = [{**pack, "status": "runOut", "remaining_quantity": 0}]
    code, out, err = run(["check"], slack_env(kling, slack, tmp_path, SLACK_BOT_TOKEN="xoxb-wrong"))
    assert code == 1, out + err
    assert "invalid_auth" in err and "SLACK_BOT_TOKEN" in err and "xoxb-wrong" not in err
    assert "Traceback" not in err
    # Fixed token: the next check delivers it and exits 0.
    slack_ok = slack_env(kling, slack, tmp_path)
    with sqlite3.connect(tmp_path / "k.db") as db:  # due now, rather than after the backoff
        db.execute("UPDATE outbox SET next_attempt_at = 0")
    code, _, err = run(["check"], slack_ok)
    assert code == 0, err
    assert any("used up" in c.get("text", "") for c in slack.calls_to("chat.postMessage") if not c.get("_failed"))


def test_a_digest_still_owed_is_reported_owed_every_time(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """`digest` to a channel the bot is not in exits 1 with the /invite fix, and again on the next run."""
    env = slack_env(kling, slack, tmp_path)
    slack.fail("chat.postMessage", times=5, error="not_in_channel")
    for _ in range(2):
        code, out, err = run(["digest"], env)
        assert code == 1 and "still owed" in err and "/invite @Kling Balance" in err, out + err
        assert "already posted" not in out
    slack.failures.clear()
    with sqlite3.connect(tmp_path / "k.db") as db:
        db.execute("UPDATE outbox SET next_attempt_at = 0")
    code, out, _ = run(["digest"], env)
    assert code == 0 and "Posted" in out
    code, out, _ = run(["digest"], env)
    assert code == 0 and "already posted" in out


def test_a_database_url_with_a_bad_port_is_a_setting_error(kling: FakeKling) -> None:
    """DATABASE_URL with a port that is not a number: exit 2, one line, no password, no traceback."""
    code, _, err = run(["check"], kling_env(kling, DATABASE_URL="postgresql://bot:hunter2@db:port/kling"))
    assert code == 2 and "DATABASE_URL has an invalid port" in err
    assert "hunter2" not in err and "Traceback" not in err


def test_a_database_failing_mid_pass_is_one_line(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """A database that breaks after opening (a table gone) ends `check` with exit 1 and one line."""
    env = slack_env(kling, slack, tmp_path)
    assert run(["check"], env)[0] == 0
    with sqlite3.connect(tmp_path / "k.db") as db:
        db.execute("DROP TABLE outbox")
    code, _, err = run(["check"], env)
    assert code == 1 and "the database failed during `check`" in err and "Traceback" not in err


def test_demo_never_touches_the_real_database(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """`check --demo` uses a throwaway database and posts nothing: the real first `check` is still a baseline."""
    env = slack_env(kling, slack, tmp_path)
    code, out, _ = run(["check", "--demo"], env)
    assert code == 0 and "Sample data" in out and "Would post" in out
    assert not (tmp_path / "k.db").exists()
    assert slack.calls_to("chat.postMessage") == []
    code, out, _ = run(["digest", "--demo"], env)
    assert code == 0 and "[Sample data]" in out and slack.calls_to("chat.postMessage") == []
    code, out, _ = run(["check"], env)
    assert code == 0 and "baseline" in out


def test_demo_is_suggested_only_where_it_exists() -> None:
    """Missing keys suggest --demo for commands that have it (balance, check, digest), never for worker."""
    _, _, err = run(["worker"], {})
    assert "--demo" not in err
    for command in ("balance", "check", "digest"):
        _, _, err = run([command], {})
        assert "--demo" in err, command
    assert run(["check", "--demo"], {})[0] == 0


def test_balance_loads_no_database_or_slack_code() -> None:
    """`balance --demo` imports neither SQLAlchemy nor Slack's SDK nor the scheduler (a fast start)."""
    probe = (
        "import io, sys\n"
        "from bot.cli import main\n"
        "assert main(['balance', '--demo'], environ={}, stdout=io.StringIO(), stderr=io.StringIO()) == 0\n"
        "print(sorted(m for m in ('sqlalchemy', 'slack_sdk', 'slack_bolt', 'apscheduler') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_serve_demo_labels_every_reply_and_keeps_its_own_database(slack: FakeSlack, tmp_path: Path) -> None:
    """`serve --demo` answers from sample data labelled as such, in a throwaway database, never the real one."""
    from slack_bolt import BoltRequest

    from bot.config import Settings
    from bot.services import build_services
    from bot.slack.app import build_app
    from tests.slack_requests import signed_headers, slash_command_body
    from tests.stand_ins.slack import SIGNING_SECRET

    real_db = tmp_path / "real.db"
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{real_db}",
        "ALERT_CHANNEL": "C0ALERTS",
    }
    services = build_services(Settings.from_env(env, need_kling=False, need_slack=True), demo=True, with_store=True)
    try:
        assert services.settings.alert_channel == "" and str(real_db) not in services.settings.database_url
        app = build_app(services)
        for key, text in (("demo1", ""), ("demo2", "subscribe 20%")):
            body = slash_command_body(text, response_url=slack.response_url(key))
            headers = {k.lower(): [v] for k, v in signed_headers(SIGNING_SECRET, body).items()}
            assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200
            reply = slack.wait_for_answer(key)
            assert reply["text"].startswith("[Sample data]")
            assert "Sample data" in reply["blocks"][0]["elements"][0]["text"]
    finally:
        services.close()
    assert not real_db.exists()


def test_a_kling_failure_is_said_once(kling: FakeKling) -> None:
    """`balance` with Kling refusing says why in one line, not once in the log and again as the result."""
    kling.fail_next(1, 429, 1101, "Account balance is not enough")
    code, _, err = run(["balance"], kling_env(kling))
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.count("Account balance is not enough") == 1, err
