"""Benchmark several `kling-bot` replicas on one database, as real processes.

Prints (never asserts; timings are noisy):

1. Posts per second through the outbox: N owed DMs (distinct users) delivered by one
   `python -m bot check` and by three started together, against a Slack stand-in that takes
   `--post-delay` to answer each post; wall time, posts/s, whether every DM was posted exactly
   once, and the Kling calls made.
2. Takeover time: a `check` is SIGKILLed while Slack holds its first post (kept, not yet
   answered), with its claimed rows owed; a `check` then runs every ~2 s, like a cron job,
   until everything is sent: seconds from the kill until the dead process's rows were all
   delivered, and whether the held message was found in the channel's history (not posted
   again).
3. Kling calls with three `serve --web-only` replicas under a burst of signed `/kling-balance`
   commands sent round-robin over HTTP: calls made, 429s, calls per KLING_CACHE_TTL window and
   per hour, next to the bound of one call per account per TTL.

The database is a fresh PostgreSQL database (random name, dropped at the end) when
TEST_POSTGRES_URL names a server, else a temporary SQLite file. Only 127.0.0.1 is used:
Kling and Slack are the stand-ins from `tests/stand_ins`.

Run from anywhere:  python3 benchmarks/bench_replicas.py [--quick]
or from the repo:   python3 -m benchmarks.bench_replicas
"""

from __future__ import annotations

import argparse
import math
import os
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.bench_check import postgres_urls, sqlite_urls  # noqa: E402
from bot.store import schema  # noqa: E402
from bot.store.db import Store, normalize_url  # noqa: E402
from tests.conftest import bot_env  # noqa: E402
from tests.slack_requests import signed_headers, slash_command_body  # noqa: E402
from tests.stand_ins.kling import FakeKling, make_pack  # noqa: E402
from tests.stand_ins.slack import SIGNING_SECRET, FakeSlack  # noqa: E402

PACK_NAME = "Video Generation - 10,000 entries"
# Kling refuses a second request within this long (429, code 1302), like the real one.
KLING_QPS_INTERVAL_S = 1.0
STARTUP_TIMEOUT_S = 30.0
# A run that has not finished by then is reported as such, not waited on for ever.
RUN_TIMEOUT_S = 300.0
DEFAULT_TTL_S = 300  # KLING_CACHE_TTL's default
WORKER_DELIVERY_EVERY_S = 60  # the worker/serve scheduler's delivery job
# Figure 2 stops the cron after this many checks in a row exited with an error.
FAILING_CHECKS_STOP = 5
RECOVERED_LINE = "was posted by an earlier attempt"
# Settings of the machine running the benchmark that must not leak into the bot's processes.
ENV_PREFIXES = ("KLING_", "SLACK_", "DIGEST_", "ALERT_", "OUTBOX_", "POLL_", "FORECAST_", "EXPIRY_")
ENV_NAMES = ("DATABASE_URL", "PORT", "METRICS_PORT", "LOG_LEVEL")


# -- databases ----------------------------------------------------------------------------------


@contextmanager
def databases(force_sqlite: bool) -> Iterator[tuple[str, Callable[[], str]]]:
    """(description, fresh): `fresh()` hands out a new, empty database URL; all are removed afterwards."""
    server = "" if force_sqlite else os.environ.get("TEST_POSTGRES_URL", "").strip()
    if not server:
        why = "--sqlite" if force_sqlite else "TEST_POSTGRES_URL is unset"
        with sqlite_urls() as fresh:
            yield (
                f"SQLite, a temporary file per run ({why}; a real multi-replica deployment would use PostgreSQL)",
                fresh,
            )
        return
    admin_url = normalize_url(server)
    host = make_url(admin_url).set(database=None).render_as_string(hide_password=True)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
    finally:
        admin.dispose()
    with postgres_urls(server) as fresh:
        yield f"PostgreSQL {version} on {host}, a new database per run (dropped at the end)", fresh


def owe_dms(url: str, users: Sequence[str]) -> None:
    """One owed DM per user, as the bot's check would have queued them."""
    store = Store(url)
    try:
        store.migrate()
        now = datetime.now(UTC)
        with store.transaction() as tx:
            for user in users:
                tx.enqueue(
                    f"dm:{user}", "threshold", user, {"text": f"threshold crossed for {user}"}, now, to_user=True
                )
    finally:
        store.close()


