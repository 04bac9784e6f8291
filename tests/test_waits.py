"""Durable waits (``WaitFor``) and signals, with real consumers on both backends."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import ArgumentError, SignalError, WaitFor, Workflow, WorkflowNotFoundError
from flask_baton.sweep import sweep

from . import ledger
from .steps import await_approval, baton, record_args, wait_without_reading
from .support import ThreadConsumer, WorkerProcess, step_states, wait_finished, wait_for


def _approval_workflow(**args: Any) -> Workflow:
    wf = Workflow(name="approve").add("gate", await_approval.new(**args)).add("after", record_args.new(), deps=["gate"])
    wf.insert()
    return wf


def _waiting(app: Flask, workflow_id: str, step: str = "gate") -> None:
    wait_for(lambda: step_states(app, workflow_id)[step] == "waiting", f"{step} waiting")


def _step(app: Flask, workflow_id: str, name: str) -> Any:
    return next(s for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id) if s.step_name == name)


def test_a_waiting_step_holds_no_worker_and_a_signal_wakes_it(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _approval_workflow()
    _waiting(app, wf.workflow_id)
    gate = _step(app, wf.workflow_id, "gate")
    assert (gate.worker, gate.attempt) == (None, 0)  # no worker held, the attempt given back

    assert baton.signal(wf.workflow_id, "approval", {"approved": True}, by="ana") == ["gate"]

    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert _step(app, wf.workflow_id, "gate").result == {"decision": {"approved": True}, "timed_out": False}
    assert _step(app, wf.workflow_id, "after").state == "completed"
    runs = [
        (run.attempt, run.outcome) for run in app.extensions["baton"].query.get_step_attempts(wf.workflow_id, "gate")
    ]
    assert runs == [(1, "waited"), (1, "completed")]


def test_a_signal_sent_before_the_wait_is_kept(app: Flask, ledger_path: Path) -> None:
    wf = _approval_workflow()
    assert baton.signal(wf.workflow_id, "approval", {"approved": False}) == []  # nothing waits yet

    with ThreadConsumer(app):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert _step(app, wf.workflow_id, "gate").result == {"decision": {"approved": False}, "timed_out": False}
    assert [entry["attempt"] for entry in ledger.entries(ledger_path) if entry["step"] == "gate"] == [
        1
    ]  # it never waited


def test_a_second_signal_of_the_same_name_is_refused_and_the_first_stands(app: Flask) -> None:
    wf = _approval_workflow()
    baton.signal(wf.workflow_id, "approval", {"approved": True}, by="ana")

    with pytest.raises(SignalError, match=r"'approval' of workflow .* was sent already by ana .* the first one stands"):
        baton.signal(wf.workflow_id, "approval", {"approved": False}, by="bob")

    with ThreadConsumer(app):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert _step(app, wf.workflow_id, "gate").result["decision"] == {"approved": True}


def test_bad_signals_are_refused_with_nothing_changed(app: Flask) -> None:
    wf = _approval_workflow()
    with pytest.raises(WorkflowNotFoundError, match="no workflow with id 'nope'"):
        baton.signal("nope", "approval", {"approved": True})
    with pytest.raises(SignalError, match=r"payload of signal 'approval' is not JSON \(object\)"):
        baton.signal(wf.workflow_id, "approval", object())
    with pytest.raises(SignalError, match="needs a payload"):
        baton.signal(wf.workflow_id, "approval", None)
    with pytest.raises(SignalError, match="non-empty string"):
        baton.signal(wf.workflow_id, "", True)
    baton.cancel_workflow(wf.workflow_id)
    with pytest.raises(SignalError, match=r"is cancelled: no step of it can wait for signal 'approval'"):
        baton.signal(wf.workflow_id, "approval", {"approved": True})
    assert app.extensions["baton"].query.get_signals(wf.workflow_id) == {}


@pytest.mark.parametrize("timeout", [0, -5, float("nan"), float("inf"), "10", None])
def test_a_wait_needs_a_positive_timeout(timeout: Any) -> None:
    with pytest.raises(ArgumentError, match=r"WaitFor\('approval'\) timeout must be"):
        WaitFor("approval", timeout=timeout)


def test_a_wait_needs_a_name_and_a_known_timeout_policy() -> None:
    with pytest.raises(ArgumentError, match="WaitFor name must be a non-empty string"):
        WaitFor(" ", timeout=5)
    with pytest.raises(ArgumentError, match="on_timeout must be 'discard' or 'continue'"):
        WaitFor("approval", timeout=5, on_timeout="retry")  # type: ignore[arg-type]


def test_a_wait_that_times_out_discards_its_step_and_cascades(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _approval_workflow(timeout=0.2)
    end = wait_finished(app, wf.workflow_id)
    assert end.state == "failed"
    gate, after = _step(app, wf.workflow_id, "gate"), _step(app, wf.workflow_id, "after")
    assert (gate.state, gate.error) == ("discarded", "timed out waiting for 'approval'")
    assert (after.state, after.error) == ("cancelled", "dependency 'gate' discarded")
    with pytest.raises(SignalError, match="is failed"):
        baton.signal(wf.workflow_id, "approval", {"approved": True})


def test_a_wait_that_times_out_with_continue_runs_its_step_with_no_signal_and_refuses_a_late_one(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow(name="continue").add("gate", await_approval.new(timeout=0.2, on_timeout="continue"))
    wf.add("other", wait_without_reading.new())  # keeps the workflow running
    wf.insert()
    wait_for(lambda: step_states(app, wf.workflow_id)["gate"] == "completed", "gate completed after its timeout")
    assert _step(app, wf.workflow_id, "gate").result == {"decision": None, "timed_out": True}
    with pytest.raises(
        SignalError, match=r"the wait for signal 'approval' of workflow .* timed out at .*; signal refused"
    ):
        baton.signal(wf.workflow_id, "approval", {"approved": True})
    baton.signal(wf.workflow_id, "reply", "done")  # the other step waits again for it, and is discarded
    assert wait_finished(app, wf.workflow_id).state == "failed"


def test_explain_says_a_waiting_step_waits_for_a_signal(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _approval_workflow()
    _waiting(app, wf.workflow_id)
    reason = baton.explain(wf.workflow_id, "gate").reason
    assert reason.startswith("waiting for a signal (baton.signal); times out in ")


def test_the_sweep_times_out_a_wait_whose_message_was_lost(app: Flask) -> None:
    wf = _approval_workflow(timeout=3600)
    with ThreadConsumer(app):
        _waiting(app, wf.workflow_id)
    state = app.extensions["baton"]

    report = sweep(state, force=True, now=time.time() + 7200)

    assert report.timed_out == [_step(app, wf.workflow_id, "gate").id]
    assert step_states(app, wf.workflow_id) == {"gate": "discarded", "after": "cancelled"}
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert sweep(state, force=True, now=time.time() + 7200).timed_out == []


def test_cancelling_a_workflow_cancels_its_waiting_step(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _approval_workflow()
    _waiting(app, wf.workflow_id)
    assert baton.cancel_workflow(wf.workflow_id) == ["after", "gate"]
    assert step_states(app, wf.workflow_id) == {"gate": "cancelled", "after": "cancelled"}


def test_a_step_that_waits_again_for_a_signal_it_was_woken_by_is_discarded(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow(name="loop").add("blind", wait_without_reading.new())
    wf.insert()
    _waiting(app, wf.workflow_id, "blind")
    baton.signal(wf.workflow_id, "reply", "hello")
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert _step(app, wf.workflow_id, "blind").error == (
        "returned WaitFor('reply') again after the signal arrived; read it with job.signal('reply')"
    )


def test_a_wait_survives_its_consumer_killed_with_kill_9(app: Flask, settings: dict[str, Any]) -> None:
    wf = _approval_workflow()
    with WorkerProcess(settings) as worker:
        _waiting(app, wf.workflow_id)
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)

    assert baton.signal(wf.workflow_id, "approval", {"approved": True}) == ["gate"]

    with WorkerProcess(settings):
        assert wait_finished(app, wf.workflow_id, timeout=60).state == "completed"
    assert _step(app, wf.workflow_id, "gate").result["decision"] == {"approved": True}


def _cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["baton", *args])


def test_flask_baton_signal_wakes_a_waiting_step_from_the_command_line(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _approval_workflow()
    _waiting(app, wf.workflow_id)

    done = _cli(
        app, "signal", wf.workflow_id[:12], "approval", '{"approved": true, "comment": "ship it"}', "--by", "ops"
    )

    assert done.exit_code == 0, done.output
    assert done.output == f"signal 'approval' sent to workflow {wf.workflow_id} (approve): 1 step(s) woken: gate\n"
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert _step(app, wf.workflow_id, "gate").result["decision"] == {"approved": True, "comment": "ship it"}


def test_flask_baton_signal_refuses_a_payload_that_is_not_json_and_a_second_signal(app: Flask) -> None:
    wf = _approval_workflow()
    bad = _cli(app, "signal", wf.workflow_id, "approval", "{approved}")
    assert bad.exit_code == 1 and "Error: PAYLOAD of signal 'approval' is not JSON" in bad.output
    kept = _cli(app, "signal", wf.workflow_id, "approval")
    assert kept.exit_code == 0 and kept.output.endswith("kept for the step that will wait for it\n")
    again = _cli(app, "signal", wf.workflow_id, "approval", "false")
    assert again.exit_code == 1 and "was sent already" in again.output
    unknown = _cli(app, "signal", "ffffffffff", "approval")
    assert unknown.exit_code == 1 and "ffffffffff" in unknown.output


def test_a_version_5_database_gains_the_signals_and_waits_tables_in_place(app: Flask) -> None:
    from flask_baton.store import migrations

    from .support import make_version

    wf = _approval_workflow()
    make_version(app, 5)
    assert baton.create_schema() == (5, migrations.SCHEMA_VERSION)
    assert baton.signal(wf.workflow_id, "approval", {"approved": True}) == []
    with ThreadConsumer(app):
        assert wait_finished(app, wf.workflow_id).state == "completed"
