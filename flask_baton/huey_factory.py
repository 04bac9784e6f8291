"""Build a Huey instance from ``BATON_HUEY_URL`` when the app gives none."""

from __future__ import annotations

from huey import Huey, RedisHuey

from . import huey_compat
from .errors import ConfigError
from .sqlite_paths import instance_file


def huey_from_url(url: str, name: str, instance_path: str, sqlite_synchronous: str) -> Huey:
    """``sqlite:///path`` gives a ``SqliteHuey``, ``redis://...`` a ``RedisHuey``.

    A relative SQLite path is a file in the app's instance folder, as
    Flask-SQLAlchemy reads ``sqlite:///app.db``: every process of the app
    finds the same queue whatever its working directory. The file runs at
    ``sqlite_synchronous``, flask_baton's own database's level: Huey's
    default fsyncs every enqueue and dequeue, which a queue the sweep
    refills does not need (``huey_compat.sqlite_huey``).
    """
    if url.startswith("sqlite:///"):
        filename = url[len("sqlite:///") :]
        if not filename:
            raise ConfigError(f"BATON_HUEY_URL {url!r} names no file")
        return huey_compat.sqlite_huey(name, instance_file(filename, instance_path), sqlite_synchronous)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    raise ConfigError(f"BATON_HUEY_URL must be sqlite:///path or redis://..., got {url!r}")
