"""`GET /metrics` and `/readyz` over real HTTP: the stored packs, families, forecast, outbox
and last poll as a Prometheus text parser reads them, Kling requests counted by outcome, and
readiness turning 503 when the database is gone or the polls stop. Also the METRICS_PORT
server that Socket Mode and `worker` run."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from bot.config import Settings
from bot.jobs import Jobs
from bot.kling.auth import ApiKeyCredentials
from bot.kling.client import KlingClient
from bot.ops.http import metrics_server, ops_app
from bot.ops.metrics import Metrics
from bot.services import Services, build_services
from bot.slack.app import build_app
from bot.slack.server import BackgroundHttpServer
from bot.store import schema
from bot.store.db import Store, to_ms
from tests.conftest import bot_env
from tests.fake_clock import FakeClock
from tests.stand_ins.kling import API_KEY, FakeKling, make_pack
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.stand_ins.socket_mode import FakeSocketMode
from tests.test_processes import complaints, finish, free_port, socket_env, spawn, stop

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@dataclass
class Bot:
    """The bot in HTTP mode with /metrics and /readyz, on a fake clock."""

    services: Services
    clock: FakeClock
    kling: FakeKling
    url: str
    http: httpx.Client

    @property
    def store(self) -> Store:
        assert self.services.store is not None
        return self.services.store

    def check(self) -> None:
        """One scheduled poll (the clock first moves on by POLL_INTERVAL_MINUTES, as between
        real polls), then Kling's answer kept in the database as the cache keeps it (which
        process stored it does not matter to /metrics)."""
        self.clock.advance(self.services.settings.poll_interval_minutes * 60)
        Jobs.for_services(self.services).check()
        balances = self.services.balances.get(wait_s=None)  # the answer the check just fetched
        with self.store.transaction() as tx:
            for answer in balances.readable:
                assert answer.snapshot is not None
                tx.store_answer(answer.account.key, answer.snapshot.packs, answer.snapshot.fetched_at)

    def scrape(self) -> Samples:
        response = self.http.get(f"{self.url}/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return parse(response.text)

    def ready(self) -> httpx.Response:
        return self.http.get(f"{self.url}/readyz")


def bot_settings(kling: FakeKling, slack: FakeSlack, database_url: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "KLING_API_BASE": kling.url,
            "KLING_API_KEY": API_KEY,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": database_url,
            **env,
        },
        need_slack=True,
    )


@pytest.fixture
def start(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> Iterator[Callable[..., Bot]]:
    """Starts the bot on a SQLite file under tmp_path/data; settings as keyword arguments."""
    # The fake clock makes days pass at once; the stand-in's one-call-a-second check runs on
    # real time, so it is off here.
    kling.qps_interval_s = 0
    started: list[tuple[BackgroundHttpServer, Services, httpx.Client]] = []

    def run(**env: str) -> Bot:
        (tmp_path / "data").mkdir(exist_ok=True)
        url = f"sqlite:///{tmp_path / 'data' / 'bot.db'}"
        clock = FakeClock()
        services = build_services(
            bot_settings(kling, slack, url, **env), clock=clock, with_store=True, with_metrics=True
        )
        assert services.metrics is not None
        server = BackgroundHttpServer(build_app(services), ops=ops_app(services.metrics)).start()
        client = httpx.Client(timeout=30)
        started.append((server, services, client))
        return Bot(services, clock, kling, server.url, client)

    yield run
    for server, services, client in started:
        client.close()
        server.stop()
        services.close()


def test_metrics_show_each_packs_remaining_and_the_family_totals(start: Callable[..., Bot]) -> None:
    """After a check, /metrics shows every pack's remaining and total quantity and each family's online totals."""
    bot = start()
    bot.kling.packs = [
        make_pack("Video Generation - 10,000 entries", total=10000, remaining=5000, pack_id="v1"),
        make_pack("Video Generation - 2,000 entries", total=2000, remaining=1500, pack_id="v2"),
        make_pack("Image Generation - 500", total=500, remaining=120, pack_id="i1"),
        make_pack("Image Generation - 300", total=300, remaining=300, pack_id="i2", status="toBeOnline"),
    ]
    bot.check()
    samples = bot.scrape()

    remaining = {dict(labels)["pack_id"]: v for labels, v in named(samples, "kling_bot_pack_remaining_units").items()}
    assert remaining == {"v1": 5000, "v2": 1500, "i1": 120, "i2": 300}
    assert (
        value(
            samples,
            "kling_bot_pack_size_units",
            account="default",
            family="Video Generation",
            pack_id="v2",
            pack="Video Generation - 2,000 entries",
            status="online",
        )
        == 2000
    )
    video = {"account": "default", "family": "Video Generation"}
    image = {"account": "default", "family": "Image Generation"}
    assert value(samples, "kling_bot_family_remaining_units", **video) == 6500
    assert value(samples, "kling_bot_family_size_units", **video) == 12000
    # Only online packs are usable; the one not yet effective is counted apart.
    assert value(samples, "kling_bot_family_remaining_units", **image) == 120
    assert value(samples, "kling_bot_family_pending_units", **image) == 300
    assert value(samples, "kling_bot_database_up") == 1


def test_last_poll_time_and_kling_requests_are_reported(start: Callable[..., Bot]) -> None:
    """The last successful poll's time, and the Kling request through the stand-in, counted as ok with its latency."""
    bot = start()
    before = bot.scrape()
    assert named(before, "kling_bot_last_poll_timestamp_seconds") == {}  # no poll yet: no series
    assert value(before, "kling_bot_kling_requests_total", account="default", outcome="ok") == 0

    bot.check()
    samples = bot.scrape()
    assert value(samples, "kling_bot_last_poll_timestamp_seconds") == pytest.approx(bot.clock.now().timestamp())
    assert value(samples, "kling_bot_account_last_poll_timestamp_seconds", account="default") == pytest.approx(
        bot.clock.now().timestamp()
    )
    assert value(samples, "kling_bot_kling_requests_total", account="default", outcome="ok") == 1
    assert value(samples, "kling_bot_kling_requests_total", account="default", outcome="error") == 0
    assert value(samples, "kling_bot_kling_request_duration_seconds_count", account="default") == 1
    assert value(samples, "kling_bot_kling_request_duration_seconds_sum", account="default") > 0
    assert value(samples, "kling_bot_kling_request_duration_seconds_bucket", account="default", le="+Inf") == 1


