"""flask_baton's tables and the app's Alembic migrations: kept apart, or installed by one.

Why this exists: flask_baton's tables live in the app's database but not in
its ``db.metadata`` (store/tables.py), so Alembic's autogenerate (``flask db
migrate``) sees them as tables the models dropped and writes a migration
that drops all of them; ``flask db upgrade`` would then delete every workflow.

Three ways in, for three kinds of app:

- Flask-Migrate: nothing to do. ``Baton.init_app`` calls ``protect`` that puts
  ``include_name`` into the ``configure_args`` Flask-Migrate's generated
  ``env.py`` passes to ``context.configure``, whether ``Migrate`` is
  registered before ``Baton`` (installed at once) or after (installed when
  the app's next context is pushed, which every ``flask db`` command does).
  An ``include_name`` the app gave ``Migrate(...)`` is kept and still asked.
- Plain Alembic: pass ``include_name`` (below) to ``context.configure``.
- Installing flask_baton's schema from the app's own migration: call
  ``upgrade(op)`` / ``downgrade(op)`` from its ``upgrade()`` / ``downgrade()``.

``include_name`` rather than ``include_object``: the tables are then not even
reflected, so autogenerate compares nothing of ours (columns, indexes, the
partial unique index) and costs no queries for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, appcontext_pushed
from sqlalchemy import Connection

from .errors import SetupError
from .store import upgrade_in
from .store.migrations import drop_all
from .store.tables import TABLE_NAMES

#: Alembic's ``include_name(name, type_, parent_names) -> bool``.
NameFilter = Callable[[Any, str, Any], bool]

#: The key Flask-Migrate registers itself under in ``app.extensions``.
MIGRATE_EXTENSION = "migrate"


@dataclass(frozen=True)
class SkipBatonTables:
    """An Alembic ``include_name`` that leaves flask_baton's tables out.

    ``also`` is the app's own filter, if it has one: a name ours lets through
    is then kept only if ``also`` keeps it too.
    """

    also: NameFilter | None = None

    def __call__(self, name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table" and name in TABLE_NAMES:
            return False
        return self.also is None or bool(self.also(name, type_, parent_names))


#: For plain Alembic: ``context.configure(..., include_name=include_name)``.
#: With a filter of your own: ``include_name=SkipBatonTables(also=your_filter)``.
include_name = SkipBatonTables()


def protect(app: Flask) -> None:
    """Keep Flask-Migrate's autogenerate for ``app`` away from flask_baton's tables.

    Installs the filter now if Flask-Migrate is registered, and again on every
    app context pushed for ``app``: ``Migrate.init_app`` may come later, and
    replaces its ``configure_args`` each time it runs. Connected by sender,
    with a module-level receiver, so the signal keeps no app alive.
    """
    _install(app)
    appcontext_pushed.connect(_install, app)


def _install(app: Flask, **_signal_kwargs: Any) -> None:
    """Wrap the ``include_name`` in Flask-Migrate's ``configure_args`` (once)."""
    configure_args = getattr(app.extensions.get(MIGRATE_EXTENSION), "configure_args", None)
    if not isinstance(configure_args, dict):
        return
    current = configure_args.get("include_name")
    if not isinstance(current, SkipBatonTables):
        configure_args["include_name"] = SkipBatonTables(also=current)


class Operations(Protocol):
    """What ``upgrade`` and ``downgrade`` use of Alembic's ``op``."""

    def get_bind(self) -> Any: ...


def upgrade(op: Operations) -> tuple[int, int]:
    """Create or upgrade flask_baton's tables from an Alembic migration's ``upgrade()``.

    Runs in the migration's own connection and transaction, through the same
    idempotent steps as ``flask baton db upgrade``: a later migration may call
    it again after upgrading flask_baton, and it does what is left to do.
    Returns the (from, to) schema versions.
    """
    return upgrade_in(_connection(op), time.time())


def downgrade(op: Operations) -> None:
    """Drop flask_baton's tables, with every workflow in them (a migration's ``downgrade()``).

    Tables already gone are skipped, so two migrations may both call it.
    """
    drop_all(_connection(op))


def _connection(op: Operations) -> Connection:
    conn = op.get_bind()
    if not isinstance(conn, Connection):  # offline mode gives a mock that only records SQL
        raise SetupError(
            "flask_baton.migration needs a database connection: it reads the installed schema "
            "version, so offline migrations (`--sql`) cannot install it; run `flask baton db "
            "upgrade` against the database instead"
        )
    return conn
