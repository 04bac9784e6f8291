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
from contextlib import AbstractContextManager, contextmanager, suppress
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

    @contextmanager
    def write(self, *, autocommit: bool = False) -> Iterator[Connection]:
        """One short write transaction: commit on success, roll back on error.

        On SQLite it takes the write lock at BEGIN, so compare-and-set updates
        never fail half-way with "database is locked". ``autocommit``
        (PostgreSQL only; ignored elsewhere) is for a caller whose every
        statement is a whole change by itself: no BEGIN and COMMIT around
        them, so a single-statement transition costs one round trip, not three.
        """
        with self.engine.connect() as conn:
            unwrapped = self._begin(conn, autocommit)
            # Begun explicitly: statements sent straight to the driver (hotpath)
            # must still be committed by conn.commit().
            conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            finally:
                if unwrapped:
                    # Back to transactions for the next user; a connection broken
                    # on the way refuses, and SQLAlchemy discards it anyway.
                    with suppress(Exception):
                        conn.connection.driver_connection.autocommit = False  # type: ignore[union-attr]
            conn.commit()

    def read(self) -> AbstractContextManager[Connection]:
        """A connection for reads; its snapshot ends when the block does."""
        return read_connection(self.engine)

    @abstractmethod
    def _begin(self, conn: Connection, autocommit: bool) -> bool:
        """Start a write transaction the database's way; True if the connection was put in autocommit."""

    @abstractmethod
    def _insert_or_skip(self, table: Table) -> Any:
        """The database's ``INSERT`` into ``table`` that takes ``ON CONFLICT`` clauses."""

    @abstractmethod
    def atomic(self, conn: Connection) -> AbstractContextManager[Any]:
        """The statements in the block are one change, even on a connection in autocommit."""

    def _run(self, conn: Connection, sql: str, params: dict[str, Any], names: Sequence[str] = ()) -> Any:
        """Execute a ``hotpath`` statement in ``conn``'s transaction; return the DBAPI cursor."""
        return hotpath.execute(conn, sql, params, self.pyformat, names)
