"""Picking where an app's rate-limit buckets live, from its config and its Huey."""

from __future__ import annotations

from huey import Huey

from . import huey_compat
from .config import BatonConfig
from .limiter import DatabaseLimiter, Limiter
from .store import Store


def limiter_for(config: BatonConfig, store: Store, huey: Huey) -> Limiter:
    """Redis if ``BATON_PUBSUB_URL`` names one or Huey runs on Redis; the database otherwise."""
    if config.pubsub_url:
        import redis  # the optional dependency ``flask-baton[redis]``, as the pub/sub transport

        from .redis_buckets import RedisLimiter

        prefix = f"{config.pubsub_prefix}baton:limits:{huey.name}:"
        return RedisLimiter(redis.Redis.from_url(config.pubsub_url), prefix, owned=True)
    client = huey_compat.redis_client(huey)
    if client is not None:
        from .redis_buckets import RedisLimiter

        return RedisLimiter(client, f"baton:limits:{huey.name}:", owned=False)
    return DatabaseLimiter(store)