def outbox_counts(store: Store) -> dict[str, int]:
    with store.reading() as tx:
        return tx.outbox_counts()


# -- processes ----------------------------------------------------------------------------------


class Processes:
    """Every `python -m bot` this benchmark starts: output to a file each, all stopped on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}
        self._numbers = iter(range(1_000_000))

    def spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES) and k not in ENV_NAMES}
        clean.update(env)
        clean["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        clean["PYTHONUNBUFFERED"] = "1"
        log_path = self.log_dir / f"{next(self._numbers):04d}-{args[0]}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", *args],
                cwd=self.log_dir,  # no stray .env from the working directory
                env=clean,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C is ours: the cleanup below stops them
            )
        self.running.append(proc)
        self._logs[proc.pid] = log_path
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return self._logs[proc.pid].read_text(errors="replace")

    def wait(self, proc: subprocess.Popen[bytes], timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Ctrl-C first (the CLI closes its services on KeyboardInterrupt), then harder."""
        if proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    proc.kill()
        for proc in self.running:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


class QuietSlack(FakeSlack):
    """The Slack stand-in, without a traceback on stderr when it answers a process that is dead
    (the held post of figure 2): socketserver prints one for every broken pipe."""

    def __init__(self) -> None:
        super().__init__()
        default = self._server.handle_error

        def handle_error(request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):
                default(request, client_address)

        self._server.handle_error = handle_error  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def problems_in(output: str) -> Counter[str]:
    """Warnings, errors and tracebacks a process logged, alike ones (differing in numbers) together."""
    counts: Counter[str] = Counter()
    for line in output.splitlines():
        match = re.search(r" (WARNING|ERROR|CRITICAL) (.*)$", line)
        if match:
            counts[re.sub(r"\d+", "N", f"{match[1]} {match[2]}")[:160]] += 1
        elif line.startswith("Traceback"):
            counts["Traceback"] += 1
        elif line.startswith("kling-bot:"):
            counts[re.sub(r"\d+", "N", line)[:160]] += 1
    return counts


def print_problems(counts: Counter[str], indent: str = "    ") -> None:
    if not counts:
        print(f"{indent}warnings/errors logged: none")
        return
    print(f"{indent}warnings/errors logged:")
    for message, n in counts.most_common(8):
        print(f"{indent}  {n:4d} x {message}")


def sent_per_process(output: str) -> int:
    """The DMs a `check` says it sent ("Outbox: N sent, ..."), recovered ones included."""
    return sum(int(n) for n in re.findall(r"Outbox: (\d+) sent", output))


def exactly_once(slack: FakeSlack, users: Sequence[str]) -> tuple[int, int, int]:
    """(posted once, posted more than once, never posted), counted from the DM channels' messages."""
    counts = Counter(len(slack.messages.get(f"D{user}", [])) for user in users)
    return counts[1], sum(n for posts, n in counts.items() if posts > 1), counts[0]


# -- 1. posts per second through the outbox -----------------------------------------------------


@dataclass
class OutboxRun:
    processes: int
    dms: int
    wall_s: float | None  # spawn -> the last DM kept by Slack (None: not all delivered)
    first_post_s: float | None
    posts: int  # chat.postMessage calls
    once: int
    duplicated: int
    missing: int
    waves: int  # rounds of `check`s started (a pass stops taking rows after half a claim)
    per_process: list[int]
    # Per process, in start order: when it exited (from the spawn of the first round) and how
    # many DMs were owed then.
    exits: list[tuple[float, int]]
    exit_codes: list[int]
    kling_calls: int
    kling_429s: int
    owed_after: int
    problems: Counter[str] = field(default_factory=Counter)


