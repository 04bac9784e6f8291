"""Statements on ``baton_attempts``: keeping the runs of a step its row no longer holds.

A step's row (``baton_nodes``) holds its last run. A run that ends in a way
that starts another (a failure retried, a snooze, a hand back, a rescue) or
that a retry re-arms is kept here first, in the transaction of that
transition, so the claim and the completion every step sends are unchanged.
``reads.step_attempts`` joins the two back into one list.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, select

from ..records import AttemptRecord
from ..states import FAILED
from .core import StoreCore
from .tables import attempts, nodes

_COLUMNS = ("workflow_id", "node_id", "step_name", "attempt", "outcome", "worker", "started_at", "finished_at", "error")


class AttemptStatements(StoreCore):
    """Keeping ended runs of a step, in the caller's transaction."""

    def keep_attempt(self, conn: Connection, run: AttemptRecord) -> None:
        """Keep a run that just ended (one INSERT)."""
        conn.execute(insert(attempts), {column: getattr(run, column) for column in _COLUMNS})

    def keep_last_run(self, conn: Connection, workflow_id: str, step_name: str, now: float) -> None:
        """Keep the run a failed step's row holds, before a retry re-arms the row; one INSERT ... SELECT.

        Its outcome is the row's state (discarded, or cancelled while
        running). A step cancelled before it ever ran has no run to keep, and
        one cancelled while waiting to run again had its last run kept when
        that run ended (the same ``started_at``).
        """
        kept = (
            select(attempts.c.id)
            .where(
                attempts.c.workflow_id == nodes.c.workflow_id,
                attempts.c.step_name == nodes.c.step_name,
                attempts.c.started_at == nodes.c.started_at,
            )
            .exists()
        )
        run = select(
            nodes.c.workflow_id,
            nodes.c.id,
            nodes.c.step_name,
            nodes.c.attempt,
            nodes.c.state,
            nodes.c.worker,
            nodes.c.started_at,
            func.coalesce(nodes.c.finished_at, now),
            nodes.c.error,
        ).where(
            nodes.c.workflow_id == workflow_id,
            nodes.c.step_name == step_name,
            nodes.c.state.in_(FAILED),
            nodes.c.started_at.is_not(None),
            nodes.c.attempt > 0,
            ~kept,
        )
        conn.execute(insert(attempts).from_select(list(_COLUMNS), run))
