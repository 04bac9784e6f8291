"""Celery in the benchmark: prefork pool of 2 processes, Redis broker and backend.

Celery's own primitives for each shape: a ``chain`` of immutable signatures,
a ``chord`` (the Redis backend counts the header's results and sends the
callback the whole list), and one ``apply_async`` per job for
the flood, as raw Huey's jobs are enqueued one by one. Settings are Celery's
defaults (early ack, prefetch multiplier 4, results stored) except that the
worker runs no gossip, mingle, heartbeat or remote control: broadcast traffic
none of the other consumers have.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .. import consumers
from ..storage import Storage
from .base import PeerSystem


class CelerySystem(PeerSystem):
    name = "Celery"
    key = "celery"

    def __init__(self, storage: Storage, workdir: Path) -> None:
        super().__init__(storage, workdir)
        from . import celery_app

        self.prefix = f"{self.tag}:"
        self.queue = self.tag
        self.app = celery_app.build(self.url, self.prefix, self.queue)
        self.noop = self.app.tasks[celery_app.NOOP]
        self.value = self.app.tasks[celery_app.VALUE]
        self.fan_in = self.app.tasks[celery_app.FAN_IN]

    def environment(self) -> dict[str, str]:
        from . import celery_app

        return celery_app.environment_for(self.url, self.prefix, self.queue)

    def consumer_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.peers.celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(consumers.WORKERS),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            # Sending a chord subscribed this client to the callback's and
            # every header's result channel (for a ``.get()`` the bench never
            # makes: it reads the one result it needs with a GET), and the
            # backend holds those results until read. Forget the channels,
            # then close the connection: a result collected later would
            # otherwise open a new one just to unsubscribe.
            consumer = self.app.backend.result_consumer
            consumer.subscribed_to.clear()
            consumer.stop()
            self.app.close()

    def _broker_keys(self) -> list[str]:
        # kombu's Redis transport: the queue's list, and the hash (plus its
        # index) of messages delivered to a worker but not yet acknowledged.
        return [self.prefix + key for key in (self.queue, "unacked", "unacked_index")]

    def pending(self) -> int:
        queued, unacked, _ = self._broker_keys()
        return int(self.redis.llen(queued)) + int(self.redis.hlen(unacked))

    def purge(self) -> None:
        self.redis.delete(*self._broker_keys())

    def send_chain(self, run: str, n: int) -> None:
        from celery import chain

        chain(self.noop.si(f"{run}:{i}") for i in range(n)).apply_async()

    def send_fan_out(self, run: str, n: int) -> Any:
        from celery import chord

        header = [self.value.si(f"{run}:p{i}", 1) for i in range(n)]
        return chord(header, self.fan_in.s(f"{run}:fanin")).apply_async()

    def fan_in_result(self, handle: Any) -> Any | None:
        meta = self.app.backend.get_task_meta(handle.id)
        if meta["status"] == "SUCCESS":
            return meta["result"]
        if meta["status"] in ("FAILURE", "REVOKED"):
            raise RuntimeError(f"Celery chord callback ended {meta['status']}: {meta['result']!r}")
        return None

    def send_one(self, key: str) -> None:
        self.noop.apply_async((key,))