def test_kling_requests_are_counted_by_outcome(start: Callable[..., Bot]) -> None:
    """A rate-limited request, its successful retry and a refused request are counted under their outcomes."""
    bot = start()
    bot.kling.fail_next(1, 429, 1302, "rate limit exceeded")
    bot.check()
    bot.kling.fail_next(1, 401, 1000, "Authentication failed")
    bot.check()  # Kling refuses: nothing is checked, the refusal is counted
    samples = bot.scrape()
    counted = {
        dict(labels)["outcome"]: v
        for labels, v in named(samples, "kling_bot_kling_requests_total").items()
        if dict(labels)["account"] == "default"
    }
    assert counted == {"ok": 1, "rate_limited": 1, "auth_error": 1, "timeout": 0, "unreachable": 0, "error": 0}
    assert value(samples, "kling_bot_kling_request_duration_seconds_count", account="default") == 3


def test_forecast_days_to_run_out_appear_once_there_is_history(start: Callable[..., Bot]) -> None:
    """With two days of stored history, a family burning 500 a day with 4,000 left shows 8 days; an idle one none."""
    bot = start(POLL_INTERVAL_MINUTES="1")
    video = make_pack("Video Generation - 10,000 entries", total=10000, remaining=5000, pack_id="v1")
    idle = make_pack("Image Generation - 500", total=500, remaining=500, pack_id="i1")
    bot.kling.packs = [video, idle]
    bot.check()  # the baseline
    bot.clock.advance(2 * 86400 - 60)  # the next check moves on one more minute: two days in all
    video["remaining_quantity"] = 4000
    bot.check()
    samples = bot.scrape()
    run_out = named(samples, "kling_bot_family_run_out_days")
    assert run_out == {(("account", "default"), ("family", "Video Generation")): pytest.approx(8.0)}


