"""What the words after `/kling-balance` ask for: pure parsing, no Slack calls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BalanceArgs:
    include_inactive: bool = False
    share: bool = False
    refresh: bool = False
    help: bool = False
    name_filter: str = ""


_FLAGS = {"all", "share", "refresh", "help", "--help", "-h", "?"}


def parse_balance_text(text: str | None) -> BalanceArgs:
    """Keywords anywhere in the text switch options; every other word is a name filter."""
    words = (text or "").split()
    flags = {w.casefold() for w in words if w.casefold() in _FLAGS}
    rest = " ".join(w for w in words if w.casefold() not in _FLAGS)
    return BalanceArgs(
        include_inactive="all" in flags,
        share="share" in flags,
        refresh="refresh" in flags,
        help=bool(flags & {"help", "--help", "-h", "?"}),
        name_filter=rest,
    )
