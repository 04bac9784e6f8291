"""Redis pub/sub transport (``BATON_PUBSUB_URL=redis://...``).

Events are published after their transaction commits, on channels named
``BATON_PUBSUB_PREFIX + topic``. Pub/sub keeps nothing: a subscriber that is
not connected misses events, so re-read state with ``baton.query`` after
reconnecting. Streamed text is also appended, in the same pipeline, to a
key per step attempt (``BATON_PUBSUB_PREFIX + "stream:<workflow>:<attempt>:<step>"``,
expiring after ``BATON_EVENT_RETENTION``), which a page opened mid-stream reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy import Connection

from . import STEP_STREAMED, Event, Running, topics_of
from .subscription import Subscription


class RedisTransport:
    """Events over Redis PUBLISH/SUBSCRIBE."""

    atomic = False

    def __init__(self, url: str, prefix: str, retention: float = 3600.0) -> None:
        self._client = redis.Redis.from_url(url)
        self._prefix = prefix
        self._retention = max(int(retention), 1)

    def _stream_key(self, workflow_id: str, step_name: str, attempt: int) -> str:
        return f"{self._prefix}stream:{workflow_id}:{attempt}:{step_name}"

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
            if event.name == STEP_STREAMED:
                key = self._stream_key(event.workflow_id, event.payload["step_name"], event.payload["attempt"])
                if event.payload["seq"] == 1:  # a run's first piece: a snoozed step's re-run starts afresh
                    pipe.set(key, event.payload["text"], ex=self._retention)
                else:
                    pipe.append(key, event.payload["text"])
                    pipe.expire(key, self._retention)
        pipe.execute()

    def streamed(self, workflow_id: str, running: Sequence[Running]) -> list[Event]:
        """Each running step's text so far, as one event from offset 0."""
        keys = [self._stream_key(workflow_id, step.step_name, step.attempt) for step in running]
        texts = self._client.mget(keys) if keys else []
        return [
            Event(
                STEP_STREAMED,
                {
                    "workflow_id": workflow_id,
                    "step_name": step.step_name,
                    "attempt": step.attempt,
                    "seq": 0,
                    "offset": 0,
                    "text": text.decode("utf-8") if isinstance(text, bytes) else text,
                    "timestamp": step.started_at,
                },
            )
            for step, text in zip(running, texts)
            if text
        ]

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
