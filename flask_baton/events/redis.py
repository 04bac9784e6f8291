"""Redis pub/sub transport (``BATON_PUBSUB_URL=redis://...``).

Events are published after their transaction commits, on channels named
``BATON_PUBSUB_PREFIX + topic``. Pub/sub keeps nothing: a subscriber that is
not connected misses events, so re-read state with ``baton.query`` after
reconnecting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy import Connection

from . import Event, topics_of
from .subscription import Subscription


class RedisTransport:
    """Events over Redis PUBLISH/SUBSCRIBE."""

    atomic = False

    def __init__(self, url: str, prefix: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._prefix = prefix

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        """Nothing goes in the transaction: Redis hears of it after commit."""

    def publish(self, events: Sequence[Event], *, defer: bool = False) -> None:
        """One pipeline for all ``events`` (``BatchingTransport`` does the deferring)."""
        if not events:
            return
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            message = json.dumps({"name": event.name, "payload": event.payload}, separators=(",", ":"))
            for topic in topics_of(event):
                pipe.publish(self._prefix + topic, message)
        pipe.execute()

    def subscribe(self, topic: str) -> Subscription:
        return Subscription(topic, _ChannelReader(self._client, self._prefix + topic))

    def close(self) -> None:
        self._client.close()


class _ChannelReader:
    """One SUBSCRIBE connection; confirmed before ``subscribe`` returns."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._pubsub: Any = client.pubsub()
        self._pubsub.subscribe(channel)
        confirmation = self._pubsub.get_message(timeout=5)
        if confirmation is None or confirmation["type"] != "subscribe":
            self._pubsub.close()
            raise ConnectionError(f"Redis did not confirm the subscription to {channel!r}")

    def fetch(self, timeout: float) -> list[Event]:
        found: list[Event] = []
        message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        while message is not None:
            if message["type"] == "message":
                data = json.loads(message["data"])
                found.append(Event(data["name"], data["payload"]))
            message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
        return found

    def close(self) -> None:
        self._pubsub.close()
