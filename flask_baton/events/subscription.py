"""What ``subscribe_*`` returns, whatever the transport."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from . import Event


class Delivery(NamedTuple):
    """An event and its topic's cursor: resuming ``after`` it delivers what followed."""

    cursor: str
    event: Event


class Source(Protocol):
    """A transport's end of one subscription."""

    @property
    def cursor(self) -> str:
        """Where the subscription starts: resuming after it delivers every later event."""

    def fetch(self, timeout: float) -> list[Delivery]:
        """Events that arrived, waiting up to ``timeout`` seconds for the first."""

    def close(self) -> None:
        """Release the connection."""


class Subscription:
    """Events of one topic, in publication order, until closed.

    Iterate with ``iter(timeout)``, or call ``get(timeout)``; use it as a
    context manager (or call ``close()``) so its connection is returned.
    ``cursor`` is where the last event returned sits in the topic (before
    the first, where the subscription started): pass it as ``after=`` to
    ``subscribe_*`` to resume there after a disconnect.
    """

    def __init__(self, topic: str, source: Source) -> None:
        self.topic = topic
        self._source = source
        self._buffer: list[Delivery] = []
        self.cursor = source.cursor
        self.closed = False

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` when ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            if self.closed:
                return None
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                return None
            self._buffer.extend(self._source.fetch(min(wait, 1.0)))
        self.cursor, event = self._buffer.pop(0)
        return event

    def iter(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events until ``timeout`` seconds pass with none (or forever)."""
        while True:
            event = self.get(timeout)
            if event is None:
                return
            yield event

    def __iter__(self) -> Iterator[Event]:
        return self.iter()

    def close(self) -> None:
        """Stop listening; iteration ends."""
        if not self.closed:
            self.closed = True
            self._source.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
