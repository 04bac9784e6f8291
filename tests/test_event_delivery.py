"""Events that are never lost: the outbox behind ``workflow_finished``, and subscribers that resume.

Runs on both backends: SQLite with the database feed (the end's event
commits with the end, so there is nothing for the outbox to do) and
PostgreSQL with Redis Streams (the end is published after its commit).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from flask_baton import Workflow, events
from flask_baton.events.redis import reader_name
from flask_baton.store.tables import completions
from flask_baton.sweep import sweep

from .apps import KILLED_AT_THE_END
from .conftest import REDIS_URL
from .steps import constant
from .support import ThreadConsumer, WorkerProcess, wait_finished, wait_for


def _until_finished(subscription: Any, workflow_id: str, timeout: float = 20.0) -> list[events.Event]:
    """Events of one workflow up to its ``workflow_finished`` (or fail at the deadline)."""
    seen: list[events.Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = subscription.get(timeout=0.5)
        if event is not None and event.workflow_id == workflow_id:
            seen.append(event)
            if event.name == events.WORKFLOW_FINISHED:
                return seen
    raise AssertionError(f"no workflow_finished of {workflow_id} within {timeout}s; got {[e.name for e in seen]}")


def _deduplicated(seen: list[events.Event]) -> list[events.Event]:
    """What a subscriber keeps: the first delivery of each ``event_id``."""
    kept: dict[str, events.Event] = {}
    for event in seen:
        kept.setdefault(event.id, event)
    return list(kept.values())


def _published_at(app: Flask, workflow_id: str) -> float | None:
    """When a workflow's end left the outbox (None: not yet, or not ended)."""
    with app.extensions["baton"].engine.connect() as conn:
        found: float | None = conn.execute(
            select(completions.c.published_at).where(completions.c.workflow_id == workflow_id)
        ).scalar_one_or_none()
    return found


def test_a_consumer_killed_between_a_workflows_end_and_its_publication_still_gets_it_delivered(
    app: Flask, settings: dict[str, Any]
) -> None:
    state = app.extensions["baton"]
    wf = Workflow(KILLED_AT_THE_END).add("only", constant.new())
    with events.subscribe_workflow(wf.workflow_id) as subscription:
        with WorkerProcess(settings, factory="tests.apps:create_app_killed_at_an_end") as worker:
            wf.insert()
            wait_for(lambda: worker.process.poll() is not None, "the consumer to kill itself")
        assert worker.process.returncode == -signal.SIGKILL
        assert wait_finished(app, wf.workflow_id).state == "completed"
        before_sweep = [e for e in subscription.iter(timeout=0.5) if e.name == events.WORKFLOW_FINISHED]
        if state.events.atomic:
            # The database feed: the event committed with the end, nothing was left to lose.
            assert [e.workflow_id for e in before_sweep] == [wf.workflow_id]
        else:
            # Redis: the end committed, its event died with the process, still in the outbox.
            assert before_sweep == []
            assert _published_at(app, wf.workflow_id) is None
        report = sweep(state, force=True, now=time.time() + state.config.heartbeat_seconds + 1)
        after_sweep = [] if state.events.atomic else _until_finished(subscription, wf.workflow_id)
    assert report.republished == ([] if state.events.atomic else [wf.workflow_id])
    (finished,) = _deduplicated(before_sweep + after_sweep)
    assert finished.id == f"{wf.workflow_id}:finished:{round(finished.payload['timestamp'] * 1_000_000)}"
    assert (finished.payload["outcome"], finished.payload["workflow_label"]) == ("completed", KILLED_AT_THE_END)
    assert _published_at(app, wf.workflow_id) is not None
    assert sweep(state, force=True, now=time.time() + 3600).republished == []


