"""Settings from the environment: defaults, and a message naming every bad setting."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings

SLACK_HTTP = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
KLING = {"KLING_ACCESS_KEY": "ak", "KLING_SECRET_KEY": "sk"}


def test_defaults_match_the_readme() -> None:
    """With only credentials set, every other setting has its documented default."""
    settings = Settings.from_env(KLING)
    assert settings.accounts[0].api_base == "https://api-singapore.klingai.com"
    assert settings.kling_lookback_days == 365
    assert settings.kling_cache_ttl_s == 300
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.port == 3000
    assert not settings.allowed_users and not settings.allowed_channels


def test_every_problem_is_named_at_once() -> None:
    """Missing Slack token, missing Kling secret and a bad number are all reported together."""
    env = {"KLING_ACCESS_KEY": "ak", "KLING_CACHE_TTL": "five", "SLACK_SIGNING_SECRET": "s"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env, need_slack=True)
    text = str(info.value)
    assert "KLING_SECRET_KEY" in text and "SLACK_BOT_TOKEN" in text and "KLING_CACHE_TTL" in text


def test_missing_kling_credentials_suggest_demo_only_where_it_exists() -> None:
    """No Kling keys names both ways to log in, and --demo only for a command that has it."""
    with pytest.raises(ConfigError, match="KLING_API_KEY") as info:
        Settings.from_env({}, demo_hint=True)
    assert "--demo" in str(info.value)
    with pytest.raises(ConfigError, match="KLING_API_KEY") as info:
        Settings.from_env({})
    assert "--demo" not in str(info.value)


def test_http_mode_needs_signing_secret_socket_mode_does_not() -> None:
    """HTTP mode requires SLACK_SIGNING_SECRET; with SLACK_APP_TOKEN (Socket Mode) it may be absent."""
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        Settings.from_env({**KLING, "SLACK_BOT_TOKEN": "xoxb-1"}, need_slack=True)
    settings = Settings.from_env({**KLING, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, need_slack=True)
    assert settings.socket_mode


def test_wrong_kind_of_slack_token_is_named() -> None:
    """A user token where the bot token belongs is caught before starting."""
    with pytest.raises(ConfigError, match="xoxb-"):
        Settings.from_env({**KLING, "SLACK_BOT_TOKEN": "xoxp-1", "SLACK_SIGNING_SECRET": "s"}, need_slack=True)


def test_allow_lists_are_comma_separated_ids() -> None:
    """KLING_ALLOWED_USERS and KLING_ALLOWED_CHANNELS split on commas and ignore blanks."""
    settings = Settings.from_env({**KLING, "KLING_ALLOWED_USERS": " U1, U2 ,,", "KLING_ALLOWED_CHANNELS": "C1"})
    assert settings.allowed_users == {"U1", "U2"} and settings.allowed_channels == {"C1"}


def test_bad_urls_and_ranges_are_rejected() -> None:
    """A base URL without a scheme and a negative look-back are each named."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**KLING, "KLING_API_BASE": "api.klingai.com", "KLING_LOOKBACK_DAYS": "-1"})
    assert "KLING_API_BASE" in str(info.value) and "KLING_LOOKBACK_DAYS" in str(info.value)


def test_repr_never_shows_secrets() -> None:
    """Printing the settings (in a log, a traceback) shows no key, secret or token."""
    settings = Settings.from_env({**KLING, **SLACK_HTTP, "KLING_SECRET_KEY": "sk-very-secret"}, need_slack=True)
    assert "sk-very-secret" not in repr(settings) and "xoxb-1" not in repr(settings)
