"""The Slack app manifest and Procfile match what the bot serves."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.views.manifest import MANIFEST_YML, bot_scopes, manifest_text

ROOT = Path(__file__).resolve().parent.parent


def test_manifest_declares_the_command_scopes_and_urls() -> None:
    """The manifest has /kling-balance with a usage hint, only the scopes used, and /slack/events URLs."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/kling-balance"
    assert command["description"] and command["usage_hint"]
    assert command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "channels:history",
        "chat:write",
        "chat:write.public",
        "commands",
        "groups:history",
        "im:history",
        "im:write",
    ]
    assert bot_scopes() == set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["features"]["bot_user"]["display_name"]
    assert "socket_mode_enabled" in manifest["settings"]


def test_procfile_runs_web_and_worker() -> None:
    """The Procfile runs the Slack app as `web` and the scheduler as `worker`, never both in one."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert "web: kling-bot serve --web-only" in lines
    assert "worker: kling-bot worker" in lines


def test_manifest_describes_subscriptions_dms_and_the_digest() -> None:
    """The usage hint names every subcommand and the long description the DMs and digest, within Slack's limits."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    hint = command["usage_hint"]
    assert len(hint) <= 1000
    for word in ("all", "share", "refresh", "subscribe 20%", "subscriptions", "unsubscribe", "help"):
        assert word in hint
    description = manifest["display_information"]["long_description"]
    assert 175 <= len(description) <= 4000
    for word in ("subscribe", "subscriptions", "unsubscribe", "DM", "digest", "12 hours"):
        assert word in description
    assert len(manifest["display_information"]["description"]) <= 140


def test_manifest_file_is_the_one_the_package_ships() -> None:
    """manifest.yml at the top is the text `kling-bot manifest` prints from the installed package."""
    assert (ROOT / "manifest.yml").read_text() == MANIFEST_YML == manifest_text()


def run_manifest(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["manifest", *argv], environ={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_manifest_command_fills_in_the_url_for_http_mode() -> None:
    """`kling-bot manifest --url` points the slash command and interactivity at <url>/slack/events."""
    code, out, err = run_manifest("--url", "https://kling-bot.example.com/")
    assert code == 0, err
    manifest = yaml.safe_load(out)
    [command] = manifest["features"]["slash_commands"]
    assert command["url"] == "https://kling-bot.example.com/slack/events"
    assert manifest["settings"]["interactivity"]["request_url"] == "https://kling-bot.example.com/slack/events"
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert "YOUR-HOST" not in out


def test_manifest_command_switches_on_socket_mode_without_urls() -> None:
    """`kling-bot manifest --socket-mode` turns Socket Mode on and leaves out the URLs it does not use."""
    code, out, err = run_manifest("--socket-mode")
    assert code == 0, err
    manifest = yaml.safe_load(out)
    [command] = manifest["features"]["slash_commands"]
    assert "url" not in command and command["command"] == "/kling-balance"
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "YOUR-HOST" not in out
    assert manifest["oauth_config"] == yaml.safe_load((ROOT / "manifest.yml").read_text())["oauth_config"]


@pytest.mark.parametrize("url", ["kling-bot.example.com", "ftp://kling-bot.example.com", "https://", "https://h:99999"])
def test_manifest_command_refuses_a_bad_url(url: str) -> None:
    """A --url that is not an http(s) address gets one line saying so and exit 2, and no manifest."""
    code, out, err = run_manifest("--url", url)
    assert code == 2 and out == ""
    assert err.startswith("kling-bot: --url") and len(err.strip().splitlines()) == 1


def test_manifest_command_needs_no_settings_and_has_help(tmp_path: Path) -> None:
    """With no environment at all (no keys, no .env), `manifest` prints the manifest; `--help` explains it."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    for argv, expect in ((["--socket-mode"], "socket_mode_enabled: true"), (["--help"], "--socket-mode")):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "manifest", *argv], capture_output=True, text=True, timeout=60,
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert expect in result.stdout
