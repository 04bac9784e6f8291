"""Graph checks before anything is written: pure, no app, no database."""

from __future__ import annotations

import pytest

from flask_baton import CycleError, DuplicateStepError, UnknownDependencyError, Workflow, WorkflowError, WorkflowState
from flask_baton.dag import (
    StepGraph,
    can_cancel,
    can_retry,
    cancel_refusal,
    failure_roots,
    plan_retry,
    retry_refusal,
    topological_order,
)

from .steps import constant, record_args


def test_cycle_is_rejected_naming_only_the_steps_on_it() -> None:
    wf = (
        Workflow(name="loop")
        .add("root", constant.new())
        .add("a", record_args.new(), deps=["root", "c"])
        .add("b", record_args.new(), deps=["a"])
        .add("c", record_args.new(), deps=["b"])
        .add("downstream", record_args.new(), deps=["c"])
    )

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
    wf = Workflow(name="typo").add("fetch", constant.new()).add("parse", record_args.new(), deps=["fecth"])

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


# -- planning a retry (dag.plan_retry): pure, from a stored graph -----------------


def stored(**steps: tuple[str, dict[str, str | None]]) -> StepGraph:
    """A stored graph: ``name=(state, {dep: tolerates})``, in insertion order."""
    return StepGraph(
        {name: state for name, (state, _) in steps.items()}, {name: deps for name, (_, deps) in steps.items()}
    )


def test_retry_plan_rearms_a_dependent_whose_other_dep_is_still_running() -> None:
    graph = stored(a=("discarded", {}), b=("executing", {}), d=("cancelled", {"a": None, "b": None}))
    plan = plan_retry(graph, ["a"])
    assert plan.rearm == ["a", "d"]
    assert plan.waits == {"a": 0, "d": 2}  # d waits for a's new run and for b
    assert plan.left_cancelled == {}


def test_retry_plan_counts_deps_still_to_run_and_not_completed_ones() -> None:
    graph = stored(
        done=("completed", {}),
        queued=("available", {}),
        later=("pending", {"queued": None}),
        napping=("snoozed", {}),
        again=("retryable", {}),
        a=("discarded", {"done": None}),
        d=("cancelled", {"a": None, "done": None, "queued": None, "later": None, "napping": None, "again": None}),
    )
    plan = plan_retry(graph, ["a"])
    assert plan.rearm == ["a", "d"]
    assert plan.waits == {"a": 0, "d": 5}


def test_retry_plan_rearms_a_dependent_that_tolerates_its_other_failed_dep() -> None:
    graph = stored(
        optional=("discarded", {}),
        required=("discarded", {}),
        join=("cancelled", {"optional": "discarded", "required": None}),
    )
    plan = plan_retry(graph, ["required"])
    assert plan.rearm == ["required", "join"]
    assert plan.waits == {"required": 0, "join": 1}  # the tolerated failure counts as done


def test_retry_plan_leaves_cancelled_a_dependent_whose_other_dep_failed_untolerated() -> None:
    # "x" is discarded; d's edge tolerates only a *cancelled* x, so d would wait forever.
    graph = stored(
        a=("discarded", {}),
        x=("discarded", {}),
        d=("cancelled", {"a": None, "x": "cancelled"}),
        e=("cancelled", {"a": None}),
        f=("cancelled", {"d": None}),
    )
    plan = plan_retry(graph, ["a"])
    assert plan.rearm == ["a", "e"]
    assert plan.left_cancelled == {"d": "dependency 'x' discarded"}


def test_retry_plan_rearms_the_cancelled_steps_downstream_transitively() -> None:
    graph = stored(
        a=("discarded", {}),
        held=("executing", {}),
        b=("cancelled", {"a": None}),
        c=("cancelled", {"b": None, "held": None}),
        d=("cancelled", {"c": None}),
        ok=("completed", {}),
        e=("cancelled", {"d": None, "ok": None}),
    )
    plan = plan_retry(graph, ["a"])
    assert plan.rearm == ["a", "b", "c", "d", "e"]
    assert plan.waits == {"a": 0, "b": 1, "c": 2, "d": 1, "e": 1}


def test_retry_plan_lists_dependencies_first_whatever_order_it_finds_them_in() -> None:
    # d is found (as a's dependent) before c, which it also depends on.
    graph = stored(a=("discarded", {}), d=("cancelled", {"a": None, "c": "cancelled"}), c=("cancelled", {"a": None}))
    assert plan_retry(graph, ["a"]).rearm == ["a", "c", "d"]


def test_retry_plan_makes_steps_that_tolerated_a_rearmed_failure_wait_for_it_again() -> None:
    graph = stored(
        a=("discarded", {}),
        slow=("executing", {}),
        tolerant=("pending", {"a": "any", "slow": None}),
        ran=("completed", {"a": "discarded"}),
    )
    plan = plan_retry(graph, ["a"])
    assert plan.rearm == ["a"]
    assert plan.waits_again == {"tolerant": 1}  # "ran" already ran and keeps its result


def test_retry_refusal_names_the_untolerated_failed_dep_and_ignores_tolerated_ones() -> None:
    graph = stored(
        bad=("discarded", {}),
        ok=("completed", {}),
        child=("cancelled", {"bad": None}),
        tolerant=("cancelled", {"bad": "discarded", "ok": None}),
    )
    assert retry_refusal(graph, "ok") == "step 'ok' is completed; only a discarded or cancelled step can be retried"
    assert retry_refusal(graph, "child") == "step 'child' depends on 'bad', which is discarded: retry 'bad'"
    assert retry_refusal(graph, "tolerant") is None
    assert [name for name in graph.states if can_retry(graph, name)] == ["bad", "tolerant"]
    assert not can_retry(graph, "ghost")


def test_failure_roots_rearmed_together_bring_back_every_failed_step() -> None:
    graph = stored(
        a=("completed", {}),
        b=("discarded", {"a": None}),
        c=("cancelled", {"b": None}),
        x=("discarded", {}),
        d=("cancelled", {"b": None, "x": None}),
        e=("cancelled", {"c": None}),
        f=("cancelled", {}),
    )
    roots = failure_roots(graph)
    assert roots == ["b", "x", "f"]
    # "d" waits on two roots: re-armed with both, where retrying either alone leaves it.
    assert plan_retry(graph, ["b"]).left_cancelled == {"d": "dependency 'x' discarded"}
    assert plan_retry(graph, roots).rearm == ["b", "x", "f", "c", "d", "e"]


@pytest.mark.parametrize("state", list(WorkflowState))
def test_only_a_running_workflow_can_be_cancelled_by_the_api_and_the_dashboards_button(state: WorkflowState) -> None:
    refusal = cancel_refusal("w1", state)
    assert can_cancel(state) is (refusal is None) is (state == WorkflowState.RUNNING)
    if refusal is not None:
        assert refusal == f"workflow w1 is {state.value}; only a running workflow can be cancelled"
