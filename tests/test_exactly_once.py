"""Duplicate and late deliveries from Huey never run a step twice."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flask_baton import Workflow
from flask_baton.query import StepRecord

from . import ledger
from .steps import constant, fail_until, record_args, slow
from .support import Deliveries, EventLog, ThreadConsumer, wait_finished


def _steps(app: Flask, workflow_id: str) -> dict[str, StepRecord]:
    return {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def test_step_delivered_three_times_at_once_runs_once(app: Flask, ledger_path: Path) -> None:
    wf = Workflow(name="dup").add("only", slow.new(seconds=0.2)).add("after", record_args.new(), deps=["only"])
    only_id = wf.insert()[0].id
    queues = app.extensions["baton"].queues
    # insert() enqueued it once; two more copies wait beside it for the consumer.
    queues.enqueue(only_id, "default", None)
    queues.enqueue(only_id, "default", None)

    with Deliveries(app) as deliveries, ThreadConsumer(app, workers=4):
        deliveries.wait(only_id, 3)
        assert wait_finished(app, wf.workflow_id).state == "completed"

    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"only": 1, "after": 1}
    steps = _steps(app, wf.workflow_id)
    assert (steps["only"].attempt, steps["only"].result) == (1, "slow done")


def test_redelivering_a_completed_step_runs_nothing(app: Flask, consumer: ThreadConsumer, ledger_path: Path) -> None:
    wf = Workflow(name="late").add("first", constant.new(value=7)).add("second", record_args.new(), deps=["first"])
    jobs = wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    before = _steps(app, wf.workflow_id)

    queues = app.extensions["baton"].queues
    with EventLog() as events, Deliveries(app) as deliveries:
        for job in jobs:
            queues.enqueue(job.id, "default", None)
        for job in jobs:
            deliveries.wait(job.id, 1)

    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"first": 1, "second": 1}
    assert _steps(app, wf.workflow_id) == before
    assert events.steps(wf.workflow_id) == []
    assert events.finished(wf.workflow_id) == []


def test_step_that_stored_its_result_on_a_retry_is_not_run_again_when_redelivered(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = (
        Workflow(name="idempotent")
        .add("flaky", fail_until.new(failures=1))
        .add("reader", record_args.new(), deps=["flaky"])
    )
    jobs = wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"flaky": 2, "reader": 1}
    flaky_id = jobs[0].id

    queues = app.extensions["baton"].queues
    with Deliveries(app) as deliveries:
        queues.enqueue(flaky_id, "default", None)
        queues.enqueue(flaky_id, "default", None)
        deliveries.wait(flaky_id, 2)

    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"flaky": 2, "reader": 1}
    steps = _steps(app, wf.workflow_id)
    flaky = steps["flaky"]
    assert (flaky.state, flaky.attempt, flaky.result) == ("completed", 2, {"succeeded_on": 2})
    assert steps["reader"].result["inputs"] == {"flaky": {"succeeded_on": 2}}


def test_early_delivery_of_a_waiting_step_does_not_run_it(app: Flask, ledger_path: Path) -> None:
    wf = Workflow(name="early").add("gate", slow.new(seconds=0.3)).add("gated", record_args.new(), deps=["gate"])
    gate_id, gated_id = (job.id for job in wf.insert())
    app.extensions["baton"].queues.enqueue(gated_id, "default", None)

    with Deliveries(app) as deliveries, ThreadConsumer(app, workers=4):
        deliveries.wait(gated_id, 1)  # the early copy, turned away by the self-gate
        assert wait_finished(app, wf.workflow_id).state == "completed"

    entries = [e["step"] for e in ledger.entries(ledger_path)]
    assert entries == ["gate", "gated"]
    steps = _steps(app, wf.workflow_id)
    assert steps["gated"].started_at >= steps["gate"].finished_at
    assert steps["gated"].result["inputs"] == {"gate": "slow done"}
