"""Build slash-command requests the way Slack sends them: form-encoded and signed."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


def slash_command_body(
    text: str,
    *,
    response_url: str,
    user_id: str = "U_ALICE",
    channel_id: str = "C_GENERAL",
    command: str = "/kling-balance",
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "team_domain": "test",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": "alice",
            "command": command,
            "text": text,
            "api_app_id": "A0TEST",
            "response_url": response_url,
            "trigger_id": "123.456.abc",
        }
    )


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


def interaction_body(kind: str, *, user: str = "U_ALICE", **fields: Any) -> str:
    """An interactivity request as Slack sends it (`block_actions`, `view_submission`): a JSON
    payload, form-encoded in a `payload` field; sign it with `signed_headers`."""
    payload = {
        "type": kind,
        "user": {"id": user, "username": "alice", "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "team": {"id": "T0TEST", "domain": "test"},
        "trigger_id": "123.456.abc",
        **fields,
    }
    return urlencode({"payload": json.dumps(payload)})
