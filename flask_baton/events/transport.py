"""The one interface both event transports implement, and picking one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine

from ..config import BatonConfig
from . import Event
from .subscription import Subscription


class Transport(Protocol):
    """Carries events from the process of a transition to subscribers anywhere."""

    #: True when ``stage`` publishes in the transition's own transaction.
    atomic: bool

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        """Called inside the transition's transaction, before commit."""

    def publish(self, events: Sequence[Event], *, defer: bool = False) -> None:
        """Called after the commit; ``defer``: may be held back briefly and sent with later ones."""

    def subscribe(self, topic: str) -> Subscription:
        """Start listening on ``topic``; only later events are seen."""

    def close(self) -> None:
        """Release connections."""


def transport_for(config: BatonConfig, engine: Engine) -> Transport:
    """Redis pub/sub when ``BATON_PUBSUB_URL`` is set (batched), else the database feed."""
    if config.pubsub_url:
        from .batching import BatchingTransport
        from .redis import RedisTransport

        return BatchingTransport(RedisTransport(config.pubsub_url, config.pubsub_prefix))
    from .database import DatabaseTransport

    return DatabaseTransport(engine)
