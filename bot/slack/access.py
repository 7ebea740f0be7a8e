"""Who may see balances (KLING_ALLOWED_USERS / KLING_ALLOWED_CHANNELS)."""

from __future__ import annotations

from bot.config import Settings


def may_see_balances(settings: Settings, user_id: str | None, channel_id: str | None) -> bool:
    """Each list that is set must contain the caller; an unset list allows everyone."""
    if settings.allowed_users and user_id not in settings.allowed_users:
        return False
    if settings.allowed_channels and channel_id not in settings.allowed_channels:
        return False
    return True
