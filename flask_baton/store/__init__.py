"""Every SQL statement flask_baton sends: the ``Store`` of each database, and the reads.

``open_store`` picks the store once, in ``init_app``, from the URL's dialect
and driver, and refuses any other before the engine is made. Outside this
package no module of flask_baton writes SQL, builds a statement or asks which
database it talks to.

- ``tables``: the tables, the one place their names are written;
- ``migrations``: schema versions and in-place upgrades;
- ``engine``: engines, SQLite's write lock, riding out outages; ``kept``:
  each thread's own connection for single-statement changes (PostgreSQL);
- ``core`` / ``base``: the transactions, and the ``Store`` contract joining
  the write-side statements by concern (``inserts``, ``steps``, ``attempts``,
  ``sweep``, ``control``, ``maintenance``, ``consumers``: heartbeats; ``schedules``: schedules' ticks;
  ``hotpath``: the statements every step sends as plain SQL);
- ``sqlite`` / ``postgres``: what each database does its own way, and what
  each transition costs there in round trips;
- ``workflow_reads`` / ``step_reads``: the read models (workflows, status,
  pages; steps, outlines, and the loaders a transition calls in its own
  transaction), with ``attempts`` reading a step's runs back; ``usage``: model-call
  usage rows, their totals and debug captures; ``stats``: the overview's
  aggregates over a time range, the queues' consumers and what they run;
  ``feed``: the database event feed.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from ..config import BatonConfig
from ..errors import ConfigError
from .base import Completion, Store, Tx
from .control import Busy, UniqueKeyTaken
from .maintenance import PruneReport
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = [
    "Busy",
    "Completion",
    "PostgresStore",
    "PruneReport",
    "SqliteStore",
    "Store",
    "Tx",
    "UniqueKeyTaken",
    "open_store",
    "store_class",
    "upgrade_in",
]

STORES: tuple[type[Store], ...] = (SqliteStore, PostgresStore)

#: Why only these: said when another database or driver is configured.
_WHY = (
    "flask_baton supports SQLite (sqlite:///path, Python's sqlite3) and PostgreSQL through psycopg 3 "
    "(postgresql+psycopg://..., pip install 'flask-baton[postgres]'). Its transitions need what these two "
    "give: UPDATE ... RETURNING and INSERT ... ON CONFLICT on a partial unique index (MySQL has neither), "
    "SQLite's BEGIN IMMEDIATE, and on PostgreSQL psycopg 3's driver-level autocommit switch and "
    "transaction() blocks, which run a step's claim and completion as single statements (psycopg2 has no "
    "transaction() block)"
)


def store_class(url: URL) -> type[Store]:
    """The store for ``url``; ``ConfigError`` naming the supported databases and drivers if none fits.

    Decided from the URL alone, before an engine is made (making one imports
    the driver, which may not even be installed).
    """
    found = (url.get_backend_name(), url.get_driver_name())
    for store in STORES:
        if store.dialect == found:
            return store
    hint = ""
    if found[0] == "postgresql":
        hint = f"; write the URL as {url.set(drivername='postgresql+psycopg').render_as_string(hide_password=True)}"
    raise ConfigError(
        f"flask_baton cannot use {url.render_as_string(hide_password=True)} ({found[0]} through {found[1]}). "
        f"{_WHY}{hint}."
    )


def open_store(url: URL, config: BatonConfig, instance_path: str) -> Store:
    """The store for ``url`` on an engine of its own (``ConfigError`` for an unsupported database).

    ``instance_path``: the app's instance folder, where a relative SQLite path goes.
    """
    return store_class(url).open(url, config, instance_path)


def upgrade_in(conn: Connection, now: float) -> tuple[int, int]:
    """Create or upgrade the tables in the caller's transaction (an Alembic migration's); (from, to) versions."""
    return store_class(conn.engine.url).upgrade_in(conn, now)
