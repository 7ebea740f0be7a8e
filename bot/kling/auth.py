"""How the bot proves who it is to Kling: a JWT from access + secret key, or an API key."""

from __future__ import annotations

import threading
import warnings
from typing import Protocol

import jwt

from bot.clock import Clock

TOKEN_LIFETIME_S = 1800
# Kling checks `nbf` against its own clock; backdating a little absorbs clock skew.
NOT_BEFORE_SKEW_S = 5
# Mint a new token this long before the old one expires, so none is sent about to lapse.
RENEW_MARGIN_S = 300
# PyJWT >= 2.10 warns when an HMAC key is shorter than the hash (32 bytes for HS256), printing
# a file path to stderr. The secret's length is Kling's choice, not the user's, so the warning
# is noise to them. Older PyJWT has no such warning; UserWarning stands in there.
_SHORT_KEY_WARNING: type[Warning] = getattr(jwt, "InsecureKeyLengthWarning", UserWarning)


class Credentials(Protocol):
    # True when the bearer is a token this machine signs with its own clock, so a token
    # Kling calls "not yet valid" or "expired" even when fresh means that clock is off.
    mints_tokens: bool

    def bearer(self) -> str:
        """The value to send after `Authorization: Bearer`."""
        ...

    def invalidate(self) -> None:
        """Forget any cached token (Kling said it was not yet valid or expired)."""
        ...


class ApiKeyCredentials:
    """The newer way: the API key is the bearer token, as it is."""

    mints_tokens = False

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def bearer(self) -> str:
        return self._api_key

    def invalidate(self) -> None:
        pass

    def __repr__(self) -> str:
        return "ApiKeyCredentials(api_key=***)"


class JwtCredentials:
    """The classic way: an HS256 JWT signed with the secret key, reused until shortly
    before it expires."""

    mints_tokens = True

    def __init__(self, access_key: str, secret_key: str, clock: Clock) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0

    def bearer(self) -> str:
        with self._lock:
            now = int(self._clock.now().timestamp())
            if self._token is None or now >= self._expires_at - RENEW_MARGIN_S:
                self._expires_at = now + TOKEN_LIFETIME_S
                # catch_warnings swaps the process-wide filters for the duration; a token is
                # minted about twice an hour, under this lock, so the window is tiny.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
                    self._token = jwt.encode(
                        {"iss": self._access_key, "exp": self._expires_at, "nbf": now - NOT_BEFORE_SKEW_S},
                        self._secret_key,
                        algorithm="HS256",
                        headers={"typ": "JWT"},
                    )
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def __repr__(self) -> str:
        return "JwtCredentials(access_key=***, secret_key=***)"
