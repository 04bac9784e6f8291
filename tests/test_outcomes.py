"""What a step function does decides its fate: each row of the outcome table (SPEC §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow
from flask_baton.query import StepRecord

from . import ledger
from .steps import (
    always_fail,
    ask_for_stranger,
    constant,
    core_discard_despite_retries,
    core_echo,
    core_snooze_raised_once,
    discard_now,
    fail_until,
    record_args,
    return_none,
    snooze_once,
    unserialisable,
)
from .support import EventLog, ThreadConsumer, wait_finished


def _steps(app: Flask, workflow_id: str) -> dict[str, StepRecord]:
    return {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def _states(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, int]]:
    return [(payload["state"], payload["attempt"]) for _, payload in events]


def test_returning_none_completes_without_a_result(app: Flask, consumer: ThreadConsumer) -> None:
    with EventLog() as events:
        wf = Workflow(name="none").add("quiet", return_none.new()).add("after", record_args.new(), deps=["quiet"])
        wf.insert()
        assert events.wait_caught_up(app, wf.workflow_id).state == "completed"

    steps = _steps(app, wf.workflow_id)
    assert steps["quiet"].state == "completed"
    assert (steps["quiet"].result, steps["quiet"].has_result) == (None, False)
    assert steps["after"].result["inputs"] == {"quiet": None}
    completed = [p for name, p in events.steps(wf.workflow_id, "quiet") if name == "step.completed"]
    assert [p["has_result"] for p in completed] == [False]


JSON_VALUES = {
    "mapping": {"n": 1, "nested": {"list": [1, 2.5, "x", None, True]}, "text": "héllo ✓"},
    "zero": 0,
    "false": False,
    "empty_string": "",
    "empty_list": [],
}


def test_returned_json_values_are_stored_and_passed_downstream_even_when_falsy(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow(name="values")
    for name, value in JSON_VALUES.items():
        wf.add(name, core_echo.new(value=value))
    wf.add("reader", record_args.new(), deps=list(JSON_VALUES))
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = _steps(app, wf.workflow_id)
    for name, value in JSON_VALUES.items():
        assert steps[name].has_result is True, name
        assert steps[name].result == value and type(steps[name].result) is type(value), name
    assert steps["reader"].result["inputs"] == JSON_VALUES


def test_raising_step_is_retried_per_retries_then_discarded(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    with EventLog() as events:
        wf = Workflow(name="flaky").add("flaky", fail_until.new(failures=99))  # retries=2
        wf.insert()
        assert events.wait_caught_up(app, wf.workflow_id).state == "failed"

    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"flaky": 3}  # retries + 1
    assert [e["attempt"] for e in ledger.entries(ledger_path)] == [1, 2, 3]
    assert _states(events.steps(wf.workflow_id)) == [
        ("executing", 1),
        ("retryable", 1),
        ("executing", 2),
        ("retryable", 2),
        ("executing", 3),
        ("discarded", 3),
    ]
    retryable = [p for name, p in events.steps(wf.workflow_id) if name == "step.retryable"]
    assert len(retryable) == 2
    for attempt, payload in enumerate(retryable, start=1):
        assert f"planned failure on attempt {attempt}" in payload["error"]
    flaky = _steps(app, wf.workflow_id)["flaky"]
    assert (flaky.state, flaky.attempt) == ("discarded", 3)
    assert "RuntimeError: planned failure on attempt 3" in flaky.error


def test_step_that_succeeds_on_a_retry_completes_with_its_result(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = Workflow(name="recovers").add("flaky", fail_until.new(failures=1))
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "completed"
    flaky = _steps(app, wf.workflow_id)["flaky"]
    assert (flaky.state, flaky.attempt, flaky.result) == ("completed", 2, {"succeeded_on": 2})
    assert flaky.error is None
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"flaky": 2}


def test_step_without_retries_is_discarded_after_one_run(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = Workflow(name="fails").add("broken", always_fail.new())
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    broken = _steps(app, wf.workflow_id)["broken"]
    assert (broken.state, broken.attempt) == ("discarded", 1)
    assert "ValueError: this step always fails" in broken.error
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"broken": 1}


@pytest.mark.parametrize("step", [snooze_once, core_snooze_raised_once], ids=["returned", "raised"])
def test_snooze_runs_again_later_without_consuming_an_attempt(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path, step: Any
) -> None:
    with EventLog() as events:
        wf = Workflow(name="snoozy").add("sleepy", step.new()).add("after", record_args.new(), deps=["sleepy"])
        wf.insert()
        assert events.wait_caught_up(app, wf.workflow_id).state == "completed"

    runs = [e for e in ledger.entries(ledger_path) if e["step"] == "sleepy"]
    assert [e["attempt"] for e in runs] == [1, 1]
    sleepy = _steps(app, wf.workflow_id)["sleepy"]
    assert (sleepy.state, sleepy.attempt, sleepy.result) == ("completed", 1, {"attempt": 1})
    assert _states(events.steps(wf.workflow_id, "sleepy")) == [
        ("executing", 1),
        ("snoozed", 1),
        ("executing", 1),
        ("completed", 1),
    ]
    assert _steps(app, wf.workflow_id)["after"].result["inputs"] == {"sleepy": {"attempt": 1}}


def test_discard_gives_up_at_once_despite_retries_left(app: Flask, consumer: ThreadConsumer, ledger_path: Path) -> None:
    wf = (
        Workflow(name="hopeless")
        .add("hopeless", core_discard_despite_retries.new())  # retries=3
        .add("plain_discard", discard_now.new())
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    steps = _steps(app, wf.workflow_id)
    assert (steps["hopeless"].state, steps["hopeless"].attempt) == ("discarded", 1)
    assert steps["hopeless"].error == "the input is malformed, retrying cannot help"
    assert steps["plain_discard"].error == "not worth retrying"
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"hopeless": 1, "plain_discard": 1}


def test_non_serialisable_result_discards_the_step_naming_it(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = (
        Workflow(name="objects")
        .add("makes_objects", unserialisable.new())
        .add("after", record_args.new(), deps=["makes_objects"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    steps = _steps(app, wf.workflow_id)
    bad = steps["makes_objects"]
    assert (bad.state, bad.result, bad.has_result) == ("discarded", None, False)
    assert "'makes_objects'" in bad.error and "not JSON-serialisable" in bad.error
    assert steps["after"].state == "cancelled"
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"makes_objects": 1}


def test_asking_for_a_non_dependency_fails_the_step_with_not_a_dependency_error(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = (
        Workflow(name="nosy")
        .add("real_dep", constant.new(value=1))
        .add("nosy", ask_for_stranger.new(), deps=["real_dep"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "failed"
    nosy = _steps(app, wf.workflow_id)["nosy"]
    assert nosy.state == "discarded"
    assert "NotADependencyError" in nosy.error
    assert "'nosy' asked for the result of 'not_my_dep'" in nosy.error
    assert "'real_dep'" in nosy.error  # the deps it does have
