"""Building the Huey consumer ``flask baton worker`` (and the tests) run.

Huey checks periodic tasks once a minute; the sweep may need to run more
often (``BATON_SWEEP_INTERVAL`` < 60), so our consumer's scheduler checks
them every ``min(60, BATON_SWEEP_INTERVAL)`` seconds. The sweep's own lease
keeps it to one effective run per interval across all consumers.
"""

from __future__ import annotations

from typing import Any

from huey.consumer import Consumer

from . import huey_compat
from .appstate import AppState
from .steps import DEFAULT_QUEUE


def create_consumer(state: AppState, queue: str = DEFAULT_QUEUE, **options: Any) -> Consumer:
    """A Huey consumer for one of the app's queues; ``options`` as Huey's ``Consumer``."""
    every = max(1.0, min(60.0, state.config.sweep_interval))
    return huey_compat.create_consumer(state.queues.huey(queue), every, **options)
