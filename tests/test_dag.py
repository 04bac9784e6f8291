"""Graph checks before anything is written: pure, no app, no database."""

from __future__ import annotations

import pytest

from flask_baton import CycleError, DuplicateStepError, UnknownDependencyError, Workflow, WorkflowError
from flask_baton.dag import topological_order

from .steps import constant, record_args


def test_cycle_is_rejected_naming_only_the_steps_on_it() -> None:
    wf = (Workflow(name="loop")
          .add("root", constant.new())
          .add("a", record_args.new(), deps=["root", "c"])
          .add("b", record_args.new(), deps=["a"])
          .add("c", record_args.new(), deps=["b"])
          .add("downstream", record_args.new(), deps=["c"]))

    with pytest.raises(CycleError) as caught:
        wf.validate()

    assert isinstance(caught.value, WorkflowError)
    assert caught.value.steps == ["a", "b", "c"]
    message = str(caught.value)
    assert all(repr(name) in message for name in ("a", "b", "c"))
    assert "root" not in message and "downstream" not in message


def test_step_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(CycleError) as caught:
        topological_order([("selfish", ["selfish"])])
    assert caught.value.steps == ["selfish"]
    assert "'selfish'" in str(caught.value)


def test_unknown_dependency_names_the_step_and_the_missing_dep() -> None:
    wf = (Workflow(name="typo")
          .add("fetch", constant.new())
          .add("parse", record_args.new(), deps=["fecth"]))

    with pytest.raises(UnknownDependencyError) as caught:
        wf.validate()

    assert (caught.value.step, caught.value.dependency) == ("parse", "fecth")
    assert "'parse'" in str(caught.value) and "'fecth'" in str(caught.value)


def test_duplicate_step_name_is_rejected_when_added() -> None:
    wf = Workflow(name="twice").add("fetch", constant.new())

    with pytest.raises(DuplicateStepError) as caught:
        wf.add("fetch", record_args.new())

    assert caught.value.step == "fetch"
    assert "'fetch'" in str(caught.value)
    assert wf.step_names == ["fetch"]


def test_duplicate_step_name_is_rejected_by_the_graph_check() -> None:
    with pytest.raises(DuplicateStepError, match="'x'"):
        topological_order([("x", []), ("y", ["x"]), ("x", ["y"])])


def test_new_steps_may_not_reuse_a_stored_step_name() -> None:
    with pytest.raises(DuplicateStepError, match="'fetch'"):
        topological_order([("fetch", [])], existing={"fetch"})


def test_topological_order_puts_every_step_after_its_dependencies() -> None:
    graph = {
        "compile": ["summarize", "keywords", "credibility"],
        "keywords": ["fetch"],
        "summarize": ["fetch"],
        "credibility": ["fetch", "keywords"],
        "fetch": [],
        "audit": ["compile", "fetch"],
    }
    wf = Workflow(name="diamond")
    for name, deps in graph.items():
        wf.add(name, record_args.new(), deps=deps)

    order = wf.validate()

    assert sorted(order) == sorted(graph)
    position = {name: index for index, name in enumerate(order)}
    for name, deps in graph.items():
        assert all(position[dep] < position[name] for dep in deps), (name, order)


def test_new_steps_may_depend_on_stored_steps() -> None:
    order = topological_order([("late", ["early", "also_new"]), ("also_new", ["early"])], existing={"early"})
    assert order == ["also_new", "late"]


def test_repeated_dependency_counts_once() -> None:
    assert topological_order([("a", []), ("b", ["a", "a"])]) == ["a", "b"]


def test_empty_workflow_does_not_validate() -> None:
    with pytest.raises(WorkflowError, match="'empty'"):
        Workflow(name="empty").validate()


def test_validating_a_hundred_thousand_step_workflow_runs() -> None:
    # A long chain plus wide fan-ins: quadratic checks would not finish.
    size = 100_000
    wf = Workflow(name="huge")
    wf.add("s0", constant.new())
    for index in range(1, size):
        deps = [f"s{index - 1}"] if index % 1000 else [f"s{index - k}" for k in range(1, 1001)]
        wf.add(f"s{index}", record_args.new(), deps=deps)

    order = wf.validate()

    assert len(order) == size
    assert order[0] == "s0" and order[-1] == f"s{size - 1}"


def test_cycle_through_a_hundred_thousand_steps_is_found_and_named() -> None:
    size = 100_000
    steps = [(f"s{index}", [f"s{(index - 1) % size}"]) for index in range(size)]

    with pytest.raises(CycleError) as caught:
        topological_order(steps)

    assert len(caught.value.steps) == size
