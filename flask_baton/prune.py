"""Deleting what is old: settled workflows, debug logs, event feed rows.

Never touches a running workflow. Works in batches of ``BATCH`` workflows per
transaction so a large backlog never holds the write lock for long.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select

from .database import read_connection, write_transaction
from .events.database import prune_events
from .schema import completions, debug_logs, edges, nodes, step_stats, workflows
from .states import WorkflowState

BATCH = 500


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove)."""

    workflows: int
    steps: int
    debug_logs: int
    dry_run: bool


def prune(
    engine: Engine, now: float, max_age: float, debug_log_max_age: float, *, dry_run: bool = False
) -> PruneReport:
    """Delete workflows settled more than ``max_age`` seconds ago, and old debug logs."""
    cutoff = now - max_age
    old = (workflows.c.state != WorkflowState.RUNNING) & (workflows.c.finished_at < cutoff)
    log_cutoff = debug_logs.c.created_at < now - debug_log_max_age
    if dry_run:
        with read_connection(engine) as conn:
            ids = select(workflows.c.id).where(old)
            return PruneReport(
                conn.execute(select(func.count()).where(old)).scalar_one(),
                conn.execute(select(func.count()).where(nodes.c.workflow_id.in_(ids))).scalar_one(),
                conn.execute(select(func.count()).where(log_cutoff)).scalar_one(),
                dry_run=True,
            )
    removed_workflows = removed_steps = 0
    while True:
        with write_transaction(engine) as conn:
            batch = list(conn.execute(select(workflows.c.id).where(old).limit(BATCH)).scalars())
            if not batch:
                break
            for table in (step_stats, debug_logs, edges):
                conn.execute(delete(table).where(table.c.workflow_id.in_(batch)))
            removed_steps += conn.execute(delete(nodes).where(nodes.c.workflow_id.in_(batch))).rowcount
            conn.execute(delete(completions).where(completions.c.workflow_id.in_(batch)))
            removed_workflows += conn.execute(delete(workflows).where(workflows.c.id.in_(batch))).rowcount
    with write_transaction(engine) as conn:
        removed_logs = conn.execute(delete(debug_logs).where(log_cutoff)).rowcount
    return PruneReport(removed_workflows, removed_steps, removed_logs, dry_run=False)


def trim_event_feed(engine: Engine, now: float, retention: float) -> int:
    """Delete event feed rows older than ``retention`` seconds."""
    with write_transaction(engine) as conn:
        return prune_events(conn, now - retention)
