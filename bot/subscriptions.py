"""Threshold subscriptions: add, remove, list. The Slack listener only parses and replies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.commands import SubscribeArgs, UnsubscribeArgs
from bot.domain.packs import ResourcePack, matching_families, resolve_family
from bot.domain.thresholds import Level, Threshold, ThresholdKind, family_levels, known_families
from bot.store.db import Store, SubscriptionRow


@dataclass(frozen=True)
class Subscribed:
    threshold: Threshold
    family: str
    created: bool
    # Families the subscription watches and their level now (families with no online pack
    # have none); empty if Kling was unreachable.
    levels: tuple[Level, ...]
    # False when Kling could not be asked: the family name was saved as typed, unchecked.
    checked: bool = True
    # Watched families with nothing online yet (no level until a pack is).
    inactive: tuple[str, ...] = ()
    # The account it is limited to ("" for every account).
    account: str = ""
    # The channel it posts to ("" for a DM).
    channel: str = ""


@dataclass(frozen=True)
class UnknownFamily:
    typed: str
    families: tuple[str, ...]
    # Several families contain the text: say which, instead of "no match".
    ambiguous: bool = False


def subscribe(
    store: Store,
    user_id: str,
    args: SubscribeArgs,
    packs: Sequence[ResourcePack] | None,
    now: datetime,
    *,
    channel: str = "",
) -> Subscribed | UnknownFamily:
    """Store a threshold for `user_id`: a DM to them, or with `channel` a post there."""
    family = args.family
    if packs is not None and args.account:
        packs = [p for p in packs if p.account == args.account]
    levels = family_levels(packs) if packs is not None else {}
    families = known_families(packs) if packs is not None else []
    if family and packs is not None:
        found = matching_families(family, families)
        if len(found) != 1:
            return UnknownFamily(family, tuple(found or families), ambiguous=len(found) > 1)
        family = found[0]
    with store.transaction() as tx:
        created = tx.add_subscription(
            user_id, family, str(args.threshold.kind), args.threshold.value, now, account=args.account, channel=channel
        )
    watched = tuple(lvl for (_, name), lvl in sorted(levels.items()) if not family or name == family)
    active = {name for _, name in levels}
    inactive = tuple(f for f in families if f not in active and (not family or f == family))
    return Subscribed(
        args.threshold,
        family,
        created,
        watched,
        checked=packs is not None,
        inactive=inactive,
        account=args.account,
        channel=channel,
    )


def threshold_of(row: SubscriptionRow) -> Threshold:
    return Threshold(ThresholdKind(row.kind), row.value)


def list_subscriptions(store: Store, user_id: str) -> list[SubscriptionRow]:
    with store.transaction() as tx:
        return tx.subscriptions(user_id)


@dataclass(frozen=True)
class Unsubscribed:
    removed: tuple[SubscriptionRow, ...]
    # Set when the bare command could mean several subscriptions: nothing was removed.
    ambiguous: tuple[SubscriptionRow, ...] = ()


def unsubscribe(store: Store, user_id: str, args: UnsubscribeArgs) -> Unsubscribed:
    with store.transaction() as tx:
        mine = tx.subscriptions(user_id)
        if args.everything:
            chosen = mine
        elif args.threshold is None:
            if len(mine) > 1:
                return Unsubscribed((), ambiguous=tuple(mine))
            chosen = mine
        else:
            chosen = [
                row
                for row in mine
                if threshold_of(row) == args.threshold
                and (not args.account or row.account == args.account)
                and (not args.here or bool(row.channel))
                and (
                    not args.family
                    or row.family.casefold() == args.family.casefold()
                    or (resolve_family(args.family, [row.family]) == row.family and row.family != "")
                )
            ]
        tx.remove_subscriptions([row.id for row in chosen])
    return Unsubscribed(tuple(chosen))
