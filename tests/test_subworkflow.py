"""``Workflow.add_workflow``: a whole workflow nested as one step of another."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_baton import (
    CycleError,
    Dep,
    DuplicateStepError,
    InvalidStepError,
    Workflow,
    WorkflowError,
)
from flask_baton.subworkflow import JOIN_TASK, common_tolerance, groups, join_deps

from .steps import (
    always_fail,
    baton,
    constant,
    fails_while_file_exists,
    record_args,
    report_failed_deps,
)
from .support import ThreadConsumer, step_states, wait_finished


def research(topic: str = "ai") -> Workflow:
    """A child with a nested child: ``a`` -> ``inner`` (``x`` -> ``y``) -> ``z``."""
    inner = Workflow("inner").add("x", constant.new(value=1)).add("y", constant.new(value=2), deps=["x"])
    return (
        Workflow(f"research:{topic}")
        .add("a", constant.new(value=3))
        .add_workflow("inner", inner, deps=["a"])
        .add("z", constant.new(value=4), deps=["inner"])
    )


def test_a_nested_sub_workflow_runs_as_one_step_and_hands_its_results_downstream(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = (
        Workflow("parent")
        .add("start", constant.new(value=0))
        .add_workflow("outer", research(), deps=["start"])
        .add("end", record_args.new(), deps=["outer"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"

    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert list(steps) == [
        "start",
        "outer/a",
        "outer/inner/x",
        "outer/inner/y",
        "outer/inner",
        "outer/z",
        "outer",
        "end",
    ]
    assert steps["end"].result["inputs"] == {"outer": {"a": 3, "inner": {"x": 1, "y": 2}, "z": 4}}
    assert steps["outer/a"].deps == ("start",)  # the child's root waits on the sub-workflow's deps
    assert steps["outer/inner/x"].deps == ("outer/a",)
    assert steps["outer"].task == JOIN_TASK
    # What a dashboard reads to draw each sub-workflow collapsed into its join step.
    assert groups(steps.values()) == {
        "outer/inner": ["outer/inner/x", "outer/inner/y"],
        "outer": ["outer/a", "outer/inner/x", "outer/inner/y", "outer/inner", "outer/z"],
    }


def test_a_failure_inside_a_sub_workflow_cancels_its_join_and_onward_until_retried(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    child = (
        Workflow("child")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("fine", constant.new(value=7))
    )
    wf = Workflow("parent").add_workflow("sub", child).add("after", record_args.new(), deps=["sub"])
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {
        "sub/flaky": "discarded",
        "sub/fine": "completed",
        "sub": "cancelled",
        "after": "cancelled",
    }
    join = next(s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id) if s.step_name == "sub")
    assert join.error == "dependency 'sub/flaky' discarded"

    blocker.unlink()
    assert baton.retry_workflow(wf.workflow_id) == ["sub/flaky", "sub", "after"]
    assert wait_finished(app, wf.workflow_id).state == "completed"
    after = next(s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id) if s.step_name == "after")
    assert after.result["inputs"] == {"sub": {"flaky": "unblocked", "fine": 7}}


def test_a_failure_the_child_tolerates_does_not_fail_the_parent(app: Flask, consumer: ThreadConsumer) -> None:
    child = (
        Workflow("quorum-ish")
        .add("lost", always_fail.new())
        .add("kept", constant.new(value=1))
        .add("merge", report_failed_deps.new(), deps=[Dep("lost", ignore_discarded=True), "kept"])
    )
    wf = Workflow("parent").add_workflow("sub", child).add("after", record_args.new(), deps=["sub"])
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    after = next(s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id) if s.step_name == "after")
    # The failed step is left out of the join's result; the step that tolerated it saw it fail.
    assert after.result["inputs"] == {
        "sub": {
            "kept": 1,
            "merge": {"failed": {"sub/lost": "discarded"}, "results": {"sub/lost": None, "sub/kept": 1}},
        }
    }


def test_an_inserted_workflow_cannot_be_nested(app: Flask) -> None:
    child = Workflow("child").add("only", constant.new())
    child.insert()
    with pytest.raises(WorkflowError, match=f"was already inserted as {child.workflow_id}"):
        Workflow("parent").add_workflow("sub", child)


def test_nesting_adds_prefixed_steps_and_a_join_that_waits_on_the_childs_own_steps() -> None:
    wf = (
        Workflow("parent")
        .add("fetch", constant.new())
        .add_workflow("sub", research(), deps=[Dep("fetch", ignore_cancelled=True)])
    )
    assert wf.step_names == ["fetch", "sub/a", "sub/inner/x", "sub/inner/y", "sub/inner", "sub/z", "sub"]
    assert wf._deps["sub/a"] == ["fetch"] and wf._tolerates["sub/a"] == {"fetch": "cancelled"}
    assert wf._deps["sub"] == ["sub/a", "sub/inner", "sub/z"]  # not the nested steps: "sub/inner" stands for them
    assert wf._calls["sub/inner"].args == {"subworkflow": "sub/inner", "steps": ["sub/inner/x", "sub/inner/y"]}
    assert wf.validate()[-1] == "sub"


def test_a_child_is_copied_so_it_can_be_nested_twice_and_changed_after() -> None:
    child = Workflow("child").add("a", constant.new())
    wf = Workflow("parent").add_workflow("one", child).add_workflow("two", child)
    child.add("b", constant.new())
    assert wf.step_names == ["one/a", "one", "two/a", "two"]


def test_clashing_names_raise_and_add_nothing() -> None:
    child = Workflow("child").add("a", constant.new()).add("b", constant.new())
    wf = Workflow("parent").add("sub/b", constant.new())
    with pytest.raises(DuplicateStepError, match="already has a step named 'sub/b'"):
        wf.add_workflow("sub", child)
    assert wf.step_names == ["sub/b"]
    wf.add_workflow("other", child)
    with pytest.raises(DuplicateStepError, match="'other'"):
        wf.add("other", constant.new())
    with pytest.raises(DuplicateStepError, match="'other'"):
        wf.add_workflow("other", child)


def test_a_child_must_be_a_valid_workflow_with_steps() -> None:
    with pytest.raises(WorkflowError, match="workflow 'empty' has no steps"):
        Workflow("parent").add_workflow("sub", Workflow("empty"))
    looped = Workflow("looped").add("a", constant.new(), deps=["b"]).add("b", constant.new(), deps=["a"])
    with pytest.raises(CycleError, match="'a', 'b'"):
        Workflow("parent").add_workflow("sub", looped)
    with pytest.raises(InvalidStepError, match="sub-workflow 'sub' must be a Workflow"):
        Workflow("parent").add_workflow("sub", constant.new())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ([], None),
        ([None], None),
        (["discarded", "any"], "discarded"),
        (["cancelled", "any"], "cancelled"),
        (["any", "any"], "any"),
        (["cancelled", "discarded"], None),
        (["any", None], None),
    ],
)
def test_the_join_lets_through_only_what_every_dependent_inside_tolerates(
    edges: list[str | None], expected: str | None
) -> None:
    assert common_tolerance(edges) == expected


def test_the_join_waits_on_the_childs_own_steps_with_their_tolerance() -> None:
    deps_of = {"m1": [], "m2": [], "synth": ["m1", "m2"], "inner/x": [], "inner": ["inner/x"]}
    tolerates = {"m1": {}, "m2": {}, "synth": {"m1": "any", "m2": "discarded"}, "inner/x": {}, "inner": {}}
    assert join_deps(deps_of, tolerates, nested=["inner/x"]) == {
        "m1": "any",
        "m2": "discarded",
        "synth": None,
        "inner": None,
    }
