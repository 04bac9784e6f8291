"""Workflow.add / insert: bad input is refused by name, and a failed insert writes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_baton import (
    Baton,
    CycleError,
    InvalidStepError,
    NotSerializableError,
    UnknownDependencyError,
    Workflow,
    WorkflowError,
)
from flask_baton.query import StepRecord

from .steps import constant, record_args
from .support import ThreadConsumer, wait_finished

stranger_baton = Baton()


@stranger_baton.step()
def stranger(job: Any) -> None:
    """A step of another Baton, unknown to the test app."""


def test_adding_something_other_than_a_step_call_names_the_step() -> None:
    def plain_function(job: Any) -> None:
        return None

    wf = Workflow(name="bad")
    with pytest.raises(InvalidStepError, match="'fetch'.*my_step.new"):
        wf.add("fetch", plain_function)  # type: ignore[arg-type]
    with pytest.raises(InvalidStepError, match="'fetch'"):
        wf.add("fetch", constant)  # type: ignore[arg-type]  # the step, not a call of it
    assert wf.step_names == []


def test_deps_given_as_a_string_are_refused() -> None:
    wf = Workflow(name="bad").add("fetch", constant.new())
    with pytest.raises(InvalidStepError, match="'parse'.*list of step names"):
        wf.add("parse", record_args.new(), deps="fetch")
    with pytest.raises(InvalidStepError, match="'parse'"):
        wf.add("parse", record_args.new(), deps=["fetch", 3])  # type: ignore[list-item]
    assert wf.step_names == ["fetch"]


def test_step_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(InvalidStepError):
        Workflow(name="bad").add("", constant.new())


def _workflow_rows(app: Flask) -> list[str]:
    return [record.id for record in app.extensions["baton"].query.list_workflows(limit=1000).workflows]


def _bad_args() -> Workflow:
    return (
        Workflow(name="bad-args")
        .add("ok", constant.new(value=1))
        .add("holds_a_set", record_args.new(tags={"a", "b"}), deps=["ok"])
    )


def _nan_args() -> Workflow:
    return Workflow(name="nan-args").add("ok", constant.new()).add("nan", record_args.new(x=math.nan))


def _cycle() -> Workflow:
    return Workflow(name="cycle").add("a", constant.new(), deps=["b"]).add("b", constant.new(), deps=["a"])


def _unknown_dep() -> Workflow:
    return Workflow(name="unknown").add("a", constant.new()).add("b", constant.new(), deps=["nope"])


def _foreign_step() -> Workflow:
    return Workflow(name="foreign").add("a", constant.new()).add("b", stranger.new(), deps=["a"])


def _empty() -> Workflow:
    return Workflow(name="empty")


FAILING_INSERTS: list[tuple[Callable[[], Workflow], type[Exception], str]] = [
    (_bad_args, NotSerializableError, "'holds_a_set'"),
    (_nan_args, NotSerializableError, "'nan'"),
    (_cycle, CycleError, "'a', 'b'"),
    (_unknown_dep, UnknownDependencyError, "'nope'"),
    (_foreign_step, InvalidStepError, "'b'"),
    (_empty, WorkflowError, "no steps"),
]


@pytest.mark.parametrize(
    ("build", "error", "names"), FAILING_INSERTS, ids=[build.__name__.strip("_") for build, _, _ in FAILING_INSERTS]
)
def test_failed_insert_writes_nothing_and_names_the_culprit(
    app: Flask, build: Callable[[], Workflow], error: type[Exception], names: str
) -> None:
    wf = build()

    with pytest.raises(error) as caught:
        wf.insert()

    assert names in str(caught.value)
    assert _workflow_rows(app) == []
    query = app.extensions["baton"].query
    if wf.workflow_id is not None:  # an id known before insert must name nothing yet
        assert query.get_workflow(wf.workflow_id) is None
        assert query.get_workflow_jobs(wf.workflow_id) == []


def test_failed_insert_leaves_an_earlier_workflow_untouched(app: Flask) -> None:
    query = app.extensions["baton"].query
    good = Workflow(name="good").add("a", constant.new(value=1)).add("b", record_args.new(), deps=["a"])
    good.insert()
    assert good.workflow_id is not None
    before_workflow = query.get_workflow(good.workflow_id)
    before_steps = query.get_workflow_jobs(good.workflow_id)

    for build, error, _ in FAILING_INSERTS:
        with pytest.raises(error):
            build().insert()

    assert _workflow_rows(app) == [good.workflow_id]
    assert query.get_workflow(good.workflow_id) == before_workflow
    assert query.get_workflow_jobs(good.workflow_id) == before_steps


def test_insert_returns_one_job_per_step_and_sets_the_workflow_id(app: Flask) -> None:
    wf = (
        Workflow(name="shape")
        .add("fetch", constant.new())
        .add("parse", record_args.new(), deps=["fetch"])
        .add("index", record_args.new(), deps=["fetch"])
    )

    jobs = wf.insert()

    assert [job.step_name for job in jobs] == ["fetch", "parse", "index"]
    assert {job.workflow_id for job in jobs} == {wf.workflow_id}
    assert len({job.id for job in jobs}) == 3
    stored: list[StepRecord] = app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)
    assert {s.id: s.step_name for s in stored} == {job.id: job.step_name for job in jobs}
    # No consumer runs here: the root waits, handed to Huey; the rest wait for it.
    assert {s.step_name: s.state for s in stored} == {"fetch": "available", "parse": "pending", "index": "pending"}


def test_a_workflow_is_inserted_once(app: Flask) -> None:
    wf = Workflow(name="once").add("a", constant.new())
    wf.insert()
    with pytest.raises(WorkflowError, match="already inserted"):
        wf.insert()
    assert _workflow_rows(app) == [wf.workflow_id]


def test_insert_many_writes_every_workflow_in_one_go_and_they_all_run(app: Flask, consumer: ThreadConsumer) -> None:
    batch = [
        Workflow(f"many:{i}").add("a", constant.new(value=i)).add("b", record_args.new(), deps=["a"]) for i in range(20)
    ]
    jobs = Workflow.insert_many(batch)
    assert [[job.step_name for job in per_workflow] for per_workflow in jobs] == [["a", "b"]] * 20
    assert all(wf.inserted for wf in batch)
    for wf in batch:
        assert wait_finished(app, wf.workflow_id).state == "completed"


def test_insert_many_is_all_or_nothing(app: Flask) -> None:
    good = Workflow("many:good").add("a", constant.new())
    bad = Workflow("many:bad").add("a", constant.new()).add("b", constant.new(), deps=["missing"])
    with pytest.raises(UnknownDependencyError, match="'missing'"):
        Workflow.insert_many([good, bad])
    assert app.extensions["baton"].query.list_workflows().workflows == []
    assert not good.inserted
    with pytest.raises(WorkflowError, match="the same workflow twice"):
        Workflow.insert_many([good, good])
    assert Workflow.insert_many([]) == []
