"""Build a Huey instance from ``BATON_HUEY_URL`` when the app gives none."""

from __future__ import annotations

import os

from huey import Huey, RedisHuey, SqliteHuey

from .errors import ConfigError


def huey_from_url(url: str, name: str) -> Huey:
    """``sqlite:///path`` gives a ``SqliteHuey``, ``redis://...`` a ``RedisHuey``."""
    if url.startswith("sqlite:///"):
        filename = url[len("sqlite:///") :]
        if not filename:
            raise ConfigError(f"BATON_HUEY_URL {url!r} names no file")
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        return SqliteHuey(name, filename=filename, results=False)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    raise ConfigError(f"BATON_HUEY_URL must be sqlite:///path or redis://..., got {url!r}")