def outbox_run(procs: Processes, url: str, *, processes: int, dms: int, post_delay_s: float, claim_s: int) -> OutboxRun:
    users = [f"U{i:05d}" for i in range(dms)]
    owe_dms(url, users)
    store = Store(url)
    post_times: list[float] = []
    try:
        with (
            FakeKling(packs=[make_pack(PACK_NAME)], qps_interval_s=KLING_QPS_INTERVAL_S) as kling,
            QuietSlack() as slack,
        ):
            slack.post_delay_s = post_delay_s
            slack.post_hook = lambda _args: post_times.append(time.perf_counter())
            env = bot_env(
                kling, slack, DATABASE_URL=url, KLING_CACHE_TTL=str(DEFAULT_TTL_S), OUTBOX_CLAIM_SECONDS=str(claim_s)
            )
            started = time.perf_counter()
            waves, per_process, exit_codes, problems = 0, [], [], Counter()
            exits: list[tuple[float, int]] = []
            while time.perf_counter() - started < RUN_TIMEOUT_S:
                # Like a cron tick starting `processes` checks together; another tick while rows
                # are still owed (a pass stops taking rows after half a claim).
                wave = [procs.spawn(["check"], env) for _ in range(processes)]
                waves += 1
                exited: dict[int, tuple[float, int]] = {}
                while len(exited) < len(wave):
                    for i, proc in enumerate(wave):
                        if i not in exited and proc.poll() is not None:
                            exited[i] = (time.perf_counter() - started, outbox_counts(store)["owed"])
                    if time.perf_counter() - started > RUN_TIMEOUT_S:
                        break
                    time.sleep(0.05)
                for i, proc in enumerate(wave):
                    exit_codes.append(procs.wait(proc, 1.0))
                    exits.append(exited.get(i, (time.perf_counter() - started, -1)))
                    output = procs.output(proc)
                    per_process.append(sent_per_process(output))
                    problems.update(problems_in(output))
                if outbox_counts(store)["owed"] == 0:
                    break
            owed_after = outbox_counts(store)["owed"]
            once, duplicated, missing = exactly_once(slack, users)
            posts = len(slack.calls_to("chat.postMessage"))
            times = sorted(post_times)
            return OutboxRun(
                processes=processes,
                dms=dms,
                wall_s=times[-1] - started if times and owed_after == 0 else None,
                first_post_s=times[0] - started if times else None,
                posts=posts,
                once=once,
                duplicated=duplicated,
                missing=missing,
                waves=waves,
                per_process=per_process,
                exits=exits,
                exit_codes=exit_codes,
                kling_calls=len(kling.calls),
                kling_429s=kling.rate_limited,
                owed_after=owed_after,
                problems=problems,
            )
    finally:
        store.close()


def print_outbox_runs(runs: Sequence[OutboxRun], post_delay_s: float, claim_s: int) -> None:
    print(
        f"1. Posts per second through the outbox: {runs[0].dms:,} owed DMs to distinct users; the Slack stand-in"
        f" answers each post after {post_delay_s * 1000:.0f} ms."
    )
    print(
        f"   OUTBOX_CLAIM_SECONDS={claim_s}: a pass takes new rows for {claim_s / 2:.0f} s; when the checks of a"
        " round exit with rows still owed,"
    )
    print("   another round starts at once, like the next cron tick. A fresh database each run.")
    labels = []
    for run in runs:
        same = [r for r in runs if r.processes == run.processes]
        labels.append(f"{run.processes} x check" + (f" #{same.index(run) + 1}" if len(same) > 1 else ""))
    print(
        f"   {'run':<13}  {'wall time':>9}  {'posts/s':>7}  {'1st post':>8}  {'posts/s after 1st':>17}"
        f"  {'rounds':>6}  {'sent by each (log)':<20} {'exactly once':>12}  {'dup':>3}  {'missing':>7}"
        f"  {'Kling calls':>11}  {'429s':>4}"
    )
    for label, run in zip(labels, runs, strict=True):
        wall = f"{run.wall_s:.1f} s" if run.wall_s is not None else "unfinished"
        rate = f"{run.dms / run.wall_s:.1f}" if run.wall_s else "n/a"
        first = f"{run.first_post_s:.2f} s" if run.first_post_s is not None else "n/a"
        after = (
            f"{(run.dms - 1) / (run.wall_s - run.first_post_s):.1f}"
            if run.wall_s is not None and run.first_post_s is not None and run.wall_s > run.first_post_s
            else "n/a"
        )
        split = "+".join(str(n) for n in run.per_process)
        print(
            f"   {label:<13}  {wall:>9}  {rate:>7}  {first:>8}  {after:>17}  {run.waves:>6}  {split:<20}"
            f" {run.once:>5,}/{run.dms:<6,}  {run.duplicated:>3}  {run.missing:>7}  {run.kling_calls:>11}"
            f"  {run.kling_429s:>4}"
        )
    print("   when each check exited (s from the spawn) / DMs still owed then:")
    for label, run in zip(labels, runs, strict=True):
        exits = ", ".join(f"{at:.1f} s/{owed}" for at, owed in run.exits)
        early = sum(1 for at, owed in run.exits if owed > 0 and run.wall_s is not None and at < run.wall_s - 2)
        note = (
            f"  <- {early} check(s) ended their pass while DMs were owed and the others went on sending"
            if run.processes > 1 and early
            else ""
        )
        print(f"     {label:<13} {exits}{note}")
    for label, run in zip(labels, runs, strict=True):
        notes = []
        if run.posts != run.dms:
            notes.append(f"{run.posts} chat.postMessage calls for {run.dms} DMs")
        if any(code != 0 for code in run.exit_codes):
            notes.append(f"exit codes {run.exit_codes}")
        if run.owed_after:
            notes.append(f"{run.owed_after} DMs still owed when the run gave up")
        if notes or run.problems:
            print(f"   {label}: " + ("; ".join(notes) if notes else ""))
            print_problems(run.problems, "     ")
    several = [run.wall_s for run in runs[1:] if run.wall_s]
    if runs[0].wall_s and several:
        median = statistics.median(several)
        print(
            f"   {runs[-1].processes} checks vs 1: {runs[0].wall_s / median:.2f}x the posts/s (median of"
            f" {len(several)} run(s); this machine has {os.cpu_count()} CPUs for everything)"
        )
    print("   wall time: from spawning the checks to the last DM kept by Slack (start-up, migration check and the")
    print("   Kling call included); '1st post': when the first DM reached Slack; 'sent by each': what each `check`")
    print("   logged ('Outbox: N sent'), in the order the processes were started, round after round.")
    if any(run.waves > 1 for run in runs):
        print(
            f"   More than one round: a `worker`/`serve` would send the rest {WORKER_DELIVERY_EVERY_S} s later (its"
            " delivery job), a cron job at its next tick."
        )
    print()


