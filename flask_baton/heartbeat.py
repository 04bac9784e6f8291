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

from sqlalchemy import Engine, update

from .database import write_transaction
from .schema import nodes
from .states import StepState

logger = logging.getLogger("flask_baton")


class _Beat:
    """The steps one process runs on one engine, and the thread renewing them."""

    def __init__(self, engine: Engine, worker: str, interval: float) -> None:
        self.running: set[str] = set()
        self.lock = threading.Lock()
        self.worker = worker
        self.engine_ref = weakref.ref(engine)
        thread = threading.Thread(target=_beat, args=(self, interval), name="baton-heartbeat", daemon=True)
        thread.start()

    def serves(self, engine: Engine, worker: str) -> bool:
        """True if this beat renews ``worker``'s steps on this very engine."""
        return self.engine_ref() is engine and self.worker == worker


_beats: dict[tuple[int, int], _Beat] = {}
_beats_lock = threading.Lock()


@contextmanager
def leased(engine: Engine, worker: str, interval: float, node_id: str) -> Iterator[None]:
    """Keep ``node_id``'s lease renewed while the block runs."""
    beat = _beat_for(engine, worker, interval)
    with beat.lock:
        beat.running.add(node_id)
    try:
        yield
    finally:
        with beat.lock:
            beat.running.discard(node_id)


def _beat_for(engine: Engine, worker: str, interval: float) -> _Beat:
    # Keyed by pid, so a forked worker process starts its own thread.
    key = (os.getpid(), id(engine))
    beat = _beats.get(key)
    if beat is None or not beat.serves(engine, worker):
        with _beats_lock:
            beat = _beats.get(key)
            if beat is None or not beat.serves(engine, worker):
                beat = _beats[key] = _Beat(engine, worker, interval)
    return beat


def renew(engine: Engine, worker: str, node_ids: list[str], now: float) -> int:
    """Stamp the given steps, if ``worker`` still runs them; return how many."""
    with write_transaction(engine) as conn:
        return conn.execute(
            update(nodes)
            .where(nodes.c.id.in_(node_ids), nodes.c.worker == worker, nodes.c.state == StepState.EXECUTING)
            .values(heartbeat_at=now)
        ).rowcount


def _beat(beat: _Beat, interval: float) -> None:
    """Renew until the engine is gone (its app was discarded)."""
    while True:
        time.sleep(interval)
        engine = beat.engine_ref()
        if engine is None:
            return
        with beat.lock:
            running = sorted(beat.running)
        if running:
            try:
                renew(engine, beat.worker, running, time.time())
            except Exception:
                logger.exception("heartbeat of %s failed; will try again in %ss", beat.worker, interval)
        del engine
