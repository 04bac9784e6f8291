"""``Workflow(unique_key=...)``: one running workflow per key, enforced by the database."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_baton import (
    DuplicateWorkflowError,
    Workflow,
    WorkflowError,
    WorkflowStateError,
)
from flask_baton.store.tables import workflows

from .steps import baton, constant, fails_while_file_exists, wait_for_file
from .support import ThreadConsumer, wait_finished


def held(gate: Path, key: str = "report:42", **options: str) -> Workflow:
    """A workflow that runs until ``gate`` exists."""
    return (
        Workflow("report", unique_key=key, **options)  # type: ignore[arg-type]
        .add("hold", wait_for_file.new(path=str(gate)))
        .add("after", constant.new(), deps=["hold"])
    )


def rows_with_key(app: Flask, key: str) -> int:
    with app.extensions["baton"].engine.connect() as conn:
        return conn.execute(select(func.count()).where(workflows.c.unique_key == key)).scalar_one()


def test_a_second_insert_while_the_first_runs_raises_naming_the_key_and_the_running_id(
    app: Flask, tmp_path: Path
) -> None:
    first = held(tmp_path / "gate")
    first.insert()
    second = held(tmp_path / "gate")
    with pytest.raises(
        DuplicateWorkflowError, match=f"unique_key 'report:42' is already running: {first.workflow_id}"
    ) as raised:
        second.insert()
    assert (raised.value.unique_key, raised.value.workflow_id) == ("report:42", first.workflow_id)
    assert not second.inserted
    assert rows_with_key(app, "report:42") == 1
    # Other keys, and workflows without one, are not held back.
    held(tmp_path / "gate", key="report:43").insert()
    Workflow("no-key").add("a", constant.new()).insert()


def test_on_conflict_return_hands_back_the_running_workflow(app: Flask, tmp_path: Path) -> None:
    first = held(tmp_path / "gate")
    jobs = first.insert()
    again = held(tmp_path / "gate", on_conflict="return")
    assert again.insert() == jobs
    assert (again.workflow_id, again.inserted, again.reused, first.reused) == (first.workflow_id, True, True, False)
    with pytest.raises(WorkflowError, match="was already inserted"):
        again.insert()


def test_the_key_is_free_again_once_the_workflow_finished(app: Flask, consumer: ThreadConsumer, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    first = held(gate)
    first.insert()
    gate.touch()
    assert wait_finished(app, first.workflow_id).state == "completed"
    second = held(gate, on_conflict="return")
    second.insert()
    assert not second.reused and second.workflow_id != first.workflow_id
    assert wait_finished(app, second.workflow_id).state == "completed"
    assert rows_with_key(app, "report:42") == 2


@pytest.mark.parametrize("on_conflict", ["raise", "return"])
def test_racing_inserts_of_one_key_start_exactly_one_workflow(app: Flask, tmp_path: Path, on_conflict: str) -> None:
    racers = 8
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race() -> None:
        with app.app_context():
            wf = held(tmp_path / "gate", on_conflict=on_conflict)
            barrier.wait(timeout=10)
            try:
                wf.insert()
                outcome = wf.workflow_id
            except DuplicateWorkflowError as conflict:
                outcome = f"conflict with {conflict.workflow_id}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == racers
    assert rows_with_key(app, "report:42") == 1
    with app.extensions["baton"].engine.connect() as conn:
        winner = conn.execute(select(workflows.c.id).where(workflows.c.unique_key == "report:42")).scalar_one()
    if on_conflict == "return":
        assert outcomes == [winner] * racers
    else:
        assert sorted(outcomes) == sorted([winner] + [f"conflict with {winner}"] * (racers - 1))


def test_retrying_a_workflow_whose_key_another_run_holds_is_refused(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    failed = Workflow("report", unique_key="report:42").add("flaky", fails_while_file_exists.new(path=str(blocker)))
    failed.insert()
    assert wait_finished(app, failed.workflow_id).state == "failed"
    running = held(tmp_path / "gate")
    running.insert()

    with pytest.raises(DuplicateWorkflowError, match=f"is already running: {running.workflow_id}"):
        baton.retry_workflow(failed.workflow_id)
    assert app.extensions["baton"].query.get_workflow(failed.workflow_id).state == "failed"  # nothing changed
    (tmp_path / "gate").touch()
    wait_finished(app, running.workflow_id)
    blocker.unlink()
    baton.retry_step(failed.workflow_id, "flaky")
    assert wait_finished(app, failed.workflow_id).state == "completed"


def test_bad_unique_options_are_refused_when_building() -> None:
    with pytest.raises(WorkflowError, match='on_conflict must be "raise" or "return"'):
        Workflow("x", unique_key="k", on_conflict="ignore")  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="unique_key must be a non-empty string"):
        Workflow("x", unique_key="")
    assert issubclass(DuplicateWorkflowError, WorkflowStateError)
