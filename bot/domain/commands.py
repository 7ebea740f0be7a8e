"""What the words after `/kling-balance` ask for: pure parsing, no Slack calls.

These types are the domain's: the services that act on a command and the views that answer
it import them from here, never from the Slack layer.

With several accounts, a word that names an account picks it: `/kling-balance studio`
shows one account, and `subscribe 20% for video on studio` watches one account's family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.accounts import Account, find_account
from bot.domain.thresholds import Threshold, ThresholdSyntaxError, parse_threshold


@dataclass(frozen=True)
class BalanceArgs:
    include_inactive: bool = False
    share: bool = False
    refresh: bool = False
    help: bool = False
    name_filter: str = ""
    # The account's key when a word named one ("" for every account).
    account: str = ""


@dataclass(frozen=True)
class SubscribeArgs:
    threshold: Threshold
    family: str = ""
    account: str = ""
    # `here`: post to the channel the command came from instead of a DM.
    here: bool = False


@dataclass(frozen=True)
class UnsubscribeArgs:
    """`threshold` None with `everything` False: the bare command (fine if there is one)."""

    threshold: Threshold | None = None
    family: str = ""
    everything: bool = False
    account: str = ""
    here: bool = False


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
    "`for <family>` (and with several accounts `on <account>`); end with `here` to post to this "
    "channel instead of a DM, e.g. "
    "`/kling-balance subscribe 20% for Video Generation`"
)
UNSUBSCRIBE_USAGE = (
    "`/kling-balance unsubscribe 20%` (add `for <family>` and `on <account>` if you gave them), or `unsubscribe all`"
)

# Longer typed family names are refused with a sentence (no family is named like that).
MAX_FAMILY_TEXT = 200

_FLAGS = {"all", "share", "refresh", "help", "--help", "-h", "?"}


def parse_command(text: str | None, accounts: Sequence[Account] = ()) -> Command:
    """`accounts`: the accounts there are, when there are several (their names become words)."""
    words = (text or "").split()
    head = words[0].casefold() if words else ""
    if head in ("subscribe", "sub"):
        rest, here = _take_here(words[1:])
        rest, account = _take_account(rest, accounts)
        return _with_place(_subscribe(rest), account, here)
    if head in ("unsubscribe", "unsub"):
        rest, here = _take_here(words[1:])
        rest, account = _take_account(rest, accounts)
        return _with_place(_unsubscribe(rest), account, here)
    if head in ("subscriptions", "subs") and len(words) == 1:
        return ListSubscriptionsArgs()
    return parse_balance_text(text, accounts)


def _take_account(words: list[str], accounts: Sequence[Account]) -> tuple[list[str], str]:
    """`on <account>` anywhere (`subscribe 20% on studio`, `... for video on studio`)."""
    for i in range(len(words) - 1):
        if words[i].casefold() == "on":
            account = find_account(words[i + 1], list(accounts))
            if account is not None:
                return words[:i] + words[i + 2 :], account.key
    return words, ""


def _take_here(words: list[str]) -> tuple[list[str], bool]:
    """A last word `here`: the threshold posts to this channel (`subscribe 20% here`)."""
    if words and words[-1].casefold() == "here":
        return words[:-1], True
    return words, False


def _with_place(command: Command, account: str, here: bool) -> Command:
    if isinstance(command, SubscribeArgs | UnsubscribeArgs) and (account or here):
        return dataclasses.replace(command, account=account or command.account, here=here)
    return command


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


def parse_balance_text(text: str | None, accounts: Sequence[Account] = ()) -> BalanceArgs:
    """Keywords anywhere in the text switch options, a word naming an account picks it;
    every other word is a name filter."""
    words = (text or "").split()
    flags = {w.casefold() for w in words if w.casefold() in _FLAGS}
    account = ""
    rest = []
    for word in words:
        if word.casefold() in _FLAGS:
            continue
        named = find_account(word, list(accounts)) if not account else None
        if named is not None:
            account = named.key
            continue
        rest.append(word)
    return BalanceArgs(
        include_inactive="all" in flags,
        share="share" in flags,
        refresh="refresh" in flags,
        help=bool(flags & {"help", "--help", "-h", "?"}),
        name_filter=" ".join(rest),
        account=account,
    )
