"""``baton.status(workflow_id)``: a workflow at a glance, read in one query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from flask_baton import StepState, Workflow, WorkflowNotFoundError
from flask_baton.pricing import DEFAULT_PRICING

from .steps import always_fail, baton, constant, fake_llm, sum_inputs, wait_for_file
from .support import ThreadConsumer, step_states, wait_finished, wait_for

PRICES = {"m": {"input": 3.0, "cached_input": 0.5, "output": 15.0}}
PER_CALL = (1000 * 3 + 200 * 0.5 + 500 * 15) / 1e6  # what one fake_llm call on "m" costs


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_PRICING": PRICES | DEFAULT_PRICING}


@pytest.fixture
def consumers(app: Flask) -> Iterator[None]:
    """A default-queue and an ``llm``-queue consumer."""
    with ThreadConsumer(app, workers=2), ThreadConsumer(app, workers=2, queue="llm"):
        yield


def test_status_counts_states_and_sums_the_cost_of_every_attempt(app: Flask, consumers: None) -> None:
    wf = (
        Workflow("status:llm")
        .add("ask", fake_llm.new(model="m", failures=1))
        .add("ask_again", fake_llm.new(model="m"), deps=["ask"])
        .add("boom", always_fail.new())
        .add("after_boom", constant.new(), deps=["boom"])
    )
    wf.insert()
    record = wait_finished(app, wf.workflow_id)

    status = baton.status(wf.workflow_id)
    assert (status.id, status.name, status.outcome, status.state) == (wf.workflow_id, "status:llm", "failed", "failed")
    assert status.counts == {
        **dict.fromkeys(StepState, 0),
        StepState.COMPLETED: 2,
        StepState.DISCARDED: 1,
        StepState.CANCELLED: 1,
    }
    assert (status.settled_steps, status.total_steps) == (4, 4)
    assert status.cost_usd == pytest.approx(3 * PER_CALL)  # ask ran twice
    assert status.started == record.created_at
    assert status.duration == pytest.approx(record.finished_at - record.created_at)


def test_status_of_a_running_workflow_without_usage_has_no_cost(
    app: Flask, consumer: ThreadConsumer, tmp_path: Any
) -> None:
    gate = tmp_path / "gate"
    wf = (
        Workflow("status:running")
        .add("first", constant.new(value=2))
        .add("held", wait_for_file.new(path=str(gate), value=3), deps=["first"])
        .add("last", sum_inputs.new(), deps=["held"])
    )
    wf.insert()
    # `first` also executes, briefly: wait for `held` to be the one running.
    wait_for(lambda: step_states(app, wf.workflow_id)["held"] == "executing", "held to start")
    status = baton.status(wf.workflow_id)
    assert (status.outcome, status.settled_steps, status.total_steps, status.cost_usd) == ("running", 1, 3, None)
    assert (status.counts[StepState.COMPLETED], status.counts[StepState.PENDING]) == (1, 1)
    assert status.duration > 0
    gate.touch()
    assert wait_finished(app, wf.workflow_id).state == "completed"


def test_status_is_read_in_one_query(app: Flask) -> None:
    wf = Workflow("status:one-query").add("a", constant.new()).add("b", constant.new(), deps=["a"])
    wf.insert()
    engine = app.extensions["baton"].engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        status = baton.status(wf.workflow_id)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] == statements
    assert len(statements) == 1
    assert (status.counts[StepState.AVAILABLE], status.counts[StepState.PENDING]) == (1, 1)  # no consumer


def test_status_of_an_unknown_workflow_names_it(app: Flask) -> None:
    with pytest.raises(WorkflowNotFoundError, match="no workflow with id 'nope'"):
        baton.status("nope")


def test_cli_status_header_shows_counts_and_cost(app: Flask, consumers: None) -> None:
    wf = Workflow("status:cli").add("ask", fake_llm.new(model="m"))
    wf.insert()
    wait_finished(app, wf.workflow_id)
    result = app.test_cli_runner().invoke(args=["baton", "status", wf.workflow_id])
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    assert header.startswith(f"status:cli ({wf.workflow_id}): completed, 1/1 steps settled, took ")
    assert header.endswith(f", cost ${PER_CALL:.4f} [completed 1]")
