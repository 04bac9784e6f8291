"""Building the Huey consumer ``flask baton worker`` (and the tests) run.

Huey checks periodic tasks once a minute; the sweep may need to run more
often (``BATON_SWEEP_INTERVAL`` < 60), so our consumer's scheduler checks
them every ``min(60, BATON_SWEEP_INTERVAL)`` seconds. The sweep's own lease
keeps it to one effective run per interval across all consumers.

A consumer refuses to start (``SchemaError``) on a database whose
flask_baton schema is missing or outdated, instead of failing every step
and every sweep with the driver's error.
"""

from __future__ import annotations

from typing import Any

from huey.consumer import Consumer, Scheduler

from .appstate import AppState
from .steps import DEFAULT_QUEUE


def create_consumer(state: AppState, queue: str = DEFAULT_QUEUE, **options: Any) -> Consumer:
    """A Huey consumer for one of the app's queues; ``options`` as Huey's ``Consumer``."""
    state.ready()
    every = max(1.0, min(60.0, state.config.sweep_interval))

    class BatonScheduler(Scheduler):
        periodic_task_seconds = every

    class BatonConsumer(Consumer):
        scheduler_class = BatonScheduler

    return BatonConsumer(state.queues.huey(queue), **options)
