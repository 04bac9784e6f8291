"""The one interface both event transports implement (``choice.transport_for`` picks one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    def subscribe(self, topic: str, after: str | None = None) -> Subscription:
        """Start listening on ``topic``: events after the cursor ``after``, else only later ones."""

    def missing_ends(self, ends: Mapping[str, str]) -> set[str]:
        """Of ``ends`` (workflow id -> the ``event_id`` of its ``workflow_finished``), those the transport lacks.

        The sweep asks about the ends in the outbox (announced a heartbeat
        ago or more) and publishes again those missing. The transport knows
        for ``BATON_EVENT_RETENTION`` seconds; after that an end counts as
        missing (a duplicate at worst).
        """

    def close(self) -> None:
        """Release connections."""
