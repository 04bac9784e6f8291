"""Cancelling workflows and retrying failed steps (``baton.cancel_workflow`` / ``retry_step``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_baton import Workflow, WorkflowNotFoundError, WorkflowStateError

from . import ledger
from .steps import baton, constant, fails_while_file_exists, slow, sum_inputs
from .support import EventLog, ThreadConsumer, step_states, wait_finished, wait_for


def test_cancelling_a_running_workflow_cancels_every_unsettled_step(app: Flask, consumer: ThreadConsumer) -> None:
    with EventLog() as events:
        wf = (
            Workflow("to-cancel")
            .add("quick", constant.new(value=1))
            .add("nap", slow.new(seconds=1.0), deps=["quick"])
            .add("after", sum_inputs.new(), deps=["nap"])
        )
        wf.insert()
        wait_for(lambda: step_states(app, wf.workflow_id)["nap"] == "executing", "nap to start")
        cancelled = baton.cancel_workflow(wf.workflow_id)
        assert sorted(cancelled) == ["after", "nap"]
        wait_for(lambda: events.finished(wf.workflow_id), "workflow_finished")
        # The running function still finishes; its outcome is dropped.
        wait_for(lambda: len(events.steps(wf.workflow_id, "nap")) >= 2, "nap's events")
    record = app.extensions["baton"].query.get_workflow(wf.workflow_id)
    assert record.state == "cancelled"
    assert step_states(app, wf.workflow_id) == {"quick": "completed", "nap": "cancelled", "after": "cancelled"}
    assert events.finished(wf.workflow_id)[0]["outcome"] == "failed"
    assert len(events.finished(wf.workflow_id)) == 1


def test_cancel_refuses_unknown_and_finished_workflows(app: Flask, consumer: ThreadConsumer) -> None:
    with pytest.raises(WorkflowNotFoundError, match="no workflow with id 'nope'"):
        baton.cancel_workflow("nope")
    wf = Workflow("done").add("only", constant.new())
    wf.insert()
    wait_finished(app, wf.workflow_id)
    with pytest.raises(WorkflowStateError, match="is completed; only a running workflow can be cancelled"):
        baton.cancel_workflow(wf.workflow_id)


def test_retrying_a_discarded_step_reruns_it_and_its_cancelled_dependents(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, ledger_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("to-retry")
        .add("root", constant.new(value=4))
        .add("flaky", fails_while_file_exists.new(path=str(blocker)), deps=["root"])
        .add("after", constant.new(value=5), deps=["flaky"])
        .add("last", sum_inputs.new(), deps=["after", "root"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id)["last"] == "cancelled"

    blocker.unlink()
    assert baton.retry_step(wf.workflow_id, "flaky") == ["flaky", "after", "last"]
    record = wait_finished(app, wf.workflow_id)
    assert record.state == "completed"
    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert (steps["flaky"].result, steps["flaky"].attempt, steps["last"].result) == ("unblocked", 1, 9)
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert (runs["root"], runs["flaky"], runs["last"]) == (1, 2, 1)  # completed steps keep their results


def test_retry_refuses_steps_that_did_not_fail_or_wait_on_a_failed_step(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("refusals")
        .add("ok", constant.new())
        .add("bad", fails_while_file_exists.new(path=str(blocker)))
        .add("child", constant.new(), deps=["bad"])
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)
    with pytest.raises(WorkflowStateError, match="step 'ok' is completed; only a discarded or cancelled"):
        baton.retry_step(wf.workflow_id, "ok")
    with pytest.raises(WorkflowStateError, match="depends on 'bad', which is discarded: retry 'bad'"):
        baton.retry_step(wf.workflow_id, "child")
    with pytest.raises(WorkflowNotFoundError, match="has no step named 'ghost'"):
        baton.retry_step(wf.workflow_id, "ghost")
    assert step_states(app, wf.workflow_id) == {"ok": "completed", "bad": "discarded", "child": "cancelled"}