# -- 2. takeover time ---------------------------------------------------------------------------


@dataclass
class TakeoverRun:
    claim_s: int
    dms: int
    victim_rows: int
    claim_left_at_kill_s: float
    kill_to_others_s: float | None  # the rows the victim had not claimed, all sent
    others_by_check: int | None
    kill_to_taken_s: float | None  # the first of the victim's rows sent by another process
    kill_to_done_s: float | None  # all of the victim's rows sent
    checks_run: int
    check_starts_s: list[float]  # relative to the kill
    taken_by_check: int | None  # which cron check (1-based) delivered the victim's rows
    recovered_lines: int
    held_channel_posts: int
    once: int
    duplicated: int
    missing: int
    exit_codes: list[int]
    kling_calls: int
    kling_429s: int
    problems: Counter[str]


def takeover_run(
    procs: Processes, url: str, *, dms: int, claim_s: int, post_delay_s: float, every_s: float
) -> TakeoverRun:
    users = [f"U{i:05d}" for i in range(dms)]
    owe_dms(url, users)
    store = Store(url)
    o = schema.outbox.c
    try:
        with (
            FakeKling(packs=[make_pack(PACK_NAME)], qps_interval_s=KLING_QPS_INTERVAL_S) as kling,
            QuietSlack() as slack,
        ):
            slack.post_delay_s = post_delay_s
            held = threading.Event()
            released = threading.Event()
            held_channel: list[str] = []

            def hold_the_first_post(args: dict[str, Any]) -> None:
                # Slack has kept this post; its answer waits until the poster is dead.
                if not held.is_set():
                    held_channel.append(str(args.get("channel")))
                    held.set()
                    released.wait(claim_s + 120)

            slack.post_hook = hold_the_first_post
            env = bot_env(
                kling, slack, DATABASE_URL=url, KLING_CACHE_TTL=str(DEFAULT_TTL_S), OUTBOX_CLAIM_SECONDS=str(claim_s)
            )
            victim = procs.spawn(["check"], env)
            if not held.wait(STARTUP_TIMEOUT_S + 30):
                raise RuntimeError(f"the first check never posted:\n{procs.output(victim)}")
            # Only the victim has run: every claimed, unsent row is one of its.
            with store.reading() as tx:
                rows = tx.conn.execute(
                    select(o.id, o.claimed_until).where(o.sent_at.is_(None), o.claimed_until.is_not(None))
                ).all()
            victim_ids = [r.id for r in rows]
            claimed_until_ms = max((r.claimed_until for r in rows), default=0)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed = time.perf_counter()
            claim_left = claimed_until_ms / 1000 - time.time()
            released.set()

            def unsent(ids: Sequence[int] | None) -> int:
                with store.reading() as tx:
                    query = select(o.id).where(o.sent_at.is_(None))
                    query = query.where(o.id.in_(ids)) if ids is not None else query.where(o.id.not_in(victim_ids))
                    return len(tx.conn.execute(query).all())

            others_done: float | None = None
            others_by: int | None = None
            taken: float | None = None
            done: float | None = None
            taken_by: int | None = None
            checks: list[subprocess.Popen[bytes]] = []
            starts: list[float] = []
            deadline = killed + claim_s + RUN_TIMEOUT_S
            next_start = killed
            # A cron of `check` every `every_s` (a new one only once the last has exited, as a
            # scheduler's job would), watching the database meanwhile.
            while done is None and time.perf_counter() < deadline:
                while time.perf_counter() < next_start:
                    time.sleep(0.05)
                starts.append(time.perf_counter() - killed)
                proc = procs.spawn(["check"], env)
                checks.append(proc)
                next_start = time.perf_counter() + every_s
                while True:
                    exited = proc.poll() is not None
                    now = time.perf_counter()
                    if others_done is None and unsent(None) == 0:
                        others_done, others_by = now - killed, len(checks)
                    left = unsent(victim_ids)
                    if taken is None and left < len(victim_ids):
                        taken, taken_by = now - killed, len(checks)
                    if done is None and left == 0:
                        done = now - killed
                    if exited or now > deadline:
                        break
                    time.sleep(0.1)
                # A bot that fails every time will not take the rows over by waiting longer.
                recent = [p.returncode for p in checks[-FAILING_CHECKS_STOP:]]
                if len(recent) == FAILING_CHECKS_STOP and all(code not in (0, None) for code in recent):
                    break
            exit_codes = [procs.wait(p, 60) for p in checks]
            outputs = [procs.output(p) for p in checks]
            problems: Counter[str] = Counter()
            for output in outputs:
                problems.update(problems_in(output))
            once, duplicated, missing = exactly_once(slack, users)
            return TakeoverRun(
                claim_s=claim_s,
                dms=dms,
                victim_rows=len(victim_ids),
                claim_left_at_kill_s=claim_left,
                kill_to_others_s=others_done,
                others_by_check=others_by,
                kill_to_taken_s=taken,
                kill_to_done_s=done,
                checks_run=len(checks),
                check_starts_s=starts,
                taken_by_check=taken_by,
                recovered_lines=sum(output.count(RECOVERED_LINE) for output in outputs),
                held_channel_posts=len(slack.messages.get(held_channel[0], [])) if held_channel else 0,
                once=once,
                duplicated=duplicated,
                missing=missing,
                exit_codes=exit_codes,
                kling_calls=len(kling.calls),
                kling_429s=kling.rate_limited,
                problems=problems,
            )
    finally:
        store.close()


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def print_takeover(runs: Sequence[TakeoverRun], post_delay_s: float, every_s: float) -> None:
    print(
        f"2. Takeover after a SIGKILL mid-send ({runs[0].dms} owed DMs; Slack keeps the victim's first post and"
        " holds its answer until"
    )
    print(
        f"   the victim is dead; then `python -m bot check` every ~{every_s:g} s until all is sent;"
        f" posts answered after {post_delay_s * 1000:.0f} ms)"
    )
    for run in runs:
        print(f"   OUTBOX_CLAIM_SECONDS={run.claim_s}:")
        print(
            f"     the victim had claimed {run.victim_rows} rows; its claim had {run.claim_left_at_kill_s:.1f} s"
            " left at the kill"
        )
        print(
            f"     kill -> every row it had not claimed sent:   {seconds(run.kill_to_others_s)}"
            + (f"  (cron check #{run.others_by_check})" if run.others_by_check else "")
        )
        print(
            f"     kill -> the first of its rows sent by another: {seconds(run.kill_to_taken_s)}"
            + (f"  (cron check #{run.taken_by_check})" if run.taken_by_check else "")
        )
        print(f"     kill -> all {run.victim_rows} of its rows delivered:      {seconds(run.kill_to_done_s)}")
        beyond = (
            f"; {run.kill_to_done_s - run.claim_left_at_kill_s:.1f} s after the claim lapsed"
            if run.kill_to_done_s is not None
            else ""
        )
        print(f"     ({run.checks_run} cron checks ran{beyond})")
        held = (
            "found in the channel's history, not posted again"
            if run.recovered_lines and run.held_channel_posts == 1
            else f"NOT recovered as expected: {run.recovered_lines} recovery log line(s), "
            f"{run.held_channel_posts} post(s) in its channel"
        )
        print(f"     the held message: {held} ({run.recovered_lines} 'posted by an earlier attempt' line(s) logged)")
        print(
            f"     each DM exactly once: {run.once}/{run.dms} (duplicated {run.duplicated}, missing {run.missing});"
            f" Kling calls {run.kling_calls}, 429s {run.kling_429s}"
        )
        failed = [i for i, code in enumerate(run.exit_codes, 1) if code != 0]
        if failed:
            stopped = " (stopped: the last ones all failed)" if run.kill_to_done_s is None else ""
            print(f"     {len(failed)} of the cron checks exited with an error, the first #{failed[0]}{stopped}")
        print_problems(run.problems, "     ")
    print(
        f"   With a `worker` (or `serve`) instead of a cron, owed messages are retried every"
        f" {WORKER_DELIVERY_EVERY_S} s: add up to {WORKER_DELIVERY_EVERY_S} s to these figures."
    )
    print()


