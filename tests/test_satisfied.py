"""One rule for when a dependency stops holding its dependent back (``states.satisfied``).

The claim, the cascade, a workflow's outcome, ``explain``, a retry's plan and
the dashboard's retry button all follow it; the SQL the store sends is
written from it, and checked against it here on both databases.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text, update

from flask_baton import Dep, StepState, Workflow
from flask_baton.states import Tolerance, satisfied, tolerated
from flask_baton.store import hotpath
from flask_baton.store.tables import nodes, workflows

from . import ledger
from .steps import discard_now, record_args
from .support import Deliveries, ThreadConsumer, step_states, wait_finished

TOLERANCES: list[Tolerance | None] = [None, *Tolerance]


@pytest.mark.parametrize("tolerance", TOLERANCES)
@pytest.mark.parametrize("state", list(StepState))
def test_an_edge_lets_its_step_run_after_its_dep_completed_or_failed_as_it_tolerates(
    state: StepState, tolerance: Tolerance | None
) -> None:
    lets_through = {
        None: set(),
        Tolerance.CANCELLED: {"cancelled"},
        Tolerance.DISCARDED: {"discarded"},
        Tolerance.ANY: {"cancelled", "discarded"},
    }[tolerance]
    assert tolerated(tolerance, state) is (state in lets_through)
    assert satisfied(state, tolerance) is (state == "completed" or state in lets_through)


def test_dep_options_name_their_tolerance() -> None:
    assert Dep("a").tolerates is None
    assert Dep("a", ignore_cancelled=True).tolerates is Tolerance.CANCELLED
    assert Dep("a", ignore_discarded=True).tolerates is Tolerance.DISCARDED
    assert Dep("a", ignore_cancelled=True, ignore_discarded=True).tolerates is Tolerance.ANY


def test_the_stores_sql_of_the_rule_agrees_with_it_on_every_state_and_tolerance_also_negated(app: Flask) -> None:
    condition = hotpath.satisfied("x.state", "x.tolerates")
    query = text(
        f"SELECT CASE WHEN {condition} THEN 1 ELSE 0 END, CASE WHEN NOT {condition} THEN 1 ELSE 0 END "
        "FROM (SELECT CAST(:state AS VARCHAR(16)) AS state, CAST(:tolerates AS VARCHAR(16)) AS tolerates) x"
    )
    found = {}
    with app.extensions["baton"].store.read() as conn:
        for state in StepState:
            for tolerance in TOLERANCES:
                found[state, tolerance] = tuple(conn.execute(query, {"state": state, "tolerates": tolerance}).one())
    assert found == {key: (1, 0) if satisfied(*key) else (0, 1) for key in found}


def test_a_step_made_runnable_behind_a_dependency_that_failed_is_cancelled_when_delivered_not_run(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = Workflow("blocked").add("a", discard_now.new()).add("b", record_args.new(), deps=["a"])
    b = wf.insert()[1].id
    assert wait_finished(app, wf.workflow_id).state == "failed"
    state = app.extensions["baton"]
    # b runnable again while a stays discarded (retry_step refuses to do this; the claim must refuse too).
    with state.store.write() as conn:
        conn.execute(
            update(nodes)
            .where(nodes.c.id == b)
            .values(state="available", error=None, finished_at=None, scheduled_at=0, deps_pending=0)
        )
        conn.execute(
            update(workflows)
            .where(workflows.c.id == wf.workflow_id)
            .values(state="running", unsettled=1, finished_at=None)
        )
    with Deliveries(app) as deliveries:
        state.queues.enqueue(b, "default", None)
        deliveries.wait(b, 1)
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 1}
    assert step_states(app, wf.workflow_id) == {"a": "discarded", "b": "cancelled"}
