"""Statements on ``baton_events``, the database event feed: insert, read past an id, trim.

A transition's events go in with one ``executemany`` on the driver, inside
the transition's own transaction. A subscriber's poll is one round trip:
one ``SELECT`` of the rows past its watermark, on the primary key. Payloads are stored as compact
JSON, encoded and decoded only here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Connection, Engine, func, select

from ..events import Event
from .engine import read_connection
from .hotpath import insert_events
from .tables import events as feed

#: Most rows one poll reads.
POLL_ROWS = 1000


class FeedRow(NamedTuple):
    """One stored event, its payload still encoded (most rows a reader skips are never decoded)."""

    id: int
    workflow_id: str
    name: str
    payload: str

    def event(self) -> Event:
        """The event this row holds."""
        return Event(self.name, json.loads(self.payload))


def insert(conn: Connection, events: Sequence[Event], now: float) -> None:
    """Write ``events`` in ``conn``'s transaction, so they exist exactly when it commits."""
    if events:
        insert_events(
            conn,
            [
                {
                    "workflow_id": event.workflow_id,
                    "name": event.name,
                    "payload": json.dumps(event.payload, separators=(",", ":")),
                    "now": now,
                }
                for event in events
            ],
        )


def newest_id(engine: Engine) -> int:
    """The highest row id stored, 0 when the feed is empty: where a new subscriber starts."""
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.coalesce(func.max(feed.c.id), 0))).scalar_one())


def rows_after(engine: Engine, after_id: int) -> list[FeedRow]:
    """Up to ``POLL_ROWS`` rows with ids above ``after_id``, lowest first."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(feed.c.id, feed.c.workflow_id, feed.c.name, feed.c.payload)
            .where(feed.c.id > after_id)
            .order_by(feed.c.id)
            .limit(POLL_ROWS)
        ).all()
    return [FeedRow(*row) for row in rows]


def streamed_rows(engine: Engine, workflow_id: str, name: str, since: float) -> list[FeedRow]:
    """A workflow's rows named ``name`` created since ``since``, oldest first (on the ``created_at`` index)."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(feed.c.id, feed.c.workflow_id, feed.c.name, feed.c.payload)
            .where(feed.c.created_at >= since, feed.c.workflow_id == workflow_id, feed.c.name == name)
            .order_by(feed.c.id)
        ).all()
    return [FeedRow(*row) for row in rows]


def prune(conn: Connection, before: float) -> int:
    """Delete feed rows created before ``before`` in ``conn``'s transaction; return how many."""
    return conn.execute(feed.delete().where(feed.c.created_at < before)).rowcount
