"""``flask baton ...`` commands, run through Flask's CLI runner and as real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from flask_baton import Workflow

from .steps import always_fail, constant, sum_inputs
from .support import ThreadConsumer, WorkerProcess, wait_finished

ROOT = Path(__file__).resolve().parent.parent


def test_db_upgrade_installs_then_reports_up_to_date(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["baton", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_status_lists_workflows_and_shows_each_step(app: Flask) -> None:
    done = Workflow("cli:done")
    done.add("root", constant.new(value=1)).add("leaf", sum_inputs.new(), deps=["root"])
    broken = Workflow("cli:broken").add("boom", always_fail.new())
    with ThreadConsumer(app, workers=2):
        done.insert()
        broken.insert()
        wait_finished(app, done.workflow_id)
        wait_finished(app, broken.workflow_id)
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["baton", "status"])
    assert listing.exit_code == 0, listing.output
    assert "cli:done" in listing.output and "completed" in listing.output
    assert "cli:broken" in listing.output and "failed" in listing.output
    detail = runner.invoke(args=["baton", "status", broken.workflow_id])
    assert detail.exit_code == 0, detail.output
    assert "boom" in detail.output and "discarded" in detail.output
    assert "ValueError: this step always fails" in detail.output


def test_status_of_unknown_workflow_fails_naming_it(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["baton", "status", "no-such-id"])
    assert result.exit_code != 0
    assert "no workflow with id 'no-such-id'" in result.output


def test_worker_subprocess_runs_a_diamond_and_stops_gracefully(app: Flask, settings: dict[str, Any]) -> None:
    with WorkerProcess(settings) as worker:
        wf = (
            Workflow("subprocess:diamond")
            .add("a", constant.new(value=2))
            .add("b", constant.new(value=3), deps=["a"])
            .add("c", constant.new(value=4), deps=["a"])
            .add("d", sum_inputs.new(), deps=["b", "c"])
        )
        wf.insert()
        record = wait_finished(app, wf.workflow_id, timeout=30)
        assert record.state == "completed"
        steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
        assert steps["d"].result == 7
        assert all(s.worker and s.worker.endswith(f":{worker.process.pid}") for s in steps.values())
    # Leaving the block sends SIGINT: a graceful stop.
    assert worker.process.returncode == 0, worker.output
    assert "Huey consumer started" in worker.output
