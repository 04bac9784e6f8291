"""Every use flask_baton makes of Huey beyond its documented API, in one place.

Huey documents its ``Huey`` constructor, tasks, signals, ``enqueue``, the
``Consumer`` and its options, and ``storage.close()``. flask_baton relies on
the following as well; nothing outside this module touches them, and each is
pinned by a test in ``tests/test_huey_compat.py`` whose failure names it, so
a Huey release that changes one fails there, not in a workflow:

``Huey.serialize_task(task)`` and ``Huey._emit(signal, task)``
    ``push_all`` writes many messages in one storage call instead of one
    ``Huey.enqueue`` each: it needs the bytes ``enqueue`` would store, and
    sends the ``SIGNAL_ENQUEUED`` that ``enqueue`` would send.
``SqliteStorage``: its table ``task(queue, data, priority)``, ``name``,
``to_blob`` and ``db(commit=True)``
    ``push_all`` makes the INSERTs ``SqliteStorage.enqueue`` makes, in one
    transaction under the storage's own lock.
``RedisStorage``: ``conn``, ``queue_key`` and its FIFO list
    ``push_all`` makes one ``LPUSH`` of many messages, which ``RPOP`` takes
    in the order given. ``RedisStorage`` has no priorities (``priority`` is
    false); tasks with one go through ``Huey.enqueue``, which refuses them.
    ``redis_client`` lends ``conn`` to the rate limits (``limiter``).
``storage.add_to_schedule(data, eta)`` and ``Huey._emit(SIGNAL_SCHEDULED, task)``
    ``schedule`` puts a delayed task straight into the schedule, where
    ``task.schedule()`` would queue it for a worker to move there, as
    ``Huey.add_schedule`` does but without its INFO line per task.
``Huey.storage_kwargs``
    ``sibling`` builds a named queue's instance on the same storage.
``Huey._registry._registry`` and ``._periodic_tasks``
    Huey refuses to register a task name twice; ``forget_task`` drops ours
    so a second ``init_app`` with the same ``Huey`` registers them afresh.
``TaskWrapper.task_class``
    ``is_task_of`` tells our task's messages from others' in a signal receiver.
``Consumer.scheduler_class`` and ``Scheduler.periodic_task_seconds``
    ``create_consumer`` checks periodic tasks more often than once a minute.
``Consumer.worker_type`` and ``Consumer._set_signal_handlers()``
    ``create_consumer``'s consumer of threads sets its signal handlers before
    its workers start, not after (a SIGTERM in between killed it).
``Consumer.stop_flag`` and its ``is_set()``
    ``stopping`` lets a task see that its consumer was asked to stop (set
    before the fork, so process workers see it too): a worker then stops
    handing off steps (``handoff``).
``SqliteStorage.close()`` closes the one connection all threads share
    Huey 3.0 made that connection shared (2.x kept one per thread, which no
    single thread can close): the floor of Huey's version in pyproject.toml.
``RedisStorage.pool``
    ``RedisStorage.close()`` does nothing; ``close`` disconnects the pool.
``TaskWrapper``'s ``task_base``, ``Task.revoke_id``, ``Huey.is_revoked``, ``Huey.get`` and ``Huey.delete``
    ``unrevocable_task`` registers a task Huey never checks for revocation:
    ``Huey.execute`` asks ``is_revoked(task, timestamp, False)`` (a storage
    read) before each task and clears ``task.revoke_id`` after it (a storage
    write: ``delete`` in recent Huey, ``get`` in 3.0), two of the three
    storage round trips Huey spends per task.
``Huey.pending_count()`` and ``Huey.scheduled_count()``
    ``queue_depth``: the messages waiting on one Huey instance's queue and in
    its schedule (the sweep's "is this queue busy", the dashboard's queues),
    each counted by the storage without reading the messages.
``SqliteStorage._create_connection()`` and ``Huey.storage_class``
    ``sqlite_huey`` opens the queue file at the ``synchronous`` level of
    flask_baton's database (``BATON_SQLITE_SYNCHRONOUS``, ``NORMAL`` by
    default) instead of Huey's (``FULL`` in recent Huey: an fsync per
    enqueue and per dequeue, ``OFF`` in 3.0). A message a power loss takes
    back is one the sweep hands to Huey again, so the queue needs no fsync
    of its own.
``Huey.on_startup(name=)`` and ``Huey.on_shutdown(name=)``
    ``Queues`` registers its hooks by name (a second ``init_app`` replaces
    them): every Huey worker calls them when it starts and stops, in its own
    thread or process, which is how a consumer's heartbeat learns its queues.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from huey import Huey, SqliteHuey
from huey.api import Task, TaskWrapper
from huey.consumer import Consumer, Scheduler
from huey.signals import SIGNAL_ENQUEUED, SIGNAL_SCHEDULED
from huey.storage import RedisStorage, SqliteStorage


class _SqliteQueueStorage(SqliteStorage):  # type: ignore[misc]  # huey ships no type hints
    """``SqliteStorage`` whose every connection runs at one ``synchronous`` level."""

    def __init__(self, *args: Any, synchronous: str, **kwargs: Any) -> None:
        self.synchronous = synchronous
        super().__init__(*args, **kwargs)

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute(f"pragma synchronous={self.synchronous}")
        return conn


class _SqliteQueueHuey(SqliteHuey):  # type: ignore[misc]
    storage_class = _SqliteQueueStorage


def sqlite_huey(name: str, filename: str, synchronous: str) -> Huey:
    """A ``SqliteHuey`` on ``filename`` whose connections use ``synchronous`` (``NORMAL``, ``FULL``...).

    Its named queues (``sibling``) are built from its class and storage
    arguments, so they run at the same level.
    """
    return _SqliteQueueHuey(name, filename=filename, results=False, synchronous=synchronous)


def sibling(huey: Huey, name: str) -> Huey:
    """Another instance of ``huey``'s class, named ``name``, on the same storage."""
    return type(huey)(name, results=huey.results, utc=huey.utc, **huey.storage_kwargs)


