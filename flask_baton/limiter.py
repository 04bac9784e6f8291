"""Where the buckets of the rate limits live, shared by every consumer on every host.

Redis when there is one (``BATON_PUBSUB_URL``, else a Redis Huey's own
connection: ``redis_buckets``), the database otherwise (``limiter_choice``
picks). Either way each
operation is atomic: the bucket is read, changed and written back with
nothing else changing it in between (a row lock here; one Lua script in
Redis). Both keep the same JSON (``buckets.Bucket``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from typing import TypeVar

from . import buckets
from .buckets import Bucket, Request, Verdict
from .limits import Limit
from .store import Store

T = TypeVar("T")


class Limiter(ABC):
    """One app's buckets: each operation of ``buckets`` applied atomically to one key's bucket."""

    @abstractmethod
    def admit(self, key: str, limit: Limit, request: Request, slot_fallback: float) -> Verdict:
        """``buckets.admit`` on ``key``'s bucket."""

    @abstractmethod
    def release(self, key: str, limit: Limit, node_id: str) -> list[str]:
        """``buckets.release``: the waiters to wake."""

    @abstractmethod
    def reclaim(self, key: str, limit: Limit, dead: Collection[str]) -> list[str]:
        """``buckets.reclaim``: the waiters to wake."""

    @abstractmethod
    def forget(self, key: str, limit: Limit, gone: Collection[str]) -> list[str]:
        """``buckets.forget``: the waiters to wake."""

    @abstractmethod
    def correct(self, key: str, limit: Limit, ref: str, tokens: int) -> None:
        """``buckets.correct``."""

    @abstractmethod
    def slow_down(self, key: str, limit: Limit, seconds: float) -> None:
        """``buckets.slow_down`` until ``seconds`` from now."""

    @abstractmethod
    def buckets(self) -> dict[str, Bucket]:
        """Every bucket by key (the sweep's reclaim, ``baton.rate_limits()``)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the limiter holds."""


class DatabaseLimiter(Limiter):
    """Buckets as rows of ``baton_rate_buckets``, changed under a row lock (``store.buckets``).

    ``now`` is read once the row is locked, so the times written in a bucket
    follow the order its changes took.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def _change(self, key: str, edit: Callable[[Bucket, float], T]) -> T:
        def on_text(text: str | None) -> tuple[str, T]:
            bucket = Bucket.loads(text)
            value = edit(bucket, time.time())
            return bucket.dumps(), value

        return self._store.change_bucket(key, on_text, time.time())

    def admit(self, key: str, limit: Limit, request: Request, slot_fallback: float) -> Verdict:
        return self._change(key, lambda bucket, now: buckets.admit(bucket, key, limit, request, now, slot_fallback))

    def release(self, key: str, limit: Limit, node_id: str) -> list[str]:
        return self._change(key, lambda bucket, now: buckets.release(bucket, limit, node_id, now))

    def reclaim(self, key: str, limit: Limit, dead: Collection[str]) -> list[str]:
        return self._change(key, lambda bucket, now: buckets.reclaim(bucket, limit, dead, now))

    def forget(self, key: str, limit: Limit, gone: Collection[str]) -> list[str]:
        return self._change(key, lambda bucket, now: buckets.forget(bucket, limit, gone, now))

    def correct(self, key: str, limit: Limit, ref: str, tokens: int) -> None:
        self._change(key, lambda bucket, _now: buckets.correct(bucket, ref, tokens))

    def slow_down(self, key: str, limit: Limit, seconds: float) -> None:
        self._change(key, lambda bucket, now: buckets.slow_down(bucket, now + seconds))

    def buckets(self) -> dict[str, Bucket]:
        return {key: Bucket.loads(text) for key, text in self._store.bucket_states()}

    def close(self) -> None:
        """Nothing of its own: the store's engine is closed with the store."""