# -- 3. Kling calls with three serve replicas under a burst -------------------------------------


@dataclass
class BurstRun:
    replicas: int
    ttl_s: int
    rate: float
    duration_s: float
    sent: int
    acked: int
    ack_p50_s: float
    ack_p99_s: float
    answered: int
    with_balance: int
    interims: int
    kling_calls: int
    kling_429s: int
    call_offsets_s: list[float]  # Kling calls relative to the first command
    per_replica: list[int]
    problems: list[Counter[str]]


def wait_healthy(procs: Processes, proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"kling-bot serve exited with {proc.returncode}:\n{procs.output(proc)}")
            with suppress(httpx.TransportError):
                if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return
            time.sleep(0.05)
    raise RuntimeError(f"kling-bot serve did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s")


def burst_run(procs: Processes, url: str, *, replicas: int, ttl_s: int, rate: float, duration_s: float) -> BurstRun:
    with FakeKling(packs=[make_pack(PACK_NAME)], qps_interval_s=KLING_QPS_INTERVAL_S) as kling, QuietSlack() as slack:
        ports = [free_port() for _ in range(replicas)]
        servers = []
        try:
            for port in ports:  # started together, on an empty database: they migrate it together
                env = bot_env(kling, slack, DATABASE_URL=url, PORT=str(port), KLING_CACHE_TTL=str(ttl_s))
                servers.append(procs.spawn(["serve", "--host", "127.0.0.1", "--web-only"], env))
            for proc, port in zip(servers, ports, strict=True):
                wait_healthy(procs, proc, port)
            calls_before = len(kling.calls)
            total = round(rate * duration_s)
            keys = [f"burst-{i}" for i in range(total)]
            statuses = [0] * total
            acks = [0.0] * total
            per_replica = [0] * replicas
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            with httpx.Client(timeout=10, limits=limits) as client, ThreadPoolExecutor(max_workers=64) as pool:

                def send(i: int) -> None:
                    body = slash_command_body("", response_url=slack.response_url(keys[i]), user_id=f"U{i % 50:05d}")
                    port = ports[i % replicas]
                    sent = time.perf_counter()
                    try:
                        response = client.post(
                            f"http://127.0.0.1:{port}/slack/events",
                            content=body,
                            headers=signed_headers(SIGNING_SECRET, body),
                        )
                        statuses[i] = response.status_code
                    except httpx.HTTPError:
                        statuses[i] = -1
                    acks[i] = time.perf_counter() - sent

                started = time.perf_counter()
                started_mono = time.monotonic()
                futures = []
                for i in range(total):
                    wait = started + i / rate - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    per_replica[i % replicas] += 1
                    futures.append(pool.submit(send, i))
                for future in futures:
                    future.result()
            # Every acked command gets its answer at its response URL.
            deadline = time.monotonic() + 30
            for key, status in zip(keys, statuses, strict=True):
                if status == 200:
                    with suppress(AssertionError):
                        slack.wait_for_answer(key, timeout=max(0.0, deadline - time.monotonic()))
            calls = kling.calls[calls_before:]
        finally:
            for proc in servers:
                procs.stop(proc)
        answered = with_balance = interims = 0
        for key in keys:
            replies = slack.responses.get(key, [])
            final = [r for r in replies if "Asking Kling" not in str(r.get("text", ""))]
            interims += len(replies) - len(final)
            if final:
                answered += 1
                if PACK_NAME in str(final[-1]):
                    with_balance += 1
        ok_acks = sorted(a for a, s in zip(acks, statuses, strict=True) if s == 200) or [0.0]
        return BurstRun(
            replicas=replicas,
            ttl_s=ttl_s,
            rate=rate,
            duration_s=duration_s,
            sent=total,
            acked=sum(1 for s in statuses if s == 200),
            ack_p50_s=statistics.median(ok_acks),
            ack_p99_s=ok_acks[min(len(ok_acks) - 1, int(0.99 * len(ok_acks)))],
            answered=answered,
            with_balance=with_balance,
            interims=interims,
            kling_calls=len(calls),
            kling_429s=sum(1 for c in calls if c.code == 1302),
            call_offsets_s=[c.at - started_mono for c in calls],
            per_replica=per_replica,
            problems=[problems_in(procs.output(p)) for p in servers],
        )


