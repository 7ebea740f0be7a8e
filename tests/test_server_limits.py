"""The HTTP server's limits: oversized bodies are refused before they are read, and clients
that trickle their requests in cannot keep /healthz (or Slack) out."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bot.config import Settings
from bot.services import build_services
from bot.slack.app import build_app
from bot.slack.server import LIMITS, BackgroundHttpServer, Limits
from tests.conftest import bot_env
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import FakeSlack

FIFTY_MB = 50 << 20


@contextmanager
def start_server(kling: FakeKling, slack: FakeSlack, tmp_path: Path, limits: Limits) -> Iterator[tuple[str, int]]:
    settings = Settings.from_env(bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'l.db'}"), need_slack=True)
    services = build_services(settings, with_store=True)
    server = BackgroundHttpServer(build_app(services), limits=limits).start()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    try:
        yield host, int(port)
    finally:
        server.stop()
        services.close()


@pytest.fixture
def address(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The bot's HTTP server with the production limits."""
    with start_server(kling, slack, tmp_path, LIMITS) as host_port:
        yield host_port


def test_declared_large_body_is_refused_before_it_is_sent(address: tuple[str, int]) -> None:
    """A request declaring a 50 MB body gets 413 from its headers alone, without the body being read."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % FIFTY_MB
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"


def test_streamed_large_body_is_cut_off_early(address: tuple[str, int]) -> None:
    """A 50 MB chunked body with no Content-Length is cut off soon after the 1 MB limit, not buffered whole."""
    chunk = b"a" * 65536
    sent = 0
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < FIFTY_MB and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            answer = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""  # closed while our bytes were still in flight: the 413 went with it
    # What was sent beyond the limit sits in the two sockets' buffers (a few MB on loopback).
    assert sent < FIFTY_MB // 2, f"the server read {sent} bytes"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413")


def test_trickling_clients_do_not_keep_health_checks_out(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """With every connection slot held by clients sending a byte at a time, /healthz still answers.

    The slots are few here (12) to keep the test cheap; the request deadline is what frees them."""
    limits = Limits(connection_limit=12, request_timeout_s=1.0)
    trickling = 60
    stop = threading.Event()
    with start_server(kling, slack, tmp_path, limits) as address:
        slow = [socket.create_connection(address, timeout=5) for _ in range(trickling)]
        for sock in slow:
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nX-Slow: ")

        def trickle() -> None:
            while not stop.wait(0.3):
                for sock in list(slow):
                    try:
                        sock.send(b"a")
                    except OSError:  # closed by the server: that slot is free again
                        slow.remove(sock)

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            started = time.monotonic()
            # Without the deadline the trickling clients hold every slot for as long as they like.
            response = httpx.get(f"http://{address[0]}:{address[1]}/healthz", timeout=60)
            assert response.status_code == 200
            assert time.monotonic() - started < 60
        finally:
            stop.set()
            thread.join(timeout=5)
            for sock in slow:
                sock.close()
