"""Enforcing spend caps: after a step records cost, before a step starts, and when a person raises a cap.

Two caps: a workflow's own (``Workflow(budget_usd=...)``) and the app's
``BATON_BUDGET_USD_PER_DAY`` over everything recorded since the last UTC
midnight. They are checked

- after each ``job.record_usage``: a cap reached cancels the workflow's
  steps not yet started (``stop``), when its action is ``"cancel"``;
- as a step starts, right after its claim: a cap reached cancels that step
  and the rest (``"cancel"``), or holds it (``"pause"``) until
  ``set_budget`` raises the cap. This catches the daily cap for every other
  workflow as its next step comes up, and a step released by a completion
  that raced the cancel.

A step already running is never stopped: what it spends after the cap is
reached is recorded, and counts. A step of a workflow without a cap of its
own costs no extra read at its start unless a daily cap is set (its claim
reads ``budget_usd`` with the workflow's name).
"""

from __future__ import annotations

import time

from .appstate import AppState
from .budget import BudgetAction, Exceeded, check_action, check_budget, day_start, reached
from .cascade import settle
from .dispatch import commit
from .effects import Claimed, Effects, StepChange
from .errors import WorkflowNotFoundError
from .states import CancelledBy, StepState
from .store import Tx
from .store.usage import total


def exceeded(state: AppState, workflow_id: str, budget_usd: float | None) -> Exceeded | None:
    """The cap the workflow has reached, its own first (the narrower); None if neither is."""
    daily = state.config.budget_usd_per_day
    if budget_usd is not None:
        own = reached(total(state.store.engine, workflow_id=workflow_id).cost_usd, budget_usd)
        if own is not None:
            return own
    if daily is None:
        return None
    return reached(spent_today(state), daily, daily=True)


def spent_today(state: AppState) -> float | None:
    """What every step recorded since the last UTC midnight (None: nothing priced): the daily cap's count."""
    return total(state.store.engine, since=day_start(time.time())).cost_usd


def after_usage(state: AppState, workflow_id: str, budget_usd: float | None) -> None:
    """A step recorded cost: if it reached a cap, cancel the workflow's steps not yet started.

    Under ``"pause"`` nothing changes now: the next step to start is held.
    """
    if budget_usd is None and state.config.budget_usd_per_day is None:
        return
    over = exceeded(state, workflow_id, budget_usd)
    if over is not None and _action(state, workflow_id) == "cancel":
        commit(state, stop, workflow_id, over.reason)


def may_start(state: AppState, claimed: Claimed) -> bool:
    """Whether a step just claimed may run; if a cap is reached, cancel or hold it instead (False).

    A hold is decided on the cap read at the claim; if a person raised the
    cap since (``set_budget``, which releases the steps held so far), the
    step is not held but decided again on the new cap: held after that
    release, nothing would ever release it.
    """
    budget_usd = claimed.budget_usd
    while True:
        if budget_usd is None and state.config.budget_usd_per_day is None:
            return True
        over = exceeded(state, claimed.workflow_id, budget_usd)
        if over is None:
            return True
        if _action(state, claimed.workflow_id) != "pause":
            commit(state, stop, claimed.workflow_id, over.reason, claimed)
            return False
        cap_moved, _ = commit(state, hold, claimed, over.held, budget_usd)
        if not cap_moved:
            return False
        record = state.query.get_workflow(claimed.workflow_id)
        budget_usd = None if record is None else record.budget_usd


def set_budget(state: AppState, workflow_id: str, budget_usd: float) -> list[str]:
    """Set the workflow's cap to ``budget_usd`` and release its held steps; return their names.

    A released step is checked again as it starts: if a cap is still
    reached (the new one, or the day's), it is held again.
    """
    cap = check_budget(budget_usd)
    released, _ = commit(state, raise_cap, workflow_id, cap)
    if released is None:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    return released


def _action(state: AppState, workflow_id: str) -> BudgetAction:
    """What reaching a cap does to this workflow: its own ``on_budget``, else ``BATON_BUDGET_ACTION``."""
    record = state.query.get_workflow(workflow_id)
    stored = None if record is None else record.on_budget
    return state.config.budget_action if stored is None else check_action(stored)


# -- the transitions ------------------------------------------------------------


def stop(tx: Tx, workflow_id: str, reason: str, claimed: Claimed | None = None) -> Effects[None]:
    """Cancel the workflow and its steps not yet started, ``reason`` saying which cap and by how much.

    A step claimed but not run (``claimed``) is put back first, so it is
    cancelled with the rest; steps running finish, and the workflow's end is
    announced when the last of them settles. With nothing left to cancel
    (the cap reached by its last steps) the workflow is left to end as it
    would. Each statement is a compare-and-set: of two consumers reaching
    the cap at once, the second finds nothing left to cancel.
    """
    if claimed is not None:
        tx.store.hold(tx.conn, claimed, reason)
    steps = tx.store.cancel_unsettled(tx.conn, workflow_id, reason, tx.now, by=CancelledBy.BUDGET)
    if steps:
        tx.store.cancel_workflow_row(tx.conn, workflow_id, tx.now)
    effects = Effects(
        None,
        changes=[
            StepChange(
                workflow_id, step.node_id, step.step_name, StepState.CANCELLED, step.attempt, tx.now, error=reason
            )
            for step in sorted(steps, key=lambda step: step.step_name)
        ],
    )
    if steps:
        effects.merge(settle(tx, workflow_id, len(steps)))
    return effects


def hold(tx: Tx, claimed: Claimed, reason: str, budget_usd: float | None) -> Effects[bool]:
    """Hold a step claimed but not run until its cap is raised (``on_budget="pause"``).

    Only while the workflow's cap is still ``budget_usd``, the one the hold
    was decided on; True: the cap moved, nothing was held.
    """
    if not tx.store.keep_cap(tx.conn, claimed.workflow_id, budget_usd):
        return Effects(True)
    if not tx.store.hold(tx.conn, claimed, reason):
        return Effects(False)
    return Effects(False, changes=[claimed.change(StepState.PENDING, tx.now, error=reason)])


def raise_cap(tx: Tx, workflow_id: str, budget_usd: float) -> Effects[list[str] | None]:
    """Set the cap and make the held steps ``available``, handed to Huey after the commit; None: no workflow."""
    if not tx.store.set_budget_row(tx.conn, workflow_id, budget_usd):
        return Effects(None)
    released = tx.store.release_held(tx.conn, workflow_id, tx.now)
    return Effects(
        [name for _, name, _ in released],
        ready=[ready for ready, _, _ in released],
        changes=[
            StepChange(workflow_id, ready.node_id, name, StepState.AVAILABLE, attempt, tx.now)
            for ready, name, attempt in released
        ],
    )
