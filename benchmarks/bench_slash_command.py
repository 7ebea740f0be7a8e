"""Benchmark `/kling-balance` end to end, and the balance views on a large account.

Prints (never asserts; timings are noisy):

1. Ack latency (p50/p99/max) of 100 concurrent signed `/kling-balance` requests sent over
   real HTTP to `kling-bot serve` running as a subprocess, while the stand-in Kling takes
   2 s to answer; and how long until all 100 replies reached their response URLs.
2. Kling calls made for that burst (expected 1) and 429s Kling answered (expected 0).
3. Idle RSS of the server after start-up and its peak RSS (VmHWM) after the burst.
4. Median time to render the Slack balance message and the terminal table for 1,000 packs.

Only 127.0.0.1 is used: Kling and Slack are the stand-ins from `tests/stand_ins`.

Run from anywhere:  python3 benchmarks/bench_slash_command.py
or from the repo:   python3 -m benchmarks.bench_slash_command
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from bot.kling.cache import Snapshot  # noqa: E402
from bot.kling.parse import parse_pack  # noqa: E402
from bot.views.balance import balance_message  # noqa: E402
from bot.views.terminal import balance_table  # noqa: E402
from tests.conftest import bot_env as conftest_bot_env  # noqa: E402
from tests.slack_requests import signed_headers, slash_command_body  # noqa: E402
from tests.stand_ins.kling import FakeKling, make_pack  # noqa: E402
from tests.stand_ins.slack import SIGNING_SECRET, FakeSlack  # noqa: E402

CONCURRENCY = 100
KLING_DELAY_S = 2.0
RENDER_PACKS = 1000
RENDER_RUNS = 20
STARTUP_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 30.0
# Slack shows the user `operation_timeout` when the ack takes longer than this.
SLACK_ACK_DEADLINE_S = 3.0
# Client-side limit per request; well past Slack's deadline, short enough to keep the run quick.
REQUEST_TIMEOUT_S = 10.0
# The packs the stand-in Kling reports during the burst: a small, ordinary account.
BURST_PACK_NAME = "Video Generation - 10,000 entries"


# -- stand-ins and the server under test -------------------------------------------------------


class TimedSlack(FakeSlack):
    """The Slack stand-in, also noting when each response-URL payload arrived.

    Its listen backlog is raised from socketserver's default of 5: with 100 replies posted at
    once, the kernel would otherwise reset some connections, and the bot's retry (after a
    back-off of about a second) would be timed instead of the bot. Real Slack does not do that."""

    def __init__(self, *, listen_backlog: int = 1024) -> None:
        super().__init__()
        self._server.socket.listen(listen_backlog)  # listen() again just resizes the queue
        self.arrived: dict[str, float] = {}

    def _respond(self, key: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        answer = super()._respond(key, args)
        # The answer, not the "Asking Kling…" interim a slow Kling gets first.
        if "Asking Kling" not in str(args.get("text", "")):
            self.arrived.setdefault(key, time.perf_counter())
        return answer


# The settings the bot needs against the stand-ins: the same as the tests use.
bot_env = conftest_bot_env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status_mb(pid: int, field: str) -> float | None:
    """A memory figure (VmRSS, VmHWM, ...) of a process from /proc, in MB; None if unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    startup_s: float
    log: list[str] | None = None  # the server's output, once it has stopped


