"""A relative SQLite path in flask_baton's config means the app's instance folder.

Flask-SQLAlchemy 3 reads ``sqlite:///app.db`` as ``<app.instance_path>/app.db``,
so a web process, ``flask baton worker`` and a cron job started from different
directories all open the same file. ``BATON_HUEY_URL`` and
``BATON_DATABASE_URI`` follow the same rule. The file's folder is created,
since SQLite will not create one ("unable to open database file").
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL


def instance_file(path: str, instance_path: str) -> str:
    """``path`` made absolute (a relative one lands in ``instance_path``), its folder created."""
    resolved = path if os.path.isabs(path) else os.path.join(instance_path, path)
    os.makedirs(os.path.dirname(resolved), exist_ok=True)
    return resolved


def sqlite_url_in_instance(url: URL, instance_path: str) -> URL:
    """A SQLite file URL with its path resolved by ``instance_file``; any other URL as given.

    In-memory databases and ``file:`` URIs are left alone (the engine refuses
    the former with its own message).
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return url
    return url.set(database=instance_file(database, instance_path))
