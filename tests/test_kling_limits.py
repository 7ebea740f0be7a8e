"""Limits on what one Kling call may cost: a total deadline (body included) and a size cap."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from bot.clock import SystemClock
from bot.kling.auth import ApiKeyCredentials, JwtCredentials
from bot.kling.client import MAX_REPLY_BYTES, REQUEST_TIMEOUT_S, RETRY_BUDGET_S, KlingClient
from bot.kling.errors import KlingConnectionError, MalformedReplyError
from tests.fake_clock import FakeClock
from tests.stand_ins.kling import ACCESS_KEY, SECRET_KEY, FakeKling, make_pack
from tests.test_kling_client import ok_body


def mock_client(handler: httpx.MockTransport, clock: FakeClock) -> KlingClient:
    return KlingClient("https://kling.test", ApiKeyCredentials("k"), clock=clock, transport=handler, jitter=lambda: 1.0)


def trickle(payload: bytes, clock: FakeClock, per_byte_s: float) -> Iterator[bytes]:
    """The body one byte at a time, each taking `per_byte_s` of the fake clock."""
    for byte in payload:
        clock.advance(per_byte_s)
        yield bytes([byte])


def test_body_trickling_from_a_real_server_is_cut_off_at_the_deadline() -> None:
    """A Kling sending a byte a second (never tripping httpx's per-read timeout) fails in seconds, not minutes."""
    body = json.dumps(ok_body([make_pack()])).encode()  # hundreds of bytes: minutes at 1 byte/s
    with FakeKling() as kling:
        kling.answer_next(200, body, trickle_s=1.0)
        clock = SystemClock()
        client = KlingClient(
            kling.url,
            JwtCredentials(ACCESS_KEY, SECRET_KEY, clock),
            clock=clock,
            request_timeout_s=3.0,
            retry_budget_s=1.0,
        )
        started = time.monotonic()
        try:
            with pytest.raises(KlingConnectionError, match="did not answer within 3 s"):
                client.fetch_packs()
        finally:
            client.close()
    assert time.monotonic() - started < 20  # the bug: as long as the body took (61 s in the report)


def test_trickling_body_with_default_limits_ends_within_budget_plus_one_deadline() -> None:
    """With the default timeout and retry budget, a one-byte-a-second Kling costs at most budget + one deadline."""
    clock = FakeClock()
    payload = json.dumps(ok_body([make_pack()])).encode()
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=trickle(payload, clock, 1.0))

    started = clock.monotonic()
    with pytest.raises(KlingConnectionError, match=f"did not answer within {REQUEST_TIMEOUT_S:.0f} s"):
        mock_client(httpx.MockTransport(handler), clock).fetch_packs()
    assert clock.monotonic() - started <= RETRY_BUDGET_S + REQUEST_TIMEOUT_S + 2
    assert len(calls) >= 1


def test_oversized_body_is_cut_off_at_the_cap_and_not_retried() -> None:
    """A valid but over-5-MB reply stops being read at the cap and is a MalformedReplyError, asked once."""
    chunk = b" " * 65536
    pulled: list[int] = []
    requests: list[httpx.Request] = []

    def body() -> Iterator[bytes]:
        # Valid JSON padded with whitespace: before the cap it parsed fine after reading it all.
        for part in (b'{"code": 0, "data": {"resource_pack_subscribe_infos": []}', *[chunk] * 160, b"}"):
            pulled.append(len(part))
            yield part

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=body())

    with pytest.raises(MalformedReplyError, match="larger than 5 MB"):
        mock_client(httpx.MockTransport(handler), FakeClock()).fetch_packs()
    assert len(requests) == 1
    assert sum(pulled) <= MAX_REPLY_BYTES + len(chunk) + 100  # stopped at the cap, not read to the end
    # Compressed replies could inflate past the cap inside one chunk, so none are asked for.
    assert requests[0].headers["Accept-Encoding"] == "identity"


def test_declared_oversized_body_is_refused_before_reading() -> None:
    """A Content-Length over the cap is refused without reading the body."""
    pulled: list[bytes] = []

    def body() -> Iterator[bytes]:
        pulled.append(b"x")
        yield b"{}"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(50 * 1024 * 1024)}, content=body())

    with pytest.raises(MalformedReplyError, match="larger than 5 MB"):
        mock_client(httpx.MockTransport(handler), FakeClock()).fetch_packs()
    assert pulled == []


def test_json_nested_past_the_recursion_limit_is_malformed_not_a_crash() -> None:
    """A reply of a hundred thousand `[` is 'not JSON', not a RecursionError escaping the client."""
    handler = httpx.MockTransport(lambda r: httpx.Response(200, content=b"[" * 100_000))
    with pytest.raises(MalformedReplyError, match="not JSON"):
        mock_client(handler, FakeClock()).fetch_packs()


def test_headers_trickling_from_a_real_server_are_cut_off_at_the_deadline() -> None:
    """A Kling sending its response headers one line a second is given up at the deadline too."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for i in range(60):  # a minute of headers, one line a second
                    if stop.wait(1.0):
                        return
                    conn.sendall(f"X-Slow-{i}: yes\r\n".encode())
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    clock = SystemClock()
    host, port = listener.getsockname()
    client = KlingClient(
        f"http://{host}:{port}",
        ApiKeyCredentials("k"),
        clock=clock,
        request_timeout_s=3.0,
        retry_budget_s=1.0,
    )
    started = time.monotonic()
    try:
        with pytest.raises(KlingConnectionError, match="did not answer within 3 s"):
            client.fetch_packs()
    finally:
        stop.set()
        client.close()
        listener.close()
    assert time.monotonic() - started < 15  # without the watchdog: as long as the headers take (60 s)
