"""Per-dependency failure policies: ``Dep(name, ignore_cancelled=..., ignore_discarded=...)``."""

from __future__ import annotations

from flask import Flask

from flask_baton import Dep, Workflow

from .steps import add_tolerant_step, always_fail, constant, report_failed_deps
from .support import EventLog, ThreadConsumer, step_states, wait_finished


def _results(app: Flask, workflow_id: str) -> dict[str, object]:
    return {s.step_name: s.result for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def test_dependent_tolerating_a_discard_runs_and_sees_the_failure(app: Flask, consumer: ThreadConsumer) -> None:
    with EventLog() as events:
        wf = (
            Workflow("tolerant")
            .add("good", constant.new(value=7))
            .add("bad", always_fail.new())
            .add("join", report_failed_deps.new(), deps=["good", Dep("bad", ignore_discarded=True)])
        )
        wf.insert()
        record = events.wait_caught_up(app, wf.workflow_id)
    assert record.state == "completed"  # every dependent of `bad` tolerated its failure
    assert _results(app, wf.workflow_id)["join"] == {
        "failed": {"bad": "discarded"},
        "results": {"bad": None, "good": 7},
    }
    assert events.finished(wf.workflow_id)[0]["failed_steps"] == []


def test_tolerating_cancelled_does_not_tolerate_discarded(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow("intolerant")
        .add("bad", always_fail.new())
        .add("join", report_failed_deps.new(), deps=[Dep("bad", ignore_cancelled=True)])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {"bad": "discarded", "join": "cancelled"}


def test_a_tolerated_cancellation_upstream_lets_the_step_run_and_the_root_cause_still_fails_the_workflow(
    app: Flask, consumer: ThreadConsumer
) -> None:
    with EventLog() as events:
        wf = (
            Workflow("chain-of-failures")
            .add("root", always_fail.new())
            .add("middle", constant.new(), deps=["root"])
            .add("last", report_failed_deps.new(), deps=[Dep("middle", ignore_cancelled=True, ignore_discarded=True)])
        )
        wf.insert()
        assert events.wait_caught_up(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {"root": "discarded", "middle": "cancelled", "last": "completed"}
    assert _results(app, wf.workflow_id)["last"]["failed"] == {"middle": "cancelled"}
    assert events.finished(wf.workflow_id)[0]["failed_steps"] == ["root"]


def test_one_failing_dep_still_cancels_when_another_is_tolerated(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow("mixed")
        .add("soft", always_fail.new())
        .add("hard", always_fail.new())
        .add("join", report_failed_deps.new(), deps=[Dep("soft", ignore_discarded=True), "hard"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id)["join"] == "cancelled"


def test_added_step_may_tolerate_an_existing_failed_step(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow("dynamic-tolerant")
        .add("bad", always_fail.new())
        .add("spawner", add_tolerant_step.new(dep="bad"), deps=[Dep("bad", ignore_discarded=True)])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert step_states(app, wf.workflow_id) == {"bad": "discarded", "spawner": "completed", "added": "completed"}
    assert _results(app, wf.workflow_id)["added"]["failed"] == {"bad": "discarded"}
