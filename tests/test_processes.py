"""`kling-bot worker` and `kling-bot serve` as real processes: they start, poll Kling at once
through the scheduler, answer health checks, stop cleanly on Ctrl-C and SIGTERM, refuse to
start in one line when a token or the port is wrong, and keep secrets out of DEBUG logs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import bot_env
from tests.slack_requests import signed_headers, slash_command_body
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.stand_ins.socket_mode import APP_TOKEN, FakeSocketMode

ROOT = Path(__file__).resolve().parent.parent


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "SLACK_", "DIGEST_", "ALERT_"))}
    clean.update(env, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args], env=clean, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out.decode(errors="replace")


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Exit code and output of a process expected to stop by itself."""
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out.decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def complaints(output: str) -> list[str]:
    """The lines the bot itself wrote to say why it stopped."""
    return [line for line in output.splitlines() if line.startswith("kling-bot:")]


@pytest.fixture
def socket_mode() -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        yield fake


def socket_env(kling: FakeKling, slack: FakeSocketMode, tmp_path: Path, **extra: str) -> dict[str, str]:
    settings = {"DATABASE_URL": f"sqlite:///{tmp_path / 'sm.db'}", "SLACK_APP_TOKEN": APP_TOKEN, **extra}
    env = bot_env(kling, slack, **settings)
    del env["SLACK_SIGNING_SECRET"]
    return env


def wait_for_health(proc: subprocess.Popen[bytes], port: int) -> httpx.Response:
    """The first answer from /healthz; the scheduler may poll Kling before HTTP is up."""
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=5) as client:
        while True:
            try:
                return client.get(f"http://127.0.0.1:{port}/healthz")
            except httpx.TransportError:
                assert proc.poll() is None, "serve exited before answering"
                assert time.monotonic() < deadline, "serve did not answer /healthz within 30 s"
                time.sleep(0.05)


def test_worker_polls_at_start_and_stops_cleanly(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """`kling-bot worker` checks Kling as soon as it starts, records the baseline, and exits 0 on Ctrl-C."""
    env = bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}", ALERT_CHANNEL="C0ALERTS")
    proc = spawn(["worker"], env, tmp_path)
    try:
        kling.wait_for_calls(1, timeout=30)
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert "baseline" in output and "Traceback" not in output


def test_serve_answers_health_checks_and_runs_the_scheduler(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """`kling-bot serve` serves /healthz on $PORT and polls Kling through its scheduler."""
    port = free_port()
    env = bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}", PORT=str(port))
    proc = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        kling.wait_for_calls(1, timeout=30)
        assert wait_for_health(proc, port).status_code == 200
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert "Scheduler: check every 30 min" in output
    assert "will be unused" not in output  # Bolt's warning when given both a client and a token


def test_worker_stops_cleanly_on_sigterm(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """SIGTERM (docker stop, Heroku) stops `worker` as Ctrl-C does: exit 0 and one line saying so."""
    env = bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}")
    proc = spawn(["worker"], env, tmp_path)
    try:
        kling.wait_for_calls(1, timeout=30)
    finally:
        code, output = stop(proc, signal.SIGTERM)
    assert code == 0, output
    assert "kling-bot worker stopped (SIGTERM)" in output and "Traceback" not in output


def test_serve_on_a_taken_port_says_so_in_one_line(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """A port already in use stops `serve` with exit 1 and one line naming the port and PORT, before any polling."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}", PORT=str(port))
        code, output = finish(spawn(["serve", "--host", "127.0.0.1"], env, tmp_path))
    assert code == 1, output
    assert complaints(output) == [f"kling-bot: port {port} is already in use: stop the other process or set PORT"], (
        output
    )
    assert "Traceback" not in output
    assert kling.calls == []


def test_serve_with_a_wrong_app_token_says_so_in_one_line(
    kling: FakeKling, socket_mode: FakeSocketMode, tmp_path: Path
) -> None:
    """A SLACK_APP_TOKEN Slack rejects stops `serve` with exit 2 and one line on where to get one."""
    env = socket_env(kling, socket_mode, tmp_path, SLACK_APP_TOKEN="xapp-1-A0TEST-1-revoked")
    code, output = finish(spawn(["serve"], env, tmp_path))
    assert code == 2, output
    [line] = complaints(output)
    assert "SLACK_APP_TOKEN" in line and "invalid_auth" in line and "App-Level Tokens" in line
    assert "Traceback" not in output and "revoked" not in output
    assert socket_mode.opened == 0


def test_serve_when_slack_fails_the_app_token_check_says_so(
    kling: FakeKling, socket_mode: FakeSocketMode, tmp_path: Path
) -> None:
    """When Slack fails `apps.connections.open` (its side, not the token), `serve` exits 1 with one line."""
    socket_mode.fail("apps.connections.open", status=500)
    code, output = finish(spawn(["serve"], socket_env(kling, socket_mode, tmp_path), tmp_path))
    assert code == 1, output
    [line] = complaints(output)
    assert "SLACK_APP_TOKEN" in line and "internal_error" in line
    assert "Traceback" not in output


def test_serve_in_socket_mode_stops_on_sigterm_and_logs_no_ticket(
    kling: FakeKling, socket_mode: FakeSocketMode, tmp_path: Path
) -> None:
    """Over Socket Mode at DEBUG, `serve` keeps the ticket and app token out of its log and stops on SIGTERM."""
    proc = spawn(["serve", "--web-only"], socket_env(kling, socket_mode, tmp_path, LOG_LEVEL="DEBUG"), tmp_path)
    try:
        socket_mode.wait_for_connections(1, timeout=30)
    finally:
        code, output = stop(proc, signal.SIGTERM)
    assert code == 0, output
    assert "kling-bot serve stopped (SIGTERM)" in output and "Traceback" not in output
    assert "ticket=" in output  # slack_sdk logged the URL at DEBUG...
    assert re.search(r"ticket=(?!\(redacted\))", output) is None  # ...without the ticket
    assert APP_TOKEN not in output and BOT_TOKEN not in output
    assert "will be unused" not in output


def test_debug_log_keeps_response_urls_and_secrets_out(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """At LOG_LEVEL=DEBUG a signed command is answered and the log holds no response URL, token or secret."""
    port = free_port()
    env = bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'd.db'}", PORT=str(port), LOG_LEVEL="DEBUG")
    proc = spawn(["serve", "--host", "127.0.0.1", "--web-only"], env, tmp_path)
    try:
        wait_for_health(proc, port)
        url = slack.response_url("secret-path")
        body = slash_command_body("", response_url=url)
        headers = signed_headers(SIGNING_SECRET, body)
        assert httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers).status_code == 200
        slack.wait_for_responses("secret-path")
        time.sleep(0.5)  # the log lines after the post
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert "(redacted)" in output  # the values were there to hide
    for secret in (url, quote(url, safe=""), "secret-path", BOT_TOKEN, SIGNING_SECRET):
        assert secret not in output
