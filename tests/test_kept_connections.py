"""PostgreSQL: each worker thread's single-statement changes go over one connection it keeps.

The claim and the completion of a step are one statement each; a thread
sends them over a connection of its own, kept open in autocommit, instead of
taking one from the pool per statement (``flask_baton/store/kept.py``). What
that must not cost: a dropped connection is still ridden out, a forked child
never touches its parent's sessions, and ``Baton.close`` closes them all.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, create_engine, text
from sqlalchemy import exc as sa_exc

from flask_baton.store.engine import riding_out_outages

from .conftest import POSTGRES_URL
from .support import wait_for

pytestmark = pytest.mark.parametrize("settings", ["postgres-redis"], indirect=True)


def _backend(conn: Connection) -> int:
    return int(conn.connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]


def _single_statement_change(app: Flask) -> tuple[Connection, int]:
    """A claim (of a step that does not exist) as a consumer sends it; the connection and its backend."""
    store = app.extensions["baton"].store
    with store.write(autocommit=True) as conn:
        assert store.claim(conn, "no-such-step", "test-worker", time.time()) is None
        assert conn.connection.driver_connection.autocommit  # type: ignore[union-attr]
        return conn, _backend(conn)


def _in_thread(action: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(action()))
    thread.start()
    thread.join()
    return result[0]


def _terminate(pid: int) -> None:
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def _alive(pid: int) -> bool:
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            return bool(conn.execute(query, {"pid": pid}).scalar_one())
    finally:
        admin.dispose()


def test_a_thread_keeps_one_connection_of_its_own_for_its_single_statement_changes(app: Flask) -> None:
    pool = app.extensions["baton"].store.engine.pool
    first, backend = _single_statement_change(app)
    again, same_backend = _single_statement_change(app)
    assert (again, same_backend) == (first, backend)
    assert pool.checkedout() == 0  # none taken from the shared pool, none left out of it
    other, other_backend = _in_thread(lambda: _single_statement_change(app))
    assert other is not first and other_backend != backend


def test_a_kept_connection_the_server_dropped_is_ridden_out_on_a_new_one(app: Flask) -> None:
    _, backend = _single_statement_change(app)
    _terminate(backend)
    wait_for(lambda: not _alive(backend), f"backend {backend} to end")
    with pytest.raises(sa_exc.OperationalError):  # as from the pool: what riding_out_outages retries
        _single_statement_change(app)
    _, backend_after = riding_out_outages(lambda: _single_statement_change(app), "run a change")
    assert backend_after != backend
    _terminate(backend_after)
    wait_for(lambda: not _alive(backend_after), f"backend {backend_after} to end")
    _, recovered = riding_out_outages(lambda: _single_statement_change(app), "run a change")
    assert recovered not in (backend, backend_after)


def test_a_forked_child_leaves_its_parent_s_kept_connection_alone(app: Flask) -> None:
    # Only the store refers to the connection: in the child, dropping it there frees it.
    backend = _single_statement_change(app)[1]
    child = os.fork()
    if child == 0:  # the child: work on a connection of its own, close the store, exit
        status = 1
        try:
            gc.collect()
            own = _single_statement_change(app)[1]
            app.extensions["baton"].store.close()
            status = 0 if own != backend else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _single_statement_change(app)[1] == backend  # still alive: the child never closed it


def test_close_closes_every_thread_s_kept_connection(app: Flask) -> None:
    kept = [_single_statement_change(app), _in_thread(lambda: _single_statement_change(app))]
    app.extensions["baton"].store.close()
    assert all(conn.closed for conn, _ in kept)
    for _, backend in kept:
        wait_for(lambda backend=backend: not _alive(backend), f"backend {backend} to end")
