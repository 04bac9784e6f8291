"""RQ in the benchmark: ``rq worker-pool -n 2`` on Redis.

RQ's own primitives for each shape: jobs linked by ``depends_on`` for the
chain; 1,000 jobs written with one ``enqueue_many``, then a fan-in with
``Dependency(jobs=[...])`` on all of them (its enqueue WATCHes all 1,000 and
retries while they finish, and every one that finishes checks all 1,000
statuses: RQ's own cost of a wide fan-in); one ``enqueue`` per
job for the flood, as raw Huey's jobs are enqueued one by one. The pool's
workers are RQ's default ``Worker`` (a forked work horse per job) with RQ's
default settings, the job functions preloaded (``--config``). Job ids start with the run's tag, so every key RQ makes
for this run (queue, registries, jobs, results, dependencies) contains it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .. import consumers
from ..storage import Storage
from .base import PeerSystem


class RqSystem(PeerSystem):
    name = "RQ"
    key = "rq"

    def __init__(self, storage: Storage, workdir: Path) -> None:
        super().__init__(storage, workdir)
        from rq import Queue

        self.queue = Queue(self.tag, connection=self.redis)

    def consumer_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "rq.cli",
            "worker-pool",
            "--num-workers",
            str(consumers.WORKERS),
            "--url",
            self.url,
            "--logging-level",
            "INFO",
            # RQ reads settings from this module (it has none), which imports
            # the job functions in the pool before it forks (rq_jobs.py).
            "--config",
            "bench.peers.rq_jobs",
            self.queue.name,
        ]

    def delete_keys(self) -> None:
        super().delete_keys()
        self.redis.srem("rq:queues", self.queue.key)  # RQ's list of every queue's key

    def pending(self) -> int:
        q = self.queue
        return q.count + q.started_job_registry.count + q.deferred_job_registry.count

    def purge(self) -> None:
        # Nothing runs: the consumer is stopped. Every key of this run goes,
        # the queue, its registries and every job.
        super().delete_keys()

    def _id(self, key: str) -> str:
        """The job id for the job of ledger key ``key``: the run's tag first."""
        return f"{self.tag}-{key.replace(':', '-')}"

    def send_chain(self, run: str, n: int) -> None:
        from . import rq_jobs

        previous = None
        for i in range(n):
            key = f"{run}:{i}"
            previous = self.queue.enqueue(rq_jobs.noop, key, job_id=self._id(key), depends_on=previous)

    def send_fan_out(self, run: str, n: int) -> Any:
        from rq import Queue
        from rq.job import Dependency

        from . import rq_jobs

        keys = [f"{run}:p{i}" for i in range(n)]
        parts = self.queue.enqueue_many(
            [Queue.prepare_data(rq_jobs.value, (key, 1), job_id=self._id(key)) for key in keys]
        )
        fan_in = f"{run}:fanin"
        return self.queue.enqueue(rq_jobs.fan_in, fan_in, job_id=self._id(fan_in), depends_on=Dependency(jobs=parts))

    def fan_in_result(self, handle: Any) -> Any | None:
        from rq.job import JobStatus

        status = handle.get_status(refresh=True)
        if status == JobStatus.FINISHED:
            return handle.return_value(refresh=True)
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            raise RuntimeError(f"RQ fan-in job ended {status}: {handle.latest_result()}")
        return None

    def send_one(self, key: str) -> None:
        from . import rq_jobs

        self.queue.enqueue(rq_jobs.noop, key, job_id=self._id(key))
