"""The Huey internals ``flask_baton.huey_compat`` relies on, pinned on real storages.

Each test names the internals it pins; when a Huey release changes one, the
failure says which and in what Huey version, before any workflow test does.
``python3 dev.py test --huey-min`` runs them on the oldest Huey pyproject.toml
allows, plain ``python3 dev.py test`` on the newest.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import huey as huey_module
import pytest
import redis
from huey import Huey, RedisHuey, SqliteHuey
from huey.api import Task, TaskWrapper
from huey.consumer import Consumer, Scheduler
from huey.signals import SIGNAL_ENQUEUED

from flask_baton import huey_compat

from .conftest import REDIS_URL
from .support import LINUX_PROC, RunningConsumer, open_files, wait_for


@contextmanager
def pinned(*internals: str) -> Iterator[None]:
    """Fail naming ``internals`` (and Huey's version) if anything in the block goes wrong."""
    try:
        yield
    except Exception as exc:
        pytest.fail(
            f"Huey {huey_module.__version__} no longer behaves as flask_baton/huey_compat.py assumes of "
            f"{', '.join(internals)}: {type(exc).__name__}: {exc}"
        )


@pytest.fixture
def sqlite_huey(tmp_path: Path) -> Iterator[Huey]:
    instance = SqliteHuey("compat", filename=str(tmp_path / "huey.db"), results=False)
    yield instance
    huey_compat.close(instance)


@pytest.fixture
def huey_on_redis(redis_huey_name: str) -> Iterator[Huey]:
    instance = RedisHuey(redis_huey_name, url=REDIS_URL, results=False)
    yield instance
    huey_compat.close(instance)


@pytest.fixture(params=["sqlite", "redis"])
def huey(request: pytest.FixtureRequest) -> Huey:
    """A real SqliteHuey on a file, or a RedisHuey under a key prefix no other test uses."""
    return request.getfixturevalue("sqlite_huey" if request.param == "sqlite" else "huey_on_redis")


def _echo(value: Any) -> None:
    """A task body; these tests never run it, they read the messages."""


def _register(huey: Huey, name: str = "echo") -> TaskWrapper:
    return huey.task(name=name)(_echo)


def _dequeue_all(huey: Huey) -> list[Task]:
    taken = []
    while (task := huey.dequeue()) is not None:
        taken.append(task)
    return taken


#: Each attribute huey_compat reads: (internal, what it is read from, attribute).
ATTRIBUTES = [
    ("Huey._emit", "huey", "_emit"),
    ("Huey.serialize_task", "huey", "serialize_task"),
    ("Huey.add_schedule", "huey", "add_schedule"),
    ("Huey.storage_kwargs", "huey", "storage_kwargs"),
    ("Huey.is_revoked", "huey", "is_revoked"),
    ("Huey.get", "huey", "get"),
    ("Huey.delete", "huey", "delete"),
    ("Huey._registry._registry", "registry", "_registry"),
    ("Huey._registry._periodic_tasks", "registry", "_periodic_tasks"),
    ("TaskWrapper.task_class", "wrapper", "task_class"),
    ("Consumer.scheduler_class", "consumer class", "scheduler_class"),
    ("Consumer._set_signal_handlers", "consumer class", "_set_signal_handlers"),
    ("Scheduler.periodic_task_seconds", "scheduler class", "periodic_task_seconds"),
    ("SqliteStorage.db", "sqlite storage", "db"),
    ("SqliteStorage.to_blob", "sqlite storage", "to_blob"),
    ("SqliteStorage.name", "sqlite storage", "name"),
    ("RedisStorage.conn", "redis storage", "conn"),
    ("RedisStorage.queue_key", "redis storage", "queue_key"),
    ("RedisStorage.pool", "redis storage", "pool"),
]


@pytest.mark.parametrize(("internal", "kind", "attribute"), ATTRIBUTES, ids=[a[0] for a in ATTRIBUTES])
def test_each_internal_huey_compat_reads_still_exists(
    request: pytest.FixtureRequest, sqlite_huey: Huey, internal: str, kind: str, attribute: str
) -> None:
    owners: dict[str, Callable[[], Any]] = {
        "huey": lambda: sqlite_huey,
        "registry": lambda: sqlite_huey._registry,
        "wrapper": lambda: _register(sqlite_huey),
        "consumer class": lambda: Consumer,
        "scheduler class": lambda: Scheduler,
        "sqlite storage": lambda: sqlite_huey.storage,
        "redis storage": lambda: request.getfixturevalue("huey_on_redis").storage,
    }
    assert hasattr(owners[kind](), attribute), (
        f"Huey {huey_module.__version__} has no {internal}, which flask_baton/huey_compat.py relies on"
    )


def test_sqlite_storage_keeps_messages_in_the_task_table_push_all_writes(sqlite_huey: Huey) -> None:
    with pinned("SqliteStorage's table task(queue, data, priority)"):
        with closing(sqlite3.connect(sqlite_huey.storage.filename)) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(task)")}
        assert {"queue", "data", "priority"} <= columns, f"the task table's columns are {sorted(columns)}"


def test_push_all_queues_each_task_once_in_fifo_order_with_huey_s_enqueued_signal(huey: Huey) -> None:
    echo = _register(huey)
    signalled: list[str] = []
    huey.signal(SIGNAL_ENQUEUED)(lambda _signal, task: signalled.append(task.id))
    first, batch, last = echo.s(0), [echo.s(i) for i in range(1, 51)], echo.s(51)

    with pinned("Huey._emit", "Huey.serialize_task", "SqliteStorage.db/to_blob/name", "RedisStorage.conn/queue_key"):
        huey.enqueue(first)
        huey_compat.push_all(huey, batch)
        huey.enqueue(last)
        assert huey.pending_count() == 52
        taken = _dequeue_all(huey)
        assert [task.args for task in taken] == [(i,) for i in range(52)], "not FIFO, or not Huey's messages"
        assert [task.id for task in taken] == [task.id for task in (first, *batch, last)]
        assert signalled == [task.id for task in (first, *batch, last)]


def test_push_all_on_sqlite_keeps_huey_s_priority_order(sqlite_huey: Huey) -> None:
    echo = _register(sqlite_huey)
    with pinned("SqliteStorage's task.priority column"):
        huey_compat.push_all(sqlite_huey, [echo.s("low", priority=1), echo.s("high", priority=9)])
        assert [task.args[0] for task in _dequeue_all(sqlite_huey)] == ["high", "low"]


def test_schedule_puts_a_delayed_task_in_the_schedule_not_the_queue(huey: Huey) -> None:
    echo = _register(huey)
    task = echo.s("later", delay=60)
    with pinned("Huey.add_schedule"):
        huey_compat.schedule(huey, task)
        assert (huey.pending_count(), huey.scheduled_count()) == (0, 1)
        assert [scheduled.id for scheduled in huey.scheduled()] == [task.id]


def test_sibling_is_a_queue_of_its_own_on_the_same_storage(huey: Huey) -> None:
    echo = _register(huey)
    with pinned("Huey.storage_kwargs"):
        sibling = huey_compat.sibling(huey, f"{huey.name}.llm")
    try:
        with pinned("Huey.storage_kwargs"):
            assert type(sibling) is type(huey)
            assert sibling.storage_kwargs == huey.storage_kwargs
            sibling.enqueue(_register(sibling).s("there"))
            huey.enqueue(echo.s("here"))
            assert (huey.pending_count(), sibling.pending_count()) == (1, 1)
            if isinstance(huey, SqliteHuey):
                assert sibling.storage.filename == huey.storage.filename
    finally:
        huey_compat.close(sibling)


def test_sqlite_huey_opens_every_connection_at_the_synchronous_level_asked(tmp_path: Path) -> None:
    instance = huey_compat.sqlite_huey("compat", str(tmp_path / "huey.db"), "NORMAL")
    sibling = huey_compat.sibling(instance, "compat.llm")
    try:
        with pinned("SqliteStorage._create_connection", "Huey.storage_class"):
            for queue in (instance, sibling):
                queue.storage.close()  # the next use opens a new connection
                with queue.storage.db() as cursor:
                    assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        huey_compat.close(sibling)
        huey_compat.close(instance)


def _always(_timestamp: Any) -> bool:
    return True


def test_forget_task_lets_a_task_name_be_registered_again(sqlite_huey: Huey) -> None:
    _register(sqlite_huey, "again")
    sqlite_huey.periodic_task(_always, name="again_periodic")(_echo)
    with pytest.raises(ValueError):  # why forget_task exists: Huey refuses a name twice
        _register(sqlite_huey, "again")

    with pinned("Huey._registry._registry", "Huey._registry._periodic_tasks"):
        huey_compat.forget_task(sqlite_huey, _echo.__module__, "again")
        huey_compat.forget_task(sqlite_huey, _echo.__module__, "again_periodic")
        again = _register(sqlite_huey, "again")
        sqlite_huey.periodic_task(_always, name="again_periodic")(_echo)
        assert sqlite_huey.deserialize_task(sqlite_huey.serialize_task(again.s(1))).args == (1,)
        assert [type(task).__name__ for task in sqlite_huey.read_periodic(None)] == ["again_periodic"]


def test_is_task_of_tells_one_task_s_messages_from_another_s(sqlite_huey: Huey) -> None:
    mine, other = _register(sqlite_huey, "mine"), _register(sqlite_huey, "other")
    with pinned("TaskWrapper.task_class"):
        assert huey_compat.is_task_of(mine.s(1), mine)
        assert not huey_compat.is_task_of(other.s(1), mine)


def test_create_consumer_checks_periodic_tasks_at_the_given_pace(sqlite_huey: Huey) -> None:
    ticks: list[float] = []
    sqlite_huey.periodic_task(_always, name="tick")(lambda: ticks.append(1.0))
    consumer = huey_compat.create_consumer(
        sqlite_huey,
        1.0,
        workers=1,
        worker_type="thread",
        periodic=True,
        initial_delay=0.01,
        max_delay=0.05,
        check_worker_health=False,
    )
    with pinned("Consumer.scheduler_class", "Scheduler.periodic_task_seconds"), RunningConsumer(consumer):
        # Huey's own pace is once a minute: a second tick within seconds is ours.
        wait_for(lambda: len(ticks) >= 2, "two periodic checks a second apart", timeout=15)


def test_stopping_tells_a_process_worker_its_consumer_was_asked_to_stop(sqlite_huey: Huey, tmp_path: Path) -> None:
    started, go, seen = tmp_path / "started", tmp_path / "go", tmp_path / "seen"

    def probe() -> None:  # runs in the forked worker: wait for the test, then say what it sees
        started.touch()
        wait_for(go.exists, "the test to ask the consumer to stop")
        seen.write_text(str(stopping()))

    task = sqlite_huey.task(name="probe")(probe)
    consumer = huey_compat.create_consumer(
        sqlite_huey, 60.0, workers=1, worker_type="process", initial_delay=0.01, max_delay=0.05
    )
    stopping = huey_compat.stopping(consumer)
    with pinned("Consumer.stop_flag", "its is_set()"), RunningConsumer(consumer):
        assert not stopping()
        sqlite_huey.enqueue(task.s())
        wait_for(started.exists, "the worker process to start the probe")
        consumer.stop_flag.set()  # what Consumer.stop() does first
        go.touch()
        wait_for(seen.exists, "the worker process to run the probe")
    assert seen.read_text() == "True"


@LINUX_PROC
def test_close_leaves_no_sqlite_file_open_whichever_threads_used_it(sqlite_huey: Huey) -> None:
    echo = _register(sqlite_huey)
    filename = sqlite_huey.storage.filename

    def use() -> None:
        sqlite_huey.enqueue(echo.s(threading.current_thread().name))

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    use()
    assert open_files(filename), "the storage holds no file open: this test would prove nothing"

    with pinned("SqliteStorage.close() closing the connection every thread shares"):
        huey_compat.close(sqlite_huey)
        assert open_files(filename) == []


def test_close_disconnects_redis_huey_s_connections(huey_on_redis: Huey) -> None:
    instance = huey_on_redis
    instance.enqueue(_register(instance).s(1))
    client_id = str(instance.storage.conn.client_id())
    with pinned("RedisStorage.pool"), redis.Redis.from_url(REDIS_URL) as admin:
        huey_compat.close(instance)
        wait_for(
            lambda: all(client["id"] != client_id for client in admin.client_list()),
            f"Redis to drop client {client_id}",
        )


def test_redis_client_lends_a_redis_huey_s_connection_and_nothing_else(huey_on_redis: Huey, sqlite_huey: Huey) -> None:
    with pinned("RedisStorage.conn"):
        client = huey_compat.redis_client(huey_on_redis)
        assert client is huey_on_redis.storage.conn and client.ping()
    assert huey_compat.redis_client(sqlite_huey) is None


def _spy_on_keys(huey: Huey) -> list[tuple[str, Any]]:
    """Record each call the real ``huey.storage`` gets to read or write a key (the storage still does it)."""
    calls: list[tuple[str, Any]] = []
    storage = huey.storage
    for name in ("peek_data", "peek_many", "pop_data", "delete_data", "put_data", "has_data_for_key"):
        original = getattr(storage, name, None)  # peek_many came after Huey 3.0
        if original is None:
            continue

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append((_name, args[0] if args else None))
            return _original(*args, **kwargs)

        setattr(storage, name, spy)
    return calls


def test_unrevocable_task_runs_without_touching_huey_s_revocation_keys_other_tasks_are_still_checked(
    huey: Huey,
) -> None:
    ran: list[Any] = []
    unrevocable = huey_compat.unrevocable_task(huey, ran.append, "unrevocable")
    checked = huey.task(name="checked")(lambda value: ran.append(("checked", value)))
    mine, theirs = unrevocable.s("mine"), checked.s("theirs")
    huey.enqueue(mine)
    huey.enqueue(theirs)
    # Revoked through Huey: flask_baton's run task ignores that (it cancels its own way), other tasks do not.
    huey.revoke_by_id(mine.id)
    unrevocable.revoke()
    huey.revoke_by_id(theirs.id)
    keys = _spy_on_keys(huey)
    with pinned("Huey.execute's is_revoked(task, timestamp, False)", "Task.revoke_id", "Huey.get / Huey.delete"):
        first, second = _dequeue_all(huey)
        del keys[:]
        huey.execute(first)
        assert keys == [], f"running a task of unrevocable_task still read or wrote these keys: {keys}"
        assert ran == ["mine"]
        huey.execute(second)
    assert ran == ["mine"], "a task revoked through Huey ran: its revocation check was skipped too"
    assert keys, "Huey checked no revocation key for another task"


def test_unrevocable_task_registered_again_on_the_same_huey_keeps_one_check(sqlite_huey: Huey) -> None:
    huey_compat.unrevocable_task(sqlite_huey, _echo, "unrevocable")
    check = sqlite_huey.is_revoked
    huey_compat.forget_task(sqlite_huey, _echo.__module__, "unrevocable")
    huey_compat.unrevocable_task(sqlite_huey, _echo, "unrevocable")
    assert sqlite_huey.is_revoked is check


def test_queue_depth_counts_a_queue_s_waiting_and_scheduled_messages_not_its_siblings(huey: Huey) -> None:
    echo = _register(huey)
    sibling = huey_compat.sibling(huey, f"{huey.name}.llm")
    try:
        with pinned("Huey.pending_count", "Huey.scheduled_count"):
            assert huey_compat.queue_depth(huey) == (0, 0)
            huey_compat.push_all(huey, [echo.s(i) for i in range(3)])
            huey_compat.schedule(huey, echo.s("later", delay=60))
            sibling.enqueue(_register(sibling).s("elsewhere"))
            assert huey_compat.queue_depth(huey) == huey_compat.QueueDepth(waiting=3, scheduled=1)
            assert huey_compat.queue_depth(sibling) == huey_compat.QueueDepth(waiting=1, scheduled=0)
            huey.dequeue()
            assert huey_compat.queue_depth(huey).waiting == 2
    finally:
        huey_compat.close(sibling)


def test_every_worker_calls_the_named_startup_and_shutdown_hooks_in_its_own_thread(sqlite_huey: Huey) -> None:
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def hook(what: str) -> Callable[[], None]:
        def record() -> None:
            with lock:
                calls.append((what, threading.current_thread().name))

        return record

    with pinned("Huey.on_startup(name=)", "Huey.on_shutdown(name=)"):
        sqlite_huey.on_startup(name="baton")(hook("replaced"))
        sqlite_huey.on_startup(name="baton")(hook("start"))  # a name registered again replaces the hook
        sqlite_huey.on_shutdown(name="baton")(hook("stop"))
        consumer = huey_compat.create_consumer(
            sqlite_huey, 60.0, workers=2, worker_type="thread", periodic=False, check_worker_health=False
        )
        with RunningConsumer(consumer):
            wait_for(lambda: len(calls) == 2, "both workers to start")
        starts = [thread for what, thread in calls if what == "start"]
        stops = [thread for what, thread in calls if what == "stop"]
        assert len(set(starts)) == 2 and sorted(stops) == sorted(starts), calls
