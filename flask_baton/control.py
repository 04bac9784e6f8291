"""Changing workflows from outside: cancel one, retry a failed step or all of them, resume a cancelled one.

What the dashboard's buttons call, and what scripts call through
``baton.cancel_workflow`` / ``baton.retry_step`` / ``baton.retry_workflow`` /
``baton.resume_workflow``.
Checks run first and fail with a clear ``WorkflowError``; the change itself
is compare-and-set, so a workflow that moved on in between is left alone and
the call fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import dag
from .appstate import AppState
from .cascade import settle
from .dispatch import commit
from .effects import Effects, Ready, StepChange
from .errors import DuplicateWorkflowError, WorkflowNotFoundError, WorkflowStateError
from .records import WorkflowRecord
from .states import FAILED, SETTLED, StepState, WorkflowState
from .store import Busy, Tx, UniqueKeyTaken


def cancel_workflow(state: AppState, workflow_id: str, reason: str = "workflow cancelled") -> list[str]:
    """Cancel a running workflow; return the steps it cancelled."""
    refusal = dag.cancel_refusal(workflow_id, _workflow(state, workflow_id).state)
    if refusal is not None:
        raise WorkflowStateError(refusal)
    _, effects = commit(state, cancel_running, workflow_id, reason)
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
    record = _finished(state, workflow_id, "retry")
    roots = dag.failure_roots(_graph(state, workflow_id))
    if not roots:
        raise WorkflowStateError(f"workflow {workflow_id} is {record.state}: no step is discarded or cancelled")
    return _rearm(state, workflow_id, roots)


def resume_workflow(state: AppState, workflow_id: str) -> Retried:
    """Run again the steps a user's cancel stopped, and what comes after them.

    Unlike ``retry_workflow``, steps that failed on their own before the
    cancel (and the steps their failure cancelled) stay as they are
    (``dag.resume_roots``). Returns the steps re-armed, dependencies first.
    """
    record = _finished(state, workflow_id, "resume")
    roots = dag.resume_roots(state.query.get_workflow_jobs(workflow_id))
    if not roots:
        raise WorkflowStateError(f"workflow {workflow_id} is {record.state}: no step a user cancelled can run again")
    return _rearm(state, workflow_id, roots)


def _finished(state: AppState, workflow_id: str, action: str) -> WorkflowRecord:
    """The workflow, refused while it runs: its failures may still be spreading."""
    record = _workflow(state, workflow_id)
    if record.state == WorkflowState.RUNNING:
        raise WorkflowStateError(
            f"workflow {workflow_id} is still running; {action} it once it has finished, "
            "cancel it first, or retry single steps with retry_step"
        )
    return record


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

    The plan is made again inside the transaction (``rearm``), from what it
    sees, so a step that moved since the checks above is accounted for.
    Running again takes the workflow's ``unique_key`` back: if another
    running workflow holds it now, the unique index refuses and nothing
    changes.
    """
    try:
        plan, _ = commit(state, rearm, workflow_id, targets)
    except UniqueKeyTaken:
        unique_key = _workflow(state, workflow_id).unique_key
        if unique_key is None:
            raise
        with state.store.read() as conn:
            holder = state.store.running_holder(conn, unique_key)
        raise DuplicateWorkflowError(unique_key, holder) from None
    return Retried(plan.rearm, plan.left_cancelled)


# -- the transitions ------------------------------------------------------------


def cancel_running(tx: Tx, workflow_id: str, reason: str) -> Effects[None]:
    """Cancel a running workflow and every step of it not yet settled.

    A step still running is cancelled too: its function finishes, but its
    outcome no longer matches (the compare-and-set sees ``cancelled``) and is
    dropped.
    """
    if not tx.store.cancel_workflow_row(tx.conn, workflow_id, tx.now):
        return Effects(None)
    steps = sorted(tx.store.cancel_unsettled(tx.conn, workflow_id, reason, tx.now), key=lambda step: step.step_name)
    effects = Effects(
        None,
        changes=[
            StepChange(
                workflow_id, step.node_id, step.step_name, StepState.CANCELLED, step.attempt, tx.now, error=reason
            )
            for step in steps
        ],
    )
    if steps:
        effects.merge(settle(tx, workflow_id, len(steps)))
    return effects


def rearm(tx: Tx, workflow_id: str, targets: Sequence[str]) -> Effects[dag.RetryPlan]:
    """Retry failed steps: plan it (``dag.plan_retry``) and make the plan runnable.

    The plan is made from the graph as this transaction sees it, with every
    unsettled dep of a failed step share-locked (on PostgreSQL; SQLite's
    write lock does it), so none completes or fails unseen meanwhile: one
    that completes after the commit releases its re-armed dependents as
    usual, one that fails cascades to them. Each re-armed step starts afresh
    (attempt 0, its last run kept in ``baton_attempts`` first): ``pending``
    on the deps it waits for, or ``available`` and
    enqueued after the commit when it waits for none. Steps still to run
    that counted a re-armed step's tolerated failure as done wait for it
    again. The workflow is ``running`` again and will announce its end again.
    Raises ``WorkflowStateError`` (the transaction then rolls back) when a
    target can no longer be retried or a step moved meanwhile.
    """
    try:
        with tx.store.busy_on_lock_timeout():
            graph = _locked_graph(tx, workflow_id)
            for target in targets:
                refusal = dag.retry_refusal(graph, target)
                if refusal is not None:
                    raise WorkflowStateError(f"{refusal}; nothing was retried")
            plan = dag.plan_retry(graph, targets)
            return _apply(tx, workflow_id, plan)
    except Busy:
        raise WorkflowStateError(
            f"steps of workflow {workflow_id} are changing right now; nothing was retried, try again"
        ) from None


def _locked_graph(tx: Tx, workflow_id: str) -> dag.StepGraph:
    """The workflow's graph, with the unsettled deps of failed steps locked and read again."""
    graph = tx.store.graph(tx.conn, workflow_id)
    watched = sorted(
        {
            dep
            for name, deps in graph.deps.items()
            if graph.states[name] in FAILED
            for dep in deps
            if graph.states[dep] not in SETTLED
        }
    )
    if not watched:
        return graph
    return graph.with_states(tx.store.lock_states(tx.conn, workflow_id, watched))


def _apply(tx: Tx, workflow_id: str, plan: dag.RetryPlan) -> Effects[dag.RetryPlan]:
    """Write ``plan``: each re-armed step compare-and-set from a failed state."""
    effects = Effects(plan)
    for name in plan.rearm:
        waiting = plan.waits[name]
        tx.store.keep_last_run(tx.conn, workflow_id, name, tx.now)  # the row is about to start afresh
        reset = tx.store.rearm_step(tx.conn, workflow_id, name, waiting, tx.now)
        if reset is None:
            raise WorkflowStateError(f"step {name!r} is no longer discarded or cancelled; nothing was retried")
        # Announced as "retryable": it will run again.
        effects.changes.append(StepChange(workflow_id, reset.node_id, name, StepState.RETRYABLE, 0, tx.now))
        if not waiting:
            effects.ready.append(Ready(reset.node_id, reset.task))
    for name, more in sorted(plan.waits_again.items()):
        tx.store.wait_again(tx.conn, workflow_id, name, more)
    tx.store.reopen_workflow(tx.conn, workflow_id, len(plan.rearm))
    return effects
