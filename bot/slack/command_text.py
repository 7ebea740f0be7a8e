"""What the words after `/kling-balance` ask for: pure parsing, no Slack calls."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.thresholds import Threshold, ThresholdSyntaxError, parse_threshold


@dataclass(frozen=True)
class BalanceArgs:
    include_inactive: bool = False
    share: bool = False
    refresh: bool = False
    help: bool = False
    name_filter: str = ""


@dataclass(frozen=True)
class SubscribeArgs:
    threshold: Threshold
    family: str = ""


@dataclass(frozen=True)
class UnsubscribeArgs:
    """`threshold` None with `everything` False: the bare command (fine if there is one)."""

    threshold: Threshold | None = None
    family: str = ""
    everything: bool = False


@dataclass(frozen=True)
class ListSubscriptionsArgs:
    pass


@dataclass(frozen=True)
class UsageProblem:
    """Input that cannot be understood: `problem` says what, the reply adds the usage."""

    problem: str
    usage: str


Command = BalanceArgs | SubscribeArgs | UnsubscribeArgs | ListSubscriptionsArgs | UsageProblem

SUBSCRIBE_USAGE = (
    "`/kling-balance subscribe 20%` or `/kling-balance subscribe 500` (units), optionally "
    "`for <family>`, e.g. `/kling-balance subscribe 20% for Video Generation`"
)
UNSUBSCRIBE_USAGE = "`/kling-balance unsubscribe 20%` (add `for <family>` if you gave one), or `unsubscribe all`"

# Longer typed family names are refused with a sentence (no family is named like that).
MAX_FAMILY_TEXT = 200

_FLAGS = {"all", "share", "refresh", "help", "--help", "-h", "?"}


def parse_command(text: str | None) -> Command:
    words = (text or "").split()
    head = words[0].casefold() if words else ""
    if head in ("subscribe", "sub"):
        return _subscribe(words[1:])
    if head in ("unsubscribe", "unsub"):
        return _unsubscribe(words[1:])
    if head in ("subscriptions", "subs") and len(words) == 1:
        return ListSubscriptionsArgs()
    return parse_balance_text(text)


def _split_family(words: list[str]) -> tuple[list[str], str | None]:
    """Words before "for", and the family after it (None without "for")."""
    lowered = [w.casefold() for w in words]
    if "for" in lowered:
        at = lowered.index("for")
        return words[:at], " ".join(words[at + 1 :]).strip()
    return words, None


def _subscribe(words: list[str]) -> Command:
    head, family = _split_family(words)
    if not head:
        return UsageProblem("Say below what level to DM you.", SUBSCRIBE_USAGE)
    try:
        # "20%", "20 %", "500", "500 units": the words before "for" are one threshold.
        threshold = parse_threshold(" ".join(head))
    except ThresholdSyntaxError as exc:
        return UsageProblem(str(exc), SUBSCRIBE_USAGE)
    if family == "":
        return UsageProblem("“for” needs a family name after it.", SUBSCRIBE_USAGE)
    if family and len(family) > MAX_FAMILY_TEXT:
        return UsageProblem(
            f"A family name is at most {MAX_FAMILY_TEXT} characters; type part of it, e.g. `for video`.",
            SUBSCRIBE_USAGE,
        )
    return SubscribeArgs(threshold, family or "")


def _unsubscribe(words: list[str]) -> Command:
    if len(words) == 1 and words[0].casefold() == "all":
        return UnsubscribeArgs(everything=True)
    if not words:
        return UnsubscribeArgs()
    head, family = _split_family(words)
    if not head:
        return UsageProblem("Say which threshold to stop.", UNSUBSCRIBE_USAGE)
    if family and len(family) > MAX_FAMILY_TEXT:
        return UsageProblem(f"A family name is at most {MAX_FAMILY_TEXT} characters.", UNSUBSCRIBE_USAGE)
    try:
        threshold = parse_threshold(" ".join(head))
    except ThresholdSyntaxError as exc:
        return UsageProblem(str(exc), UNSUBSCRIBE_USAGE)
    return UnsubscribeArgs(threshold, family or "")


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
