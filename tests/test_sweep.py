"""The sweep: rescue of dead consumers' steps, lost messages, the finish backstop, pruning.

Dead consumers are real in tests/test_faults.py; here the same situations are
set up directly in the database (a claim by a consumer that never renews,
a flushed queue) and the sweep runs with an explicit clock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from flask_baton import Workflow, telemetry
from flask_baton.store.tables import completions, debug_logs, edges, events, nodes, workflows
from flask_baton.sweep import LOST_RUNS_ALLOWED, sweep

from .steps import constant, slow, sum_inputs
from .support import DATABASE_FEED, ThreadConsumer, claim_as_dead_consumer, step_states, wait_finished, wait_for

LEASE = 2.0
FAST = {"BATON_LEASE_SECONDS": LEASE, "BATON_HEARTBEAT_SECONDS": 0.2, "BATON_SWEEP_INTERVAL": 1.0}


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return FAST


def _chain(name: str) -> Workflow:
    return Workflow(name).add("first", constant.new(value=2)).add("second", sum_inputs.new(), deps=["first"])


def _flush_queue(app: Flask) -> None:
    app.extensions["baton"].queues.huey().flush()


def test_step_of_a_dead_consumer_is_rescued_and_the_workflow_completes(app: Flask) -> None:
    state = app.extensions["baton"]
    rescued: list[dict[str, Any]] = []
    receiver = lambda _sender, **payload: rescued.append(payload)  # noqa: E731
    telemetry.plugin_rescued.connect(receiver)
    wf = _chain("rescue")
    first = wf.insert()[0]
    _flush_queue(app)
    claimed_at = time.time() - 10
    claim_as_dead_consumer(app, first.id, claimed_at)

    assert sweep(state, force=True, now=claimed_at + LEASE / 2).rescued == []  # lease not expired yet
    report = sweep(state, force=True)
    assert report.rescued == [first.id]
    assert step_states(app, wf.workflow_id)["first"] == "retryable"
    with ThreadConsumer(app, workers=2):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = {s.step_name: s for s in state.query.get_workflow_jobs(wf.workflow_id)}
    assert (steps["first"].attempt, steps["second"].result) == (2, 2)
    assert [(p["step_name"], p["worker"]) for p in rescued] == [("first", "gone-host:4242")]
    assert "stopped renewing its lease" in rescued[0]["reason"]
    telemetry.plugin_rescued.disconnect(receiver)


def test_step_lost_too_often_is_discarded_and_cancels_its_dependents(app: Flask) -> None:
    state = app.extensions["baton"]
    wf = _chain("lost-often")
    first = wf.insert()[0]
    _flush_queue(app)
    for _ in range(1 + LOST_RUNS_ALLOWED):
        claim_as_dead_consumer(app, first.id, time.time() - 10)
        report = sweep(state, force=True)
        if report.discarded:
            break
        assert report.rescued == [first.id]
    assert report.discarded == [first.id]
    assert step_states(app, wf.workflow_id) == {"first": "discarded", "second": "cancelled"}
    assert state.query.get_workflow(wf.workflow_id).state == "failed"


def test_a_live_consumers_lease_is_renewed_so_a_slow_step_is_not_rescued(app: Flask) -> None:
    state = app.extensions["baton"]
    wf = Workflow("long").add("nap", slow.new(seconds=LEASE * 1.5))
    nap = wf.insert()[0]
    with ThreadConsumer(app, workers=1):
        wait_for(lambda: step_states(app, wf.workflow_id)["nap"] == "executing", "nap to start")
        wait_for(lambda: time.time() - _started_at(app, nap.id) > LEASE * 1.1, "the lease period to pass")
        assert sweep(state, force=True).rescued == []
        assert wait_finished(app, wf.workflow_id).state == "completed"


def _started_at(app: Flask, node_id: str) -> float:
    with app.extensions["baton"].engine.connect() as conn:
        return conn.execute(select(nodes.c.started_at).where(nodes.c.id == node_id)).scalar_one()


def test_step_whose_message_was_lost_is_handed_to_huey_again(app: Flask) -> None:
    state = app.extensions["baton"]
    wf = _chain("lost-message")
    wf.insert()
    _flush_queue(app)
    assert sweep(state, force=True).requeued == []  # too early: it may still be queued
    report = sweep(state, force=True, now=time.time() + LEASE + 1)
    assert len(report.requeued) == 1
    assert sweep(state, force=True, now=time.time() + LEASE + 1).requeued == []  # once per lease
    with ThreadConsumer(app, workers=2):
        assert wait_finished(app, wf.workflow_id).state == "completed"


def test_periodic_sweep_in_a_consumer_recovers_a_lost_message_by_itself(app: Flask) -> None:
    wf = _chain("periodic")
    wf.insert()
    _flush_queue(app)
    with ThreadConsumer(app, workers=2, periodic=True):
        assert wait_finished(app, wf.workflow_id, timeout=LEASE + 15).state == "completed"


def test_only_one_sweep_runs_per_interval(app: Flask) -> None:
    state = app.extensions["baton"]
    now = time.time()
    assert sweep(state, now=now).ran
    assert not sweep(state, now=now + 0.1).ran
    assert sweep(state, now=now + 1.0).ran
    assert sweep(state, force=True, now=now + 1.1).ran


def _run_chain(app: Flask, label: str) -> tuple[Workflow, float]:
    """Insert a chain and run it to the end; return it and its ``finished_at``."""
    wf = _chain(label)
    wf.insert()
    with ThreadConsumer(app, workers=2):
        return wf, wait_finished(app, wf.workflow_id).finished_at


@contextmanager
def _heard_finished() -> Iterator[list[dict[str, Any]]]:
    """The ``workflow_finished`` signals sent in this block."""
    finished: list[dict[str, Any]] = []
    receiver = lambda _sender, **payload: finished.append(payload)  # noqa: E731
    telemetry.workflow_finished.connect(receiver)
    try:
        yield finished
    finally:
        telemetry.workflow_finished.disconnect(receiver)


@pytest.mark.parametrize("app_overrides", [{**FAST, **DATABASE_FEED}])
def test_unannounced_workflow_end_is_announced_once_by_the_sweep(app: Flask) -> None:
    state = app.extensions["baton"]
    wf, finished_at = _run_chain(app, "backstop")
    # As if the last step's consumer died between its commit and announcing.
    with state.store.write() as conn:
        conn.execute(update(completions).values(announced_at=None))
        conn.execute(events.delete().where(events.c.name == "workflow_finished"))
    with _heard_finished() as finished:
        assert sweep(state, force=True, now=finished_at).announced == []  # within the grace period
        later = time.time() + 5
        assert sweep(state, force=True, now=later).announced == [wf.workflow_id]
        assert sweep(state, force=True, now=later + 1).announced == []
    assert [(p["workflow_id"], p["outcome"]) for p in finished] == [(wf.workflow_id, "completed")]
    with state.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).where(events.c.name == "workflow_finished", events.c.workflow_id == wf.workflow_id)
            ).scalar_one()
            == 1
        )


def test_workflow_left_settled_but_running_is_finished_and_announced_once_by_the_sweep(app: Flask) -> None:
    state = app.extensions["baton"]
    wf, _ = _run_chain(app, "settled")
    # As if the last step's consumer died after its completion was stored and
    # before the workflow's end was (two statements on PostgreSQL).
    with state.store.write() as conn:
        conn.execute(update(workflows).values(state="running", finished_at=None))
        conn.execute(completions.delete())
    with _heard_finished() as finished:
        assert sweep(state, force=True).finished == [wf.workflow_id]
        assert sweep(state, force=True).finished == []
    assert [(p["workflow_id"], p["outcome"]) for p in finished] == [(wf.workflow_id, "completed")]
    assert state.query.get_workflow(wf.workflow_id).state == "completed"
    assert _count(app, completions, wf.workflow_id) == 1


def _age_workflow(app: Flask, workflow_id: str, seconds: float) -> None:
    with app.extensions["baton"].store.write() as conn:
        conn.execute(
            update(workflows)
            .where(workflows.c.id == workflow_id)
            .values(finished_at=workflows.c.finished_at - seconds, created_at=workflows.c.created_at - seconds)
        )


def _count(app: Flask, table: Any, workflow_id: str) -> int:
    with app.extensions["baton"].engine.connect() as conn:
        return conn.execute(select(func.count()).where(table.c.workflow_id == workflow_id)).scalar_one()


def test_prune_removes_old_settled_workflows_and_keeps_running_and_young_ones(app: Flask) -> None:
    old, young = _chain("old"), _chain("young")
    with ThreadConsumer(app, workers=2):
        old.insert()
        young.insert()
        wait_finished(app, old.workflow_id)
        wait_finished(app, young.workflow_id)
    running = _chain("running")
    running.insert()
    _age_workflow(app, old.workflow_id, 3600)
    _age_workflow(app, running.workflow_id, 3600)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["baton", "prune", "--max-age", "600", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert re.search(r"would remove:\n  baton_workflows +1\n  baton_nodes +2\n", dry.output), dry.output
    assert _count(app, nodes, old.workflow_id) == 2

    done = runner.invoke(args=["baton", "prune", "--max-age", "600", "--yes"])
    assert re.search(r"removed:\n  baton_workflows +1\n  baton_nodes +2\n", done.output), done.output
    query = app.extensions["baton"].query
    assert query.get_workflow(old.workflow_id) is None
    for table in (nodes, edges, completions):
        assert _count(app, table, old.workflow_id) == 0
    assert query.get_workflow(young.workflow_id).state == "completed"
    assert query.get_workflow(running.workflow_id).state == "running"
    assert len(query.get_workflow_jobs(running.workflow_id)) == 2


def test_prune_refuses_a_non_positive_max_age(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["baton", "prune", "--max-age", "0"])
    assert result.exit_code != 0
    assert "--max-age" in result.output


@pytest.mark.parametrize(
    "app_overrides", [{"BATON_PRUNE": True, "BATON_PRUNE_MAX_AGE": 600.0, "BATON_DEBUG_LOG_MAX_AGE": 60.0}]
)
def test_sweep_prunes_when_baton_prune_is_on(app: Flask) -> None:
    state = app.extensions["baton"]
    pruned: list[dict[str, Any]] = []
    receiver = lambda _sender, **payload: pruned.append(payload)  # noqa: E731
    wf = _chain("to-prune")
    with ThreadConsumer(app, workers=2):
        wf.insert()
        wait_finished(app, wf.workflow_id)
    _age_workflow(app, wf.workflow_id, 3600)
    keeper = _chain("keeper")
    first = keeper.insert()[0]
    with state.store.write() as conn:
        conn.execute(
            debug_logs.insert(),
            [
                {
                    "workflow_id": keeper.workflow_id,
                    "node_id": first.id,
                    "step_name": "first",
                    "attempt": 1,
                    "messages": "[]",
                    "response": "old",
                    "truncated": False,
                    "created_at": time.time() - 120,
                },
                {
                    "workflow_id": keeper.workflow_id,
                    "node_id": first.id,
                    "step_name": "first",
                    "attempt": 1,
                    "messages": "[]",
                    "response": "new",
                    "truncated": False,
                    "created_at": time.time(),
                },
            ],
        )
    telemetry.plugin_pruned.connect(receiver)
    try:
        report = sweep(state, force=True)
    finally:
        telemetry.plugin_pruned.disconnect(receiver)
    assert report.pruned is not None and (report.pruned.workflows, report.pruned.debug_logs) == (1, 1)
    assert state.query.get_workflow(wf.workflow_id) is None
    assert state.query.get_workflow(keeper.workflow_id) is not None
    with state.engine.connect() as conn:
        assert conn.execute(select(debug_logs.c.response)).scalars().all() == ["new"]
    assert pruned and pruned[0]["workflows"] == 1


@pytest.mark.parametrize("app_overrides", [{**FAST, **DATABASE_FEED}])
def test_event_feed_rows_older_than_the_retention_are_trimmed(app: Flask) -> None:
    state = app.extensions["baton"]
    wf = _chain("feed")
    with ThreadConsumer(app, workers=2):
        wf.insert()
        wait_finished(app, wf.workflow_id)
    assert _count(app, events, wf.workflow_id) > 0
    report = sweep(state, force=True, now=time.time() + state.config.event_retention + 1)
    assert report.events_trimmed > 0
    assert _count(app, events, wf.workflow_id) == 0


def test_sweep_command_reports_what_it_did(app: Flask) -> None:
    wf = _chain("cli-sweep")
    wf.insert()
    _flush_queue(app)
    result = app.test_cli_runner().invoke(args=["baton", "sweep"])
    assert result.exit_code == 0, result.output
    assert "rescued 0 step(s)" in result.output and "re-enqueued 0" in result.output
