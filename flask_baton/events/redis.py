"""Redis Streams transport (``BATON_PUBSUB_URL=redis://...``).

Events are published after their transaction commits, each appended
(``XADD``) to two streams, ``BATON_PUBSUB_PREFIX + topic`` for
``workflow:all`` and for its workflow's topic. A subscriber reads its stream
with ``XREAD BLOCK`` from the id of the last entry it read, its cursor: after
a lost connection (a Redis restart, a killed client) it reconnects and goes
on from there, and a new subscription passed that cursor as ``after=``
resumes where the old one stopped.

Streams keep entries ``BATON_EVENT_RETENTION`` seconds: each ``XADD`` trims
older ones (``MINID ~``), and a stream nobody adds to expires after that
long (``EXPIRE``), so the streams of finished workflows go away.

The ``event_id`` of each ``workflow_finished`` sent also goes in a sorted
set (``BATON_PUBSUB_PREFIX + "baton:sent-ends"``, same retention), in the same
round trip: the sweep asks it which ends of the outbox never made it.

Streamed text (``workflow_step_streamed``) is also appended, in the same
pipeline, to a key per step attempt (``BATON_PUBSUB_PREFIX +
"stream:<workflow>:<attempt>:<step>"``, same retention), which a page opened
mid-stream reads whole.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from sqlalchemy import Connection

from ..errors import ArgumentError
from . import STEP_STREAMED, WORKFLOW_FINISHED, Event, Running, topics_of
from .subscription import Delivery, Subscription

logger = logging.getLogger("flask_baton")

#: Most entries one read takes.
READ_COUNT = 1000
#: Seconds a subscriber waits before reading again after losing its connection.
RECONNECT_PAUSE = 0.2
#: The field of a stream entry that holds the event, as JSON.
FIELD = "event"
#: The sorted set of the ends sent (after ``BATON_PUBSUB_PREFIX``).
SENT_ENDS = "baton:sent-ends"
_STREAM_ID = re.compile(r"\d+-\d+")


class RedisTransport:
    """Events appended to Redis streams (XADD), read with XREAD."""

    atomic = False

    def __init__(self, url: str, prefix: str, retention: float) -> None:
        self._url = url
        self._client = redis.Redis.from_url(url)
        self._prefix = prefix
        self._retention = retention
        #: The ``event_id`` of every ``workflow_finished`` sent, scored by when, kept as long as the streams.
        self._sent_ends = prefix + SENT_ENDS

    def _stream_key(self, workflow_id: str, step_name: str, attempt: int) -> str:
        return f"{self._prefix}stream:{workflow_id}:{attempt}:{step_name}"

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        """Nothing goes in the transaction: Redis hears of it after commit."""

    def publish(self, events: Sequence[Event], *, defer: bool = False) -> None:
        """One pipeline for all ``events`` (``BatchingTransport`` does the deferring).

        The ids of the ends among them go last, into the sorted set
        ``missing_ends`` reads: Redis runs a connection's commands in order,
        so an id recorded there is one whose event was appended before it.
        """
        if not events:
            return
        now = time.time()
        oldest = int((now - self._retention) * 1000)
        pipe = self._client.pipeline(transaction=False)
        keys: set[str] = set()
        for event in events:
            entry = {FIELD: json.dumps({"name": event.name, "payload": event.payload}, separators=(",", ":"))}
            for topic in topics_of(event):
                stream = self._prefix + topic
                pipe.xadd(stream, entry, minid=oldest, approximate=True)  # type: ignore[arg-type]
                keys.add(stream)
            if event.name == STEP_STREAMED:
                key = self._stream_key(event.workflow_id, event.payload["step_name"], event.payload["attempt"])
                if event.payload["seq"] == 1:  # a run's first piece: a snoozed step's re-run starts afresh
                    pipe.set(key, event.payload["text"])
                else:
                    pipe.append(key, event.payload["text"])
                keys.add(key)
        ends = {event.id: now for event in events if event.name == WORKFLOW_FINISHED}
        if ends:
            pipe.zadd(self._sent_ends, ends)
            keys.add(self._sent_ends)
        for key in keys:
            pipe.expire(key, math.ceil(self._retention))
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

    def missing_ends(self, ends: Mapping[str, str]) -> set[str]:
        """The ends whose ``event_id`` is not among those sent (one ``ZMSCORE``); trims the set's old ids first."""
        if not ends:
            return set()
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(self._sent_ends, "-inf", time.time() - self._retention)
        pipe.zmscore(self._sent_ends, list(ends.values()))
        scores: Any = pipe.execute()[-1]
        return {workflow_id for workflow_id, score in zip(ends, scores, strict=True) if score is None}

    def subscribe(self, topic: str, after: str | None = None) -> Subscription:
        if after is not None and not _STREAM_ID.fullmatch(after):
            raise ArgumentError(f"after={after!r} is not a cursor of the Redis event streams (an entry id, like '1-0')")
        return Subscription(topic, _StreamReader(self._url, self._prefix + topic, after))

    def close(self) -> None:
        self._client.close()


def reader_name(stream: str) -> str:
    """The client name of a subscriber's connection (``CLIENT LIST`` shows it; no spaces allowed)."""
    return "baton-events:" + re.sub(r"\s", "_", stream)


class _StreamReader:
    """Reads one stream past its cursor on a connection of its own, named ``baton-events:<stream>``."""

    def __init__(self, url: str, stream: str, after: str | None) -> None:
        self._client = redis.Redis.from_url(url, client_name=reader_name(stream))
        self._stream = stream
        if after is None:
            newest: Any = self._client.xrevrange(stream, count=1)
            after = newest[0][0].decode() if newest else "0-0"
        self.cursor = after

    def fetch(self, timeout: float) -> list[Delivery]:
        block = max(1, int(timeout * 1000)) if timeout > 0 else None
        try:
            reply: Any = self._client.xread({self._stream: self.cursor}, count=READ_COUNT, block=block)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # The next read connects again and goes on from the cursor.
            logger.warning("lost the event stream %s (%s); reading on from %s", self._stream, error, self.cursor)
            time.sleep(min(timeout, RECONNECT_PAUSE))
            return []
        found = []
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                self.cursor = entry_id.decode()
                data = json.loads(fields[FIELD.encode()])
                found.append(Delivery(self.cursor, Event(data["name"], data["payload"])))
        return found

    def close(self) -> None:
        self._client.close()
