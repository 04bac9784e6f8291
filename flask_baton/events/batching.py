"""Holding events back for a moment, to publish several in one round trip.

Over Redis every publish is a round trip, and in a consumer each one costs
about as much CPU as the SQL of the transition it reports: a step's claim,
its completion and its workflow's end would be three. Events that nothing
waits on (``defer=True``) are held up to ``LINGER`` seconds and published
together by a background thread; a publish that must be heard before what
follows it (``defer=False``: the steps a completion released are about to
be enqueued) sends everything held, then its own events, before returning.
Either way a process's events leave in the order they were published.

What is held when a process dies by ``kill -9`` is lost: a step event for
good (step events are best effort), a ``workflow_finished`` until the sweep
finds it missing from the transport and publishes it again from the outbox.
A Huey worker's shutdown and interpreter exit send what is held first.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from . import Event, Running
from .subscription import Subscription
from .transport import Transport

#: Seconds an event may wait for others to share its round trip.
LINGER = 0.02

logger = logging.getLogger("flask_baton")
_open: weakref.WeakSet[BatchingTransport] = weakref.WeakSet()


class BatchingTransport:
    """Wraps a transport that publishes after commit (``atomic`` False)."""

    atomic = False

    def __init__(self, transport: Transport, linger: float = LINGER) -> None:
        self._transport = transport
        self._linger = linger
        self._start()
        _open.add(self)

    def _start(self) -> None:
        """Fresh state; also in a forked child, whose parent's thread did not follow it."""
        self._pid = os.getpid()
        self._held: list[Event] = []
        self._lock = threading.Lock()  # guards _held, _thread, _closed
        self._wake = threading.Condition(self._lock)
        self._sending = threading.Lock()  # one batch at a time: batches leave in order
        self._thread: threading.Thread | None = None
        self._closed = False

    def stage(self, conn: Connection, events: Sequence[Event], now: float) -> None:
        self._transport.stage(conn, events, now)

    def publish(self, events: Sequence[Event], *, defer: bool = False) -> None:
        if self._pid != os.getpid():
            self._start()
        if self._closed:
            return  # the app is shutting down; its connections are gone
        if not defer:
            self._send(events)
            return
        with self._lock:
            self._held.extend(events)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="baton-events", daemon=True)
                self._thread.start()
            self._wake.notify()

    def flush(self) -> None:
        """Publish everything held now."""
        if self._pid == os.getpid():
            self._send(())

    def streamed(self, workflow_id: str, running: Sequence[Running]) -> list[Event]:
        return self._transport.streamed(workflow_id, running)

    def subscribe(self, topic: str, after: str | None = None) -> Subscription:
        return self._transport.subscribe(topic, after)

    def missing_ends(self, ends: Mapping[str, str]) -> set[str]:
        """Asked after sending what this process holds, which may include some of ``ends``."""
        self.flush()
        return self._transport.missing_ends(ends)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        self.flush()
        self._transport.close()

    def _send(self, events: Sequence[Event]) -> None:
        if not events and not self._held:
            return
        with self._sending:
            with self._lock:
                batch, self._held = self._held + list(events), []
            if batch:
                self._transport.publish(batch)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._held and not self._closed:
                    self._wake.wait()
                if self._closed:
                    self._thread = None
                    return
            time.sleep(self._linger)
            try:
                self._send(())
            except Exception:
                logger.exception("could not publish held events")


def flush_all() -> None:
    """Publish what every transport of this process holds (worker shutdown, exit)."""
    for transport in list(_open):
        try:
            transport.flush()
        except Exception:
            logger.exception("could not publish held events")


atexit.register(flush_all)
