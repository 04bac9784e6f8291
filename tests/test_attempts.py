"""Every run of a step is kept: failures retried, snoozes, hand backs, rescues, retries by hand.

Real consumers on both backends; what is read back is ``baton.query.get_step_attempts``
(and ``get_context_captures``), the read the dashboard's step page and the
CLI use. Steps that complete on their first run keep no row: a step's row
holds its last run, so the claim and completion statements are unchanged.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select, update

from flask_baton import Workflow, transitions
from flask_baton.dispatch import commit
from flask_baton.records import AttemptRecord
from flask_baton.store import migrations
from flask_baton.store.tables import attempts, workflows
from flask_baton.sweep import sweep

from .steps import baton, chat_until, constant, fails_while_file_exists, snooze_once, sum_inputs, wait_for_file
from .support import (
    Deliveries,
    ThreadConsumer,
    claim_as_dead_consumer,
    make_version,
    step_states,
    wait_finished,
    wait_for,
)

LEASE = 2.0


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {
        "BATON_DEBUG_CAPTURE": True,
        "BATON_LEASE_SECONDS": LEASE,
        "BATON_HEARTBEAT_SECONDS": 0.2,
        "BATON_SWEEP_INTERVAL": 1.0,
    }


def runs(app: Flask, workflow_id: str, step_name: str) -> list[AttemptRecord]:
    return app.extensions["baton"].query.get_step_attempts(workflow_id, step_name)


def summary(found: list[AttemptRecord]) -> list[tuple[int, str]]:
    return [(run.attempt, run.outcome.value) for run in found]


def kept_rows(app: Flask, workflow_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(attempts)
    if workflow_id is not None:
        stmt = stmt.where(attempts.c.workflow_id == workflow_id)
    with app.extensions["baton"].engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def test_a_step_failing_three_times_then_completing_keeps_four_runs_with_errors_and_contexts(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow("flaky").add("ask", chat_until.new(failures=3))
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"

    found = runs(app, wf.workflow_id, "ask")
    assert summary(found) == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "completed")]
    for run in found[:3]:
        assert run.error is not None and run.error.startswith("Traceback (most recent call last):")
        assert run.error.rstrip().endswith(f"ConnectionError: provider unreachable on attempt {run.attempt}")
    assert found[3].error is None
    assert all(run.worker and run.finished_at is not None and run.duration is not None for run in found)
    starts = [run.started_at for run in found]
    assert starts == sorted(starts) and len(set(starts)) == 4
    assert all(run.finished_at <= later for run, later in zip(found, starts[1:]))  # type: ignore[operator]
    assert kept_rows(app, wf.workflow_id) == 3  # the last run is the step's own row

    captures = app.extensions["baton"].query.get_context_captures(wf.workflow_id, "ask")
    assert [c.attempt for c in captures] == [1, 2, 3, 4]
    assert '"Sunny (attempt 4)"' in captures[3].response and not captures[3].truncated


def test_steps_that_complete_on_their_first_run_keep_no_rows_of_their_own(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow("smooth").add("a", constant.new(value=1)).add("b", sum_inputs.new(), deps=["a"])
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert kept_rows(app) == 0
    assert summary(runs(app, wf.workflow_id, "b")) == [(1, "completed")]
    assert runs(app, wf.workflow_id, "no such step") == []


def test_a_snoozed_run_is_kept_and_the_next_run_has_its_attempt_number(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow("snoozy").add("nap", snooze_once.new())
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    found = runs(app, wf.workflow_id, "nap")
    assert summary(found) == [(1, "snoozed"), (1, "completed")]
    assert found[0].error is None and found[0].finished_at <= found[1].started_at  # type: ignore[operator]


def test_a_run_lost_with_its_consumer_is_kept_as_lost_and_the_rescued_step_completes(app: Flask) -> None:
    state = app.extensions["baton"]
    wf = Workflow("rescued").add("first", constant.new(value=2))
    first = wf.insert()[0]
    state.queues.huey().flush()
    last_heard = time.time() - 10
    claim_as_dead_consumer(app, first.id, last_heard)

    assert sweep(state, force=True).rescued == [first.id]
    (lost,) = runs(app, wf.workflow_id, "first")
    assert (lost.attempt, lost.outcome, lost.worker) == (1, "lost", "gone-host:4242")
    assert lost.finished_at == last_heard and "stopped renewing its lease" in (lost.error or "")

    with ThreadConsumer(app, workers=2):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert summary(runs(app, wf.workflow_id, "first")) == [(1, "lost"), (2, "completed")]


def test_a_run_handed_back_by_a_stopping_consumer_is_kept_and_its_attempt_given_back(app: Flask) -> None:
    state = app.extensions["baton"]
    wf = Workflow("handed").add("only", constant.new(value=5))
    only = wf.insert()[0]
    state.queues.huey().flush()
    claim_as_dead_consumer(app, only.id, time.time())

    commit(state, transitions.hand_back, only.id, "gone-host:4242")

    assert summary(runs(app, wf.workflow_id, "only")) == [(1, "handed_back")]
    with ThreadConsumer(app, workers=2):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    found = runs(app, wf.workflow_id, "only")
    assert summary(found) == [(1, "handed_back"), (1, "completed")]
    assert found[0].worker == "gone-host:4242" and found[1].worker != "gone-host:4242"


def test_a_retry_by_hand_keeps_the_discarded_run_and_counts_again_from_one(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = Workflow("fixable").add("fix", fails_while_file_exists.new(path=str(blocker)))
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    (discarded,) = runs(app, wf.workflow_id, "fix")
    assert discarded.outcome == "discarded" and discarded.worker is not None
    assert "RuntimeError: blocked by" in (discarded.error or "")
    assert kept_rows(app, wf.workflow_id) == 0

    blocker.unlink()
    baton.retry_step(wf.workflow_id, "fix")
    assert wait_finished(app, wf.workflow_id).state == "completed"
    found = runs(app, wf.workflow_id, "fix")
    assert summary(found) == [(1, "discarded"), (1, "completed")]
    assert found[0] == discarded


def test_a_step_cancelled_while_running_shows_that_run_cancelled_and_a_retry_keeps_it(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = Workflow("stopped").add("wait", wait_for_file.new(path=str(gate), value=1, timeout=15))
    step = wf.insert()[0]
    wait_for(lambda: step_states(app, wf.workflow_id)["wait"] == "executing", "the gated step to run")
    (running,) = runs(app, wf.workflow_id, "wait")
    assert (running.outcome, running.finished_at, running.error) == ("running", None, None)

    baton.cancel_workflow(wf.workflow_id, "stopped by a test")
    (cancelled,) = runs(app, wf.workflow_id, "wait")
    assert (cancelled.outcome, cancelled.worker, cancelled.error) == ("cancelled", running.worker, "stopped by a test")
    with Deliveries(app) as deliveries:
        gate.touch()
        deliveries.wait(step.id, 1)  # the cancelled run returned; its outcome was dropped
    assert summary(runs(app, wf.workflow_id, "wait")) == [(1, "cancelled")]

    baton.retry_workflow(wf.workflow_id)
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert summary(runs(app, wf.workflow_id, "wait")) == [(1, "cancelled"), (1, "completed")]


def test_limit_keeps_the_newest_runs(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow("limited").add("ask", chat_until.new(failures=2))
    wf.insert()
    wait_finished(app, wf.workflow_id)
    query = app.extensions["baton"].query
    assert summary(query.get_step_attempts(wf.workflow_id, "ask", limit=2)) == [(2, "failed"), (3, "completed")]
    assert summary(query.get_step_attempts(wf.workflow_id, "ask", limit=1)) == [(3, "completed")]


def test_prune_removes_a_workflows_kept_runs_with_it(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow("old-and-flaky").add("ask", chat_until.new(failures=2))
    wf.insert()
    wait_finished(app, wf.workflow_id)
    assert kept_rows(app, wf.workflow_id) == 2
    with app.extensions["baton"].store.write() as conn:
        conn.execute(
            update(workflows).where(workflows.c.id == wf.workflow_id).values(finished_at=workflows.c.finished_at - 3600)
        )
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["baton", "prune", "--max-age", "600", "--dry-run"])
    assert re.search(r"\n  baton_attempts +2\n", dry.output), dry.output
    done = runner.invoke(args=["baton", "prune", "--max-age", "600", "--yes"])
    assert re.search(r"removed:\n(.*\n)*  baton_attempts +2\n", done.output), done.output
    assert kept_rows(app) == 0
    assert runs(app, wf.workflow_id, "ask") == []


def test_a_version_2_database_is_upgraded_in_place_and_keeps_runs_from_then_on(app: Flask) -> None:
    engine = app.extensions["baton"].engine
    done = Workflow("before-upgrade").add("a", constant.new(value=1))
    done.insert()
    with ThreadConsumer(app, workers=2):
        wait_finished(app, done.workflow_id)
    make_version(app, 2)
    assert "baton_attempts" not in inspect(engine).get_table_names()

    assert baton.create_schema() == (2, migrations.SCHEMA_VERSION)

    assert "baton_attempts" in inspect(engine).get_table_names()
    assert summary(runs(app, done.workflow_id, "a")) == [(1, "completed")]  # from its row, as before
    wf = Workflow("after-upgrade").add("ask", chat_until.new(failures=1))
    wf.insert()
    with ThreadConsumer(app, workers=2):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert summary(runs(app, wf.workflow_id, "ask")) == [(1, "failed"), (2, "completed")]
