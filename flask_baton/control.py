"""Changing workflows from outside: cancel one, retry a failed step or all of them.

What the dashboard's buttons call, and what scripts call through
``baton.cancel_workflow`` / ``baton.retry_step`` / ``baton.retry_workflow``.
Checks run first and fail with a clear ``WorkflowError``; the change itself
is compare-and-set, so a workflow that moved on in between is left alone and
the call fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from . import dag, transitions
from .appstate import AppState
from .database import read_connection
from .dispatch import commit
from .errors import DuplicateWorkflowError, WorkflowNotFoundError, WorkflowStateError
from .records import WorkflowRecord
from .states import WorkflowState
from .store.reads import load_running_holder
from .transitions import Effects


def cancel_workflow(state: AppState, workflow_id: str, reason: str = "workflow cancelled") -> list[str]:
    """Cancel a running workflow; return the steps it cancelled."""
    record = _workflow(state, workflow_id)
    if record.state != WorkflowState.RUNNING:
        raise WorkflowStateError(f"workflow {workflow_id} is {record.state}; only a running workflow can be cancelled")
    effects = commit(state, lambda conn, now: transitions.cancel_workflow(conn, workflow_id, reason, now))
    if not effects.changes and _workflow(state, workflow_id).state != WorkflowState.CANCELLED:
        raise WorkflowStateError(f"workflow {workflow_id} finished before it could be cancelled")
    return [change.step_name for change in effects.changes]


class Retried(list[str]):
    """The steps a retry re-armed, dependencies first (a plain list otherwise).

    ``left_cancelled`` maps each failed dependent of a re-armed step that
    stays cancelled to why: a dependency of it failed in a way its edge does
    not tolerate and was not retried.
    """

    def __init__(self, rearmed: Sequence[str], left_cancelled: Mapping[str, str]) -> None:
        super().__init__(rearmed)
        self.left_cancelled = dict(left_cancelled)


def retry_step(state: AppState, workflow_id: str, step_name: str) -> Retried:
    """Run a discarded or cancelled step again, and the dependents it failed.

    Returns the steps re-armed, the retried one first (``dag.plan_retry``
    says which). Completed steps keep their results; the workflow is running
    again until they settle.
    """
    graph = _graph(state, workflow_id)
    if step_name not in graph.states:
        raise WorkflowNotFoundError(f"workflow {workflow_id} has no step named {step_name!r}")
    refusal = dag.retry_refusal(graph, step_name)
    if refusal is not None:
        raise WorkflowStateError(refusal)
    return _rearm(state, workflow_id, [step_name])


def retry_workflow(state: AppState, workflow_id: str) -> Retried:
    """Run every discarded or cancelled step of a finished workflow again.

    The steps where the failures began (``dag.failure_roots``) are re-armed
    together in one transaction, with every step cancelled because of them;
    completed steps keep their results. Returns the steps re-armed,
    dependencies first.
    """
    record = _workflow(state, workflow_id)
    if record.state == WorkflowState.RUNNING:
        raise WorkflowStateError(
            f"workflow {workflow_id} is still running; retry it once it has finished, "
            "cancel it first, or retry single steps with retry_step"
        )
    roots = dag.failure_roots(_graph(state, workflow_id))
    if not roots:
        raise WorkflowStateError(f"workflow {workflow_id} is {record.state}: no step is discarded or cancelled")
    return _rearm(state, workflow_id, roots)


def _workflow(state: AppState, workflow_id: str) -> WorkflowRecord:
    record = state.query.get_workflow(workflow_id)
    if record is None:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    return record


def _graph(state: AppState, workflow_id: str) -> dag.StepGraph:
    """The workflow's steps, states and edge policies, read before anything is written."""
    steps = state.query.get_workflow_jobs(workflow_id)
    if not steps:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    return dag.StepGraph.of(steps)


def _rearm(state: AppState, workflow_id: str, targets: Sequence[str]) -> Retried:
    """Plan and re-arm the retry of ``targets`` in one transaction; the workflow runs again.

    The plan is made again inside the transaction (``transitions.rearm``),
    from what it sees, so a step that moved since the checks above is
    accounted for. Running again takes the workflow's ``unique_key`` back: if
    another running workflow holds it now, the unique index refuses and
    nothing changes.
    """
    plans: list[dag.RetryPlan] = []

    def transition(conn: Connection, now: float) -> Effects:
        plan, effects = transitions.rearm(conn, workflow_id, targets, now)
        plans.append(plan)
        return effects

    try:
        commit(state, transition)
    except IntegrityError:
        unique_key = _workflow(state, workflow_id).unique_key
        if unique_key is None:
            raise
        with read_connection(state.engine) as conn:
            holder = load_running_holder(conn, unique_key)
        raise DuplicateWorkflowError(unique_key, holder) from None
    return Retried(plans[-1].rearm, plans[-1].left_cancelled)
