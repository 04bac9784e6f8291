"""The one interface both event transports implement (``choice.transport_for`` picks one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy import Connection

from . import Event
from .subscription import Subscription

#: Told that events were handed to the transport.
Sent = Callable[[], None]


class Transport(Protocol):
    """Carries events from the process of a transition to subscribers anywhere."""

    #: True when ``stage`` publishes in the transition's own transaction.
    atomic: bool

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        """Called inside the transition's transaction, before commit."""

    def publish(self, events: Sequence[Event], *, defer: bool = False, sent: Sent | None = None) -> None:
        """Called after the commit; ``defer``: may be held back briefly and sent with later ones.

        ``sent`` is called once ``events`` are with the transport (the outbox
        marks them published), never if sending them failed.
        """

    def subscribe(self, topic: str, after: str | None = None) -> Subscription:
        """Start listening on ``topic``: events after the cursor ``after``, else only later ones."""

    def close(self) -> None:
        """Release connections."""
