"""Handing steps to Huey: many at once, in order, on the real storages (no consumer)."""

from __future__ import annotations

import pytest
from flask import Flask
from huey import Huey
from huey.signals import SIGNAL_ENQUEUED

from flask_baton.steps import DEFAULT_QUEUE


@pytest.fixture
def huey(app: Flask) -> Huey:
    """The app's default Huey (the ``app`` fixture closes it)."""
    return app.extensions["baton"].queues.huey()


def _drain(huey: Huey) -> list[str]:
    taken = []
    while (task := huey.dequeue()) is not None:
        taken.append(task.args[0])
    return taken


def test_steps_enqueued_together_arrive_once_each_in_order(app: Flask, huey: Huey) -> None:
    queues = app.extensions["baton"].queues
    signalled: list[str] = []
    huey.signal(SIGNAL_ENQUEUED)(lambda _signal, task: signalled.append(task.args[0]))
    node_ids = [f"n{i:03d}" for i in range(300)]

    queues.enqueue_many(node_ids, DEFAULT_QUEUE, None)

    assert huey.pending_count() == 300
    assert _drain(huey) == node_ids
    assert signalled == node_ids  # Huey's own enqueue signal, as for one at a time


def test_one_step_and_a_delayed_step_take_huey_s_own_paths(app: Flask, huey: Huey) -> None:
    queues = app.extensions["baton"].queues

    queues.enqueue_many(["only"], DEFAULT_QUEUE, None)
    queues.enqueue("later", DEFAULT_QUEUE, None, delay=60)

    assert (huey.pending_count(), huey.scheduled_count()) == (1, 1)
    assert _drain(huey) == ["only"]


def test_threads_asking_at_once_for_a_new_queue_share_one_huey_instance(app: Flask) -> None:
    import threading

    queues = app.extensions["baton"].queues
    start = threading.Barrier(8)
    got: list[Huey] = []

    def ask() -> None:
        start.wait()
        got.append(queues.huey("raced"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(got) == 8 and all(huey is got[0] for huey in got)  # one instance: closed with the app
