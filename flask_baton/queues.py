"""Named queues: which Huey instance carries which step, and handing steps over.

Huey has one queue per ``Huey`` instance, so a named queue (``queue="llm"``)
is a sibling instance on the same storage, named ``"<huey name>.<queue>"``,
consumed by its own ``flask baton worker --queue llm`` pool. Every instance
carries one task, ``flask_baton.baton_run``, whose only argument is the step's
id: the database, not the message, holds everything else. The default
instance also carries the periodic sweep, and the periodic check of the
schedules (``ticks.run_due``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from huey import Huey
from huey.api import Task, TaskWrapper
from huey.signals import SIGNAL_INTERRUPTED

from . import huey_compat
from .events.batching import flush_all
from .steps import DEFAULT_QUEUE

RUN_TASK = "baton_run"
SWEEP_TASK = "baton_sweep"
SCHEDULES_TASK = "baton_schedules"
TASK_MODULE = "flask_baton"


class Queues:
    """The Huey instances of one app, each with the run task registered."""

    def __init__(
        self,
        huey: Huey,
        run: Callable[[str], None],
        hand_back: Callable[[str], None],
        sweep: Callable[[], None],
        serving: Callable[[str, bool], None],
        schedules: Callable[[], None],
    ) -> None:
        self._run = run
        self._hand_back = hand_back
        self._serving = serving
        self._hueys: dict[str, Huey] = {DEFAULT_QUEUE: huey}
        self._tasks: dict[str, TaskWrapper] = {DEFAULT_QUEUE: self._register(huey, DEFAULT_QUEUE)}
        self._stopping: dict[str, Callable[[], bool]] = {}
        # Worker threads enqueue to a queue's instance as a consumer of it starts:
        # two siblings made at once would leave one, and its connection, unclosed.
        self._making = threading.Lock()
        for name, check in ((SWEEP_TASK, sweep), (SCHEDULES_TASK, schedules)):
            huey_compat.forget_task(huey, TASK_MODULE, name)
            huey.periodic_task(_always, name=name)(_named(check, name))

    def huey(self, queue: str = DEFAULT_QUEUE) -> Huey:
        """The Huey instance for ``queue``, made on first use."""
        if queue not in self._hueys:
            with self._making:
                if queue not in self._hueys:
                    default = self._hueys[DEFAULT_QUEUE]
                    sibling = huey_compat.sibling(default, f"{default.name}.{queue}")
                    self._tasks[queue] = self._register(sibling, queue)
                    self._hueys[queue] = sibling
        return self._hueys[queue]

    def enqueue_many(self, node_ids: Sequence[str], queue: str, priority: int | None) -> None:
        """Hand several steps of one queue to Huey now, in one storage write where possible.

        A fan-out's root releases hundreds of steps at once; one message at a
        time, each a round trip to Redis or a write transaction on SqliteHuey's
        file that the consumers' dequeues contend with, its worker would spend
        longer handing them over than the others take to run them.
        """
        self.huey(queue)
        task = self._tasks[queue]
        huey_compat.push_all(task.huey, [task.s(node_id, priority=priority) for node_id in node_ids])

    def enqueue(self, node_id: str, queue: str, priority: int | None, delay: float = 0.0) -> None:
        """Hand a step to Huey, now or after ``delay`` seconds.

        A delayed step goes straight into Huey's schedule, which consumers'
        schedulers move to the queue when it is due. ``task.schedule()`` would
        put it on the queue for a worker to park in the schedule: a consumer
        that is stopping could take that message with it (a hand-back's).
        """
        self.huey(queue)
        task = self._tasks[queue]
        if delay > 0:
            huey_compat.schedule(task.huey, task.s(node_id, delay=delay, priority=priority))
        else:
            task.huey.enqueue(task.s(node_id, priority=priority))

    def watch_stop(self, queue: str, stopping: Callable[[], bool]) -> None:
        """Say how to tell that this process's consumer of ``queue`` was asked to stop (``create_consumer``)."""
        self._stopping[queue] = stopping

    def stopping(self, queue: str) -> bool:
        """True once this process's consumer of ``queue`` was asked to stop; False with no consumer here."""
        check = self._stopping.get(queue)
        return check is not None and check()

    def close(self) -> None:
        """Close the storage connections of every instance made so far."""
        for huey in self._hueys.values():
            huey_compat.close(huey)

    def _register(self, huey: Huey, queue: str) -> TaskWrapper:
        huey_compat.forget_task(huey, TASK_MODULE, RUN_TASK)
        wrapper = huey_compat.unrevocable_task(huey, _named(self._run, RUN_TASK), RUN_TASK)
        hand_back = self._hand_back

        def on_interrupted(_signal: str, task: Task, *_: Any) -> None:
            # A thread worker's step is abandoned when the consumer is
            # interrupted; give it back so another consumer runs it now.
            if huey_compat.is_task_of(task, wrapper):
                hand_back(task.args[0])

        huey.signal(SIGNAL_INTERRUPTED)(on_interrupted)
        # Each worker says it serves the queue (its heartbeat), and that it stopped.
        serving = self._serving
        huey.on_startup(name=f"{TASK_MODULE}.serving")(lambda: serving(queue, True))
        huey.on_shutdown(name=f"{TASK_MODULE}.stopped_serving")(lambda: serving(queue, False))
        # A process worker leaves by os._exit, skipping atexit: send held events first.
        huey.on_shutdown(name=f"{TASK_MODULE}.publish_held_events")(flush_all)
        return wrapper


def _always(_timestamp: Any) -> bool:
    """Run at every periodic check: the sweep's lease paces it, a schedule's ticks pace its workflows."""
    return True


def _named(func: Callable[..., None], name: str) -> Callable[..., None]:
    def task(*args: Any) -> None:
        func(*args)

    task.__module__ = TASK_MODULE
    task.__name__ = task.__qualname__ = name
    return task
