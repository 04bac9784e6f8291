"""Schedules' ticks: claiming a tick once, its previous run, the last run of each schedule.

A tick is claimed by inserting its row (``ON CONFLICT DO NOTHING`` on the
primary key) in the transaction that inserts its workflow: of the consumers
checking the same tick at once, exactly one row goes in, and the others
insert nothing (on PostgreSQL they wait for the winner's commit, on SQLite
for its write lock, then find the row).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Engine, and_, delete, exists, func, select, update

from ..records import TickRecord
from ..states import TickOutcome, WorkflowState
from .core import StoreCore
from .engine import read_connection
from .tables import schedule_ticks, workflows

_ticks = schedule_ticks.alias("later")


class ScheduleStatements(StoreCore):
    """Writing schedules' ticks, and trimming old ones."""

    def claim_tick(
        self,
        conn: Connection,
        schedule: str,
        tick_at: float,
        outcome: TickOutcome,
        workflow_id: str | None,
        detail: str | None,
        now: float,
    ) -> bool:
        """Record what a tick did, unless another consumer recorded it first; True if this one did."""
        stmt = (
            self._insert_or_skip(schedule_ticks)
            .values(
                schedule=schedule,
                tick_at=tick_at,
                outcome=outcome,
                workflow_id=workflow_id,
                detail=detail,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[schedule_ticks.c.schedule, schedule_ticks.c.tick_at])
            .returning(schedule_ticks.c.tick_at)
        )
        return conn.execute(stmt).first() is not None

    def change_tick(
        self, conn: Connection, schedule: str, tick_at: float, outcome: TickOutcome, detail: str | None
    ) -> None:
        """Say a claimed tick did something else after all (its workflow could not be inserted)."""
        conn.execute(
            update(schedule_ticks)
            .where(schedule_ticks.c.schedule == schedule, schedule_ticks.c.tick_at == tick_at)
            .values(outcome=outcome, workflow_id=None, detail=detail)
        )

    def running_run(self, conn: Connection, schedule: str) -> str | None:
        """The id of a workflow this schedule started that is still running, if any."""
        return conn.execute(
            select(workflows.c.id)
            .join(schedule_ticks, schedule_ticks.c.workflow_id == workflows.c.id)
            .where(schedule_ticks.c.schedule == schedule, workflows.c.state == WorkflowState.RUNNING)
            .limit(1)
        ).scalar_one_or_none()

    def trim_schedule_ticks(self, before: float) -> int:
        """Delete ticks recorded before ``before``, but never a schedule's latest nor a running workflow's.

        The latest says which tick comes next; a running workflow's is what
        ``overlap="skip"`` looks for.
        """
        newer = select(_ticks.c.tick_at).where(
            _ticks.c.schedule == schedule_ticks.c.schedule, _ticks.c.tick_at > schedule_ticks.c.tick_at
        )
        running = select(workflows.c.id).where(
            workflows.c.id == schedule_ticks.c.workflow_id, workflows.c.state == WorkflowState.RUNNING
        )
        with self.write() as conn:
            return int(
                conn.execute(
                    delete(schedule_ticks).where(schedule_ticks.c.created_at < before, exists(newer), ~exists(running))
                ).rowcount
            )


def last_ticks(engine: Engine, schedules: Collection[str]) -> dict[str, TickRecord]:
    """Each named schedule's latest tick, with its workflow's state now; a schedule never ticked is left out."""
    if not schedules:
        return {}
    latest = (
        select(schedule_ticks.c.schedule, func.max(schedule_ticks.c.tick_at).label("tick_at"))
        .where(schedule_ticks.c.schedule.in_(schedules))
        .group_by(schedule_ticks.c.schedule)
        .subquery()
    )
    query = (
        select(
            schedule_ticks.c.schedule,
            schedule_ticks.c.tick_at,
            schedule_ticks.c.outcome,
            schedule_ticks.c.workflow_id,
            workflows.c.state,
            schedule_ticks.c.detail,
        )
        .join(
            latest,
            and_(latest.c.schedule == schedule_ticks.c.schedule, latest.c.tick_at == schedule_ticks.c.tick_at),
        )
        .outerjoin(workflows, workflows.c.id == schedule_ticks.c.workflow_id)
    )
    with read_connection(engine) as conn:
        return {row.schedule: TickRecord(*row) for row in conn.execute(query)}