def forget_task(huey: Huey, module: str, name: str) -> None:
    """Unregister the task ``module.name`` (periodic or not) from ``huey``, if present."""
    registry: Any = huey._registry
    registry._registry.pop(f"{module}.{name}", None)
    registry._periodic_tasks = [
        task for task in registry._periodic_tasks if (task.__module__, task.__name__) != (module, name)
    ]


def is_task_of(task: Task, wrapper: TaskWrapper) -> bool:
    """True if ``task`` is a message of the task ``wrapper`` registered."""
    return isinstance(task, wrapper.task_class)


def schedule(huey: Huey, task: Task) -> None:
    """Put ``task`` (made with ``delay=``) in ``huey``'s schedule, not its queue.

    This is ``huey.add_schedule(task)`` without its INFO line per task: every
    retry and snooze is scheduled, the worker's log (``worklog``) already says
    when it runs, and a step that snoozes to poll would fill the log with
    Huey's "Added task ... to schedule" lines. Relies on
    ``storage.add_to_schedule`` and ``_emit(SIGNAL_SCHEDULED)``.
    """
    huey.storage.add_to_schedule(huey.serialize_task(task), task.eta)
    huey._emit(SIGNAL_SCHEDULED, task)


def push_all(huey: Huey, tasks: Sequence[Task]) -> None:
    """Put ``tasks`` on ``huey``'s queue, in one write on the storages that allow it.

    Huey's storage API enqueues one message per call. For the two storages
    flask_baton documents, the same rows are written in one go, exactly as
    their ``enqueue`` writes each (one ``LPUSH`` of many values keeps FIFO
    order for ``RPOP``; one SQLite transaction of the same INSERTs). Any other
    storage, and immediate mode, goes through ``huey.enqueue`` task by task.
    """
    storage = huey.storage
    batched = type(storage) is SqliteStorage or (
        type(storage) is RedisStorage and not any(task.priority for task in tasks)
    )
    if len(tasks) < 2 or huey.immediate or not batched:
        for task in tasks:
            huey.enqueue(task)
        return
    for task in tasks:
        huey._emit(SIGNAL_ENQUEUED, task)
    messages = [huey.serialize_task(task) for task in tasks]
    if isinstance(storage, RedisStorage):
        storage.conn.lpush(storage.queue_key, *messages)
        return
    rows = [(storage.name, storage.to_blob(message), task.priority or 0) for message, task in zip(messages, tasks)]
    with storage.db(commit=True) as cursor:
        cursor.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)


