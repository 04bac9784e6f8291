"""Why is this step still waiting? What it waits for, and when it runs next.

``explain`` is pure: it reads step records someone already loaded (the CLI,
the dashboard), so explaining every step of a workflow costs one query.
``baton.explain(workflow_id, step_name)`` loads and explains one step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import WorkflowNotFoundError
from .records import StepRecord
from .states import StepState, satisfied

if TYPE_CHECKING:
    from .query import Query


@dataclass(frozen=True)
class Explanation:
    """Where one step stands and what stands in its way."""

    step_name: str
    state: StepState
    #: Dependencies that still hold the step back, with their states (pending steps).
    waiting_on: dict[str, StepState]
    #: The unfinished steps upstream that are not waiting themselves: what
    #: has to happen before this step can start (its own blockers included).
    blocked_by: dict[str, StepState]
    #: When it may run next: snoozed, retryable and available steps.
    runs_at: float | None
    #: Why a snoozed step waits, when a rate limit holds it back (``StepRecord.waiting_for``).
    waiting_for: str | None
    #: One human sentence saying all of the above.
    reason: str


def explain(steps: Mapping[str, StepRecord], step_name: str, now: float) -> Explanation:
    """Explain ``steps[step_name]`` as of ``now``; ``steps`` is its workflow, by name."""
    step = steps[step_name]
    waiting_on = {dep: steps[dep].state for dep in sorted(step.deps) if _holds_back(steps, step, dep)}
    blocked_by = _active_upstream(steps, waiting_on) if step.state == StepState.PENDING else {}
    runs_at = step.scheduled_at if step.state in _SCHEDULED else None
    return Explanation(
        step_name,
        step.state,
        waiting_on if step.state == StepState.PENDING else {},
        blocked_by,
        runs_at,
        step.waiting_for,
        _reason(step, waiting_on, blocked_by, now),
    )


def explain_step(query: Query, workflow_id: str, step_name: str, now: float) -> Explanation:
    """Load a workflow's steps and explain one of them."""
    steps = {step.step_name: step for step in query.get_workflow_jobs(workflow_id)}
    if not steps:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    if step_name not in steps:
        raise WorkflowNotFoundError(f"workflow {workflow_id} has no step named {step_name!r}")
    return explain(steps, step_name, now)


def last_line(error: str | None) -> str:
    """The line of an error worth showing: a traceback's last, the exception itself."""
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""


def describe_states(states: Mapping[str, StepState]) -> str:
    """``"fetch (executing), parse (pending)"``."""
    return ", ".join(f"{name} ({state.value})" for name, state in states.items())


_SCHEDULED = (StepState.AVAILABLE, StepState.SNOOZED, StepState.RETRYABLE)


def _active_upstream(steps: Mapping[str, StepRecord], waiting_on: Mapping[str, StepState]) -> dict[str, StepState]:
    """Walk up through pending dependencies to the unfinished steps that are not pending."""
    found: dict[str, StepState] = {}
    seen = set(waiting_on)
    queue = deque(waiting_on)
    while queue:
        name = queue.popleft()
        step = steps[name]
        if step.state != StepState.PENDING:
            found[name] = step.state
            continue
        for dep in step.deps:
            if dep not in seen and _holds_back(steps, step, dep):
                seen.add(dep)
                queue.append(dep)
    return found


def _holds_back(steps: Mapping[str, StepRecord], step: StepRecord, dep: str) -> bool:
    """Whether ``dep`` still holds ``step`` back.

    That is ``states.satisfied`` negated: not completed, nor failed in a way its edge tolerates.
    """
    return not satisfied(steps[dep].state, step.tolerates.get(dep))


def _reason(
    step: StepRecord, waiting_on: Mapping[str, StepState], blocked_by: Mapping[str, StepState], now: float
) -> str:
    state = step.state
    if state == StepState.PENDING:
        if not waiting_on:
            if step.error:  # a spend cap holds it (budget_control): its error says which and what frees it
                return step.error
            return "its dependencies have finished; it is being released to run"
        upstream = {name: s for name, s in blocked_by.items() if name not in waiting_on}
        more = f"; upstream, {describe_states(upstream)} must finish first" if upstream else ""
        return f"waiting on {describe_states(waiting_on)}{more}"
    if state == StepState.AVAILABLE:
        return f"ready, queued {_when(step.scheduled_at, now)}; waiting for a consumer of its queue"
    if state == StepState.SNOOZED:
        if step.waiting_for:
            return f"{step.waiting_for}; next try {_when(step.scheduled_at, now)}"
        return f"snoozed; runs again {_when(step.scheduled_at, now)}"
    if state == StepState.WAITING:
        return f"waiting for a signal (baton.signal); times out {_when(step.scheduled_at, now)}"
    if state == StepState.RETRYABLE:
        return f"attempt {step.attempt} failed ({last_line(step.error)}); retries {_when(step.scheduled_at, now)}"
    if state == StepState.EXECUTING:
        return f"running attempt {step.attempt} on {step.worker}, started {_when(step.started_at, now)}"
    if state == StepState.COMPLETED:
        return "completed"
    return f"{state.value}: {last_line(step.error)}"


def _when(at: float | None, now: float) -> str:
    """``"in 2.5s"`` / ``"2.5s ago"`` / ``"now"``, relative to ``now``."""
    if at is None:
        return "now"
    delta = at - now
    if abs(delta) < 0.05:
        return "now"
    return f"in {delta:.1f}s" if delta > 0 else f"{-delta:.1f}s ago"
