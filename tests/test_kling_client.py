"""The Kling costs client, with an injected transport and a fake clock: no sleeping."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import timedelta

import httpx
import jwt
import pytest

from bot.domain.packs import PackStatus, PackType
from bot.kling.auth import ApiKeyCredentials, JwtCredentials
from bot.kling.client import KlingClient
from bot.kling.errors import (
    AccountError,
    AuthenticationError,
    BadRequestError,
    KlingConnectionError,
    MalformedReplyError,
    UnavailableError,
)
from tests.fake_clock import FakeClock
from tests.stand_ins.kling import make_pack

SECRET = "unit-test-secret-key-with-enough-bytes-0123"


def ok_body(packs: list[dict]) -> dict:
    return {
        "code": 0,
        "message": "SUCCEED",
        "request_id": "r1",
        "data": {"code": 0, "msg": "SUCCEED", "resource_pack_subscribe_infos": packs},
    }


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: FakeClock,
    *,
    api_key: bool = False,
    lookback_days: int = 365,
) -> KlingClient:
    credentials = ApiKeyCredentials("api-key-123") if api_key else JwtCredentials("ak-1", SECRET, clock)
    return KlingClient(
        "https://kling.test",
        credentials,
        clock=clock,
        lookback_days=lookback_days,
        transport=httpx.MockTransport(handler),
        jitter=lambda: 1.0,
    )


def reply(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def test_request_asks_for_the_lookback_window_in_milliseconds() -> None:
    """start_time is now minus KLING_LOOKBACK_DAYS and end_time is now, both snake_case and in ms."""
    clock = FakeClock()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(200, ok_body([]))

    client_for(handler, clock, lookback_days=30).fetch_packs()
    [request] = seen
    assert request.url.path == "/account/costs"
    now_ms = int(clock.now().timestamp() * 1000)
    assert int(request.url.params["end_time"]) == now_ms
    assert int(request.url.params["start_time"]) == now_ms - 30 * 86400 * 1000


def test_jwt_carries_issuer_expiry_and_not_before_and_is_reused() -> None:
    """The bearer is an HS256 JWT with iss=access key, exp=now+1800, nbf=now-5, reused on the next call."""
    clock = FakeClock()
    tokens: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["Authorization"].removeprefix("Bearer "))
        return reply(200, ok_body([]))

    client = client_for(handler, clock)
    client.fetch_packs()
    clock.advance(60)
    client.fetch_packs()
    assert tokens[0] == tokens[1]
    header = jwt.get_unverified_header(tokens[0])
    assert header["alg"] == "HS256" and header["typ"] == "JWT"
    claims = jwt.decode(tokens[0], SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    now = int((clock.now() - timedelta(seconds=60)).timestamp())
    assert claims == {"iss": "ak-1", "exp": now + 1800, "nbf": now - 5}


def test_jwt_is_renewed_before_it_expires() -> None:
    """A token within five minutes of expiry is replaced by a fresh one."""
    clock = FakeClock()
    tokens: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["Authorization"])
        return reply(200, ok_body([]))

    client = client_for(handler, clock)
    client.fetch_packs()
    clock.advance(1600)
    client.fetch_packs()
    assert tokens[0] != tokens[1]


def test_api_key_is_sent_as_the_bearer_token() -> None:
    """With KLING_API_KEY the header is `Bearer <api key>`, no JWT."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return reply(200, ok_body([]))

    client_for(handler, FakeClock(), api_key=True).fetch_packs()
    assert seen == ["Bearer api-key-123"]


def test_packs_are_parsed_into_typed_objects() -> None:
    """Status and type become enums, quantities floats, times aware UTC datetimes."""
    pack = make_pack("Video Generation - 10,000 entries", total=200, remaining=118)
    packs = client_for(lambda r: reply(200, ok_body([pack])), FakeClock()).fetch_packs()
    [parsed] = packs
    assert parsed.status is PackStatus.ONLINE and parsed.pack_type is PackType.DECREASING_TOTAL
    assert parsed.total == 200.0 and parsed.remaining == 118.0
    assert parsed.invalid_time is not None and parsed.invalid_time.utcoffset() == timedelta(0)
    assert int(parsed.invalid_time.timestamp() * 1000) == pack["invalid_time"]
    assert parsed.family == "Video Generation"


def test_unknown_status_and_type_are_kept_not_fatal() -> None:
    """A status or type value the bot does not know is kept as text instead of failing."""
    pack = make_pack(status="suspended", pack_type="mystery_type")
    [parsed] = client_for(lambda r: reply(200, ok_body([pack])), FakeClock()).fetch_packs()
    assert parsed.status == "suspended" and parsed.pack_type == "mystery_type"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("remaining_quantity"), "remaining_quantity"),
        (lambda p: p.update(total_quantity="lots"), "total_quantity"),
        (lambda p: p.update(invalid_time="tomorrow"), "invalid_time"),
        (lambda p: p.update(status=7), "status"),
    ],
)
def test_malformed_pack_names_the_field(mutate: Callable[[dict], object], field: str) -> None:
    """A reply with a missing or wrongly typed pack field raises an error naming that field."""
    pack = make_pack()
    mutate(pack)
    with pytest.raises(MalformedReplyError) as info:
        client_for(lambda r: reply(200, ok_body([pack])), FakeClock()).fetch_packs()
    assert field in str(info.value) and "[0]" in str(info.value)


