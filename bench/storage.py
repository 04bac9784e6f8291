"""Fresh, isolated storage for one benchmark run, removed at the end.

``sqlite``: SQLite files in a temporary directory (app DB and one Huey file
per system). ``redis``: a fresh PostgreSQL schema for the app DB (selected
with ``?options=-csearch_path%3D<schema>``) and unique Huey names on Redis.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Storage:
    """One storage backend's settings for both systems."""

    kind: str  # "sqlite" or "redis"
    workdir: Path
    #: How the consumers reach the servers, when not directly (``--netem``).
    network: str = ""
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    _schemas: list[str] = field(default_factory=list)
    _huey_names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        label = (
            "SQLite (SqliteHuey + SQLite app DB)" if self.kind == "sqlite" else "Redis (RedisHuey + PostgreSQL app DB)"
        )
        return f"{label}, consumers behind {self.network}" if self.network else label

    @property
    def short(self) -> str:
        short = "sqlite" if self.kind == "sqlite" else "redis+pg"
        return f"{short}, {self.network}" if self.network else short

    def _database_url(self, purpose: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{purpose}-app.db'}"
        schema = f"bench_{self.tag}_{purpose}"
        from sqlalchemy import create_engine, text

        admin = create_engine(POSTGRES_URL)
        try:
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        finally:
            admin.dispose()
        self._schemas.append(schema)
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}&application_name={self.application_name(purpose)}"

    def application_name(self, purpose: str) -> str:
        """What PostgreSQL shows for this purpose's connections (``bench/meter.py``
        charges a system the CPU of its own backends only)."""
        return f"bench_{self.tag}_{purpose}"

    def _huey(self, purpose: str) -> tuple[str, str]:
        """(BATON_HUEY_URL-style URL, Huey name)."""
        name = f"bench-{self.tag}-{purpose}"
        self._huey_names.append(name)
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{purpose}-huey.db'}", name
        return REDIS_URL, name

    def baton_settings(self, purpose: str) -> dict[str, Any]:
        """App config for a flask_baton app on fresh storage."""
        huey_url, huey_name = self._huey(purpose)
        settings = {
            "SQLALCHEMY_DATABASE_URI": self._database_url(purpose),
            "BATON_HUEY_URL": huey_url,
            "BATON_HUEY_NAME": huey_name,
        }
        if self.kind != "sqlite":
            # As in production on PostgreSQL + Redis: events over Redis pub/sub.
            settings |= {"BATON_PUBSUB_URL": REDIS_URL, "BATON_PUBSUB_PREFIX": f"{huey_name}:"}
        return settings

    def raw_target(self, purpose: str) -> tuple[str, str, str]:
        """(kind, Huey name, file or URL) for a raw Huey on this storage."""
        url, name = self._huey(purpose)
        if self.kind == "sqlite":
            return "sqlite", name, url[len("sqlite:///") :]
        return "redis", name, url

    def cleanup(self) -> None:
        """Drop the schemas and Redis keys this run made (files go with the workdir)."""
        errors = []
        if self._schemas:
            try:
                from sqlalchemy import create_engine, text

                admin = create_engine(POSTGRES_URL)
                try:
                    with admin.begin() as conn:
                        for schema in self._schemas:
                            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                finally:
                    admin.dispose()
                self._schemas.clear()
            except Exception as exc:
                errors.append(f"dropping schemas {self._schemas}: {exc}")
        if self.kind == "redis" and self._huey_names:
            try:
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                try:
                    for name in self._huey_names:
                        keys = list(client.scan_iter(match=f"*{name}*"))
                        if keys:
                            client.delete(*keys)
                finally:
                    client.close()
                self._huey_names.clear()
            except Exception as exc:
                errors.append(f"deleting Redis keys: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))


def make_workdir(keep: bool) -> tuple[Path, bool]:
    path = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    return path, keep


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
