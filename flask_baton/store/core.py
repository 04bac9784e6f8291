"""What every part of a store builds on: its engine, its transactions, the driver-level runner.

The statement modules (``inserts``, ``steps``, ``sweep``, ``control``,
``maintenance``, ``consumers``) are mixins of ``StoreCore``; ``Store`` (``base.py``) joins
them into the contract, and ``SqliteStore`` / ``PostgresStore`` fill in what
their database does its own way: how a write transaction starts, the
parameter style, the few statements written for one database only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table

from . import hotpath
from .engine import read_connection


class StoreCore(ABC):
    """One database's engine and the transactions flask_baton runs on it."""

    #: The driver takes ``%(name)s`` parameters (psycopg), not ``:name`` (sqlite3).
    pyformat: ClassVar[bool] = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: Set by ``close``: background threads (the heartbeat) stop using the
        #: store, since a connection they opened after it would never be closed.
        self.closed = False

    def write(self, *, autocommit: bool = False) -> AbstractContextManager[Connection]:
        """One short write transaction: commit on success, roll back on error.

        On SQLite it takes the write lock at BEGIN, so compare-and-set updates
        never fail half-way with "database is locked". ``autocommit``
        (PostgreSQL only; ignored elsewhere) is for a caller whose every
        statement is a whole change by itself: no BEGIN and COMMIT around
        them, so a single-statement transition costs one round trip, not three.
        """
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            self._begin(conn)
            # Begun explicitly: statements sent straight to the driver (hotpath)
            # must still be committed by conn.commit().
            conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def read(self) -> AbstractContextManager[Connection]:
        """A connection for reads; its snapshot ends when the block does."""
        return read_connection(self.engine)

    def close(self) -> None:
        """Close every connection this store holds."""
        self.closed = True
        self.engine.dispose()

    @abstractmethod
    def _begin(self, conn: Connection) -> None:
        """Start a write transaction the database's way (before SQLAlchemy's ``begin``)."""

    @abstractmethod
    def _insert_or_skip(self, table: Table) -> Any:
        """The database's ``INSERT`` into ``table`` that takes ``ON CONFLICT`` clauses."""

    @abstractmethod
    def atomic(self, conn: Connection) -> AbstractContextManager[Any]:
        """The statements in the block are one change, even on a connection in autocommit."""

    def _run(self, conn: Connection, sql: str, params: dict[str, Any], names: Sequence[str] = ()) -> Any:
        """Execute a ``hotpath`` statement in ``conn``'s transaction; return the DBAPI cursor."""
        return hotpath.execute(conn, sql, params, self.pyformat, names)
