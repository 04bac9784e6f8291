"""Leases for running steps: a live consumer says so every few seconds.

Each consumer process runs one daemon thread that stamps ``heartbeat_at`` on
the steps it is running right now, every ``BATON_HEARTBEAT_SECONDS``. A step
whose stamp is older than ``BATON_LEASE_SECONDS`` is presumed dead (kill -9,
OOM, lost host, or an outcome that could not be recorded) and the sweep
rescues it. One ``UPDATE`` per process per beat, however many steps it runs.
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
    """Renew until the store is gone (its app was discarded)."""
    while True:
        time.sleep(interval)
        store = beat.store_ref()
        if store is None:
            return
        with beat.lock:
            running = sorted(beat.running)
        if running:
            try:
                store.renew_leases(beat.worker, running, time.time())
            except Exception:
                logger.exception("heartbeat of %s failed; will try again in %ss", beat.worker, interval)
        del store
