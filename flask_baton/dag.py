"""Graph checks for workflows, and the plan of a retry: pure functions, no Flask, no SQL.

Validation runs before anything is written, so a bad workflow costs nothing
and leaves nothing behind. It is linear in steps + edges (Kahn's algorithm),
which keeps a 100,000-step insert dominated by I/O, not by checking.

A retry is planned here too (``plan_retry``), from the stored graph, so that
``retry_step``, ``retry_workflow``, the CLI and the dashboard's button all
follow one rule, tested without a database; so is whether a step may be
retried (``can_retry``) and a workflow cancelled (``can_cancel``).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from .errors import CycleError, DuplicateStepError, UnknownDependencyError
from .states import CANCELLABLE, FAILED, CancelledBy, WorkflowState, satisfied, tolerated

#: States of a step still to run, whose dep count a retry may raise again.
WAITING = frozenset(CANCELLABLE)


def topological_order(
    steps: Iterable[tuple[str, Sequence[str]]],
    existing: Collection[str] = (),
) -> list[str]:
    """Check a graph and return its new step names, dependencies first.

    ``steps`` are ``(name, deps)`` pairs. ``existing`` names steps already
    stored (a running workflow that adds steps): new steps may depend on them,
    and since stored steps never gain dependencies, no cycle can pass through
    them. Raises ``DuplicateStepError``, ``UnknownDependencyError`` or
    ``CycleError``, each naming the steps involved.
    """
    with gc_paused():
        return _kahn(steps, existing)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a big graph is checked, written or drawn.

    The check allocates a container or two per step, and each allocation
    burst sets off collections that walk every live object, the whole
    workflow included: with it running, checking 100,000 steps costs four
    times as much per step as checking 10,000 (``python -m bench``). The
    check makes no cycles, so there is nothing for it to collect here. An
    insert (``Workflow.insert``) allocates a few objects per step likewise:
    with the collector on, a 10,000-step insert on SQLite took ~20 % longer,
    and more as the process holds more objects.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _kahn(steps: Iterable[tuple[str, Sequence[str]]], existing: Collection[str]) -> list[str]:
    """Kahn's algorithm: ``topological_order`` without the collector.

    Only steps with dependents get a list of them and only waiting steps a
    count, so a wide fan-out costs a few dict entries per step, not objects.
    """
    deps_of: dict[str, Sequence[str]] = {}
    for name, deps in steps:
        if name in deps_of or name in existing:
            raise DuplicateStepError(name)
        deps_of[name] = deps
    waiting_on: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    order: list[str] = []
    for name, deps in deps_of.items():
        new_deps = 0
        for dep in dict.fromkeys(deps) if len(deps) > 1 else deps:
            if dep in deps_of:
                dependents.setdefault(dep, []).append(name)
                new_deps += 1
            elif dep not in existing:
                raise UnknownDependencyError(name, dep)
        if new_deps:
            waiting_on[name] = new_deps
        else:
            order.append(name)
    ready = deque(order)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for dependent in dependents.get(name, ()):
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                ready.append(dependent)
    if len(order) != len(deps_of):
        raise CycleError(_cycle_members(deps_of, set(order)))
    return order


def _cycle_members(deps_of: Mapping[str, Sequence[str]], ordered: set[str]) -> list[str]:
    """Return the steps of one cycle among the steps Kahn's algorithm left over.

    Every leftover step has a leftover dependency, so walking dependencies
    from any of them must revisit a step; the walk from there is the cycle.
    """
    leftover = {name for name in deps_of if name not in ordered}
    node = next(iter(sorted(leftover)))
    seen: dict[str, int] = {}
    path: list[str] = []
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(dep for dep in deps_of[node] if dep in leftover)
    return path[seen[node] :]


# -- retrying failed steps ---------------------------------------------------


class _StoredStep(Protocol):
    """What a retry needs of one stored step (``query.StepRecord`` has it)."""

    @property
    def step_name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def deps(self) -> Sequence[str]: ...
    @property
    def tolerates(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class StepGraph:
    """A stored workflow as a retry sees it: each step's state, and its deps' policies.

    ``deps`` maps each step to ``{dep: tolerates}``, in the order the deps
    were declared; ``states`` holds every step, in insertion order.
    """

    states: Mapping[str, str]
    deps: Mapping[str, Mapping[str, str | None]]

    @classmethod
    def of(cls, steps: Iterable[_StoredStep], asked: Iterable[_StoredStep] | None = None) -> StepGraph:
        """The graph of stored steps, e.g. ``query.get_workflow_jobs(...)``.

        With ``asked``, only those steps' deps are kept: enough to ask about
        them alone (a page of 10,000 steps asks about the 50 it shows).
        """
        steps = list(steps)
        return cls(
            {step.step_name: str(step.state) for step in steps},
            {
                step.step_name: {dep: step.tolerates.get(dep) for dep in step.deps}
                for step in (steps if asked is None else asked)
            },
        )

    def with_states(self, fresher: Mapping[str, str]) -> StepGraph:
        """This graph with some steps' states read again."""
        return StepGraph({**self.states, **fresher}, self.deps)

    def blocker(self, step: str, rearmed: Collection[str] = ()) -> str | None:
        """The first dep that keeps ``step`` from ever running: failed, not re-armed, not tolerated."""
        for dep, tolerance in self.deps[step].items():
            state = self.states[dep]
            if state in FAILED and dep not in rearmed and not satisfied(state, tolerance):
                return dep
        return None