@contextmanager
def serve_subprocess(kling: FakeKling, slack: FakeSlack, *extra: str) -> Iterator[Server]:
    """`python -m bot serve` (= `kling-bot serve`) on a free loopback port, stopped afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "SLACK_"))}
    env.update(bot_env(kling, slack, PORT=str(port), LOG_LEVEL="INFO"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="kling-bench-") as tmp:
        log_path = Path(tmp) / "serve.log"
        with open(log_path, "wb") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", *extra],
                cwd=tmp,  # no stray .env from the working directory
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            server: Server | None = None
            try:
                wait_healthy(proc, url, log_path)
                server = Server(proc, url, time.perf_counter() - started)
                yield server
            finally:
                stop(proc)
                if server is not None:
                    server.log = log_path.read_text(errors="replace").splitlines()


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"kling-bot serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"kling-bot serve did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C first (the CLI closes its services on KeyboardInterrupt), then harder."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the burst ----------------------------------------------------------------------------------


@dataclass
class Burst:
    started: float  # perf_counter when the barrier released the senders
    send_offsets_s: list[float]  # when each request left, relative to `started`
    ack_s: list[float]  # send -> HTTP response, per request
    statuses: list[int]
    errors: list[str | None]  # the client-side exception, for requests without an HTTP answer
    last_reply_s: float | None  # `started` -> last reply at its response URL
    first_reply_s: float | None
    replies: int
    balance_replies: int  # replies that actually show the pack (not an error message)
    kling_calls: int
    kling_429s: int


def send_burst(
    server_url: str, kling: FakeKling, slack: TimedSlack, tag: str, *, keep_alive: bool, count: int = CONCURRENCY
) -> Burst:
    """`count` signed `/kling-balance` requests, each on its own connection and thread, released
    together by a barrier; then wait until every reply has reached its response URL.

    Each connection is closed as soon as its ack arrives, like independent deliveries from
    Slack; with `keep_alive` they all stay open until the whole burst is done instead."""
    calls_before = len(kling.calls)
    limited_before = kling.rate_limited
    keys = [f"{tag}-{i}" for i in range(count)]
    # Bodies, signatures and clients are made before the barrier so only the request is timed.
    requests = []
    for key in keys:
        body = slash_command_body("", response_url=slack.response_url(key))
        requests.append((body, signed_headers(SIGNING_SECRET, body)))
    clients = [httpx.Client(timeout=REQUEST_TIMEOUT_S) for _ in range(count)]
    barrier = threading.Barrier(count + 1)
    sent = [0.0] * count
    done = [0.0] * count
    statuses = [0] * count
    errors: list[str | None] = [None] * count

    def one(i: int) -> None:
        body, headers = requests[i]
        barrier.wait()
        sent[i] = time.perf_counter()
        try:
            statuses[i] = clients[i].post(f"{server_url}/slack/events", content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            statuses[i] = -1
            errors[i] = type(exc).__name__
        done[i] = time.perf_counter()
        if not keep_alive:
            clients[i].close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    try:
        for t in threads:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        for t in threads:
            t.join(timeout=60)
        # Only acked commands are waited for: one never acked will not be answered in time either.
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        for key, status in zip(keys, statuses, strict=True):
            if status == 200:
                with suppress(AssertionError):  # counted as missing below
                    slack.wait_for_answer(key, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for c in clients:
            c.close()
    arrivals = [slack.arrived[k] for k in keys if k in slack.arrived]
    replies = len(arrivals)
    balance_replies = sum(1 for k in keys if BURST_PACK_NAME in json.dumps(slack.responses.get(k, [])))
    return Burst(
        started=started,
        send_offsets_s=[s - started for s in sent],
        ack_s=[d - s for s, d in zip(sent, done, strict=True)],
        statuses=statuses,
        errors=errors,
        last_reply_s=max(arrivals) - started if arrivals else None,
        first_reply_s=min(arrivals) - started if arrivals else None,
        replies=replies,
        balance_replies=balance_replies,
        kling_calls=len(kling.calls) - calls_before,
        kling_429s=kling.rate_limited - limited_before,
    )


def warm_up(server_url: str, slack: FakeSlack) -> None:
    """One `/kling-balance help`: exercises the request path without asking Kling (so the
    burst still finds the cache cold)."""
    body = slash_command_body("help", response_url=slack.response_url("warm-up"))
    with httpx.Client(timeout=30) as client:
        client.post(f"{server_url}/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body))
    slack.wait_for_responses("warm-up", 1, timeout=REPLY_TIMEOUT_S)


# -- rendering ----------------------------------------------------------------------------------


def many_packs(n: int, now: datetime) -> Snapshot:
    """`n` packs across several families and every status, parsed as the client would."""
    rng = random.Random(1234)
    families = ["Video Generation", "Image Generation", "Virtual Try-On", "Lip Sync", "Sound Effects", "Kolors"]
    statuses = ["online"] * 6 + ["toBeOnline", "expired", "runOut"]
    packs = []
    for i in range(n):
        status = rng.choice(statuses)
        total = rng.choice([500, 1000, 5000, 10000, 50000])
        remaining = 0 if status == "runOut" else round(rng.uniform(0, total), 1)
        expires = rng.uniform(-60, -1) if status == "expired" else rng.uniform(1, 365)
        raw = make_pack(
            f"{rng.choice(families)} - {total:,} entries #{i}",
            total=total,
            remaining=remaining,
            status=status,
            pack_type=rng.choice(["decreasing_total", "constant_period"]),
            purchased_days_ago=rng.uniform(-5 if status == "toBeOnline" else 1, 300),
            expires_in_days=expires,
            now=now,
        )
        packs.append(parse_pack(raw, i))
    return Snapshot(packs=tuple(packs), fetched_at=now)


def median_ms(fn: Callable[[], Any], runs: int = RENDER_RUNS) -> tuple[float, Any]:
    result = fn()  # warm-up, and the result for a sanity line
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


# -- report -------------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:,.0f} ms"


def mb(value: float | None) -> str:
    return "n/a (no /proc)" if value is None else f"{value:.1f} MB"


def describe_burst(label: str, burst: Burst) -> list[str]:
    ok = sum(1 for s in burst.statuses if s == 200)
    in_time = sum(1 for s, t in zip(burst.statuses, burst.ack_s, strict=True) if s == 200 and t <= SLACK_ACK_DEADLINE_S)
    other = Counter(str(s) if s != -1 else (e or "error") for s, e in zip(burst.statuses, burst.errors, strict=True))
    other.pop("200", None)
    acks = burst.ack_s
    return [
        f"{label}",
        f"  acks:            {ok}/{len(acks)} HTTP 200, {in_time} within Slack's {SLACK_ACK_DEADLINE_S:.0f} s"
        + (f" (failed: {', '.join(f'{n}x {k}' for k, n in other.items())})" if other else ""),
        f"  ack latency:     p50 {ms(pct(acks, 50))}  p99 {ms(pct(acks, 99))}  max {ms(max(acks))}"
        f"  (sends spread over {ms(max(burst.send_offsets_s) - min(burst.send_offsets_s))})",
        f"  replies:         {burst.replies}/{len(acks)} at their response URLs "
        f"({burst.balance_replies} showing the balance); first after {ms(burst.first_reply_s)}, "
        f"{'all' if burst.replies == len(acks) else 'the last of them'} after {ms(burst.last_reply_s)}",
        f"  Kling:           {burst.kling_calls} call(s), {burst.kling_429s} answered 429",
    ]


def log_summary(lines: Sequence[str]) -> list[str]:
    """The server's warnings and errors, alike ones (differing only in numbers) counted together."""
    counts: Counter[str] = Counter()
    for line in lines:
        match = re.search(r" (WARNING|ERROR|CRITICAL) (.*)$", line)
        if match:
            counts[re.sub(r"\d+", "N", f"{match[1]} {match[2]}")] += 1
        elif line.startswith("Traceback"):
            counts["Traceback"] += 1
    return [f"{n:4d} x {message}" for message, n in counts.most_common()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="keep every client connection open until the whole burst is answered, instead of closing "
        "each one after its ack (shows what happens when the server's connection limit is reached)",
    )
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    print(f"kling-balance-bot benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print()

    with FakeKling(packs=[make_pack(BURST_PACK_NAME)]) as kling, TimedSlack() as slack:
        kling.delay_s = KLING_DELAY_S
        # --web-only: the scheduler's first check would otherwise fill the cache before the
        # burst, and the burst would not measure a cold cache.
        with serve_subprocess(kling, slack, "--web-only") as server:
            pid = server.proc.pid
            idle_rss = proc_status_mb(pid, "VmRSS")
            idle_hwm = proc_status_mb(pid, "VmHWM")
            warm_up(server.url, slack)
            cold = send_burst(server.url, kling, slack, "cold", keep_alive=args.keep_alive)
            after_rss = proc_status_mb(pid, "VmRSS")
            peak_rss = proc_status_mb(pid, "VmHWM")
            threads = len(os.listdir(f"/proc/{pid}/task")) if os.path.isdir(f"/proc/{pid}/task") else None
            warm = send_burst(server.url, kling, slack, "warm", keep_alive=args.keep_alive)
            peak_after_warm = proc_status_mb(pid, "VmHWM")
        log = server.log or []
        exit_code = server.proc.returncode
        # The whole `serve`, scheduler included, once its first check (a Kling call) is done.
        kling.delay_s = 0
        calls_before = len(kling.calls)
        with serve_subprocess(kling, slack) as full:
            kling.wait_for_calls(calls_before + 1)
            time.sleep(0.5)  # let the check's database transaction finish
            full_rss = proc_status_mb(full.proc.pid, "VmRSS")
            full_hwm = proc_status_mb(full.proc.pid, "VmHWM")

    print(f"Server: `python -m bot serve --web-only` (pid {pid}), /healthz answered {ms(server.startup_s)} after spawn")
    print(
        f"Stand-in Kling answers after {KLING_DELAY_S:.0f} s; {CONCURRENCY} concurrent signed /kling-balance requests, "
        + (
            "connections kept open until the burst is done"
            if args.keep_alive
            else "each connection closed after its ack"
        )
    )
    print()
    for line in describe_burst("1-2. Burst with a cold cache (Kling must be asked):", cold):
        print(line)
    for line in describe_burst("     Second burst, cache warm (for comparison):", warm):
        print(line)
    print()
    print("3. Memory of the server process (Linux /proc/<pid>/status)")
    print(f"  idle after start-up:  RSS {mb(idle_rss)} (peak so far {mb(idle_hwm)})")
    print(f"  after the cold burst: RSS {mb(after_rss)}, peak (VmHWM) {mb(peak_rss)}; {threads} threads")
    print(f"  after the warm burst: peak (VmHWM) {mb(peak_after_warm)}")
    print(f"  full `serve` (scheduler, database) after its first check: RSS {mb(full_rss)}, peak {mb(full_hwm)}")
    print(f"  server exit code {exit_code}; its warnings and errors:")
    for line in log_summary(log) or ["none"]:
        print(f"    {line}")
    print()

    now = datetime.now(UTC)
    snapshot = many_packs(RENDER_PACKS, now)
    slack_ms, message = median_ms(lambda: balance_message(snapshot, now, include_inactive=True))
    table_ms, table = median_ms(lambda: balance_table(snapshot, now, include_inactive=True))
    print(f"4. Rendering {RENDER_PACKS:,} packs (median of {RENDER_RUNS} runs, include_inactive=True)")
    print(
        f"  Slack balance_message:   {slack_ms:.2f} ms "
        f"({len(message['blocks'])} blocks, {len(json.dumps(message)):,} bytes of JSON)"
    )
    print(f"  terminal balance_table:  {table_ms:.2f} ms ({len(table.splitlines()):,} lines)")
    print()
    print(f"Total benchmark time {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
