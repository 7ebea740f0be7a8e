"""The Slack app manifest, printed by `kling-bot manifest` for HTTP mode or Socket Mode.

The text lives here, not in a .yml file in the package, because `pip install .` installs only
Python files (pyproject.toml declares no package data). manifest.yml at the top of the repo is
the same text for pasting by hand; tests/test_manifest.py checks that the two are equal
(`kling-bot manifest > manifest.yml` rewrites it).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

PLACEHOLDER = "https://YOUR-HOST"
# The two request URLs, which Socket Mode does not use.
_URL_LINE = re.compile(r"^ *(?:url|request_url): https://YOUR-HOST/slack/events\n", re.MULTILINE)

MANIFEST_YML = """\
# Slack app manifest for Kling Balance Bot: paste it at https://api.slack.com/apps ->
# "Create New App" -> "From an app manifest".
# `kling-bot manifest --url https://your.host` prints it for HTTP mode with both URLs filled in;
# `kling-bot manifest --socket-mode` prints it for Socket Mode, which needs no URLs.
_metadata:
  major_version: 1
  minor_version: 1
display_information:
  name: Kling Balance Bot
  description: Kling AI resource-pack balances and expiry dates, in Slack.
  long_description: >-
    Type /kling-balance to see every Kling AI resource pack's remaining quantity, its
    expiry date and the totals per pack family. Add "all" to include expired and used-up
    packs, "share" to post the balances in the channel, "refresh" to ask Kling right now,
    or part of a pack name to see only those packs.
    "/kling-balance subscribe 20%" (or a quantity such as 500, optionally "for" one family)
    sends you a DM whenever a family's remaining quantity falls below it; "subscriptions"
    lists yours and "unsubscribe" stops them.
    In a channel of your choice the bot posts a daily digest (the totals, what each family
    used since the last one, packs expiring soon and packs that ended) and a warning the
    moment a pack runs out, expires or is about to.
    Kling's remaining quantities can lag by up to 12 hours; the bot says so wherever it
    shows them.
  background_color: "#1f2937"
features:
  app_home:
    # The Home tab shows the balances, the forecast and your thresholds; the Messages tab is
    # where threshold DMs arrive (read-only: the bot does not read what people type there).
    home_tab_enabled: true
    messages_tab_enabled: true
    messages_tab_read_only_enabled: true
  bot_user:
    display_name: Kling Balance
    always_online: true
  slash_commands:
    - command: /kling-balance
      url: https://YOUR-HOST/slack/events
      description: Kling AI resource-pack balances and expiry dates
      usage_hint: >-
        [all] [share] [refresh] [part of a pack name] | subscribe 20% [for family] |
        subscriptions | unsubscribe 20% | help
      should_escape: false
oauth_config:
  scopes:
    bot:
      # Only what the bot uses. Slash-command replies go through the command's response_url,
      # which needs no scope of its own.
      - commands            # /kling-balance
      - chat:write          # warnings and the digest in ALERT_CHANNEL / DIGEST_CHANNEL, and DMs
      - chat:write.public   # post in a public channel without being invited to it first
      - im:write            # conversations.open, to DM people their threshold alerts
      # Exactly once through a crash: before re-sending a message whose first try may have
      # reached Slack, the bot looks for it in the channel's recent history (by the id it put
      # in the message's metadata). Without these the bot says so at start and may, after a
      # crash mid-post, send that one message twice.
      - channels:history    # ...in public channels
      - groups:history      # ...in private channels
      - im:history          # ...in the DMs it sends
settings:
  event_subscriptions:
    request_url: https://YOUR-HOST/slack/events
    bot_events:
      - app_home_opened     # publish the Home tab when someone opens it (needs no scope)
  interactivity:
    is_enabled: true
    request_url: https://YOUR-HOST/slack/events
  org_deploy_enabled: false
  socket_mode_enabled: false
  token_rotation_enabled: false
"""


def base_url(url: str) -> str:
    """The bot's public address as given to `--url`, checked, without a trailing `/` (or a
    `/slack/events` pasted along with it); ValueError with a one-line reason otherwise."""
    parts = urlsplit(url.strip())
    try:
        valid = parts.scheme in ("https", "http") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number from 1 to 65535
        valid = False
    if not valid or parts.query or parts.fragment or any(c.isspace() for c in url.strip()):
        raise ValueError(f"--url needs the bot's public address, such as https://kling-bot.example.com, not {url!r}")
    path = parts.path.rstrip("/").removesuffix("/slack/events")
    return f"{parts.scheme}://{parts.netloc}{path}"


def bot_scopes() -> frozenset[str]:
    """The bot token scopes the manifest asks for (what `doctor` compares the granted ones to)."""
    section = MANIFEST_YML.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    return frozenset(re.findall(r"^ +- ([a-z:.]+)", section, re.MULTILINE))


# What the exactly-once lookup of a message in a channel's history needs.
HISTORY_SCOPES = frozenset({"channels:history", "groups:history", "im:history"})


def manifest_text(url: str | None = None, *, socket_mode: bool = False) -> str:
    """The manifest: with `url`, both request URLs point at it (HTTP mode); with `socket_mode`,
    Socket Mode is on and the URLs are left out; with neither, the YOUR-HOST placeholders stay."""
    if socket_mode:
        return _URL_LINE.sub("", MANIFEST_YML).replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    if url is not None:
        return MANIFEST_YML.replace(PLACEHOLDER, base_url(url))
    return MANIFEST_YML
