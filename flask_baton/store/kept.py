"""One connection per thread, kept open in the driver's autocommit, for changes made of single statements.

On PostgreSQL a step's claim and its completion are one statement each
(``PostgresStore``). Taken from the pool, each such statement also paid a
checkout, switching the driver to autocommit and back, SQLAlchemy's
transaction bookkeeping and a check-in: more of the worker's CPU than the
statement itself. Instead each worker thread keeps a connection of its own,
always in autocommit, from an engine without a pool (``NullPool``), so a
consumer with many threads never takes every connection of the shared pool.

A dropped connection fails its statement as a pooled one did: the connection
is thrown away and the error raised as SQLAlchemy's, so the callers that ride
out outages (``engine.riding_out_outages``) try again on a new one.

After a fork, the child opens its own. Its copies of the parent's
connections forget their socket, which the parent still uses: closing them,
which the garbage collector would otherwise do, would end the parent's
sessions.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import ConnectionPoolEntry


class KeptConnections:
    """Each thread's own connection on ``engine`` (which should pool nothing), in autocommit."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        # By thread (or greenlet) ident, which is reused only after its thread ended: a
        # consumer's fixed set of workers keeps a fixed set of connections. None is
        # closed before ``close``, so none is ever closed under a thread still using it.
        self._kept: dict[int, Connection] = {}
        self._entries: list[Any] = []  # the pool entries (ConnectionPoolEntry) of those connections
        event.listen(engine, "connect", self._opened)
        ref = weakref.ref(self)

        def in_child() -> None:
            kept = ref()
            if kept is not None:
                kept._forget()

        os.register_at_fork(after_in_child=in_child)

    @contextmanager
    def use(self) -> Iterator[Connection]:
        """This thread's connection, for statements that are each a whole change."""
        conn = self._kept.get(threading.get_ident())
        if conn is None or conn.invalidated or conn.closed:
            conn = self._open()
        try:
            yield conn
            if conn.in_transaction():  # a statement sent through SQLAlchemy began one
                conn.commit()
        except BaseException as error:
            self._drop_if_broken(conn, error)
            raise

    def close(self) -> None:
        """Close every thread's connection (the app is done with)."""
        with self._lock:
            kept, self._kept, self._entries = list(self._kept.values()), {}, []
        for conn in kept:
            conn.close()

    def _open(self) -> Connection:
        conn = self._engine.connect()
        conn.connection.driver_connection.autocommit = True  # type: ignore[union-attr]
        with self._lock:
            self._kept[threading.get_ident()] = conn
            self._entries = [entry for entry in self._entries if entry.dbapi_connection is not None]
        return conn

    def _opened(self, _dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def _drop_if_broken(self, conn: Connection, error: BaseException) -> None:
        """Throw ``conn`` away if ``error`` broke it, raising a driver's error as SQLAlchemy's then.

        Statements sent straight to the driver (``hotpath``) raise the
        driver's errors, which SQLAlchemy never saw: those that mean the
        connection is gone become SQLAlchemy's, as they would from the pool.
        """
        dialect = self._engine.dialect
        driver_error: Any = error if isinstance(error, dialect.loaded_dbapi.Error) else None
        raw = None if conn.invalidated else conn.connection.dbapi_connection
        if driver_error is not None and dialect.is_disconnect(driver_error, raw, None):
            conn.invalidate(driver_error)
        if not conn.invalidated:
            if conn.in_transaction():
                conn.rollback()
            return
        with self._lock:
            if self._kept.get(threading.get_ident()) is conn:
                del self._kept[threading.get_ident()]
        conn.close()
        if driver_error is not None:
            raise sa_exc.DBAPIError.instance(
                None, None, driver_error, dialect.loaded_dbapi.Error, connection_invalidated=True, dialect=dialect
            ) from error

    def _forget(self) -> None:
        """In a forked child: leave the parent's connections to the parent, open new ones here."""
        for entry in self._entries:
            entry.dbapi_connection = None
        self._lock = threading.Lock()
        self._kept, self._entries = {}, []
