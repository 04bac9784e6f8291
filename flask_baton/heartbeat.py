"""Heartbeats: a live consumer says so every few seconds, and so keeps its steps' leases.

Each consumer process runs one daemon thread that, every
``BATON_HEARTBEAT_SECONDS``, stamps the queues it serves (``baton_consumers``:
the dashboard's overview lists the consumers alive) and ``heartbeat_at`` on
the steps it is running right now. A step whose stamp is older than
``BATON_LEASE_SECONDS`` is presumed dead (kill -9, OOM, lost host, or an
outcome that could not be recorded) and the sweep rescues it. One short
transaction per process per beat, however many steps it runs.

A Huey worker starting on a queue (its startup hook, ``serve``) says so at
once, and one stopping (``leave``) takes its queue off the beat.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from .store import Store

logger = logging.getLogger("flask_baton")


class _Beat:
    """The steps one process runs on one store, and the thread renewing them."""

    def __init__(self, store: Store, worker: str, interval: float) -> None:
        self.running: set[str] = set()
        self.lock = threading.Lock()
        self.queues: dict[str, float] = {}  # queue served -> since when
        # Held while the queues are stamped, so a queue left is never stamped again afterwards.
        self.serving = threading.Lock()
        self.worker = worker
        self.store_ref = weakref.ref(store)
        thread = threading.Thread(target=_beat, args=(self, interval), name="baton-heartbeat", daemon=True)
        thread.start()

    def serves(self, store: Store, worker: str) -> bool:
        """True if this beat renews ``worker``'s steps in this very store."""
        return self.store_ref() is store and self.worker == worker


_beats: dict[tuple[int, int], _Beat] = {}
_beats_lock = threading.Lock()


@contextmanager
def leased(store: Store, worker: str, interval: float, node_id: str) -> Iterator[None]:
    """Keep ``node_id``'s lease renewed while the block runs."""
    beat = _beat_for(store, worker, interval)
    with beat.lock:
        beat.running.add(node_id)
    try:
        yield
    finally:
        with beat.lock:
            beat.running.discard(node_id)


def serve(store: Store, worker: str, interval: float, queue: str) -> None:
    """This process serves ``queue`` from now on: stamp it at once, then on every beat."""
    beat = _beat_for(store, worker, interval)
    with beat.serving:
        if queue in beat.queues:
            return  # another worker thread of this process said so already
        now = beat.queues[queue] = time.time()
        store.beat(worker, {queue: now}, (), now)


def leave(store: Store, worker: str, interval: float, queue: str) -> None:
    """This process stopped serving ``queue``: no more stamps, and its row is deleted."""
    beat = _beat_for(store, worker, interval)
    with beat.serving:
        beat.queues.pop(queue, None)
        store.leave(worker, queue)


def _beat_for(store: Store, worker: str, interval: float) -> _Beat:
    # Keyed by pid, so a forked worker process starts its own thread.
    key = (os.getpid(), id(store))
    beat = _beats.get(key)
    if beat is None or not beat.serves(store, worker):
        with _beats_lock:
            beat = _beats.get(key)
            if beat is None or not beat.serves(store, worker):
                beat = _beats[key] = _Beat(store, worker, interval)
    return beat


def _beat(beat: _Beat, interval: float) -> None:
    """Renew until the store is gone (its app was discarded) or closed (``Baton.close``)."""
    while True:
        time.sleep(interval)
        store = beat.store_ref()
        if store is None or store.closed:
            return
        with beat.lock:
            running = sorted(beat.running)
        with beat.serving:
            if running or beat.queues:
                try:
                    store.beat(beat.worker, beat.queues, running, time.time())
                except Exception:
                    logger.exception("heartbeat of %s failed; will try again in %ss", beat.worker, interval)
        if store.closed:
            # Closed while this beat ran: its connection went back to a pool the
            # close had already emptied, so close it too (``close`` marks the
            # store before it empties the pool, so one of the two closes it).
            store.close()
            return
        del store
