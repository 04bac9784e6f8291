"""Carrying a failure downstream, and counting steps settled until the workflow ends.

Part of the state machine: it decides which dependents a failure cancels and
which it releases; the store (``Tx.store``) sends the statements.
"""

from __future__ import annotations

from .effects import Cancelled, Effects, StepChange
from .states import StepState, tolerated
from .store import Tx


def cascade(
    tx: Tx,
    workflow_id: str,
    failed: dict[str, StepState],
    *,
    settled_first: int = 0,
    only: set[str] | None = None,
) -> Effects[None]:
    """Carry the failure of the ``failed`` steps downstream, level by level.

    A dependent whose edge tolerates the failure (``states.tolerated``) is
    released as if the dep had completed; any other is cancelled, with a
    reason naming the dependency that failed it, and its own dependents are
    visited next. ``settled_first`` counts steps the caller already settled in
    this transaction, so the workflow counter is updated once. ``only``
    limits the first level to steps just added, which counted tolerated
    failures already.
    """
    store, conn, now = tx.store, tx.conn, tx.now
    effects = Effects(None)
    frontier = dict(failed)
    settled = settled_first
    first_level = True
    while frontier:
        rows = store.cancellable_dependents(conn, workflow_id, sorted(frontier))
        if first_level and only is not None:
            rows = [row for row in rows if row.step_name in only]
        next_frontier: dict[str, StepState] = {}
        for row in rows:
            dep_state = frontier[row.dep_name]
            if row.step_name in next_frontier or tolerated(row.tolerates, dep_state):
                continue
            reason = f"dependency {row.dep_name!r} {dep_state.value}"
            if not store.cancel_step(conn, row.id, reason, now):
                continue
            next_frontier[row.step_name] = StepState.CANCELLED
            settled += 1
            effects.changes.append(
                StepChange(workflow_id, row.id, row.step_name, StepState.CANCELLED, row.attempt, now, error=reason)
            )
            effects.cancelled.append(
                Cancelled(row.id, workflow_id, row.step_name, row.task, row.args, row.attempt, reason, dep_state)
            )
        if not (first_level and only is not None):
            for row in rows:
                if row.step_name not in next_frontier and tolerated(row.tolerates, frontier[row.dep_name]):
                    effects.ready.extend(store.release(conn, workflow_id, [row.step_name], now))
        frontier = next_frontier
        first_level = False
    if settled:
        effects.merge(settle(tx, workflow_id, settled))
    return effects


def settle(tx: Tx, workflow_id: str, count: int) -> Effects[None]:
    """Count ``count`` steps settled; finish the workflow when none are left."""
    if tx.store.settle(tx.conn, workflow_id, count) > 0:
        return Effects(None)
    return finish(tx, workflow_id)


def finish(tx: Tx, workflow_id: str) -> Effects[None]:
    """End a workflow with no step left to settle, once (``Store.finish``); nothing if it ended already."""
    end = tx.store.finish(tx.conn, workflow_id, tx.now)
    return Effects(None, ended=[] if end is None else [end])
