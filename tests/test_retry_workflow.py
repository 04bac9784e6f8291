"""``baton.retry_workflow``: every failed step of a finished workflow runs again, together."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_baton import Workflow, WorkflowNotFoundError, WorkflowStateError

from . import ledger
from .steps import (
    baton,
    constant,
    fails_while_file_exists,
    slow,
    sum_inputs,
    wait_for_file,
)
from .support import Deliveries, ThreadConsumer, step_states, wait_finished, wait_for


def test_retrying_a_workflow_reruns_every_failure_root_and_the_fan_in_between_them(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, ledger_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("retry-all")
        .add("root", constant.new(value=1))
        .add("left", fails_while_file_exists.new(path=str(blocker)), deps=["root"])
        .add("right", fails_while_file_exists.new(path=str(blocker)), deps=["root"])
        .add("ok", constant.new(value=10), deps=["root"])
        .add("join", constant.new(value=2), deps=["left", "right", "ok"])
        .add("last", sum_inputs.new(), deps=["join", "root"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {
        "root": "completed",
        "left": "discarded",
        "right": "discarded",
        "ok": "completed",
        "join": "cancelled",
        "last": "cancelled",
    }

    blocker.unlink()
    # retry_step of either root alone would leave "join" waiting on the other.
    assert baton.retry_workflow(wf.workflow_id) == ["left", "right", "join", "last"]
    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert (steps["left"].result, steps["right"].result, steps["last"].result) == ("unblocked", "unblocked", 3)
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert (runs["root"], runs["ok"], runs["left"], runs["right"], runs["join"]) == (1, 1, 2, 2, 1)


def test_retrying_a_cancelled_workflow_resumes_where_it_stopped(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = (
        Workflow("retry-cancelled")
        .add("done", constant.new(value=4))
        .add("nap", slow.new(seconds=0.3), deps=["done"])
        .add("after", constant.new(value=5), deps=["nap"])
    )
    with Deliveries(app) as deliveries:
        wf.insert()
        wait_for(lambda: step_states(app, wf.workflow_id)["nap"] == "executing", "nap to start")
        baton.cancel_workflow(wf.workflow_id)
        assert wait_finished(app, wf.workflow_id).state == "cancelled"
        # The cancelled run (handed off in done's delivery, or in its own) has returned; its outcome was dropped.
        deliveries.wait_all_handled()

    assert baton.retry_workflow(wf.workflow_id) == ["nap", "after"]
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert step_states(app, wf.workflow_id) == {"done": "completed", "nap": "completed", "after": "completed"}
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert (runs["done"], runs["nap"], runs["after"]) == (1, 2, 1)


def test_retry_workflow_refuses_unknown_running_and_completed_workflows(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    with pytest.raises(WorkflowNotFoundError, match="no workflow with id 'nope'"):
        baton.retry_workflow("nope")

    gate = tmp_path / "gate"
    running = Workflow("still-running").add("held", wait_for_file.new(path=str(gate)))
    running.insert()
    with pytest.raises(WorkflowStateError, match="is still running; retry it once it has finished"):
        baton.retry_workflow(running.workflow_id)
    gate.touch()
    wait_finished(app, running.workflow_id)

    with pytest.raises(WorkflowStateError, match="is completed: no step is discarded or cancelled"):
        baton.retry_workflow(running.workflow_id)