def print_burst(run: BurstRun) -> None:
    print(
        f"3. Kling calls with {run.replicas} `serve --web-only` replicas on one database (HTTP mode),"
        f" KLING_CACHE_TTL={run.ttl_s} s;"
    )
    print(f"   the Kling stand-in refuses a 2nd request within {KLING_QPS_INTERVAL_S:g} s (429, code 1302).")
    print(
        f"   {run.sent} signed /kling-balance commands at {run.rate:g}/s for {run.duration_s:g} s, round-robin"
        f" ({'+'.join(map(str, run.per_replica))}), response URLs at the Slack stand-in"
    )
    print(
        f"   acks: {run.acked}/{run.sent} HTTP 200 (p50 {run.ack_p50_s * 1000:.0f} ms,"
        f" p99 {run.ack_p99_s * 1000:.0f} ms);"
        f" answers at the response URLs: {run.answered} ({run.with_balance} showing the balance,"
        f" {run.interims} 'Asking Kling…' interims)"
    )
    offsets = ", ".join(f"{t:.1f}" for t in run.call_offsets_s)
    print(f"   Kling calls: {run.kling_calls}, 429s: {run.kling_429s}; at {offsets} s after the first command")
    gaps = [b - a for a, b in zip(run.call_offsets_s, run.call_offsets_s[1:], strict=False)]
    if gaps:
        print(
            f"   gaps between calls: min {min(gaps):.2f} s, median {statistics.median(gaps):.2f} s,"
            f" max {max(gaps):.2f} s"
            f" (at least the TTL when only commands ask)"
        )
    windows = run.duration_s / run.ttl_s
    per_hour = run.kling_calls / run.duration_s * 3600
    print(
        f"   calls per TTL window: {run.kling_calls / windows:.2f} ({run.kling_calls} calls in {windows:g} windows of"
        f" {run.ttl_s} s; at most one call per window: {math.ceil(run.duration_s / run.ttl_s)} for this burst)"
    )
    line = f"   calls per hour, extrapolated: {per_hour:,.0f} over the burst"
    if len(run.call_offsets_s) > 1:
        span = run.call_offsets_s[-1] - run.call_offsets_s[0]
        line += f", {(len(run.call_offsets_s) - 1) / span * 3600:,.0f} from the spacing of the calls"
    print(line + f"; bound 3600/TTL = {3600 / run.ttl_s:,.0f} per account per hour")
    print(
        f"   at the default KLING_CACHE_TTL={DEFAULT_TTL_S} s the same bound is {3600 // DEFAULT_TTL_S} calls"
        f" per account per hour, whatever the number of replicas and commands (`refresh` excepted)"
    )
    for i, counts in enumerate(run.problems, 1):
        if counts:
            print(f"   replica {i}:")
            print_problems(counts, "     ")
    if not any(run.problems):
        print("   warnings/errors logged by the replicas: none")
    print()


