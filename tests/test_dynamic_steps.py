"""Steps added by a running step (dynamic fan-out) join the workflow's graph."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from flask_baton import Workflow, transitions
from flask_baton.effects import NewStep
from flask_baton.ids import new_id
from flask_baton.inserts import add_steps
from flask_baton.query import StepRecord
from flask_baton.store import PostgresStore, Tx

from . import ledger
from .steps import (
    always_fail,
    constant,
    core_add_steps,
    core_add_then_fail_once,
    fan_out_dynamically,
    record_args,
    slow,
    wait_for_file,
)
from .support import EventLog, ThreadConsumer, wait_finished, wait_for


def _steps(app: Flask, workflow_id: str) -> dict[str, StepRecord]:
    return {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def test_workflow_finishes_only_after_dynamically_added_steps_settle(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    query = app.extensions["baton"].query
    seen_at_finish: list[dict[str, str]] = []

    with EventLog() as events:
        from flask_baton import telemetry

        def snapshot(_sender: Any, **payload: Any) -> None:
            if payload["workflow_id"] == wf.workflow_id:
                seen_at_finish.append({s.step_name: s.state.value for s in query.get_workflow_jobs(wf.workflow_id)})

        telemetry.workflow_finished.connect(snapshot, weak=False)
        try:
            wf = (
                Workflow(name="dynamic")
                .add("split", fan_out_dynamically.new(items=[1, 2, 3]))
                .add("sibling", slow.new(seconds=0.05))
            )
            wf.insert()
            record = wait_finished(app, wf.workflow_id)
            wait_for(lambda: seen_at_finish, "the workflow_finished snapshot")
        finally:
            telemetry.workflow_finished.disconnect(snapshot)

    assert record.state == "completed"
    assert record.total_steps == 2 + 3 + 1
    expected = {"split", "sibling", "item:0", "item:1", "item:2", "total"}
    assert seen_at_finish == [{name: "completed" for name in expected}]
    steps = _steps(app, wf.workflow_id)
    assert steps["split"].result == 3
    assert steps["total"].result == 6
    assert set(steps["total"].deps) == {"item:0", "item:1", "item:2"}
    assert all(steps[f"item:{i}"].started_at >= steps["split"].finished_at for i in range(3))
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {name: 1 for name in expected}
    assert len(events.finished(wf.workflow_id)) == 1


def test_added_step_waits_for_every_dependency_not_just_the_adding_step(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = (
        Workflow(name="dynamic-join")
        .add("spawner", core_add_steps.new(add=[{"name": "joined", "value": 5, "deps": ["spawner", "gate"]}]))
        .add("gate", slow.new(seconds=0.3), deps=["spawner"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "completed"

    steps = _steps(app, wf.workflow_id)
    assert {name: s.state for name, s in steps.items()} == {name: "completed" for name in ("spawner", "gate", "joined")}
    assert steps["joined"].started_at >= steps["gate"].finished_at
    assert [e["step"] for e in ledger.entries(ledger_path)] == ["spawner", "gate", "joined"]


def test_step_added_behind_a_step_already_running_starts_when_that_step_completes(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    # "gate" is claimed (and on PostgreSQL reads its dependents: none yet)
    # before "spawner" adds "joined" behind it; its completion must still
    # release "joined".
    opened, passed = tmp_path / "open-spawner", tmp_path / "pass-gate"
    wf = (
        Workflow(name="dynamic-behind-running")
        .add("gate", wait_for_file.new(path=str(passed), value=1))
        .add("opener", wait_for_file.new(path=str(opened)))
        .add("spawner", core_add_steps.new(add=[{"name": "joined", "value": 5, "deps": ["gate"]}]), deps=["opener"])
    )
    wf.insert()
    wait_for(lambda: _steps(app, wf.workflow_id)["gate"].state == "executing", "gate to be claimed")
    opened.touch()
    wait_for(lambda: "joined" in _steps(app, wf.workflow_id), "spawner to add 'joined'")
    passed.touch()

    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = _steps(app, wf.workflow_id)
    assert steps["joined"].result == 5
    assert steps["joined"].started_at >= steps["gate"].finished_at


def test_added_step_may_depend_on_a_step_that_already_completed(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow(name="dynamic-late")
        .add("early", record_args.new())
        .add("spawner", core_add_steps.new(add=[{"name": "late", "value": 9, "deps": ["early"]}]), deps=["early"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = _steps(app, wf.workflow_id)
    assert (steps["late"].state, steps["late"].result, steps["late"].deps) == ("completed", 9, ("early",))


def test_added_step_behind_a_discarded_step_is_cancelled_naming_it(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = (
        Workflow(name="dynamic-doomed")
        .add("bad", always_fail.new())
        .add("wait", slow.new(seconds=0.1))
        .add("spawner", core_add_steps.new(add=[{"name": "doomed", "value": 1, "deps": ["bad"]}]), deps=["wait"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    steps = _steps(app, wf.workflow_id)
    assert (steps["spawner"].state, steps["doomed"].state) == ("completed", "cancelled")
    assert steps["doomed"].error == "dependency 'bad' discarded"
    assert "doomed" not in ledger.runs_per_step(ledger_path, wf.workflow_id)


def test_adding_a_duplicate_step_name_fails_the_adding_step_naming_it(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow(name="dynamic-dup")
        .add("taken", record_args.new())
        .add("spawner", core_add_steps.new(add=[{"name": "taken", "value": 1, "deps": []}]))
        .add("after", record_args.new(), deps=["spawner"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    steps = _steps(app, wf.workflow_id)
    assert set(steps) == {"taken", "spawner", "after"}
    assert steps["spawner"].state == "discarded"
    assert "DuplicateStepError" in steps["spawner"].error and "'taken'" in steps["spawner"].error
    assert steps["after"].state == "cancelled"


def test_adding_a_step_with_an_unknown_dependency_fails_the_adding_step_naming_it(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow(name="dynamic-unknown").add(
        "spawner",
        core_add_steps.new(
            add=[
                {"name": "fine", "value": 1, "deps": ["spawner"]},
                {"name": "lost", "value": 2, "deps": ["fine", "ghost"]},
            ]
        ),
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    steps = _steps(app, wf.workflow_id)
    assert set(steps) == {"spawner"}  # "fine" was added in the same failed run: not kept
    assert steps["spawner"].state == "discarded"
    error = steps["spawner"].error
    assert "UnknownDependencyError" in error and "'lost'" in error and "'ghost'" in error


def test_steps_added_by_a_failed_run_are_dropped_and_the_retry_adds_them_once(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = Workflow(name="dynamic-retry").add("parent", core_add_then_fail_once.new())
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = _steps(app, wf.workflow_id)
    assert set(steps) == {"parent", "child:a", "child:b"}
    assert steps["parent"].attempt == 2
    assert (steps["child:a"].result, steps["child:b"].result) == (1, 2)
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"parent": 2, "child:a": 1, "child:b": 1}


def test_a_step_added_while_its_dependency_s_claim_waits_for_that_row_is_released_when_it_completes(
    app: Flask,
) -> None:
    # PostgreSQL: the claim waits for the row the addition locked, then updates
    # its newer version; the dependents it returns were read in its snapshot,
    # from before the addition, so the version it returns must be from there too.
    state = app.extensions["baton"]
    store = state.store
    if not isinstance(store, PostgresStore):
        pytest.skip("SQLite's write lock runs a claim and an addition one after the other")
    wf = Workflow(name="dynamic-claim-waits").add("gate", constant.new(value=1))
    gate = wf.insert()[0].id
    claimed: dict[str, Any] = {}

    def claim() -> None:
        with store.write(autocommit=True) as conn:
            claimed["pid"] = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            claimed["step"] = transitions.claim(Tx(store, conn, time.time()), gate, "racing:1").value

    with store.write() as conn:
        joined = NewStep(new_id(), "joined", constant.name, '{"value": 5}', ["gate"])
        add_steps(Tx(store, conn, time.time()), wf.workflow_id, [joined])
        claiming = threading.Thread(target=claim)
        claiming.start()

        def claim_waits_for_the_row() -> bool:
            with store.read() as reader:
                waiting = reader.execute(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": claimed.get("pid")}
                ).scalar()
            return waiting == "Lock"

        wait_for(claim_waits_for_the_row, "the claim to wait for the row the addition holds")
    claiming.join(timeout=20)

    with store.write(autocommit=True) as conn:
        effects = transitions.complete(Tx(store, conn, time.time()), claimed["step"], "1", [])
    assert [ready.node_id for ready in effects.ready] == [joined.node_id]
    assert _steps(app, wf.workflow_id)["joined"].state.value == "available"