def test_outbox_owed_stuck_and_sent_are_counted(start: Callable[..., Bot]) -> None:
    """Owed, failing, stuck (an error a person must fix, or given up), given up and sent messages are each counted."""
    bot = start()
    now = bot.clock.now()
    with bot.store.transaction() as tx:
        for key in ("untried", "not-in-channel", "rate-limited", "given-up", "sent"):
            tx.enqueue(key, "alert", "C0ALERTS", {"text": key}, now)
        ids = {r.key: r.id for r in tx.claim_due(now, lease_ms=1000, limit=10)}
        tx.release([ids["untried"]])
        tx.mark_failed([ids["not-in-channel"], ids["given-up"]], "Slack: not_in_channel", now)
        tx.mark_failed([ids["rate-limited"]], "Slack: ratelimited", now)
        tx.mark_sent([ids["sent"]], now, "1.0")
        tx.conn.execute(update(schema.outbox).where(schema.outbox.c.key == "given-up").values(given_up_at=to_ms(now)))
    samples = bot.scrape()
    assert value(samples, "kling_bot_outbox_owed_messages") == 3
    assert value(samples, "kling_bot_outbox_failing_messages") == 2
    assert value(samples, "kling_bot_outbox_stuck_messages") == 2  # not_in_channel, and the given-up one
    assert value(samples, "kling_bot_outbox_given_up_messages") == 1
    assert value(samples, "kling_bot_outbox_sent_messages") == 1


def test_accounts_are_labelled_by_their_names(start: Callable[..., Bot], kling: FakeKling) -> None:
    """With several accounts each series carries the account's name from KLING_ACCOUNTS, not its internal key."""
    both = {
        f"KLING_{name}_{setting}": v
        for name in ("STUDIO", "LAB")
        for setting, v in (("API_KEY", API_KEY), ("API_BASE", kling.url))
    }
    bot = start(KLING_ACCOUNTS="studio,lab", **both)
    bot.kling.packs = [make_pack("Video Generation - 10,000 entries", remaining=4321, pack_id="v1")]
    bot.check()
    samples = bot.scrape()
    accounts = {dict(labels)["account"] for labels in named(samples, "kling_bot_pack_remaining_units")}
    assert accounts == {"studio", "lab"}  # "studio" is stored under the key "default"
    assert value(samples, "kling_bot_family_remaining_units", account="lab", family="Video Generation") == 4321
    assert value(samples, "kling_bot_kling_requests_total", account="studio", outcome="ok") == 1


# -- /readyz ----------------------------------------------------------------------------------------


def test_readyz_answers_200_while_polls_are_recent_and_503_once_too_old(start: Callable[..., Bot]) -> None:
    """/readyz is 200 after a poll and 503 once the last successful poll is older than three poll intervals."""
    bot = start(POLL_INTERVAL_MINUTES="10")
    bot.check()
    ready = bot.ready()
    assert ready.status_code == 200 and ready.text.startswith("ready"), ready.text
    bot.clock.advance(29 * 60)  # within three intervals: still ready
    assert bot.ready().status_code == 200
    bot.clock.advance(2 * 60)
    stale = bot.ready()
    assert stale.status_code == 503
    assert "last successful poll was 31 min ago (limit 30 min)" in stale.text
    assert bot.http.get(f"{bot.url}/healthz").status_code == 200  # liveness is unchanged


def test_readyz_before_any_poll_is_ready_for_three_intervals_after_the_start(start: Callable[..., Bot]) -> None:
    """A fresh install with no poll yet is ready for three poll intervals after the process started, then 503."""
    bot = start(POLL_INTERVAL_MINUTES="10")
    first = bot.ready()
    assert first.status_code == 200 and "no poll yet" in first.text
    bot.clock.advance(30 * 60 + 1)
    late = bot.ready()
    assert late.status_code == 503 and "no successful poll since the start" in late.text


def test_readyz_turns_503_when_the_sqlite_database_is_gone(start: Callable[..., Bot], tmp_path: Path) -> None:
    """Deleting the database's directory under a running bot turns /readyz 503; /metrics says the database is down."""
    bot = start()
    bot.check()
    assert bot.ready().status_code == 200
    shutil.rmtree(tmp_path / "data")
    gone = bot.ready()
    assert gone.status_code == 503 and gone.text == "not ready: the database file is gone\n"
    samples = bot.scrape()  # still answers, with what the process knows itself
    assert value(samples, "kling_bot_database_up") == 0
    assert named(samples, "kling_bot_pack_remaining_units") == {}
    assert value(samples, "kling_bot_kling_requests_total", account="default", outcome="ok") == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket closes


