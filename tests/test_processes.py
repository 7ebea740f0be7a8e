"""`kling-bot worker` and `kling-bot serve` as real processes: they start, poll Kling at once
through the scheduler, answer health checks, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import bot_env
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import FakeSlack

ROOT = Path(__file__).resolve().parent.parent


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "SLACK_", "DIGEST_", "ALERT_"))}
    clean.update(env, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args], env=clean, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out.decode(errors="replace")


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}", PORT=str(port))
    proc = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        kling.wait_for_calls(1, timeout=30)
        assert wait_for_health(proc, port).status_code == 200
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert "Scheduler: check every 30 min" in output