#: The ``revoke_id`` of every message of an ``unrevocable_task``: never stored, never read.
NOT_REVOCABLE = "flask_baton:not-revocable"


class Unrevocable(Task):  # type: ignore[misc]  # huey ships no type hints
    """The base of a task whose messages are never revoked through Huey (``unrevocable_task``).

    ``Task.__init__`` sets a ``revoke_id`` per message; this one keeps
    ``NOT_REVOCABLE`` instead, so clearing it after the run can be skipped.
    """

    revoke_id = property(lambda _task: NOT_REVOCABLE, lambda _task, _value: None)


def unrevocable_task(huey: Huey, func: Callable[..., Any], name: str) -> TaskWrapper:
    """Register ``func`` as ``huey``'s task ``name``, and skip Huey's revocation checks for its messages.

    flask_baton cancels its steps itself (``baton.cancel_workflow``), so its
    run task never needs Huey's ``revoke``; without the checks a message
    costs one storage round trip (the dequeue) instead of three. Other tasks
    of ``huey`` are checked as before.
    """
    wrapper = huey.task(name=name, task_base=Unrevocable)(func)
    if not getattr(huey.is_revoked, "skips_unrevocable", False):
        _skip_revocation(huey)
    return wrapper


def _skip_revocation(huey: Huey) -> None:
    is_revoked, get, delete = huey.is_revoked, huey.get, huey.delete

    def checked(task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False if isinstance(task, Unrevocable) else bool(is_revoked(task, timestamp, peek))

    def got(key: str, peek: bool = False) -> Any:
        return None if key == NOT_REVOCABLE else get(key, peek)

    def deleted(key: str) -> Any:
        return False if key == NOT_REVOCABLE else delete(key)

    checked.skips_unrevocable = True  # type: ignore[attr-defined]
    huey.is_revoked, huey.get, huey.delete = checked, got, deleted


class QueueDepth(NamedTuple):
    """Messages on one Huey instance: ``waiting`` on its queue, ``scheduled`` for later (retries, snoozes)."""

    waiting: int
    scheduled: int


def redis_client(huey: Huey) -> Any:
    """The Redis client of a Redis Huey (``RedisStorage.conn``); None for other storages."""
    storage = huey.storage
    return storage.conn if isinstance(storage, RedisStorage) else None


def queue_depth(huey: Huey) -> QueueDepth:
    """How many messages wait on ``huey``'s queue and in its schedule, counted by the storage."""
    return QueueDepth(int(huey.pending_count()), int(huey.scheduled_count()))


def create_consumer(huey: Huey, periodic_seconds: float, **options: Any) -> Consumer:
    """A ``Consumer`` (``options`` as Huey's) checking periodic tasks every ``periodic_seconds``."""

    class BatonScheduler(Scheduler):  # type: ignore[misc]  # huey ships no type hints
        periodic_task_seconds = periodic_seconds

    class BatonConsumer(Consumer):  # type: ignore[misc]
        scheduler_class = BatonScheduler

        def start(self) -> None:
            # Huey sets its signal handlers after starting the scheduler and
            # workers: a SIGTERM in between (a deploy stopping a worker that has
            # just claimed a step) killed the process without handing the step
            # back. Threads and greenlets can have them first; forked workers
            # must not inherit them, so those keep Huey's order.
            if self.worker_type != "process":
                self._set_signal_handlers()
            super().start()

    return BatonConsumer(huey, **options)


def stopping(consumer: Consumer) -> Callable[[], bool]:
    """A check, callable from the consumer's workers, that ``consumer`` was asked to stop."""
    check: Callable[[], bool] = consumer.stop_flag.is_set
    return check


def close(huey: Huey) -> None:
    """Close ``huey``'s storage connections; Huey opens new ones if it is used again."""
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        storage.pool.disconnect()
    else:
        storage.close()