def test_reply_that_is_not_json_is_malformed() -> None:
    """A 200 with an HTML body is a malformed reply, not a crash."""
    handler = lambda r: httpx.Response(200, content=b"<html>gateway</html>")  # noqa: E731
    with pytest.raises(MalformedReplyError, match="not JSON"):
        client_for(handler, FakeClock()).fetch_packs()


def test_inner_data_code_is_checked() -> None:
    """An outer code 0 with a non-zero data.code is an error, not an empty account."""
    body = {"code": 0, "message": "ok", "request_id": "r", "data": {"code": 1103, "msg": "no permission"}}
    with pytest.raises(AccountError, match="no permission"):
        client_for(lambda r: reply(200, body), FakeClock()).fetch_packs()


def test_rejected_key_is_an_authentication_error_without_retry() -> None:
    """401/1002 raises AuthenticationError after one request, with advice naming the settings."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return reply(401, {"code": 1002, "message": "Authorization is invalid", "request_id": "x"})

    with pytest.raises(AuthenticationError) as info:
        client_for(handler, FakeClock()).fetch_packs()
    assert len(calls) == 1
    assert "KLING_ACCESS_KEY" in info.value.advice


def test_expired_token_is_minted_again_and_retried_once() -> None:
    """An answer of 1004 drops the cached token and tries once more with a new one."""
    answers = [reply(401, {"code": 1004, "message": "expired", "request_id": "x"}), reply(200, ok_body([]))]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answers.pop(0)

    assert client_for(handler, FakeClock()).fetch_packs() == []
    assert len(calls) == 2


def test_token_time_error_twice_gives_up() -> None:
    """If the fresh token is refused too, the authentication error reaches the caller."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return reply(401, {"code": 1003, "message": "not yet valid", "request_id": "x"})

    with pytest.raises(AuthenticationError):
        client_for(handler, FakeClock()).fetch_packs()
    assert len(calls) == 2


def test_server_errors_are_retried_with_backoff_then_succeed() -> None:
    """Two 5000s then success: three requests, growing waits, the packs returned."""
    clock = FakeClock()
    answers = [reply(500, {"code": 5000, "message": "internal", "request_id": "x"})] * 2 + [
        reply(200, ok_body([make_pack()]))
    ]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.monotonic())
        return answers.pop(0)

    packs = client_for(handler, clock).fetch_packs()
    assert len(packs) == 1
    assert len(calls) == 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= 1.0 for gap in gaps)  # never faster than Kling's one call a second


def test_qps_1303_waits_at_least_a_second() -> None:
    """Kling's 1303 (QPS over the limit) is retried no sooner than one second later."""
    clock = FakeClock()
    answers = [reply(429, {"code": 1303, "message": "qps", "request_id": "x"}), reply(200, ok_body([]))]
    client = client_for(lambda r: answers.pop(0), clock)
    start = clock.monotonic()
    client.fetch_packs()
    assert clock.monotonic() - start >= 1.0


def test_persistent_outage_gives_up_within_about_ten_seconds_and_says_so() -> None:
    """Kling answering 503 every time: the client stops after about 10 s and reports the attempts."""
    clock = FakeClock()
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return reply(503, {"code": 5001, "message": "maintenance", "request_id": "x"})

    start = clock.monotonic()
    with pytest.raises(UnavailableError) as info:
        client_for(handler, clock).fetch_packs()
    elapsed = clock.monotonic() - start
    assert 8 <= elapsed <= 12
    assert len(calls) >= 3
    assert info.value.attempts == len(calls)
    assert "gave up after" in info.value.describe()


def test_connection_refused_is_a_connection_error_after_retries() -> None:
    """No answer at all is retried, then reported as a connection error."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(KlingConnectionError, match="could not reach Kling"):
        client_for(handler, FakeClock()).fetch_packs()
    assert len(calls) > 1


def test_bad_parameters_are_not_retried() -> None:
    """1200 (invalid parameters) is a BadRequestError after one request."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return reply(400, {"code": 1200, "message": "invalid params", "request_id": "x"})

    with pytest.raises(BadRequestError):
        client_for(handler, FakeClock()).fetch_packs()
    assert len(calls) == 1


def test_requests_are_spaced_at_least_one_second_apart() -> None:
    """Back-to-back fetches wait so the process never calls Kling more than once a second."""
    clock = FakeClock()
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(clock.monotonic())
        return reply(200, ok_body([]))

    client = client_for(handler, clock)
    for _ in range(3):
        client.fetch_packs()
    assert [b - a for a, b in itertools.pairwise(times)] == [pytest.approx(1.0)] * 2


def test_errors_never_contain_the_token_or_secret() -> None:
    """Whatever goes wrong, the error text shows neither the JWT nor the secret key."""
    clock = FakeClock()
    tokens = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["Authorization"].removeprefix("Bearer "))
        return reply(401, {"code": 1000, "message": "Authentication failed", "request_id": "x"})

    with pytest.raises(AuthenticationError) as info:
        client_for(handler, clock).fetch_packs()
    text = info.value.describe() + info.value.advice + repr(info.value)
    assert tokens[0] not in text and SECRET not in text