def code_version() -> str:
    """The commit the bot processes run, and whether bot/ has changes on top of it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "bot"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "Bot code: the working tree (not a git checkout)"
    return f"Bot code: commit {commit}" + (" with uncommitted changes in bot/" if dirty else "")


# -- main ---------------------------------------------------------------------------------------


def run_parts(
    procs: Processes,
    fresh: Callable[[], str],
    args: argparse.Namespace,
    parts: set[str],
    dms: int,
    takeover_dms: int,
    duration: float,
) -> None:
    if "1" in parts:
        runs = [
            outbox_run(
                procs,
                fresh(),
                processes=n,
                dms=dms,
                post_delay_s=args.post_delay,
                claim_s=args.claim_seconds,
            )
            for n in [1] + [args.processes] * (args.reps if args.processes != 1 else 0)
        ]
        print_outbox_runs(runs, args.post_delay, args.claim_seconds)
    if "2" in parts:
        claims = [args.takeover_claim] + ([60] if args.also_default_claim and args.takeover_claim != 60 else [])
        takeovers = [
            takeover_run(
                procs,
                fresh(),
                dms=takeover_dms,
                claim_s=claim,
                post_delay_s=args.post_delay,
                every_s=args.cron_every,
            )
            for claim in claims
        ]
        print_takeover(takeovers, args.post_delay, args.cron_every)
    if "3" in parts:
        print_burst(
            burst_run(
                procs,
                fresh(),
                replicas=args.replicas,
                ttl_s=args.ttl,
                rate=args.rate,
                duration_s=duration,
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="fewer DMs and a shorter burst (about a minute and a half)"
    )
    parser.add_argument("--parts", default="1,2,3", help="which figures to print, e.g. 1,3 (default 1,2,3)")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when TEST_POSTGRES_URL is set")
    parser.add_argument("--dms", type=int, help="owed DMs for figure 1 (default 600; 150 with --quick)")
    parser.add_argument("--processes", type=int, default=3, help="checks started together in figure 1 (default 3)")
    parser.add_argument(
        "--reps", type=int, help="runs of the several-process case in figure 1, fresh each (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--post-delay", type=float, default=0.05, help="seconds the Slack stand-in takes per post (default 0.05)"
    )
    parser.add_argument(
        "--claim-seconds", type=int, default=60, help="OUTBOX_CLAIM_SECONDS for figure 1 (default 60, the bot's)"
    )
    parser.add_argument("--takeover-dms", type=int, help="owed DMs for figure 2 (default 150; 80 with --quick)")
    parser.add_argument("--takeover-claim", type=int, default=40, help="OUTBOX_CLAIM_SECONDS for figure 2 (default 40)")
    parser.add_argument(
        "--also-default-claim", action="store_true", help="run figure 2 again with the default OUTBOX_CLAIM_SECONDS=60"
    )
    parser.add_argument("--cron-every", type=float, default=2.0, help="seconds between checks in figure 2 (default 2)")
    parser.add_argument("--replicas", type=int, default=3, help="serve replicas in figure 3 (default 3)")
    parser.add_argument("--ttl", type=int, default=10, help="KLING_CACHE_TTL for figure 3 (default 10)")
    parser.add_argument("--rate", type=float, default=20.0, help="commands per second in figure 3 (default 20)")
    parser.add_argument("--duration", type=float, help="seconds of commands in figure 3 (default 40; 20 with --quick)")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    dms = args.dms or (150 if args.quick else 600)
    takeover_dms = args.takeover_dms or (80 if args.quick else 150)
    duration = args.duration or (20.0 if args.quick else 40.0)
    args.reps = args.reps or (1 if args.quick else 3)

    def terminated(*_: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a CI runner giving up) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, terminated)
    wall = time.perf_counter()
    print(f"kling-balance-bot replicas benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(code_version())
    with tempfile.TemporaryDirectory(prefix="kling-bench-replicas-") as tmp:
        procs = Processes(Path(tmp))
        try:
            with databases(args.sqlite) as (where, fresh):
                print(f"Database: {where}")
                print()
                try:
                    run_parts(procs, fresh, args, parts, dms, takeover_dms, duration)
                finally:
                    procs.kill_all()  # before the databases are dropped
        except KeyboardInterrupt:
            print("\nInterrupted: the bot processes were stopped and the databases removed.", file=sys.stderr)
            return 130
        finally:
            procs.kill_all()
    print(f"Total benchmark time {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
