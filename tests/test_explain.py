"""``baton.explain``: why a step is still waiting, and when it runs next."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_baton import StepState, Workflow, WorkflowNotFoundError
from flask_baton.explain import explain
from flask_baton.query import StepRecord

from .steps import (
    baton,
    constant,
    fail_then_wait_an_hour,
    snooze_an_hour,
    sum_inputs,
    wait_for_file,
)
from .support import ThreadConsumer, step_states, wait_for
from .test_export import step

NOW = 1000.0


def by_name(*steps: StepRecord) -> dict[str, StepRecord]:
    return {s.step_name: s for s in steps}


def test_a_pending_step_names_its_unfinished_deps_and_the_work_upstream_that_holds_them() -> None:
    steps = by_name(
        step("fetch", StepState.EXECUTING, attempt=1, worker="host:1", started_at=990.0),
        step("done", StepState.COMPLETED),
        step("parse", StepState.PENDING, ("fetch",)),
        step("retrying", StepState.RETRYABLE, attempt=2, error="Traceback\nValueError: 503", scheduled_at=1030.0),
        step("report", StepState.PENDING, ("parse", "done", "retrying")),
    )
    why = explain(steps, "report", NOW)
    assert why.waiting_on == {"parse": StepState.PENDING, "retrying": StepState.RETRYABLE}
    assert why.blocked_by == {"retrying": StepState.RETRYABLE, "fetch": StepState.EXECUTING}
    assert why.runs_at is None
    assert (
        why.reason == "waiting on parse (pending), retrying (retryable); upstream, fetch (executing) must finish first"
    )
    assert explain(steps, "retrying", NOW).reason == "attempt 2 failed (ValueError: 503); retries in 30.0s"
    assert explain(steps, "retrying", NOW).runs_at == 1030.0
    assert explain(steps, "fetch", NOW).reason == "running attempt 1 on host:1, started 10.0s ago"
    assert explain(steps, "done", NOW).reason == "completed"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (step("s", StepState.SNOOZED, scheduled_at=1060.0), "snoozed; runs again in 60.0s"),
        (
            step("s", StepState.AVAILABLE, scheduled_at=998.0),
            "ready, queued 2.0s ago; waiting for a consumer of its queue",
        ),
        (step("s", StepState.CANCELLED, error="dependency 'a' discarded"), "cancelled: dependency 'a' discarded"),
        (step("s", StepState.PENDING), "its dependencies have finished; it is being released to run"),
    ],
)
def test_every_state_has_a_reason(record: StepRecord, reason: str) -> None:
    why = explain(by_name(record), "s", NOW)
    assert why.reason == reason
    assert why.waiting_on == {} and why.blocked_by == {}


def test_explain_reads_a_stored_workflow(app: Flask, consumer: ThreadConsumer, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    wf = (
        Workflow("explained")
        .add("flaky", fail_then_wait_an_hour.new())
        .add("sleepy", snooze_an_hour.new())
        .add("held", wait_for_file.new(path=str(gate)))
        .add("middle", constant.new(), deps=["held"])
        .add("last", sum_inputs.new(), deps=["flaky", "sleepy", "middle"])
    )
    wf.insert()
    try:
        wait_for(
            lambda: (
                step_states(app, wf.workflow_id)
                == {
                    "flaky": "retryable",
                    "sleepy": "snoozed",
                    "held": "executing",
                    "middle": "pending",
                    "last": "pending",
                }
            ),
            "every step to be where the test wants it",
        )

        why = baton.explain(wf.workflow_id, "last")
        assert list(why.waiting_on.items()) == [  # by name
            ("flaky", StepState.RETRYABLE),
            ("middle", StepState.PENDING),
            ("sleepy", StepState.SNOOZED),
        ]
        assert why.blocked_by == {
            "flaky": StepState.RETRYABLE,
            "sleepy": StepState.SNOOZED,
            "held": StepState.EXECUTING,
        }
        flaky = baton.explain(wf.workflow_id, "flaky")
        assert flaky.runs_at is not None and flaky.runs_at > flaky_started(app, wf.workflow_id) + 3500
        assert flaky.reason.startswith("attempt 1 failed (RuntimeError: first run fails); retries in 3")
        assert baton.explain(wf.workflow_id, "sleepy").reason.startswith("snoozed; runs again in 3")

        status = app.test_cli_runner().invoke(args=["baton", "status", wf.workflow_id])
        assert status.exit_code == 0, status.output
        lines = {line.split()[0]: line for line in status.output.splitlines()[1:]}
        assert "WAITING ON" in lines["STEP"]
        assert "flaky (retryable), middle (pending), sleepy (snoozed)" in lines["last"]
        assert "held (executing)" in lines["middle"]
        assert "next run " in lines["flaky"] and "next run " in lines["sleepy"]
    finally:
        gate.touch()  # lets the held step finish, so the consumer stops at once

    with pytest.raises(WorkflowNotFoundError, match="has no step named 'ghost'"):
        baton.explain(wf.workflow_id, "ghost")
    with pytest.raises(WorkflowNotFoundError, match="no workflow with id 'nope'"):
        baton.explain("nope", "last")


def flaky_started(app: Flask, workflow_id: str) -> float:
    steps = app.extensions["baton"].query.get_workflow_jobs(workflow_id)
    started = next(s.started_at for s in steps if s.step_name == "flaky")
    assert started is not None
    return started