def test_readyz_is_503_when_postgresql_cannot_be_reached_and_names_no_host(kling: FakeKling, slack: FakeSlack) -> None:
    """A PostgreSQL server that cannot be reached makes /readyz 503 with a reason naming neither host nor password."""
    port = closed_port()
    url = f"postgresql://bot:s3cret-pw@127.0.0.1:{port}/kling"
    settings = bot_settings(kling, slack, url)
    metrics = Metrics(settings, FakeClock())
    store = Store(url)  # connects only when used
    metrics.watch(store)
    server = metrics_server(metrics, host="127.0.0.1", port=0).start()
    try:
        with httpx.Client(timeout=30) as http:
            ready = http.get(f"{server.url}/readyz")
            scrape = http.get(f"{server.url}/metrics")
    finally:
        server.stop()
        store.close()
    assert ready.status_code == 503
    assert ready.text == "not ready: the database cannot be reached (OperationalError)\n"
    assert scrape.status_code == 200 and value(parse(scrape.text), "kling_bot_database_up") == 0
    assert "s3cret-pw" not in ready.text + scrape.text and "127.0.0.1" not in ready.text + scrape.text
    assert str(port) not in ready.text  # (not checked in the scrape: its process figures are long numbers)


@pytest.mark.skipif(not os.environ.get("TEST_POSTGRES_URL"), reason="TEST_POSTGRES_URL names no PostgreSQL server")
def test_readyz_turns_503_when_the_postgresql_database_is_dropped(kling: FakeKling, slack: FakeSlack) -> None:
    """A PostgreSQL database dropped under a running bot turns /readyz from 200 to 503."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bot.store.db import normalize_url

    admin_url = normalize_url(os.environ["TEST_POSTGRES_URL"])
    name = f"kling_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    services = build_services(bot_settings(kling, slack, url), clock=FakeClock(), with_store=True, with_metrics=True)
    assert services.metrics is not None
    server = metrics_server(services.metrics, host="127.0.0.1", port=0).start()
    try:
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{server.url}/readyz").status_code == 200
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            gone = http.get(f"{server.url}/readyz")
    finally:
        server.stop()
        services.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert gone.status_code == 503 and "the database cannot be reached" in gone.text


# -- METRICS_PORT: Socket Mode and `worker` ---------------------------------------------------------


def test_metrics_port_server_answers_metrics_readyz_and_healthz_only(start: Callable[..., Bot]) -> None:
    """The METRICS_PORT server serves /metrics, /readyz and /healthz from the same figures, and nothing of Slack's."""
    bot = start()
    bot.check()
    assert bot.services.metrics is not None
    server = metrics_server(bot.services.metrics, host="127.0.0.1", port=0).start()
    try:
        metrics = bot.http.get(f"{server.url}/metrics")
        assert metrics.status_code == 200
        assert value(parse(metrics.text), "kling_bot_kling_requests_total", account="default", outcome="ok") == 1
        assert bot.http.get(f"{server.url}/readyz").status_code == 200
        assert bot.http.get(f"{server.url}/healthz").text == "ok\n"
        assert bot.http.post(f"{server.url}/slack/events", content="x").status_code == 404
        assert bot.http.post(f"{server.url}/metrics", content="x").status_code == 405
    finally:
        server.stop()


