"""A retry re-arms every dependent the failure cancelled that can still run (``dag.plan_retry``).

Real consumers on both backends. Steps that must stay running while the
test acts wait for a file (``wait_for_file``) that the test creates.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from flask_baton import Dep, Workflow, WorkflowStateError
from flask_baton.store.tables import nodes

from . import ledger
from .steps import baton, discard_now, fails_while_file_exists, record_args, report_failed_deps, wait_for_file
from .support import ThreadConsumer, step_states, wait_finished, wait_for


def _running_join(blocker: Path, gate: Path) -> Workflow:
    """``join`` needs ``flaky`` (fails while ``blocker`` exists) and ``held`` (runs until ``gate`` exists)."""
    return (
        Workflow("other-dep-running")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("held", wait_for_file.new(path=str(gate), value=2))
        .add("join", record_args.new(), deps=["flaky", "held"])
    )


def _wait_states(app: Flask, workflow_id: str, **expected: str) -> None:
    def reached() -> bool:
        states = step_states(app, workflow_id)
        return all(states[name] == state for name, state in expected.items())

    wait_for(reached, f"steps to reach {expected}")


def test_retry_rearms_dependent_whose_other_dep_is_still_running(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, ledger_path: Path
) -> None:
    blocker, gate = tmp_path / "blocker", tmp_path / "gate"
    blocker.touch()
    wf = _running_join(blocker, gate)
    wf.insert()
    _wait_states(app, wf.workflow_id, flaky="discarded", held="executing", join="cancelled")

    blocker.unlink()
    retried = baton.retry_step(wf.workflow_id, "flaky")
    assert retried == ["flaky", "join"]
    assert retried.left_cancelled == {}
    _wait_states(app, wf.workflow_id, flaky="completed")
    assert step_states(app, wf.workflow_id)["join"] == "pending"  # waits for held, as the first time

    gate.touch()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert steps["join"].result["inputs"] == {"flaky": "unblocked", "held": 2}
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert (runs["flaky"], runs["held"], runs["join"]) == (2, 1, 1)


def test_retry_rearms_dependent_that_tolerates_its_other_failed_dep(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("tolerant-join")
        .add("optional", discard_now.new())
        .add("required", fails_while_file_exists.new(path=str(blocker)))
        .add("join", report_failed_deps.new(), deps=[Dep("optional", ignore_discarded=True), "required"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {"optional": "discarded", "required": "discarded", "join": "cancelled"}

    blocker.unlink()
    assert baton.retry_step(wf.workflow_id, "required") == ["required", "join"]
    # Every dependent tolerated optional's discard, so it does not fail the workflow.
    assert wait_finished(app, wf.workflow_id).state == "completed"
    join = next(s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id) if s.step_name == "join")
    assert join.result == {"failed": {"optional": "discarded"}, "results": {"optional": None, "required": "unblocked"}}


def test_retry_leaves_cancelled_and_reports_a_dependent_whose_other_dep_failed_untolerated(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("left-cancelled")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("doomed", discard_now.new())
        # Tolerates a *cancelled* doomed, not a discarded one.
        .add("both", record_args.new(), deps=["flaky", Dep("doomed", ignore_cancelled=True)])
        .add("after", record_args.new(), deps=["flaky"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"

    blocker.unlink()
    retried = baton.retry_step(wf.workflow_id, "flaky")
    assert retried == ["flaky", "after"]
    assert retried.left_cancelled == {"both": "dependency 'doomed' discarded"}
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {
        "flaky": "completed",
        "doomed": "discarded",
        "both": "cancelled",
        "after": "completed",
    }


def test_retry_rearms_the_steps_cancelled_downstream_transitively(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, ledger_path: Path
) -> None:
    blocker, gate = tmp_path / "blocker", tmp_path / "gate"
    blocker.touch()
    wf = (
        Workflow("transitive")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("held", wait_for_file.new(path=str(gate), value=3))
        .add("b", record_args.new(), deps=["flaky"])
        .add("c", record_args.new(), deps=["b", "held"])
        .add("d", record_args.new(), deps=["c"])
    )
    wf.insert()
    _wait_states(app, wf.workflow_id, flaky="discarded", held="executing", b="cancelled", c="cancelled", d="cancelled")

    blocker.unlink()
    assert baton.retry_step(wf.workflow_id, "flaky") == ["flaky", "b", "c", "d"]
    _wait_states(app, wf.workflow_id, flaky="completed", b="completed")
    states = step_states(app, wf.workflow_id)
    assert (states["c"], states["d"]) == ("pending", "pending")  # c waits for held, d for c

    gate.touch()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert (runs["held"], runs["b"], runs["c"], runs["d"]) == (1, 1, 1, 1)


def test_retry_makes_a_step_that_tolerated_the_failure_wait_for_the_new_run(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker, gate = tmp_path / "blocker", tmp_path / "gate"
    blocker.touch()
    wf = (
        Workflow("tolerant-waits")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("held", wait_for_file.new(path=str(gate), value=2))
        .add("tolerant", report_failed_deps.new(), deps=[Dep("flaky", ignore_discarded=True), "held"])
    )
    wf.insert()
    _wait_states(app, wf.workflow_id, flaky="discarded", held="executing", tolerant="pending")

    blocker.unlink()
    assert baton.retry_step(wf.workflow_id, "flaky") == ["flaky"]
    _wait_states(app, wf.workflow_id, flaky="completed")
    assert step_states(app, wf.workflow_id)["tolerant"] == "pending"

    gate.touch()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    tolerant = next(
        s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id) if s.step_name == "tolerant"
    )
    assert tolerant.result == {"failed": {}, "results": {"flaky": "unblocked", "held": 2}}


@pytest.mark.parametrize("settings", ["postgres-redis"], indirect=True)
def test_retry_locks_the_running_deps_it_plans_with_and_gives_up_cleanly_when_it_cannot(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker, gate = tmp_path / "blocker", tmp_path / "gate"
    blocker.touch()
    wf = _running_join(blocker, gate)
    wf.insert()
    _wait_states(app, wf.workflow_id, flaky="discarded", held="executing", join="cancelled")
    blocker.unlink()

    # Another transaction holds "held": the retry cannot know whether it completes or fails.
    engine = app.extensions["baton"].engine
    with engine.connect() as other, other.begin():
        other.execute(
            select(nodes.c.id)
            .where(nodes.c.workflow_id == wf.workflow_id, nodes.c.step_name == "held")
            .with_for_update()
        ).one()
        with pytest.raises(WorkflowStateError, match="are changing right now; nothing was retried, try again"):
            baton.retry_step(wf.workflow_id, "flaky")
    assert step_states(app, wf.workflow_id) == {"flaky": "discarded", "held": "executing", "join": "cancelled"}

    assert baton.retry_step(wf.workflow_id, "flaky") == ["flaky", "join"]
    gate.touch()
    assert wait_finished(app, wf.workflow_id).state == "completed"


def test_cli_retry_prints_what_it_rearmed_and_what_stays_cancelled(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("left-cancelled-cli")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("doomed", discard_now.new())
        .add("both", record_args.new(), deps=["flaky", "doomed"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"

    blocker.unlink()
    result = app.test_cli_runner().invoke(args=["baton", "retry", wf.workflow_id, "flaky"])
    assert result.exit_code == 0, result.output
    assert "1 step(s) re-armed: flaky" in result.output
    assert "still cancelled: both (dependency 'doomed' discarded)" in result.output
    assert wait_finished(app, wf.workflow_id).state == "failed"
