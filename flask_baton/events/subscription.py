"""What ``subscribe_*`` returns, whatever the transport."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from . import Event


class Source(Protocol):
    """A transport's end of one subscription."""

    def fetch(self, timeout: float) -> list[Event]:
        """Events that arrived, waiting up to ``timeout`` seconds for the first."""

    def close(self) -> None:
        """Release the connection."""


class Subscription:
    """Events of one topic, in publication order, until closed.

    Iterate with ``iter(timeout)``, or call ``get(timeout)``; use it as a
    context manager (or call ``close()``) so its connection is returned.
    """

    def __init__(self, topic: str, source: Source) -> None:
        self.topic = topic
        self._source = source
        self._buffer: list[Event] = []
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
        return self._buffer.pop(0)

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
