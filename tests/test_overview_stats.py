"""The overview's reads on both backends, against what a real consumer ran.

``Query.get_activity`` counts in SQL what ``flask_baton.timeseries`` computes
in Python (buckets, duration classes), so each figure is checked against the
same arithmetic done here on the rows themselves. Consumers' heartbeats are
written by real Huey workers starting and stopping.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow
from flask_baton.appstate import worker_id
from flask_baton.records import StepRecord
from flask_baton.sweep import sweep
from flask_baton.timeseries import bucket_of, duration_class

from .steps import always_fail, constant, fail_until, fake_llm, slow, wait_for_file
from .support import ThreadConsumer, step_states, wait_finished, wait_for

pytestmark = pytest.mark.usefixtures("consumer")


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {
        "BATON_PRICING": {"gpt-4o-mini": {"input": 1.0, "output": 2.0, "cached_input": 0.5}},
        "BATON_HEARTBEAT_SECONDS": 0.2,
    }


@pytest.fixture
def llm_consumer(app: Flask) -> Any:
    with ThreadConsumer(app, workers=2, queue="llm") as running:
        yield running


def _run_history(app: Flask) -> list[str]:
    """Three workflows that complete (one after a retry, one calling a model), two that fail."""
    flows = [
        Workflow("ok").add("first", constant.new(value=1)).add("second", slow.new(seconds=0.05), deps=["first"]),
        Workflow("ok").add("first", constant.new(value=2)).add("second", slow.new(seconds=0.12), deps=["first"]),
        Workflow("retried").add("flaky", fail_until.new(failures=1)).add("llm", fake_llm.new(), deps=["flaky"]),
        Workflow("bad").add("first", constant.new(value=3)).add("boom", always_fail.new(), deps=["first"]),
        Workflow("bad").add("boom", always_fail.new()).add("never", constant.new(), deps=["boom"]),
    ]
    for flow in flows:
        flow.insert()
    for flow in flows:
        wait_finished(app, flow.workflow_id)
    return [flow.workflow_id for flow in flows]


def _steps(app: Flask, workflow_ids: list[str]) -> list[StepRecord]:
    query = app.extensions["baton"].query
    return [step for workflow_id in workflow_ids for step in query.get_workflow_jobs(workflow_id)]


@pytest.mark.usefixtures("llm_consumer")
def test_activity_counts_what_ran_in_the_buckets_and_duration_classes_python_computes(app: Flask) -> None:
    ids = _run_history(app)
    query = app.extensions["baton"].query
    records = [query.get_workflow(workflow_id) for workflow_id in ids]
    steps = _steps(app, ids)
    ran = [s for s in steps if s.state in ("completed", "discarded")]
    start, width = min(r.created_at for r in records) - 3.0, 0.05  # many buckets: floor vs rounding shows

    activity = query.get_activity(start, width)

    assert activity.workflows_started == Counter(bucket_of(r.created_at, start, width) for r in records)
    assert activity.workflows_ended == Counter((bucket_of(r.finished_at, start, width), r.state.value) for r in records)
    ended: Counter[str] = Counter()
    for (_, state), count in activity.workflows_ended.items():
        ended[state] += count
    assert ended == {"completed": 3, "failed": 2}
    assert activity.steps_ended == Counter((bucket_of(s.finished_at, start, width), s.state.value) for s in ran)
    assert set(activity.durations) == {"first", "second", "flaky", "llm", "boom"}  # "never" never ran
    for name, durations in activity.durations.items():
        took = [s.finished_at - s.started_at for s in ran if s.step_name == name]
        assert durations.classes == Counter(duration_class(t) for t in took), name
        assert (durations.shortest, durations.longest) == (pytest.approx(min(took)), pytest.approx(max(took)))
    assert (activity.durations["boom"].completed, activity.durations["boom"].discarded) == (0, 2)
    assert activity.durations["second"].runs == 2
    assert sum(activity.cost.values()) == pytest.approx(query.workflow_costs(ids)[ids[2]])
    assert sum(activity.cost.values()) > 0


def test_activity_leaves_out_what_ended_before_its_start(app: Flask) -> None:
    ids = _run_history_without_models(app)
    query = app.extensions["baton"].query
    last_end = max(query.get_workflow(workflow_id).finished_at for workflow_id in ids)

    later = query.get_activity(last_end + 0.001, 60.0)

    assert (later.workflows_started, later.workflows_ended, later.steps_ended, later.durations) == ({}, {}, {}, {})


def _run_history_without_models(app: Flask) -> list[str]:
    flows = [Workflow("ok").add("first", constant.new(value=1)), Workflow("bad").add("boom", always_fail.new())]
    for flow in flows:
        flow.insert()
    return [wait_finished(app, flow.workflow_id).id for flow in flows]


def test_a_step_running_now_is_listed_with_the_consumer_running_it(app: Flask, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    wf = Workflow("gated").add("wait", wait_for_file.new(path=str(gate)))
    wf.insert()
    query = app.extensions["baton"].query
    try:
        wait_for(lambda: step_states(app, wf.workflow_id)["wait"] == "executing", "the gated step to run")

        running = query.get_running_steps()

        assert [(r.workflow_id, r.workflow_label, r.step_name, r.worker) for r in running] == [
            (wf.workflow_id, "gated", "wait", worker_id())
        ]
        assert running[0].started_at is not None
    finally:
        gate.touch()
    wait_finished(app, wf.workflow_id)
    assert query.get_running_steps() == []


def test_a_consumer_is_listed_with_its_queues_while_it_runs_and_not_once_it_stopped(app: Flask) -> None:
    query = app.extensions["baton"].query
    before = time.time()
    wait_for(lambda: query.get_consumers(before - 60), "the default queue's consumer to say it is alive")

    with ThreadConsumer(app, workers=2, queue="llm"):
        alive = wait_for(
            lambda: [c for c in query.get_consumers(before - 60) if len(c.queues) == 2], "its second queue"
        )
        assert [(c.worker, c.queues) for c in alive] == [(worker_id(), ("default", "llm"))]
        assert alive[0].started_at >= before - 1 and alive[0].seen_at >= alive[0].started_at

    assert [(c.worker, c.queues) for c in query.get_consumers(before - 60)] == [(worker_id(), ("default",))]


def test_the_heartbeat_stamps_an_idle_consumer_and_the_sweep_forgets_the_silent_ones(app: Flask) -> None:
    state = app.extensions["baton"]
    query = state.query
    now = time.time()
    lease = state.config.lease_seconds
    state.store.beat("gone-host:4242", {"default": now - 600}, (), now - lease - 5)
    wait_for(
        lambda: worker_id() in [c.worker for c in query.get_consumers(0)],
        "the running consumer's first heartbeat",
        timeout=state.config.heartbeat_seconds * 3,
    )
    assert [c.worker for c in query.get_consumers(0)] == sorted(["gone-host:4242", worker_id()])
    mine = next(c for c in query.get_consumers(0) if c.worker == worker_id())

    wait_for(
        lambda: next(c for c in query.get_consumers(0) if c.worker == worker_id()).seen_at > mine.seen_at,
        "the idle consumer's next heartbeat",
        timeout=state.config.heartbeat_seconds * 3,
    )
    report = sweep(state, force=True)

    assert report.consumers_forgotten == 1
    assert [c.worker for c in query.get_consumers(0)] == [worker_id()]


def test_a_version_4_database_gains_the_consumers_table_and_the_end_index_in_place(app: Flask) -> None:
    from flask_baton.store import migrations

    from .steps import baton
    from .support import make_version

    make_version(app, 4)

    assert baton.create_schema() == (4, migrations.SCHEMA_VERSION)
    app.extensions["baton"].store.beat("upgraded-host:1", {"default": 1.0}, (), time.time())
    assert "upgraded-host:1" in [c.worker for c in app.extensions["baton"].query.get_consumers(0)]
