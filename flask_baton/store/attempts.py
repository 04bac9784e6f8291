"""Statements on ``baton_attempts``: keeping the runs of a step its row no longer holds, and reading them back.

A step's row (``baton_nodes``) holds its last run. A run that ends in a way
that starts another (a failure retried, a snooze, a hand back, a rescue) or
that a retry re-arms is kept here first, in the transaction of that
transition, so the claim and the completion every step sends are unchanged.
``step_attempts`` joins the two back into one list.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select

from ..records import AttemptRecord
from ..records.runs import row_run, step_runs
from ..states import FAILED, AttemptOutcome, StepState
from .core import StoreCore
from .engine import read_connection
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


def step_attempts(engine: Engine, workflow_id: str, step_name: str, limit: int | None = None) -> list[AttemptRecord]:
    """A step's runs, oldest first (the newest ``limit`` of them); empty for no such step.

    Two reads in one connection: the step's row first, then its kept runs,
    so a run that ends in between is found among the kept ones, never lost.
    """
    with read_connection(engine) as conn:
        row = conn.execute(
            select(
                nodes.c.id,
                nodes.c.state,
                nodes.c.attempt,
                nodes.c.worker,
                nodes.c.started_at,
                nodes.c.finished_at,
                nodes.c.error,
            ).where(nodes.c.workflow_id == workflow_id, nodes.c.step_name == step_name)
        ).one_or_none()
        if row is None:
            return []
        stmt = (
            select(attempts)
            .where(attempts.c.workflow_id == workflow_id, attempts.c.step_name == step_name)
            .order_by(attempts.c.started_at.desc(), attempts.c.id.desc())
            .limit(limit)
        )
        kept = [_attempt(r) for r in reversed(conn.execute(stmt).all())]
    node_id, state, attempt, worker, started_at, finished_at, error = row
    runs = step_runs(
        kept,
        row_run(workflow_id, node_id, step_name, StepState(state), attempt, worker, started_at, finished_at, error),
    )
    return runs if limit is None else runs[-limit:]


def kept_runs(engine: Engine, workflow_id: str, limit: int) -> dict[str, list[AttemptRecord]]:
    """The newest ``limit`` runs kept for the workflow's steps (not those their rows hold), by step, oldest first."""
    stmt = (
        select(attempts)
        .where(attempts.c.workflow_id == workflow_id)
        .order_by(attempts.c.started_at.desc(), attempts.c.id.desc())
        .limit(limit)
    )
    found: dict[str, list[AttemptRecord]] = {}
    with read_connection(engine) as conn:
        for r in reversed(conn.execute(stmt).all()):
            found.setdefault(r.step_name, []).append(_attempt(r))
    return found


def _attempt(r: Row[Any]) -> AttemptRecord:
    return AttemptRecord(
        r.workflow_id,
        r.node_id,
        r.step_name,
        r.attempt,
        AttemptOutcome(r.outcome),
        r.worker,
        r.started_at,
        r.finished_at,
        r.error,
    )
