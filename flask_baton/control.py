"""Changing workflows from outside: cancel one, retry a failed step or all of them.

What the dashboard's buttons call, and what scripts call through
``baton.cancel_workflow`` / ``baton.retry_step`` / ``baton.retry_workflow``.
Checks run first and fail with a clear ``WorkflowError``; the change itself
is compare-and-set, so a workflow that moved on in between is left alone and
the call fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from . import dag, transitions
from .appstate import AppState
from .database import read_connection
from .dispatch import commit
from .errors import DuplicateWorkflowError, WorkflowNotFoundError, WorkflowStateError
from .query import WorkflowRecord, load_running_holder
from .states import FAILED, WorkflowState


def cancel_workflow(state: AppState, workflow_id: str, reason: str = "workflow cancelled") -> list[str]:
    """Cancel a running workflow; return the steps it cancelled."""
    record = _workflow(state, workflow_id)
    if record.state != WorkflowState.RUNNING:
        raise WorkflowStateError(f"workflow {workflow_id} is {record.state}; only a running workflow can be cancelled")
    effects = commit(state, lambda conn, now: transitions.cancel_workflow(conn, workflow_id, reason, now))
    if not effects.changes and _workflow(state, workflow_id).state != WorkflowState.CANCELLED:
        raise WorkflowStateError(f"workflow {workflow_id} finished before it could be cancelled")
    return [change.step_name for change in effects.changes]


def retry_step(state: AppState, workflow_id: str, step_name: str) -> list[str]:
    """Run a discarded or cancelled step again, and the dependents it failed.

    Returns the steps re-armed, the retried one first. Completed steps keep
    their results; the workflow is running again until they settle.
    """
    states, deps_of = _graph(state, workflow_id)
    if step_name not in states:
        raise WorkflowNotFoundError(f"workflow {workflow_id} has no step named {step_name!r}")
    if states[step_name] not in FAILED:
        raise WorkflowStateError(
            f"step {step_name!r} is {states[step_name]}; only a discarded or cancelled step can be retried"
        )
    for dep in deps_of[step_name]:
        if states[dep] in FAILED:
            raise WorkflowStateError(f"step {step_name!r} depends on {dep!r}, which is {states[dep]}: retry {dep!r}")
    return _rearm(state, workflow_id, dag.steps_to_rearm(step_name, deps_of, states, FAILED))


def retry_workflow(state: AppState, workflow_id: str) -> list[str]:
    """Run every discarded or cancelled step of a finished workflow again.

    The steps where the failures began (failed, with no failed dependency)
    are re-armed together in one transaction, with every step cancelled
    because of them; completed steps keep their results. Returns the steps
    re-armed, dependencies first.
    """
    record = _workflow(state, workflow_id)
    if record.state == WorkflowState.RUNNING:
        raise WorkflowStateError(
            f"workflow {workflow_id} is still running; retry it once it has finished, "
            "cancel it first, or retry single steps with retry_step"
        )
    states, deps_of = _graph(state, workflow_id)
    roots = dag.failure_roots(deps_of, states, FAILED)
    if not roots:
        raise WorkflowStateError(f"workflow {workflow_id} is {record.state}: no step is discarded or cancelled")
    return _rearm(state, workflow_id, dag.rearm_plan(roots, deps_of, states, FAILED))


def _workflow(state: AppState, workflow_id: str) -> WorkflowRecord:
    record = state.query.get_workflow(workflow_id)
    if record is None:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    return record


def _graph(state: AppState, workflow_id: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Each step's state and dependencies, by step name."""
    steps = state.query.get_workflow_jobs(workflow_id)
    if not steps:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    return {step.step_name: step.state.value for step in steps}, {step.step_name: step.deps for step in steps}


def _rearm(state: AppState, workflow_id: str, plan: Sequence[str]) -> list[str]:
    """Re-arm ``plan`` in one transaction; the workflow runs again.

    Running again takes the workflow's ``unique_key`` back: if another
    running workflow holds it now, the unique index refuses and nothing
    changes.
    """
    try:
        commit(state, lambda conn, now: transitions.rearm(conn, workflow_id, plan, now))
    except IntegrityError:
        unique_key = _workflow(state, workflow_id).unique_key
        if unique_key is None:
            raise
        with read_connection(state.engine) as conn:
            holder = load_running_holder(conn, unique_key)
        raise DuplicateWorkflowError(unique_key, holder) from None
    return list(plan)
