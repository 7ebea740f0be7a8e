"""`kling-bot`: the terminal commands, their output and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from bot.cli import main
from tests.stand_ins.kling import ACCESS_KEY, SECRET_KEY, FakeKling, make_pack
from tests.stand_ins.slack import FakeSlack


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def kling_env(kling: FakeKling, **extra: str) -> dict[str, str]:
    return {"KLING_API_BASE": kling.url, "KLING_ACCESS_KEY": ACCESS_KEY, "KLING_SECRET_KEY": SECRET_KEY, **extra}


def test_balance_prints_a_table_of_active_packs(kling: FakeKling) -> None:
    """`kling-bot balance` prints each active pack with remaining, total and expiry, and the lag note."""
    kling.packs = [
        make_pack("Video Generation - A", total=1000, remaining=250),
        make_pack("Image Generation - B", status="expired", expires_in_days=-2),
    ]
    code, out, _ = run(["balance"], kling_env(kling))
    assert code == 0
    assert "Video Generation - A" in out and "250" in out and "1,000" in out and "25%" in out
    assert "Image Generation - B" not in out
    assert "12 h" in out


def test_balance_all_includes_expired(kling: FakeKling) -> None:
    """`--all` adds expired and used-up packs."""
    kling.packs = [make_pack("Image Generation - B", status="expired", expires_in_days=-2)]
    code, out, _ = run(["balance", "--all"], kling_env(kling))
    assert code == 0 and "Image Generation - B" in out and "Expired" in out


def test_balance_json_uses_kling_field_names_and_iso_times(kling: FakeKling) -> None:
    """`--json` prints fetched_at, stale and packs with Kling's field names, times as ISO 8601 UTC."""
    kling.packs = [make_pack("Video Generation - A", total=200, remaining=118)]
    code, out, _ = run(["balance", "--json"], kling_env(kling))
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"fetched_at", "stale", "packs"} and data["stale"] is False
    [p] = data["packs"]
    assert set(p) == {
        "resource_pack_name",
        "resource_pack_id",
        "resource_pack_type",
        "total_quantity",
        "remaining_quantity",
        "purchase_time",
        "effective_time",
        "invalid_time",
        "status",
        "expires_unused",
    }
    assert p["remaining_quantity"] == 118.0 and p["status"] == "online"
    assert p["invalid_time"].endswith("Z") and "T" in p["invalid_time"]


def test_demo_needs_no_keys() -> None:
    """`balance --demo` prints the sample account with no settings at all."""
    code, out, _ = run(["balance", "--demo"], {})
    assert code == 0 and "Video Generation" in out


def test_missing_settings_exit_2_naming_each() -> None:
    """Without keys, `balance` exits 2 and names the settings to set."""
    code, _, err = run(["balance"], {"KLING_LOOKBACK_DAYS": "many"})
    assert code == 2
    assert "KLING_ACCESS_KEY" in err and "KLING_LOOKBACK_DAYS" in err
    assert "Traceback" not in err


def test_kling_failure_exits_1_with_one_line(kling: FakeKling) -> None:
    """Rejected keys: exit 1 and a one-line reason with what to check, never the secret."""
    code, out, err = run(["balance"], kling_env(kling, KLING_SECRET_KEY="a-wrong-secret-a-wrong-secret-1234"))
    assert code == 1 and out == ""
    [line] = [line for line in err.splitlines() if line.startswith("kling-bot:")]
    assert "KLING_ACCESS_KEY" in line and "a-wrong-secret" not in err


def test_serve_with_rejected_slack_token_exits_2(kling: FakeKling, slack: FakeSlack) -> None:
    """`serve` checks the Slack token first and exits 2 saying where to find the right one."""
    env = kling_env(kling, SLACK_BOT_TOKEN="xoxb-revoked", SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.api_url)
    code, _, err = run(["serve"], env)
    assert code == 2 and "SLACK_BOT_TOKEN" in err and "invalid_auth" in err


def test_console_script_and_module_both_answer_help() -> None:
    """`python -m bot --help` and each subcommand's --help work."""
    for argv in (["--help"], ["balance", "--help"], ["serve", "--help"]):
        result = subprocess.run([sys.executable, "-m", "bot", *argv], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "usage:" in result.stdout


def test_check_reports_what_it_did(kling: FakeKling, slack: FakeSlack, tmp_path) -> None:
    """`kling-bot check` polls once, says it recorded a baseline, and exits 0."""
    env = kling_env(
        kling,
        SLACK_BOT_TOKEN="xoxb-test-bot-token",
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'k.db'}",
        ALERT_CHANNEL="C0ALERTS",
    )
    code, out, err = run(["check"], env)
    assert code == 0, err
    assert "Checked 1 pack(s)" in out and "baseline" in out


def test_check_exits_1_when_kling_fails(kling: FakeKling, slack: FakeSlack, tmp_path) -> None:
    """When Kling refuses and nothing is known, `check` exits 1 with the reason."""
    kling.fail_next(1, 429, 1101, "arrears")
    env = kling_env(
        kling,
        SLACK_BOT_TOKEN="xoxb-test-bot-token",
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'k.db'}",
    )
    code, _, err = run(["check"], env)
    assert code == 1 and "arrears" in err


def test_unusable_database_url_exits_1_without_leaking_it(kling: FakeKling, slack: FakeSlack) -> None:
    """A database that cannot be opened gives one line, without the URL's password."""
    env = kling_env(
        kling,
        SLACK_BOT_TOKEN="xoxb-test-bot-token",
        SLACK_API_URL=slack.api_url,
        DATABASE_URL="postgresql://bot:hunter2@127.0.0.1:1/kling",
    )
    code, _, err = run(["check"], env)
    assert code == 1 and "DATABASE_URL" in err and "hunter2" not in err
