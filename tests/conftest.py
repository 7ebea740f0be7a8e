from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.services import Services, build_services
from bot.slack.app import build_app
from bot.slack.server import BackgroundHttpServer
from tests.stand_ins.kling import ACCESS_KEY, SECRET_KEY, FakeKling, make_pack
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack


@pytest.fixture
def kling() -> Iterator[FakeKling]:
    with FakeKling(packs=[make_pack()]) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def bot_env(kling: FakeKling, slack: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "KLING_API_BASE": kling.url,
        "KLING_ACCESS_KEY": ACCESS_KEY,
        "KLING_SECRET_KEY": SECRET_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        **extra,
    }


@dataclass
class RunningBot:
    url: str
    services: Services
    slack: FakeSlack
    kling: FakeKling
    http: httpx.Client

    def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)


def start_bot(kling: FakeKling, slack: FakeSlack, database_url: str, **env: str) -> Iterator[RunningBot]:
    settings = Settings.from_env(bot_env(kling, slack, DATABASE_URL=database_url, **env), need_slack=True)
    services = build_services(settings, with_store=True)
    app = build_app(services)
    server = BackgroundHttpServer(app).start()
    try:
        with httpx.Client(timeout=30) as client:
            yield RunningBot(server.url, services, slack, kling, client)
    finally:
        server.stop()
        services.close()


# Modules whose tests run on PostgreSQL too, when TEST_POSTGRES_URL names a server
# (.ci/run starts one): the store and the alerting scenarios, where SQL dialects differ.
POSTGRES_MODULES = {
    "test_store",
    "test_alerts_scenarios",
    "test_digest",
    "test_alert_defects",
    "test_upgrade",
    "test_accounts",
    "test_exactly_once",
    "test_notify",
    "test_replicas",
    "test_shared_kling_calls",
}


def pytest_generate_tests(metafunc: Any) -> None:
    if "database_url" in metafunc.fixturenames:
        engines = ["sqlite"]
        if os.environ.get("TEST_POSTGRES_URL") and metafunc.module.__name__.rsplit(".", 1)[-1] in POSTGRES_MODULES:
            engines.append("postgresql")
        metafunc.parametrize("database_engine", engines, indirect=False)


@pytest.fixture
def database_url(tmp_path: Path, database_engine: str) -> Iterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a new PostgreSQL database."""
    if database_engine == "sqlite":
        yield f"sqlite:///{tmp_path / 'kling-bot.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bot.store.db import normalize_url

    admin_url = normalize_url(os.environ["TEST_POSTGRES_URL"])
    name = f"kling_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def running_bot(kling: FakeKling, slack: FakeSlack, database_url: str, request: Any) -> Iterator[RunningBot]:
    """The bot in HTTP mode against the stand-ins; `@pytest.mark.bot_env(KEY=value)` adds settings."""
    marker = request.node.get_closest_marker("bot_env")
    yield from start_bot(kling, slack, database_url, **(marker.kwargs if marker else {}))


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "bot_env(**settings): extra environment for the running_bot fixture")
