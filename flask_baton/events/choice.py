"""Picking an app's event transport from its config."""

from __future__ import annotations

from sqlalchemy import Engine

from ..config import BatonConfig
from .batching import BatchingTransport
from .database import DatabaseTransport
from .transport import Transport


def transport_for(config: BatonConfig, engine: Engine) -> Transport:
    """Redis streams when ``BATON_PUBSUB_URL`` is set (batched), else the database feed."""
    if config.pubsub_url:
        # Imported only then: the redis client is an optional dependency (``flask-baton[redis]``).
        from .redis import RedisTransport

        return BatchingTransport(RedisTransport(config.pubsub_url, config.pubsub_prefix, config.event_retention))
    return DatabaseTransport(engine)
