"""Is flask_baton's schema installed and current in this database? Asked once per process.

Without this, a database nobody ran ``flask baton db upgrade`` on answers
with the driver's "no such table: baton_workflows": a 500 page, a traceback
on every sweep. The check costs two small reads the first time an app
touches its tables (an insert, a query, a CLI command, a dashboard page, a
consumer starting); once it passed it is a flag test, so steps pay nothing
for it. A failed check is not remembered: after ``flask baton db upgrade``
a running web process works again without a restart.

A schema newer than this code is accepted: during a rolling deploy,
consumers of the previous release keep running on upgraded tables.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from .errors import SchemaError
from .store import Store, migrations


def database_label(url: URL) -> str:
    """The database as messages name it: its URL with the password masked."""
    return url.render_as_string(hide_password=True)


class SchemaCheck:
    """Checks one store's recorded schema version until it is found current."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._current = False

    def ensure(self) -> None:
        """Raise ``SchemaError`` unless the tables are installed at the version this code needs."""
        if self._current:
            return
        installed = self._store.installed_version()
        if installed < migrations.SCHEMA_VERSION:
            raise SchemaError(database_label(self._store.engine.url), installed, migrations.SCHEMA_VERSION)
        self._current = True
