"""A failed step cancels everything downstream of it, and the workflow fails."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flask_baton import Workflow

from . import ledger, steps
from .steps import always_fail, constant, hooked, record_args, slow
from .support import EventLog, ThreadConsumer, wait_finished, wait_for


def test_discarded_step_cancels_its_dependents_transitively_naming_the_failed_dep(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    steps.hook_calls.clear()
    with EventLog() as events:
        wf = (
            Workflow(name="cascade")
            .add("root", constant.new(value=1))
            .add("bad", always_fail.new(), deps=["root"])
            .add("side", constant.new(value=2), deps=["root"])
            .add("mid", hooked.new(), deps=["bad"])
            .add("leaf", hooked.new(), deps=["mid", "side"])
            .add("leaf2", record_args.new(), deps=["leaf"])
        )
        wf.insert()
        record = events.wait_caught_up(app, wf.workflow_id)

    assert record.state == "failed"
    by_name = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert {name: s.state for name, s in by_name.items()} == {
        "root": "completed",
        "bad": "discarded",
        "side": "completed",
        "mid": "cancelled",
        "leaf": "cancelled",
        "leaf2": "cancelled",
    }
    assert by_name["mid"].error == "dependency 'bad' discarded"
    assert by_name["leaf"].error == "dependency 'mid' cancelled"
    assert by_name["leaf2"].error == "dependency 'leaf' cancelled"
    assert all(by_name[name].attempt == 0 for name in ("mid", "leaf", "leaf2"))
    assert set(ledger.runs_per_step(ledger_path, wf.workflow_id)) == {"root", "bad", "side"}

    (finished,) = events.finished(wf.workflow_id)
    assert finished["outcome"] == "failed"
    assert finished["failed_steps"] == ["bad", "leaf", "leaf2", "mid"]
    cancelled = {p["step_name"]: p["error"] for name, p in events.steps(wf.workflow_id) if name == "step.cancelled"}
    assert cancelled == {name: by_name[name].error for name in ("mid", "leaf", "leaf2")}


def test_cascade_calls_on_dep_discarded_and_on_dep_cancelled_hooks(app: Flask, consumer: ThreadConsumer) -> None:
    steps.hook_calls.clear()
    wf = (
        Workflow(name="hooks")
        .add("bad", always_fail.new())
        .add("first", hooked.new(), deps=["bad"])
        .add("second", hooked.new(), deps=["first"])
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)

    wait_for(lambda: len(steps.hook_calls) >= 2, "both dependency hooks")
    assert sorted(steps.hook_calls) == [
        ("cancelled", "second", "dependency 'first' cancelled"),
        ("discarded", "first", "dependency 'bad' discarded"),
    ]


def test_workflow_with_a_failed_branch_finishes_only_after_its_other_branches_settle(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = (
        Workflow(name="uneven")
        .add("slowpoke", slow.new(seconds=0.3))
        .add("bad", always_fail.new())
        .add("join", record_args.new(), deps=["slowpoke", "bad"])
        .add("after_slow", constant.new(), deps=["slowpoke"])
    )
    wf.insert()

    # The join is cancelled as soon as "bad" fails, while "slowpoke" still runs.
    query = app.extensions["baton"].query
    wait_for(
        lambda: {s.step_name: s.state for s in query.get_workflow_jobs(wf.workflow_id)}["join"] == "cancelled",
        "the join to be cancelled",
    )
    record = wait_finished(app, wf.workflow_id)

    assert record.state == "failed"
    by_name = {s.step_name: s for s in query.get_workflow_jobs(wf.workflow_id)}
    assert by_name["join"].error in ("dependency 'bad' discarded",)
    assert (by_name["slowpoke"].state, by_name["after_slow"].state) == ("completed", "completed")
    assert record.finished_at is not None
    assert record.finished_at >= by_name["after_slow"].finished_at
    assert record.unsettled_steps == 0 and record.settled_steps == 4