def test_metrics_speak_openmetrics_when_asked(start: Callable[..., Bot]) -> None:
    """A scraper asking for OpenMetrics gets that format (what Prometheus asks for first)."""
    bot = start()
    response = bot.http.get(f"{bot.url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_worker_serves_metrics_on_metrics_port(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """`kling-bot worker` with METRICS_PORT serves /metrics there, counting its poll of Kling, and stops cleanly."""
    port = free_port()
    env = bot_env_for(kling, slack, tmp_path, METRICS_PORT=str(port))
    proc = spawn(["worker"], env, tmp_path)
    try:
        kling.wait_for_calls(1, timeout=30)
        samples = scrape_when_up(proc, port, lambda s: s.get(("kling_bot_last_poll_timestamp_seconds", ())) is not None)
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert value(samples, "kling_bot_kling_requests_total", account="default", outcome="ok") >= 1
    assert "Traceback" not in output


def test_socket_mode_serves_metrics_on_metrics_port(
    kling: FakeKling, socket_mode: FakeSocketMode, tmp_path: Path
) -> None:
    """`kling-bot serve` in Socket Mode with METRICS_PORT answers /readyz and /metrics there."""
    port = free_port()
    proc = spawn(
        ["serve", "--web-only", "--host", "127.0.0.1"],
        socket_env(kling, socket_mode, tmp_path, METRICS_PORT=str(port)),
        tmp_path,
    )
    try:
        samples = scrape_when_up(proc, port, lambda s: True)
        with httpx.Client(timeout=10) as http:
            ready = http.get(f"http://127.0.0.1:{port}/readyz")
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert value(samples, "kling_bot_database_up") == 1
    assert ready.status_code == 200, ready.text


def test_worker_on_a_taken_metrics_port_says_so_in_one_line(kling: FakeKling, slack: FakeSlack, tmp_path: Path) -> None:
    """A METRICS_PORT already in use stops `worker` with exit 1 and one line naming METRICS_PORT, before any poll."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = finish(spawn(["worker"], bot_env_for(kling, slack, tmp_path, METRICS_PORT=str(port)), tmp_path))
    assert code == 1, output
    assert complaints(output) == [
        f"kling-bot: port {port} is already in use: stop the other process or set METRICS_PORT"
    ], output
    assert "Traceback" not in output
    assert kling.calls == []


def test_serve_in_http_mode_serves_metrics_and_readyz_on_port(
    kling: FakeKling, slack: FakeSlack, tmp_path: Path
) -> None:
    """`kling-bot serve` in HTTP mode answers /metrics and /readyz on $PORT beside Slack's endpoint."""
    port = free_port()
    proc = spawn(["serve", "--host", "127.0.0.1"], bot_env_for(kling, slack, tmp_path, PORT=str(port)), tmp_path)
    try:
        kling.wait_for_calls(1, timeout=30)
        samples = scrape_when_up(proc, port, lambda s: s.get(("kling_bot_last_poll_timestamp_seconds", ())) is not None)
        with httpx.Client(timeout=10) as http:
            ready = http.get(f"http://127.0.0.1:{port}/readyz")
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert ready.status_code == 200, ready.text
    assert value(samples, "kling_bot_kling_requests_total", account="default", outcome="ok") >= 1


def bot_env_for(kling: FakeKling, slack: FakeSlack, tmp_path: Path, **extra: str) -> dict[str, str]:
    return bot_env(kling, slack, DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}", **extra)


def scrape_when_up(proc: Any, port: int, done: Callable[[Samples], bool]) -> Samples:
    """The first scrape of the process's /metrics for which `done` holds (the server and the
    first poll come up in their own time)."""
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=10) as http:
        while True:
            try:
                response = http.get(f"http://127.0.0.1:{port}/metrics")
                if response.status_code == 200 and done(samples := parse(response.text)):
                    return samples
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the process exited"
            assert time.monotonic() < deadline, "no /metrics within 30 s"
            time.sleep(0.05)


@pytest.fixture
def socket_mode() -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        yield fake


# -- the client's hook ---------------------------------------------------------------------------


def test_the_request_hook_hears_every_request_with_its_outcome() -> None:
    """The client reports each HTTP request to Kling once, retries included, with its outcome."""
    script: list[Any] = [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        (429, {"code": 1302, "message": "rate limit"}),
        (500, {"code": 5000, "message": "internal"}),
        (
            200,
            {
                "code": 0,
                "message": "SUCCEED",
                "request_id": "r",
                "data": {"code": 0, "resource_pack_subscribe_infos": []},
            },
        ),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        status, body = step
        return httpx.Response(status, json=body)

    heard: list[tuple[str, str, float]] = []
    client = KlingClient(
        "https://kling.test",
        ApiKeyCredentials("k"),
        clock=FakeClock(),
        transport=httpx.MockTransport(handler),
        jitter=lambda: 1.0,
        account="studio",
        on_request=lambda *args: heard.append(args),
    )
    assert client.fetch_packs() == []
    assert [(account, outcome) for account, outcome, _ in heard] == [
        ("studio", "timeout"),
        ("studio", "unreachable"),
        ("studio", "rate_limited"),
        ("studio", "error"),
        ("studio", "ok"),
    ]
    assert all(seconds >= 0 for _, _, seconds in heard)


def test_a_failing_hook_never_breaks_a_kling_call() -> None:
    """A hook that raises is ignored: the packs still arrive."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "code": 0,
            "message": "SUCCEED",
            "request_id": "r",
            "data": {"code": 0, "resource_pack_subscribe_infos": [make_pack()]},
        }
        return httpx.Response(200, json=body)

    def broken(account: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("broken hook")

    client = KlingClient(
        "https://kling.test",
        ApiKeyCredentials("k"),
        clock=FakeClock(),
        transport=httpx.MockTransport(handler),
        on_request=broken,
    )
    assert len(client.fetch_packs()) == 1
