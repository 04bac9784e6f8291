"""Keeping the tables small: prune old workflows, trim the event feed.

A prune never touches a running workflow, and works in batches of ``BATCH``
workflows per transaction so a large backlog never holds the write lock for
long.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from ..states import WorkflowState
from . import feed
from .core import StoreCore
from .tables import attempts, completions, debug_logs, edges, nodes, signals, step_stats, waits, workflows

BATCH = 500

#: Tables holding a workflow's rows, in the order a prune deletes from them (before the workflow's own row).
_BELONGING = (step_stats, debug_logs, attempts, signals, waits, edges, nodes, completions)
#: Every table a prune deletes from, in the order a report lists them.
TABLES = (
    workflows.name,
    nodes.name,
    edges.name,
    attempts.name,
    completions.name,
    step_stats.name,
    debug_logs.name,
    signals.name,
    waits.name,
)


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove): ``rows`` per table name, in ``TABLES`` order."""

    rows: dict[str, int]
    dry_run: bool

    @property
    def workflows(self) -> int:
        return self.rows[workflows.name]

    @property
    def steps(self) -> int:
        return self.rows[nodes.name]

    @property
    def debug_logs(self) -> int:
        return self.rows[debug_logs.name]

    @property
    def total(self) -> int:
        """Rows of every table together."""
        return sum(self.rows.values())


class Maintenance(StoreCore):
    """Deleting what is old."""

    def prune(self, now: float, max_age: float, debug_log_max_age: float, *, dry_run: bool = False) -> PruneReport:
        """Delete workflows settled more than ``max_age`` seconds ago, and old debug logs.

        A dry run counts the same rows a prune with the same ``now`` deletes
        (the debug logs of those workflows and the ones past their own age), so
        the CLI can show the counts, ask, and then delete what it showed.
        """
        cutoff = now - max_age
        old = (workflows.c.state != WorkflowState.RUNNING) & (workflows.c.finished_at < cutoff)
        log_cutoff = debug_logs.c.created_at < now - debug_log_max_age
        rows = dict.fromkeys(TABLES, 0)
        if dry_run:
            ids = select(workflows.c.id).where(old)
            with self.read() as conn:
                rows[workflows.name] = conn.execute(select(func.count()).where(old)).scalar_one()
                for table in _BELONGING:
                    belongs = table.c.workflow_id.in_(ids)
                    condition = belongs | log_cutoff if table is debug_logs else belongs
                    rows[table.name] = conn.execute(
                        select(func.count()).select_from(table).where(condition)
                    ).scalar_one()
            return PruneReport(rows, dry_run=True)
        while True:
            with self.write() as conn:
                batch = list(conn.execute(select(workflows.c.id).where(old).limit(BATCH)).scalars())
                if not batch:
                    break
                for table in _BELONGING:
                    rows[table.name] += conn.execute(delete(table).where(table.c.workflow_id.in_(batch))).rowcount
                rows[workflows.name] += conn.execute(delete(workflows).where(workflows.c.id.in_(batch))).rowcount
        with self.write() as conn:
            rows[debug_logs.name] += conn.execute(delete(debug_logs).where(log_cutoff)).rowcount
        return PruneReport(rows, dry_run=False)

    def trim_event_feed(self, now: float, retention: float) -> int:
        """Delete event feed rows older than ``retention`` seconds; return how many."""
        with self.write() as conn:
            return feed.prune(conn, now - retention)
