"""A relative SQLite path in flask_baton's config means the app's instance folder.

Flask-SQLAlchemy 3 reads ``sqlite:///app.db`` as ``<app.instance_path>/app.db``,
so a web process, ``flask baton worker`` and a cron job started from different
directories all open the same file. ``BATON_HUEY_URL`` (``huey_factory``) and
``BATON_DATABASE_URI`` (``SqliteStore.open``) follow the same rule. The
file's folder is created, since SQLite will not create one ("unable to open
database file").
"""

from __future__ import annotations

import os


def instance_file(path: str, instance_path: str) -> str:
    """``path`` made absolute (a relative one lands in ``instance_path``), its folder created."""
    resolved = path if os.path.isabs(path) else os.path.join(instance_path, path)
    os.makedirs(os.path.dirname(resolved), exist_ok=True)
    return resolved
