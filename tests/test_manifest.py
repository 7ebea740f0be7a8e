"""The Slack app manifest and Procfile match what the bot serves."""

from __future__ import annotations

from pathlib import Path

import yaml

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
        "chat:write",
        "chat:write.public",
        "commands",
        "im:write",
    ]
    assert manifest["features"]["bot_user"]["display_name"]
    assert "socket_mode_enabled" in manifest["settings"]


def test_procfile_runs_web_and_worker() -> None:
    """The Procfile runs the Slack app as `web` and the scheduler as `worker`, never both in one."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert "web: kling-bot serve --web-only" in lines
    assert "worker: kling-bot worker" in lines
