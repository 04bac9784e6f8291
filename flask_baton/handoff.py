"""Direct hand-off: the worker that completes a step runs the step it released next, skipping Huey.

Through Huey, a chain's hop costs an enqueue, a dequeue and a claim of its
own. Handed off, the claim rides in the completion's statement (PostgreSQL)
or transaction (SQLite), and the worker runs the step right after, within
the same Huey delivery. The claim is the same compare-and-set as any claim,
with the same lease: if the worker dies, the sweep rescues the step as it
rescues any step whose consumer died.

A completion hands off (``HandOff.take``) one released step that can run
now, whose function is registered in this process, on the queue of the
delivered step (the queue this worker consumes: every step's message goes
to its own queue), and that no step of that queue outranks in priority
(Huey would run a waiting message of a higher priority first). Every other
released step goes to Huey as before.

The hand-off is bounded, so a long chain of quick steps neither keeps the
worker from messages waiting in its queue nor holds up a stopping consumer:
a delivery hands off only while ``BATON_HANDOFF_SECONDS`` have not passed
since its step was claimed, and not once the consumer was asked to stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cached_property

from .steps import Step


class HandOff:
    """What the completions of one Huey delivery may hand off, and until when."""

    def __init__(self, steps: Mapping[str, Step], queue: str, budget: float, stopping: Callable[[], bool]) -> None:
        """``steps``: the registry; ``queue``: the delivered step's; ``budget``: seconds from now;
        ``stopping``: whether this worker's consumer was asked to stop."""
        self._steps = steps
        self._queue = queue
        self._until = time.monotonic() + budget
        self._stopping = stopping

    def take(self) -> frozenset[str]:
        """The tasks a completion may hand off now (``transitions.complete``); none once the delivery is done."""
        if time.monotonic() >= self._until or self._stopping():
            return frozenset()
        return self._tasks

    @cached_property
    def _tasks(self) -> frozenset[str]:
        """Registered steps of this queue that no step of the queue outranks (Huey's priority: higher first)."""
        on_queue = {name: step.priority or 0 for name, step in self._steps.items() if step.queue == self._queue}
        top = max(on_queue.values(), default=0)
        return frozenset(name for name, priority in on_queue.items() if priority == top)
