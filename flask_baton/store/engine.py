"""flask_baton's own SQLAlchemy engines, SQLite's write lock, and riding out outages.

flask_baton talks to the app's database through an engine of its own (same
URL, separate pool). That lets it tune SQLite connections (WAL, busy timeout,
``synchronous``) and take write locks up front without changing how the host
app's ``db.session`` behaves. ``SqliteStore`` and ``PostgresStore`` build
their engines here.

SQLite notes. WAL lets readers (the dashboard) run while a consumer writes.
``synchronous=NORMAL`` in WAL mode never corrupts the database, but a power
loss or OS crash (not a process crash) can roll back the last transactions
committed before it; ``BATON_SQLITE_SYNCHRONOUS = "FULL"`` closes that window
at the price of an fsync per commit. Write transactions start with
``BEGIN IMMEDIATE``: a transaction that reads and then writes would otherwise
fail with "database is locked" when another writer got in between, without
waiting for the busy timeout.

No pre-ping on checkout (a round trip per transaction): a connection that
went stale fails its statement, SQLAlchemy discards it, and the callers that
matter retry through ``riding_out_outages``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from ..config import BatonConfig
from ..errors import ConfigError


def sqlite_engine(url: URL, config: BatonConfig) -> tuple[Engine, int]:
    """An engine for a SQLite file, its connections tuned; returns it and its busy timeout in ms."""
    if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
        raise ConfigError(
            f"flask_baton needs a file or server database, not an in-memory SQLite "
            f"database ({url!s}): consumers run in other threads and processes. "
            "Set SQLALCHEMY_DATABASE_URI or BATON_DATABASE_URI to a file."
        )
    engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=20, max_overflow=20)
    busy_ms = int(config.sqlite_busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {config.sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    _forget_pool_after_fork(engine)
    return engine, busy_ms


def postgres_engine(url: URL, config: BatonConfig, *, pooled: bool = True) -> Engine:
    """An engine for PostgreSQL whose connections use ``synchronous_commit`` as configured.

    ``pooled=False``: no pool, for connections a caller keeps (``kept``).

    ``off`` (the default) makes a commit return before its WAL record is on
    disk: a PostgreSQL crash (not a client's) can lose the last fraction of a
    second of transitions, never half of one, and never corrupts anything; the
    sweep then runs the steps whose completion was lost again. The same trade
    as SQLite's ``synchronous=NORMAL``; ``on`` costs an fsync per transition.
    """
    engine = create_engine(url, pool_size=10, max_overflow=20) if pooled else create_engine(url, poolclass=NullPool)
    level = config.postgres_synchronous_commit

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET synchronous_commit = {level}")
        dbapi_connection.commit()

    _forget_pool_after_fork(engine)
    return engine


def _forget_pool_after_fork(engine: Engine) -> None:
    """A forked consumer process must not share its parent's connections."""
    ref = weakref.ref(engine)

    def in_child() -> None:
        forked = ref()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=in_child)


#: First and longest pause between tries to take SQLite's write lock.
_LOCK_PAUSE = (0.0001, 0.002)


def begin_immediate(conn: Connection, busy_ms: int) -> None:
    """Take SQLite's write lock, trying again every fraction of a millisecond.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries, so a
    lock held for a millisecond costs its waiters several: under racing
    consumers that, not the work, sets the pace. Here the busy timeout is off
    while we spin, and restored for the transaction's own statements.
    """
    raw: Any = conn.connection.driver_connection
    deadline = time.monotonic() + busy_ms / 1000
    pause = _LOCK_PAUSE[0]
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, _LOCK_PAUSE[1])
    finally:
        raw.execute(f"PRAGMA busy_timeout = {busy_ms}")


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; its snapshot ends when the block does."""
    with engine.connect() as conn:
        yield conn
        conn.rollback()


T = TypeVar("T")
logger = logging.getLogger("flask_baton")
#: Waits between tries while the database is unreachable (about 8 s in all).
OUTAGE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


def riding_out_outages(action: Callable[[], T], what: str) -> T:
    """Run ``action``, trying again through a brief database outage.

    Used where flask_baton's own database access would otherwise turn a
    dropped connection into a failed step: recording an outcome, reading a
    step's inputs. If the database stays away, the last error propagates.
    """
    for delay in OUTAGE_RETRY_DELAYS:
        try:
            return action()
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            logger.warning("could not %s (%s); retrying in %ss", what, exc.__class__.__name__, delay)
            time.sleep(delay)
    return action()
