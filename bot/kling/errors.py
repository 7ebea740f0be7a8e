"""Everything that can go wrong talking to Kling, as one exception tree.

    KlingError                      anything from this package
    ├── KlingConnectionError        no answer: DNS, refused, reset, timeout      (retried)
    │   └── KlingBusyError          the cache gave up waiting for a fetch already in flight
    ├── MalformedReplyError         an answer that is not the documented shape, or too large
    └── KlingAPIError               Kling answered with an error code
        ├── AuthenticationError     401, codes 1000-1004: keys rejected or token expired
        │   └── ClockSkewError      1003/1004 even with a fresh token: this machine's clock is off
        ├── AccountError            403/429, codes 1100-1103, 1304: account, permission, IP
        ├── BadRequestError         400/404, codes 1200-1203, 1300-1301: the bot's request
        ├── RateLimitedError        429, codes 1302-1303                        (retried)
        └── UnavailableError        5xx, codes 5000-5002: Kling is down or slow (retried)

Every error has two texts besides its message:

- `advice`: what it means and what to check, naming settings (`KLING_API_BASE`, ...), for
  the logs and the command line, read by whoever runs the bot;
- `public_message`: what happened and what the reader can do, fit for any Slack user: no
  hosts, URLs, setting names or error codes, which mean nothing to them and tell strangers
  how the bot is set up.

No error text ever contains a key, secret or token.
"""

from __future__ import annotations


class KlingError(Exception):
    """Base class: `str(err)` is a one-line reason, `advice` the next step."""

    advice = "Try again in a few minutes; if it keeps failing, check the bot's logs."
    public_message = (
        "Something went wrong while asking Kling. Try again in a few minutes; if it keeps failing, "
        "tell whoever runs the bot."
    )
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # Set by the client when it gave up after retrying, so users learn it was not one blip.
        self.attempts = 1
        self.elapsed_s = 0.0

    def describe(self) -> str:
        """The reason plus, when retried, how long the bot kept trying."""
        text = self.message
        if self.attempts > 1:
            text += f" (gave up after {self.attempts} attempts over {self.elapsed_s:.0f} s)"
        return text


class KlingConnectionError(KlingError):
    advice = "Kling could not be reached. Check the network and KLING_API_BASE, then try again."
    public_message = (
        "Kling could not be reached just now. Try again in a few minutes; if it keeps failing, "
        "tell whoever runs the bot."
    )
    retryable = True


class KlingBusyError(KlingConnectionError):
    """A caller stopped waiting for a Kling call another caller already has in flight."""

    advice = "Kling is slow to answer; the bot is still waiting for it. Try again in a minute."
    public_message = "Kling is slow to answer right now. Try again in a minute."


class MalformedReplyError(KlingError):
    """The reply could not be understood; `field` names the part that was wrong."""

    advice = (
        "Kling answered in a shape the bot does not understand. Try again later; if it "
        "persists, the API may have changed and the bot needs an update."
    )
    public_message = (
        "Kling sent an answer the bot could not read. Try again later; if it keeps happening, "
        "tell whoever runs the bot."
    )

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class KlingAPIError(KlingError):
    public_message = (
        "Kling turned down the bot's request. Try again later; if it keeps failing, tell whoever runs the bot."
    )

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        code: int | None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.request_id = request_id

    def describe(self) -> str:
        text = super().describe()
        ref = f"HTTP {self.http_status}" + (f", code {self.code}" if self.code is not None else "")
        if self.request_id:
            ref += f", request {self.request_id}"
        return f"{text} [{ref}]"


class AuthenticationError(KlingAPIError):
    advice = (
        "Kling rejected the bot's credentials. Check KLING_ACCESS_KEY and KLING_SECRET_KEY "
        "(or KLING_API_KEY), and that KLING_API_BASE is the region the keys belong to."
    )
    public_message = "Kling rejected the bot's credentials. Tell whoever runs the bot."


class ClockSkewError(AuthenticationError):
    """Kling refused even a freshly signed token for its time window: the keys are fine, but
    this machine's clock disagrees with Kling's (the message says which way)."""

    advice = (
        "Kling checks the signed token's times against its own clock. Sync this machine's clock "
        "(NTP, e.g. `timedatectl set-ntp true`), then try again."
    )
    public_message = "Kling rejected the bot's sign-in because the bot's clock is off. Tell whoever runs the bot."


class AccountError(KlingAPIError):
    advice = (
        "Kling refused this account (arrears, a suspended account, a missing permission or an "
        "IP whitelist). Check the account in the Kling console."
    )
    public_message = (
        "Kling refused access to this account (for example unpaid bills or missing permissions). "
        "Tell whoever runs the bot."
    )


class BadRequestError(KlingAPIError):
    advice = (
        "Kling rejected the bot's request. Check KLING_API_BASE and KLING_LOOKBACK_DAYS; if they "
        "look right, the API may have changed and the bot needs an update."
    )
    public_message = "Kling did not accept the bot's request. Tell whoever runs the bot."


class RateLimitedError(KlingAPIError):
    advice = "Kling is rate-limiting the bot. Wait a minute and try again."
    public_message = "Kling is handling too many requests right now. Try again in a minute."
    retryable = True
    # From the reply's Retry-After header, when Kling sends one.
    retry_after_s = 0.0


class UnavailableError(KlingAPIError):
    advice = "Kling is down or slow right now. Try again in a few minutes."
    public_message = "Kling is down or slow right now. Try again in a few minutes."
    retryable = True


_BY_CODE: dict[int, type[KlingAPIError]] = {
    **dict.fromkeys(range(1000, 1005), AuthenticationError),
    **dict.fromkeys((1100, 1101, 1102, 1103, 1304), AccountError),
    **dict.fromkeys((1200, 1201, 1202, 1203, 1300, 1301), BadRequestError),
    **dict.fromkeys((1302, 1303), RateLimitedError),
    **dict.fromkeys((5000, 5001, 5002), UnavailableError),
}

# Codes whose meaning Kling documents; used when the reply carries no message of its own.
_MEANINGS: dict[int, str] = {
    1000: "authentication failed",
    1001: "authorization header is empty",
    1002: "authorization is invalid",
    1003: "token is not yet valid",
    1004: "token has expired",
    1100: "account is abnormal",
    1101: "account is in arrears",
    1102: "resource pack exhausted or expired",
    1103: "no permission for this API",
    1200: "invalid request parameters",
    1201: "invalid request parameters",
    1202: "invalid request method",
    1203: "resource not found",
    1300: "platform policy triggered",
    1301: "content safety policy triggered",
    1302: "rate limit exceeded",
    1303: "concurrency or QPS over the resource pack limit",
    1304: "IP whitelist policy triggered",
    5000: "Kling internal error",
    5001: "Kling is under maintenance",
    5002: "Kling internal timeout",
}


def error_for(http_status: int, code: int | None, message: str | None, request_id: str | None) -> KlingAPIError:
    """The most specific error for an error reply, by Kling code first, then HTTP status."""
    cls = _BY_CODE.get(code) if code is not None else None
    if cls is None:
        if http_status == 401:
            cls = AuthenticationError
        elif http_status == 403:
            cls = AccountError
        elif http_status == 429:
            cls = RateLimitedError
        elif http_status >= 500:
            cls = UnavailableError
        else:
            cls = BadRequestError
    meaning = _MEANINGS.get(code) if code is not None else None
    text = (message or "").strip() or meaning or f"HTTP {http_status}"
    if meaning and meaning.casefold() not in text.casefold():
        text = f"{meaning}: {text}"
    return cls(f"Kling: {text}", http_status=http_status, code=code, request_id=request_id)