def retry_refusal(graph: StepGraph, step: str) -> str | None:
    """Why ``step`` cannot be retried, or None when it can.

    Only a discarded or cancelled step can be retried, and only once none of
    its deps failed in a way its edge does not tolerate (retry that dep
    instead). The API, the CLI and the dashboard's retry button all ask this.
    """
    state = graph.states[step]
    if state not in FAILED:
        return f"step {step!r} is {state}; only a discarded or cancelled step can be retried"
    dep = graph.blocker(step)
    if dep is not None:
        return f"step {step!r} depends on {dep!r}, which is {graph.states[dep]}: retry {dep!r}"
    return None


def can_retry(graph: StepGraph, step: str) -> bool:
    """Whether ``retry_step`` would accept ``step`` (see ``retry_refusal``): the dashboard's retry button."""
    return step in graph.states and retry_refusal(graph, step) is None


def cancel_refusal(workflow_id: str, state: str) -> str | None:
    """Why a workflow in ``state`` cannot be cancelled, or None when it can: only a running one can."""
    if state != WorkflowState.RUNNING:
        return f"workflow {workflow_id} is {state}; only a running workflow can be cancelled"
    return None


def can_cancel(state: str) -> bool:
    """Whether ``cancel_workflow`` would accept a workflow in ``state``: the dashboard's cancel button."""
    return cancel_refusal("", state) is None


def failure_roots(graph: StepGraph) -> list[str]:
    """The failed steps that can be retried as they are: where the failures began.

    Re-arming these together (``plan_retry``) brings back every failed step of
    a settled workflow that can run again, the ones cancelled because of them
    included.
    """
    return [name for name in graph.states if retry_refusal(graph, name) is None]


class _CancelledStep(_StoredStep, Protocol):
    """A stored step that also says who cancelled it (``query.StepRecord`` does)."""

    @property
    def cancelled_by(self) -> str | None: ...


def resume_roots(steps: Iterable[_CancelledStep]) -> list[str]:
    """The failure roots a user's cancel (or a spend cap) made: what a resume re-arms (with what comes after them).

    Steps that failed on their own before the cancel, and what they
    cancelled, stay as they are: that is what sets a resume apart from a
    retry of the whole workflow. A step a cap cancelled counts as a user's
    cancel: resuming after raising the cap (``set_budget``) is the way on.
    """
    steps = list(steps)
    by_user = {step.step_name for step in steps if step.cancelled_by in (CancelledBy.USER, CancelledBy.BUDGET)}
    return [name for name in failure_roots(StepGraph.of(steps)) if name in by_user]


@dataclass(frozen=True)
class RetryPlan:
    """What a retry changes, all in one transaction (``control.rearm``).

    ``rearm``: the steps to run again, dependencies first; ``waits``: how many
    deps each of them waits for (not yet completed nor tolerated-failed, or
    re-armed too), 0 meaning runnable at once; ``waits_again``: steps still to
    run that had counted a re-armed step's tolerated failure as done, and the
    number of re-armed deps they now wait for again; ``left_cancelled``: the
    failed dependents of re-armed steps that stay as they are, with why.
    """

    rearm: list[str]
    waits: dict[str, int]
    waits_again: dict[str, int]
    left_cancelled: dict[str, str]


def plan_retry(graph: StepGraph, targets: Sequence[str]) -> RetryPlan:
    """Plan the retry of ``targets`` (each accepted by ``retry_refusal``).

    Every discarded or cancelled step downstream of a re-armed one is re-armed
    too, transitively, unless one of its deps failed in a way its edge does
    not tolerate and is not re-armed in this plan: such a dependent would wait
    forever, so it stays cancelled and is reported. Its other deps may be
    completed, still running or still to run: it waits for them as it would
    have the first time. A dependent of several targets comes along when they
    are re-armed together, where a retry of either alone would leave it.
    """
    dependents: dict[str, list[str]] = {}
    for name, deps in graph.deps.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(name)
    chosen = set(targets)
    found = list(targets)
    left: dict[str, str] = {}
    queue = deque(dependent for target in targets for dependent in dependents.get(target, ()))
    while queue:
        name = queue.popleft()
        if name in chosen or graph.states[name] not in FAILED:
            continue
        blocking = graph.blocker(name, chosen)
        if blocking is None:
            chosen.add(name)
            found.append(name)
            left.pop(name, None)
            queue.extend(dependents.get(name, ()))
        else:
            left[name] = f"dependency {blocking!r} {graph.states[blocking]}"
    order = topological_order([(name, [dep for dep in graph.deps[name] if dep in chosen]) for name in found])
    waits = {
        name: sum(
            1
            for dep, tolerance in graph.deps[name].items()
            if dep in chosen or not satisfied(graph.states[dep], tolerance)
        )
        for name in order
    }
    waits_again: dict[str, int] = {}
    for name in order:
        for dependent in dependents.get(name, ()):
            if graph.states[dependent] in WAITING and tolerated(graph.deps[dependent][name], graph.states[name]):
                waits_again[dependent] = waits_again.get(dependent, 0) + 1
    return RetryPlan(order, waits, waits_again, left)
