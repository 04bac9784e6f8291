"""Inserting workflows, and steps a running step adds: which start at once.

Part of the state machine: it decides each new step's place and how many of
its deps it waits for; the store (``Tx.store``) writes the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .cascade import cascade
from .effects import Effects, NewStep, NewWorkflow, Ready
from .errors import DuplicateWorkflowError
from .states import FAILED, StepState, satisfied
from .store import Tx
from .store.inserts import PlacedStep


def insert_workflows(tx: Tx, batch: Sequence[NewWorkflow]) -> Effects[None]:
    """Write whole workflows, each step and edge of all of them in one statement each.

    Every root is ready at once. With a ``unique_key`` held by a running
    workflow, raises ``DuplicateWorkflowError`` naming that workflow, and the
    caller's transaction rolls back with nothing written.
    """
    for new in batch:
        if new.unique_key is not None:
            _insert_unique(tx, new, new.unique_key)
    tx.store.insert_workflows(tx.conn, [new for new in batch if new.unique_key is None], tx.now)
    placed: list[PlacedStep] = []
    ready: list[Ready] = []
    for new in batch:
        ready.extend(_place(new.workflow_id, new.steps, {}, 0, placed))
    tx.store.insert_steps(tx.conn, placed, tx.now)
    return Effects(None, ready=ready)


def _insert_unique(tx: Tx, new: NewWorkflow, unique_key: str) -> None:
    """Insert a workflow's row unless a running workflow holds its key.

    Of racing inserts the database lets exactly one through, and the others
    wait for it (PostgreSQL) or run after it (SQLite's write lock), then find it.
    """
    while not tx.store.insert_unique_workflow(tx.conn, new, tx.now):
        holder = tx.store.running_holder(tx.conn, unique_key)
        if holder is not None:
            raise DuplicateWorkflowError(unique_key, holder)
        # PostgreSQL only: the holder finished between the two statements, so
        # the key is free; claim it again rather than fail for nothing.


def add_steps(tx: Tx, workflow_id: str, steps: Sequence[NewStep]) -> Effects[None]:
    """Add steps to a running workflow (a running step fanning out).

    The existing steps they depend on are locked first
    (``Store.hold_deps_of_new_steps``), so none completes unseen while the
    new edges are written. New steps that do not tolerate a failed existing
    dep are cancelled.
    """
    new_names = {step.step_name for step in steps}
    existing = sorted({dep for step in steps for dep in step.deps} - new_names)
    states = tx.store.hold_deps_of_new_steps(tx.conn, workflow_id, existing)
    total = tx.store.grow_workflow(tx.conn, workflow_id, len(steps))
    placed: list[PlacedStep] = []
    effects = Effects(None, ready=_place(workflow_id, steps, states, total - len(steps), placed))
    tx.store.insert_steps(tx.conn, placed, tx.now)
    failed = {name: StepState(state) for name, state in states.items() if state in FAILED}
    if failed:
        effects.merge(cascade(tx, workflow_id, failed, only=new_names))
    return effects


def _place(
    workflow_id: str,
    steps: Sequence[NewStep],
    finished: Mapping[str, str],
    first_position: int,
    placed: list[PlacedStep],
) -> list[Ready]:
    """Append the steps to ``placed`` with the deps each waits for; return the steps ready at once.

    ``finished`` holds the states of existing steps the new ones depend on;
    a dep that is new, or not done, is waited for.
    """
    ready: list[Ready] = []
    for position, step in enumerate(steps, first_position):
        deps = list(dict.fromkeys(step.deps))
        pending = sum(1 for dep in deps if not _done_for(dep, step.tolerates.get(dep), finished))
        placed.append(PlacedStep(workflow_id, position, step, deps, pending))
        if not pending:
            ready.append(Ready(step.node_id, step.task))
    return ready


def _done_for(dep: str, tolerance: str | None, finished: Mapping[str, str]) -> bool:
    """Whether an existing dep in state ``finished[dep]`` no longer holds a new step back (``satisfied``)."""
    state = finished.get(dep)
    return state is not None and satisfied(state, tolerance)
