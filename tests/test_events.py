"""Events across processes: a consumer subprocess publishes, the test process subscribes.

Runs over both transports (the database feed, and Redis Streams) on both
backends.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_baton import Workflow, events
from flask_baton.store import PostgresStore
from flask_baton.store.tables import completions
from flask_baton.sweep import sweep

from .conftest import REDIS_URL, require_service
from .steps import always_fail, constant, sum_inputs
from .support import FINISHED_KEYS, STEP_KEYS, ThreadConsumer, WorkerProcess, wait_finished


@pytest.fixture(params=["database", "redis"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def app_overrides(transport: str) -> dict[str, Any]:
    if transport == "database":
        return {}
    require_service("redis", REDIS_URL, 6379)
    return {"BATON_PUBSUB_URL": REDIS_URL, "BATON_PUBSUB_PREFIX": f"test-{uuid.uuid4().hex[:10]}:"}


def _collect(subscription: Any, until: str, timeout: float = 20.0) -> list[events.Event]:
    """Events until one named ``until`` arrives (or fail at the deadline)."""
    seen: list[events.Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = subscription.get(timeout=0.5)
        if event is not None:
            seen.append(event)
            if event.name == until:
                return seen
    raise AssertionError(f"no {until} event within {timeout}s; got {[e.name for e in seen]}")


def test_topics_are_built_by_the_helpers() -> None:
    assert events.topic_all() == "workflow:all"
    assert events.topic_for("abc") == "workflow:abc"


def test_consumer_process_events_reach_a_subscriber_in_this_process(
    app: Flask, settings: dict[str, Any], app_overrides: dict[str, Any]
) -> None:
    wf = Workflow("events:chain").add("a", constant.new(value=2)).add("b", sum_inputs.new(), deps=["a"])
    with events.subscribe_all() as everything:
        with WorkerProcess({**settings, **app_overrides}) as worker:
            wf.insert()
            with events.subscribe_workflow(wf.workflow_id) as mine:
                seen = _collect(mine, until="workflow_finished")
            wait_finished(app, wf.workflow_id)
        all_seen = [e for e in _collect(everything, until="workflow_finished") if e.workflow_id == wf.workflow_id]
    steps = [(e.payload["step_name"], e.payload["state"]) for e in seen if e.name == "workflow_step_updated"]
    assert steps == [("b", "executing"), ("b", "completed")] or steps[:2] == [("a", "executing"), ("a", "completed")]
    assert ("b", "completed") in steps
    for event in seen:
        keys = STEP_KEYS if event.name == "workflow_step_updated" else FINISHED_KEYS
        assert set(event.payload) == keys | {"event_id"}
        assert event.payload["workflow_label"] == "events:chain"
    finished = [e for e in all_seen if e.name == "workflow_finished"]
    assert len(finished) == 1
    assert (finished[0].payload["outcome"], finished[0].payload["failed_steps"]) == ("completed", [])
    completed = [e.payload for e in all_seen if e.payload.get("state") == "completed"]
    assert {p["step_name"] for p in completed} == {"a", "b"}
    assert all(p["has_result"] and p["worker"].endswith(f":{worker.process.pid}") for p in completed)


def test_failed_workflow_is_announced_once_with_its_failed_steps(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow("events:fail").add("boom", always_fail.new()).add("after", constant.new(), deps=["boom"])
    with events.subscribe_workflow(wf.workflow_id) as subscription:
        wf.insert()
        seen = _collect(subscription, until="workflow_finished")
        assert subscription.get(timeout=0.3) is None  # nothing after the end
    states = [(e.payload["step_name"], e.payload["state"]) for e in seen if e.name == "workflow_step_updated"]
    assert ("boom", "discarded") in states and ("after", "cancelled") in states
    assert seen[-1].payload["failed_steps"] == ["after", "boom"]
    assert seen[-1].payload["outcome"] == "failed"


def test_subscription_iteration_ends_after_an_idle_timeout_and_after_close(app: Flask) -> None:
    subscription = events.subscribe_all()
    started = time.monotonic()
    assert list(subscription.iter(timeout=0.2)) == []
    assert time.monotonic() - started >= 0.2
    subscription.close()
    assert subscription.get(timeout=5) is None  # closed: returns at once
    assert time.monotonic() - started < 3


def test_a_reconnecting_subscriber_reseeds_from_the_query_and_carries_on(app: Flask, consumer: ThreadConsumer) -> None:
    """The documented pattern: on (re)connect, subscribe first, then read state."""
    query = app.extensions["baton"].query
    first = Workflow("events:first").add("only", constant.new())
    with events.subscribe_all() as subscription:
        first.insert()
        _collect(subscription, until="workflow_finished")
    # Disconnected: this workflow's events are missed.
    missed = Workflow("events:missed").add("only", constant.new())
    missed.insert()
    wait_finished(app, missed.workflow_id)
    with events.subscribe_all() as subscription:
        known = {w.id: w.state for w in query.list_workflows().workflows}
        assert known[missed.workflow_id] == "completed"
        later = Workflow("events:later").add("only", constant.new())
        later.insert()
        seen = []
        while not any(e.name == "workflow_finished" and e.workflow_id == later.workflow_id for e in seen):
            seen += _collect(subscription, until="workflow_finished")
    # Over Redis the tail of `missed` may still arrive (published just after
    # its commit): a subscriber drops events of workflows it already knows ended.
    assert {e.workflow_id for e in seen} <= {missed.workflow_id, later.workflow_id}
    assert [e.payload.get("state", e.name) for e in seen if e.workflow_id == later.workflow_id] == [
        "executing",
        "completed",
        "workflow_finished",
    ]


def test_a_workflow_ended_by_its_last_completion_is_announced_once_and_never_again_by_the_sweep(
    app: Flask, consumer: ThreadConsumer
) -> None:
    """On PostgreSQL the completion that ends the workflow claims its announcement in the same statement.

    ``announced_at`` then equals ``finished_at`` (one statement, one time),
    as it does when the database feed announces in the completion's
    transaction; announcing afterwards (SQLite with Redis Streams) writes a
    later time. Either way the end is heard once and the sweep leaves it alone.
    """
    state = app.extensions["baton"]
    wf = Workflow("events:one").add("only", constant.new())
    with events.subscribe_workflow(wf.workflow_id) as subscription:
        wf.insert()
        seen = _collect(subscription, until="workflow_finished")
        assert subscription.get(timeout=0.3) is None
    assert [e.name for e in seen].count("workflow_finished") == 1
    with state.engine.connect() as conn:
        row = conn.execute(select(completions).where(completions.c.workflow_id == wf.workflow_id)).one()
    with_the_end = isinstance(state.store, PostgresStore) or state.events.atomic
    assert (row.announced_at == row.finished_at) is with_the_end
    assert sweep(state, force=True, now=time.time() + 3600).announced == []
