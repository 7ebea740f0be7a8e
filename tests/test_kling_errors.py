"""What Kling errors say, and to whom: user-facing sentences, clock advice, no stray warnings."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from bot.clock import SystemClock
from bot.kling import errors
from bot.kling.auth import JwtCredentials
from bot.kling.client import KlingClient
from bot.kling.errors import AuthenticationError, ClockSkewError, KlingConnectionError, KlingError, error_for
from tests.fake_clock import FakeClock
from tests.stand_ins.kling import ACCESS_KEY, SECRET_KEY, FakeKling
from tests.test_kling_client import client_for, reply

# Admin details a Slack user must not see: setting names, URLs, hosts, Kling or HTTP codes.
ADMIN_DETAIL = re.compile(r"KLING_|http|://|\d|127\.0\.0\.1|kling\.test", re.IGNORECASE)


def error_classes() -> Iterator[type[KlingError]]:
    pending: list[type[KlingError]] = [KlingError]
    while pending:
        cls = pending.pop()
        yield cls
        pending.extend(cls.__subclasses__())


@pytest.mark.parametrize("cls", list(error_classes()), ids=lambda c: c.__name__)
def test_every_error_class_has_its_own_public_message_free_of_admin_details(cls: type[KlingError]) -> None:
    """Each class in the tree defines a public_message with no setting name, URL or code in it."""
    assert "public_message" in vars(cls)
    text = cls.public_message
    assert text.endswith(".") and len(text) > 20
    assert not ADMIN_DETAIL.search(text), text


def test_unreachable_kling_keeps_details_for_admins_only() -> None:
    """A connection error's describe() and advice name the host and setting; its public_message names neither."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(KlingConnectionError) as info:
        client_for(handler, FakeClock()).fetch_packs()
    assert "https://kling.test" in info.value.describe() and "KLING_API_BASE" in info.value.advice
    assert info.value.public_message.startswith("Kling could not be reached just now.")
    assert not ADMIN_DETAIL.search(info.value.public_message)


@pytest.mark.parametrize("code", [1002, 1101, 1200, 1303, 5001, 9999])
def test_public_message_never_carries_kling_s_own_text(code: int) -> None:
    """Whatever Kling says in its message stays out of the user-facing sentence."""
    error = error_for(400, code, "secret detail from http://internal.kling", "req-1")
    assert "secret detail" not in error.public_message and not ADMIN_DETAIL.search(error.public_message)


class SkewedClock(SystemClock):
    """The real clock, except that wall time is off by `skew` (monotonic time is real)."""

    def __init__(self, skew: timedelta) -> None:
        self.skew = skew

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew


@pytest.mark.parametrize(
    ("skew", "code", "says"),
    [
        (timedelta(minutes=10), 1003, "clock is probably ahead of Kling's"),
        (timedelta(minutes=-40), 1004, "clock is probably behind Kling's"),
    ],
)
def test_token_time_refusal_that_persists_says_the_clock_is_off(skew: timedelta, code: int, says: str) -> None:
    """A host clock 10 min fast (1003) or 40 min slow (1004) is reported as clock skew, not as bad keys."""
    clock = SkewedClock(skew)
    with FakeKling() as kling:
        client = KlingClient(kling.url, JwtCredentials(ACCESS_KEY, SECRET_KEY, clock), clock=clock)
        try:
            with pytest.raises(ClockSkewError) as info:
                client.fetch_packs()
        finally:
            client.close()
        assert [c.code for c in kling.calls] == [code, code]  # one fresh-token retry, then the diagnosis
    error = info.value
    assert isinstance(error, AuthenticationError) and error.code == code
    assert says in str(error) and "sync it (NTP)" in str(error)
    assert "NTP" in error.advice and "KLING_ACCESS_KEY" not in error.advice
    assert SECRET_KEY not in error.describe() + error.advice


def test_token_time_refusal_of_an_api_key_is_not_blamed_on_the_clock() -> None:
    """With an API key (nothing signed here) a persisting 1003 stays a plain authentication error."""
    handler = lambda r: reply(401, {"code": 1003, "message": "not yet valid", "request_id": "x"})  # noqa: E731
    with pytest.raises(AuthenticationError) as info:
        client_for(handler, FakeClock(), api_key=True).fetch_packs()
    assert not isinstance(info.value, ClockSkewError)


def test_short_secret_signs_without_a_warning() -> None:
    """A secret under 32 bytes (Kling's choice) makes no InsecureKeyLengthWarning or any other warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        token = JwtCredentials("ak-short", "short", FakeClock()).bearer()
    assert [str(w.message) for w in caught] == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # verifying with the short key warns too; not the bot's code
        claims = jwt.decode(token, "short", algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims["iss"] == "ak-short"


def test_error_tree_docstring_lists_every_class() -> None:
    """The module's tree diagram stays complete as classes are added."""
    for cls in error_classes():
        assert cls.__name__ in (errors.__doc__ or "")
