"""baton.query: the records views and scripts read."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_baton import Workflow

from .steps import always_fail, baton, constant, fail_until, record_args
from .support import ThreadConsumer, wait_finished


def test_get_workflow_describes_a_finished_workflow(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow(name="report:q1").add("a", constant.new(value=1)).add("b", record_args.new(), deps=["a"])
    wf.insert()
    wait_finished(app, wf.workflow_id)

    record = baton.query.get_workflow(wf.workflow_id)

    assert record is not None
    assert (record.id, record.name, record.label) == (wf.workflow_id, "report:q1", "report:q1")
    assert record.state == "completed"
    assert (record.total_steps, record.unsettled_steps, record.settled_steps) == (2, 0, 2)
    assert record.finished_at is not None and record.finished_at >= record.created_at


def test_get_workflow_of_an_unknown_id_is_none(app: Flask) -> None:
    assert baton.query.get_workflow("0" * 32) is None
    assert baton.query.get_workflow_jobs("0" * 32) == []


def test_get_workflow_jobs_has_one_record_per_step_with_state_attempt_result_error_and_times(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = (
        Workflow(name="records")
        .add("ok", constant.new(value=41))
        .add("flaky", fail_until.new(failures=1))
        .add("broken", always_fail.new(), deps=["ok"])
        .add("skipped", record_args.new(), deps=["broken", "flaky"])
    )
    jobs = wf.insert()
    wait_finished(app, wf.workflow_id)

    records = baton.query.get_workflow_jobs(wf.workflow_id)

    assert [r.step_name for r in records] == ["ok", "flaky", "broken", "skipped"]  # insertion order
    assert [r.id for r in records] == [job.id for job in jobs]
    by_name = {r.step_name: r for r in records}
    ok, flaky, broken, skipped = (by_name[n] for n in ("ok", "flaky", "broken", "skipped"))
    assert (ok.state, ok.attempt, ok.result, ok.has_result, ok.error) == ("completed", 1, 41, True, None)
    assert (flaky.state, flaky.attempt, flaky.result, flaky.error) == ("completed", 2, {"succeeded_on": 2}, None)
    assert (broken.state, broken.attempt, broken.result) == ("discarded", 1, None)
    assert "this step always fails" in broken.error
    assert (skipped.state, skipped.attempt, skipped.error) == ("cancelled", 0, "dependency 'broken' discarded")
    assert skipped.started_at is None and skipped.finished_at is not None
    assert set(skipped.deps) == {"broken", "flaky"} and ok.deps == ()
    for record in (ok, flaky, broken):
        assert record.workflow_id == wf.workflow_id
        assert record.settled
        assert record.created_at <= record.started_at <= record.finished_at
    assert ok.task == "constant" and skipped.task == "record_args"


def test_list_workflows_pages_newest_first_with_a_before_cursor(app: Flask) -> None:
    inserted = []
    for index in range(5):
        wf = Workflow(name=f"page:{index}").add("a", constant.new())
        wf.insert()
        inserted.append(wf.workflow_id)

    pages = []
    before = None
    while True:
        page = baton.query.list_workflows(limit=2, before=before)
        pages.append([record.id for record in page.workflows])
        if page.next_before is None:
            break
        before = page.next_before

    assert [len(ids) for ids in pages] == [2, 2, 1]
    listed = [workflow_id for ids in pages for workflow_id in ids]
    assert sorted(listed) == sorted(inserted)
    assert listed == sorted(listed, reverse=True)
    assert listed[-1] == min(inserted)
    assert baton.query.list_workflows(limit=5).next_before is None
    assert [r.id for r in baton.query.list_workflows(limit=50).workflows] == listed


def test_list_workflows_filters_by_name_and_state(app: Flask, consumer: ThreadConsumer) -> None:
    ids: dict[str, list[str]] = {"good": [], "bad": []}
    for name, step in [("good", constant)] * 3 + [("bad", always_fail)] * 2:
        wf = Workflow(name=name).add("only", step.new())
        wf.insert()
        ids[name].append(wf.workflow_id)
    for workflow_ids in ids.values():
        for workflow_id in workflow_ids:
            wait_finished(app, workflow_id)

    def listed(**filters: str) -> set[str]:
        return {r.id for r in baton.query.list_workflows(**filters).workflows}

    assert listed(name="good") == set(ids["good"])
    assert listed(state="failed") == set(ids["bad"])
    assert listed(state="completed") == set(ids["good"])
    assert listed(name="good", state="failed") == set()
    assert listed(name="bad", state="failed") == set(ids["bad"])
    assert listed(state="running") == set()
    assert listed(name="nobody") == set()
    page = baton.query.list_workflows(name="good", limit=2)
    assert len(page.workflows) == 2 and page.next_before is not None
    rest = baton.query.list_workflows(name="good", limit=2, before=page.next_before)
    assert {r.id for r in page.workflows + rest.workflows} == set(ids["good"]) and rest.next_before is None


def test_list_workflows_refuses_bad_arguments(app: Flask) -> None:
    with pytest.raises(ValueError, match="limit"):
        baton.query.list_workflows(limit=0)
    with pytest.raises(ValueError):
        baton.query.list_workflows(state="exploded")
