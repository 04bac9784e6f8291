"""The one interface both event transports implement (``choice.transport_for`` picks one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection

from . import Event, Running
from .subscription import Subscription


class Transport(Protocol):
    """Carries events from the process of a transition to subscribers anywhere."""

    #: True when ``stage`` publishes in the transition's own transaction.
    atomic: bool

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        """Called inside the transition's transaction, before commit."""

    def publish(self, events: Sequence[Event], *, defer: bool = False) -> None:
        """Called after the commit; ``defer``: may be held back briefly and sent with later ones."""

    def streamed(self, workflow_id: str, running: Sequence[Running]) -> list[Event]:
        """What the ``running`` steps of a workflow streamed so far, as events, oldest first."""

    def subscribe(self, topic: str) -> Subscription:
        """Start listening on ``topic``; only later events are seen."""

    def close(self) -> None:
        """Release connections."""
