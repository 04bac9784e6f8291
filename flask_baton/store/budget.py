"""Statements of the spend caps: a workflow's cap, and holding or releasing its steps.

A held step is ``pending`` with no dependency left to wait for: a state no
other transition leaves a step in (a release makes a step at zero
``available``, an insert or a retry starts one with no deps waited for as
``available``), so it needs no column of its own. Its ``error`` says why it
waits; ``release_held`` makes it ``available`` again.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, update

from ..effects import Claimed, Ready
from ..states import StepState
from .core import StoreCore
from .steps import claimed_where
from .tables import nodes, workflows


def is_held() -> ColumnElement[bool]:
    """The steps a spend cap holds: pending on nothing."""
    return (nodes.c.state == StepState.PENDING) & (nodes.c.deps_pending == 0)


class BudgetStatements(StoreCore):
    """Setting a workflow's cap; holding a step a cap stops, and releasing the held ones."""

    def set_budget_row(self, conn: Connection, workflow_id: str, budget_usd: float) -> bool:
        """Set the workflow's cap; False if there is no such workflow."""
        moved = conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(budget_usd=budget_usd))
        return moved.rowcount == 1

    def keep_cap(self, conn: Connection, workflow_id: str, budget_usd: float | None) -> bool:
        """Lock the workflow's row if its cap is still ``budget_usd``; False if it changed since.

        A no-op update: it takes the row lock ``set_budget_row`` takes, so a
        hold decided on the old cap and a raise of the cap never interleave
        (one waits for the other's commit, then sees its cap).
        """
        moved = conn.execute(
            update(workflows)
            .where(workflows.c.id == workflow_id, workflows.c.budget_usd.is_not_distinct_from(budget_usd))
            .values(budget_usd=workflows.c.budget_usd)
        )
        return moved.rowcount == 1

    def hold(self, conn: Connection, claimed: Claimed, reason: str) -> bool:
        """Put a step claimed but not run back, held (``is_held``), its attempt given back; False if it moved."""
        moved = conn.execute(
            update(nodes)
            .where(*claimed_where(claimed))
            .values(
                state=StepState.PENDING,
                deps_pending=0,
                attempt=claimed.attempt - 1,
                error=reason,
                worker=None,
                started_at=None,
                heartbeat_at=None,
                scheduled_at=None,
            )
        )
        return moved.rowcount == 1

    def release_held(self, conn: Connection, workflow_id: str, now: float) -> list[tuple[Ready, str, int]]:
        """Make the workflow's held steps ``available`` now; each as (ready, step name, attempt)."""
        rows = conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, is_held())
            .values(state=StepState.AVAILABLE, scheduled_at=now, error=None)
            .returning(nodes.c.id, nodes.c.task, nodes.c.step_name, nodes.c.attempt)
        )
        return [(Ready(node_id, task), name, attempt) for node_id, task, name, attempt in rows]
