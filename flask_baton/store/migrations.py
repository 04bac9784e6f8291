"""Schema versions: creating flask_baton's tables, and upgrading an older install in place.

``SCHEMA_VERSION`` is recorded in ``baton_schema``; ``MIGRATIONS`` holds the
steps that bring an older install up to date, so ``create_schema`` is safe to
run on every deploy. ``Store.upgrade`` (``flask baton db upgrade``) runs
``upgrade_in`` in a transaction of its own; an app's Alembic migration
(``flask_baton.migration``) runs it in the migration's transaction. Either
way the store first serialises concurrent upgrades its own way.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, func, select, text

from .tables import attempts, metadata, nodes, schema_versions

#: The version ``create_schema`` brings a database to.
SCHEMA_VERSION = 3


def _add_dependents_version(conn: Connection) -> None:
    conn.execute(text(f"ALTER TABLE {nodes.name} ADD COLUMN dependents_version INTEGER NOT NULL DEFAULT 0"))


def _add_attempts(conn: Connection) -> None:
    attempts.create(conn)


#: version -> function that upgrades a database from ``version - 1``.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _add_dependents_version, 3: _add_attempts}


def current_version(conn: Connection) -> int:
    """Return the recorded schema version, 0 when flask_baton is not installed."""
    if not conn.dialect.has_table(conn, schema_versions.name):
        return 0
    return int(conn.execute(select(func.coalesce(func.max(schema_versions.c.version), 0))).scalar_one())


def upgrade_in(conn: Connection, now: float) -> tuple[int, int]:
    """Create or upgrade the tables in the caller's transaction; return (from, to) versions.

    The caller has made sure no other upgrade runs at the same time.
    """
    found = current_version(conn)
    if found == 0:
        metadata.create_all(conn)
    else:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
    if found < SCHEMA_VERSION:
        conn.execute(schema_versions.insert(), {"version": SCHEMA_VERSION, "applied_at": now})
    return found, SCHEMA_VERSION


def drop_all(conn: Connection) -> None:
    """Drop every flask_baton table, with every workflow in them; tables already gone are skipped."""
    metadata.drop_all(conn)
