"""Build a Huey instance from ``BATON_HUEY_URL`` when the app gives none."""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey

from .errors import ConfigError
from .sqlite_paths import instance_file


def huey_from_url(url: str, name: str, instance_path: str) -> Huey:
    """``sqlite:///path`` gives a ``SqliteHuey``, ``redis://...`` a ``RedisHuey``.

    A relative SQLite path is a file in the app's instance folder, as
    Flask-SQLAlchemy reads ``sqlite:///app.db``: every process of the app
    finds the same queue whatever its working directory.
    """
    if url.startswith("sqlite:///"):
        filename = url[len("sqlite:///") :]
        if not filename:
            raise ConfigError(f"BATON_HUEY_URL {url!r} names no file")
        return SqliteHuey(name, filename=instance_file(filename, instance_path), results=False)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    raise ConfigError(f"BATON_HUEY_URL must be sqlite:///path or redis://..., got {url!r}")
