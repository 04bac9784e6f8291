"""blinker signals: one per transition, with the SPEC §4 payload, never breaking a step.

Receivers may get more keys than SPEC §4 lists (measurements such as a
step's duration); the listed ones are the contract.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow, telemetry

from .steps import always_fail, constant, fail_until, record_args, snooze_once
from .support import FINISHED_KEYS, STEP_KEYS, EventLog, ThreadConsumer, wait_for


def test_every_transition_sends_its_signal_with_the_spec_payload(app: Flask, consumer: ThreadConsumer) -> None:
    with EventLog() as events:
        wf = (
            Workflow(name="signals")
            .add("ok", constant.new(value=3))
            .add("flaky", fail_until.new(failures=1))
            .add("sleepy", snooze_once.new())
            .add("broken", always_fail.new(), deps=["ok"])
            .add("skipped", record_args.new(), deps=["broken"])
        )
        jobs = {job.step_name: job.id for job in wf.insert()}
        events.wait_caught_up(app, wf.workflow_id)

    step_events = events.steps(wf.workflow_id)
    for signal_name, payload in step_events:
        assert STEP_KEYS <= set(payload), (signal_name, STEP_KEYS - set(payload))
        assert signal_name == f"step.{payload['state']}"
        assert payload["workflow_id"] == wf.workflow_id
        assert payload["workflow_label"] == "signals"
        assert payload["job_id"] == jobs[payload["step_name"]]
        assert isinstance(payload["timestamp"], float)
        assert isinstance(payload["attempt"], int)
    seen = {(p["step_name"], p["state"], p["attempt"]) for _, p in step_events}
    assert seen == {
        ("ok", "executing", 1),
        ("ok", "completed", 1),
        ("flaky", "executing", 1),
        ("flaky", "retryable", 1),
        ("flaky", "executing", 2),
        ("flaky", "completed", 2),
        ("sleepy", "executing", 1),
        ("sleepy", "snoozed", 1),
        ("sleepy", "completed", 1),
        ("broken", "executing", 1),
        ("broken", "discarded", 1),
        ("skipped", "cancelled", 0),
    }
    by_key = {(p["step_name"], p["state"]): p for _, p in step_events}
    assert by_key[("ok", "completed")]["has_result"] is True
    assert by_key[("ok", "completed")]["error"] is None
    assert by_key[("ok", "executing")]["worker"]  # host:pid of the consumer
    assert "planned failure on attempt 1" in by_key[("flaky", "retryable")]["error"]
    assert "this step always fails" in by_key[("broken", "discarded")]["error"]
    assert by_key[("skipped", "cancelled")]["error"] == "dependency 'broken' discarded"

    (finished,) = events.finished(wf.workflow_id)
    assert FINISHED_KEYS <= set(finished)
    assert (finished["workflow_label"], finished["outcome"]) == ("signals", "failed")
    assert finished["failed_steps"] == ["broken", "skipped"]


def test_workflow_finished_is_sent_once_with_outcome_completed(app: Flask, consumer: ThreadConsumer) -> None:
    with EventLog() as events:
        wf = Workflow(name="fine")
        for index in range(8):
            wf.add(f"leaf:{index}", constant.new(value=index))
        wf.insert()
        events.wait_caught_up(app, wf.workflow_id)
        # Every step's completion has been announced too: nothing can follow.
        wait_for(
            lambda: len([1 for n, _ in events.steps(wf.workflow_id) if n == "step.completed"]) == 8,
            "8 completed signals",
        )

    (finished,) = events.finished(wf.workflow_id)
    assert (finished["outcome"], finished["failed_steps"]) == ("completed", [])
    assert finished["workflow_label"] == "fine"


def test_a_raising_receiver_is_logged_and_does_not_break_the_step(
    app: Flask, consumer: ThreadConsumer, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(_sender: Any, **_payload: Any) -> None:
        raise RuntimeError("receiver bug")

    signals = [telemetry.step_signal(state) for state in ("executing", "completed")] + [telemetry.workflow_finished]
    for signal in signals:
        signal.connect(explode, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="flask_baton"), EventLog() as events:
            wf = Workflow(name="sturdy").add("a", constant.new(value=1)).add("b", record_args.new(), deps=["a"])
            wf.insert()
            record = events.wait_caught_up(app, wf.workflow_id)
    finally:
        for signal in signals:
            signal.disconnect(explode)

    assert record.state == "completed"
    by_name = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert (by_name["a"].result, by_name["b"].result["inputs"]) == (1, {"a": 1})
    assert any("receiver bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_step_signal_refuses_unknown_states() -> None:
    with pytest.raises(ValueError, match="pending"):
        telemetry.step_signal("pending")
    assert telemetry.step_signal("completed").name == "baton.step.completed"
