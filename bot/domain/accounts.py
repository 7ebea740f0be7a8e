"""Kling accounts as values: a team may watch several (production and staging, two regions,
one per studio). Pack ids are unique only within an account, so the account goes with every
pack, state row, event key and subscription.

Without KLING_ACCOUNTS there is one account, `default`, and no account name appears anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_ACCOUNT = "default"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True, slots=True)
class Account:
    """`key` identifies it (lower case, stored in the database); `name` is shown as written."""

    key: str
    name: str

    @classmethod
    def named(cls, name: str) -> Account:
        return cls(name.casefold(), name)

    @property
    def env_prefix(self) -> str:
        """`KLING_<NAME>_`: the name upper-cased, `-` as `_`."""
        return f"KLING_{self.name.upper().replace('-', '_')}_"


DEFAULT = Account(DEFAULT_ACCOUNT, DEFAULT_ACCOUNT)


def valid_account_name(name: str) -> bool:
    return bool(_NAME.match(name))


def find_account(word: str, accounts: tuple[Account, ...] | list[Account]) -> Account | None:
    """The account a word names (any case), if any."""
    needle = word.strip().casefold()
    return next((a for a in accounts if a.name.casefold() == needle), None)


def scoped(account: str, text: str) -> str:
    """`text` within `account`, for keys: the default account keeps the form earlier releases
    stored, so an upgrade to several accounts repeats nothing already said."""
    return text if account == DEFAULT_ACCOUNT else f"{account}/{text}"
