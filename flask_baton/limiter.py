"""Where the buckets of ``BATON_RATE_LIMITS`` live, shared by every consumer on every host.

Redis when there is one (``BATON_PUBSUB_URL``, else a Redis Huey's own
connection), the database otherwise. Either way a change is atomic: the
bucket is read, changed by the pure ``buckets`` functions and written back
with nothing else changing it in between (a row lock; a ``WATCH``ed key whose
``MULTI``/``EXEC`` fails, and is tried again, if another consumer wrote it
first). Both keep the same JSON, so the arithmetic is written once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from huey import Huey

from . import huey_compat
from .buckets import Bucket
from .config import BatonConfig
from .store import Store

T = TypeVar("T")


class Limiter(ABC):
    """One app's buckets: change one atomically, read them all."""

    @abstractmethod
    def change(self, key: str, edit: Callable[[Bucket, float], T]) -> T:
        """``edit(bucket, now)`` ``key``'s bucket atomically and return its value.

        ``now`` is read once the bucket is held, so the times written in a
        bucket follow the order its changes took. ``edit`` may run more than
        once (Redis tries again when another consumer changed the bucket first).
        """

    @abstractmethod
    def buckets(self) -> dict[str, Bucket]:
        """Every bucket by key (the sweep's reclaim, the CLI and the dashboard)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the limiter holds."""


class DatabaseLimiter(Limiter):
    """Buckets as rows of ``baton_rate_buckets``, changed under a row lock (``store.buckets``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def change(self, key: str, edit: Callable[[Bucket, float], T]) -> T:
        def on_text(text: str | None) -> tuple[str, T]:
            bucket = Bucket.loads(text)
            value = edit(bucket, time.time())
            return bucket.dumps(), value

        return self._store.change_bucket(key, on_text, time.time())

    def buckets(self) -> dict[str, Bucket]:
        return {key: Bucket.loads(text) for key, text in self._store.bucket_states()}

    def close(self) -> None:
        """Nothing of its own: the store's engine is closed with the store."""


class RedisLimiter(Limiter):
    """Buckets as Redis strings under ``prefix``, changed in ``WATCH``/``MULTI`` transactions.

    A bucket untouched for a day expires. ``prefix + "keys"`` is a set of
    the keys in use, for ``buckets``.
    """

    IDLE_TTL = 86400

    def __init__(self, client: Any, prefix: str, owned: bool) -> None:
        self._client = client
        self._prefix = prefix
        self._owned = owned

    def change(self, key: str, edit: Callable[[Bucket, float], T]) -> T:
        name = self._prefix + "bucket:" + key
        found: list[T] = []

        def attempt(pipe: Any) -> None:
            bucket = Bucket.loads(pipe.get(name))
            value = edit(bucket, time.time())
            pipe.multi()
            pipe.set(name, bucket.dumps(), ex=self.IDLE_TTL)
            pipe.sadd(self._prefix + "keys", key)
            found[:] = [value]

        self._client.transaction(attempt, name)
        return found[0]

    def buckets(self) -> dict[str, Bucket]:
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in self._client.smembers(self._prefix + "keys"))
        texts = self._client.mget([self._prefix + "bucket:" + key for key in keys]) if keys else []
        return {key: Bucket.loads(text) for key, text in zip(keys, texts, strict=True) if text}

    def close(self) -> None:
        if self._owned:
            self._client.close()


def limiter_for(config: BatonConfig, store: Store, huey: Huey) -> Limiter:
    """Redis if ``BATON_PUBSUB_URL`` names one or Huey runs on Redis; the database otherwise."""
    if config.pubsub_url:
        import redis  # the optional dependency ``flask-baton[redis]``, as the pub/sub transport

        prefix = f"{config.pubsub_prefix}baton:limits:{huey.name}:"
        return RedisLimiter(redis.Redis.from_url(config.pubsub_url), prefix, owned=True)
    client = huey_compat.redis_client(huey)
    if client is not None:
        return RedisLimiter(client, f"baton:limits:{huey.name}:", owned=False)
    return DatabaseLimiter(store)
