"""Fixtures: one app per test on its own database and queue, per backend.

``sqlite``: files under the test's tmp_path (the embedded default).
``postgres-redis``: a fresh PostgreSQL schema and a unique Huey name on
Redis, so tests never see each other's rows or messages. Without those
services a laptop run skips them, saying why; with ``CI`` set they must be up.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from flask import Flask

from .apps import open_app
from .browser import LaunchedBrowser, launch_browser
from .steps import baton
from .support import ThreadConsumer
from .test_dashboard_live import LiveServer

POSTGRES_URL = os.environ.get("BATON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BATON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip (or, under CI, fail) a test whose service is not reachable."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url} (set BATON_TEST_{name.upper()}_URL or start it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI requires it")
    pytest.skip(message)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


def sqlite_settings(tmp_path: Path, ledger_path: Path) -> dict[str, Any]:
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}",
        "BATON_HUEY_URL": f"sqlite:///{tmp_path / 'huey.db'}",
        "TEST_LEDGER": str(ledger_path),
    }


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    require_service("postgres", POSTGRES_URL, 5432)
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def redis_huey_name() -> Iterator[str]:
    """A Huey name (its Redis key prefix) no other test uses; flushed afterwards."""
    require_service("redis", REDIS_URL, 6379)
    import redis

    name = f"baton-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["sqlite", "postgres-redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, ledger_path: Path) -> dict[str, Any]:
    """App config for one backend; each test gets fresh storage.

    ``postgres-redis`` is the production pairing: PostgreSQL, RedisHuey and
    events over Redis Streams (where PostgreSQL runs transitions without a
    transaction around them). Tests of the database feed ask for it.
    """
    if request.param == "sqlite":
        return sqlite_settings(tmp_path, ledger_path)
    database_url = request.getfixturevalue("postgres_schema")
    huey_name = request.getfixturevalue("redis_huey_name")
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "BATON_HUEY_URL": REDIS_URL,
        "BATON_HUEY_NAME": huey_name,
        "BATON_PUBSUB_URL": REDIS_URL,
        "BATON_PUBSUB_PREFIX": f"{huey_name}:",
        "TEST_LEDGER": str(ledger_path),
    }


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Extra config for the ``app`` fixture; a test module overrides this fixture."""
    return {}


@pytest.fixture
def app(settings: dict[str, Any], app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """A Flask app with flask_baton installed on fresh storage, in an app context."""
    with open_app({**settings, **app_overrides}) as app, app.app_context():
        baton.create_schema()
        yield app


@pytest.fixture
def consumer(app: Flask) -> Iterator[ThreadConsumer]:
    """A running Huey consumer with 4 worker threads for the app."""
    with ThreadConsumer(app, workers=4) as running:
        yield running


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app served on a free port of 127.0.0.1 in a thread (the dashboard's websocket included)."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[LaunchedBrowser]:
    """Chromium, closed before the server stops (its sockets must go first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, launch_browser(playwright) as launched:
        yield launched
