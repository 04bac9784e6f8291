"""The database-backed event feed: the default transport, no services needed.

Publishing inserts rows into ``baton_events`` inside the transition's own
transaction, so an event exists exactly when its transition committed: no
outbox is needed, nothing is published twice. Subscribers poll for rows
newer than the last one they saw (every ``POLL_SECONDS``). A cursor is a row
id below which every row was delivered or given up (the reader's
watermark), so resuming ``after`` it may deliver again a few events that
followed it: deduplicate by ``event_id``. Rows older than
``BATON_EVENT_RETENTION`` seconds are deleted by the sweep
(``Store.trim_event_feed``), which keeps the table small.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import ArgumentError
from ..store import feed
from . import STEP_STREAMED, TOPIC_PREFIX, Event, Running, topic_all
from .subscription import Delivery, Subscription

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["CLOCK_SKEW", "GAP_SECONDS", "POLL_SECONDS", "DatabaseTransport"]

#: How often a subscriber looks for new rows; the feed's latency floor.
POLL_SECONDS = 0.05
#: How long a gap in row ids may stay open (a PostgreSQL transaction that
#: took its id but has not committed yet) before it is given up as rolled back.
GAP_SECONDS = 5.0
#: How far a consumer's clock (a streamed row's time) may lag the one that stamped the step's start.
CLOCK_SKEW = 60.0


class DatabaseTransport:
    """Events as rows in the app's own database."""

    atomic = True

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        """Write ``events`` in the caller's transaction."""
        feed.insert(conn, events, now)

    def publish(self, events: Sequence[Event], *, defer: bool = False) -> None:
        """Nothing to do after commit: the rows are the publication."""

    def streamed(self, workflow_id: str, running: Sequence[Running]) -> list[Event]:
        """The workflow's streamed rows since its earliest running step started (the feed keeps them)."""
        if not running:
            return []
        since = min(step.started_at for step in running) - CLOCK_SKEW
        wanted = {(step.step_name, step.attempt) for step in running}
        found = [row.event() for row in feed.streamed_rows(self._engine, workflow_id, STEP_STREAMED, since)]
        return [e for e in found if (e.payload["step_name"], e.payload["attempt"]) in wanted]

    def missing_ends(self, ends: Mapping[str, str]) -> set[str]:
        """All of them: an end announced with this feed leaves the outbox in its own transaction.

        So the outbox only holds ends announced while the app published to
        Redis, which the feed never saw.
        """
        return set(ends)

    def subscribe(self, topic: str, after: str | None = None) -> Subscription:
        return Subscription(topic, _FeedReader(self._engine, topic, None if after is None else _row_id(after)))

    def close(self) -> None:
        """The engine belongs to the app; nothing to close."""


class _FeedReader:
    """Reads rows past a watermark, tolerating ids that commit out of order.

    On PostgreSQL a row can take id 10, commit after id 11, and so become
    visible later: ids above the watermark that are missing are remembered as
    gaps and read again until they show up or ``GAP_SECONDS`` pass. Every
    reader reads all rows past its watermark, so gaps are found the same way
    for one workflow's topic as for ``workflow:all``.
    """

    def __init__(self, engine: Engine, topic: str, after: int | None) -> None:
        self._engine = engine
        self._workflow_id = None if topic == topic_all() else topic[len(TOPIC_PREFIX) :]
        self._low = feed.newest_id(engine) if after is None else after
        self._delivered: set[int] = set()
        self._gaps: dict[int, float] = {}

    @property
    def cursor(self) -> str:
        return str(self._low)

    def fetch(self, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            found = self._poll()
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))

    def _poll(self) -> list[Delivery]:
        rows = feed.rows_after(self._engine, self._low)
        fresh = [row for row in rows if row.id not in self._delivered]
        self._delivered.update(row.id for row in fresh)
        self._advance([row.id for row in rows])
        # A row's cursor is its id, or the watermark while a gap below it is open.
        return [Delivery(str(min(row.id, self._low)), row.event()) for row in fresh if self._wanted(row)]

    def _wanted(self, row: feed.FeedRow) -> bool:
        """Rows of this topic; streamed text is on its workflow's topic only (``topics_of``)."""
        if self._workflow_id is None:
            return row.name != STEP_STREAMED
        return row.workflow_id == self._workflow_id

    def _advance(self, ids: list[int]) -> None:
        """Move the watermark over every id that is delivered or given up."""
        now = time.monotonic()
        for expected in range(self._low + 1, max(ids, default=self._low) + 1):
            if expected not in self._delivered:
                self._gaps.setdefault(expected, now)
        while True:
            following = self._low + 1
            if following in self._delivered:
                self._delivered.discard(following)
            elif now - self._gaps.get(following, now) > GAP_SECONDS:
                pass
            else:
                break
            self._gaps.pop(following, None)
            self._low = following

    def close(self) -> None:
        """Polling holds no connection between fetches."""


def _row_id(cursor: str) -> int:
    """The row id a feed cursor names (``Subscription.cursor``: a row id, in decimal)."""
    if not cursor.isdigit():
        raise ArgumentError(f"after={cursor!r} is not a cursor of the database event feed (a row id, like '42')")
    return int(cursor)