def test_the_sweep_takes_ends_that_were_sent_out_of_the_outbox_without_sending_them_again(
    app: Flask, consumer: ThreadConsumer
) -> None:
    state = app.extensions["baton"]
    wf = Workflow("delivery:sent").add("only", constant.new())
    with events.subscribe_workflow(wf.workflow_id) as subscription:
        wf.insert()
        heard = _until_finished(subscription, wf.workflow_id)
        # On Redis the end waits in the outbox until a sweep finds it sent; the feed's left it at once.
        assert (_published_at(app, wf.workflow_id) is None) is not state.events.atomic
        assert sweep(state, force=True, now=time.time() + state.config.heartbeat_seconds + 1).republished == []
        assert subscription.get(timeout=0.3) is None
    assert [e.name for e in heard].count(events.WORKFLOW_FINISHED) == 1
    assert _published_at(app, wf.workflow_id) is not None


def test_a_subscriber_that_resumes_after_its_cursor_receives_what_it_missed(
    app: Flask, consumer: ThreadConsumer
) -> None:
    first = Workflow("delivery:first").add("only", constant.new())
    with events.subscribe_all() as subscription:
        first.insert()
        heard = _until_finished(subscription, first.workflow_id)
        cursor = subscription.cursor
    # Disconnected: these events happen while nobody listens.
    missed = Workflow("delivery:missed").add("a", constant.new()).add("b", constant.new(), deps=["a"])
    missed.insert()
    wait_finished(app, missed.workflow_id)
    with events.subscribe_all(after=cursor) as resumed:
        caught_up = _until_finished(resumed, missed.workflow_id)
    known = {event.id for event in heard}
    assert [(e.payload.get("step_name"), e.payload.get("state", e.name)) for e in caught_up if e.id not in known] == [
        ("a", "executing"),
        ("a", "completed"),
        ("b", "executing"),
        ("b", "completed"),
        (None, "workflow_finished"),
    ]


def test_a_cursor_of_another_transport_is_refused_naming_it(app: Flask) -> None:
    with pytest.raises(ValueError, match="after='not-a-cursor' is not a cursor of the"):
        events.subscribe_all(after="not-a-cursor")


def test_a_subscriber_whose_redis_connection_is_killed_reconnects_and_misses_nothing(
    app: Flask, consumer: ThreadConsumer
) -> None:
    """Redis restarting looks, to a subscriber, like its connection dropping: this kills only its own.

    The shared Redis server is not restarted (other tests use it): the
    subscriber's connection, found by its client name, is closed from the
    server side with ``CLIENT KILL`` while the workflow runs.
    """
    state = app.extensions["baton"]
    if state.events.atomic:
        pytest.skip("the database feed holds no connection between polls")
    admin = redis.Redis.from_url(REDIS_URL)
    name = reader_name(state.config.pubsub_prefix + events.topic_all())

    def readers() -> set[int]:
        return {int(client["id"]) for client in admin.client_list() if client["name"] == name}

    wf = Workflow("delivery:reconnect").add("a", constant.new()).add("b", constant.new(), deps=["a"])
    try:
        with events.subscribe_all() as subscription:
            (killed,) = readers()
            admin.client_kill_filter(_id=killed)
            wf.insert()
            wait_finished(app, wf.workflow_id)
            seen = _until_finished(subscription, wf.workflow_id)
            assert killed not in readers() and len(readers()) == 1
    finally:
        admin.close()
    assert [(e.payload.get("step_name"), e.payload.get("state", e.name)) for e in _deduplicated(seen)] == [
        ("a", "executing"),
        ("a", "completed"),
        ("b", "executing"),
        ("b", "completed"),
        (None, "workflow_finished"),
    ]


def test_a_version_5_database_gains_the_outbox_with_its_announced_ends_counted_as_published(app: Flask) -> None:
    from flask_baton.store import migrations

    from .steps import baton
    from .support import make_version

    wf = Workflow("delivery:before-the-upgrade").add("only", constant.new())
    with ThreadConsumer(app):
        wf.insert()
        wait_finished(app, wf.workflow_id)
    make_version(app, 5)

    assert baton.create_schema() == (5, migrations.SCHEMA_VERSION)
    assert _published_at(app, wf.workflow_id) is not None
    state = app.extensions["baton"]
    assert sweep(state, force=True, now=time.time() + 3600).republished == []
