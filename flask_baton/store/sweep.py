"""What the sweep reads and changes: lapsed leases, lost messages, unfinished, unannounced and unpublished ends.

The reads run on their own connection and are bounded (``limit``) so one
sweep stays short; each change is a compare-and-set on what the read saw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, exc, insert, select, update

from ..effects import Claimed, WorkflowEnd
from ..states import CLAIMABLE, StepState, WorkflowState
from . import hotpath
from .core import StoreCore
from .steps import running_where
from .tables import STEP_IDENTITY, completions, locks, nodes, workflows


class Lapsed(NamedTuple):
    """A step executing on a consumer that stopped renewing its lease, as the sweep saw it."""

    claimed: Claimed
    heartbeat_at: float | None


class Waiting(NamedTuple):
    """A step waiting to run since ``scheduled_at``."""

    node_id: str
    task: str
    scheduled_at: float


class SweepStatements(StoreCore):
    """The sweep's reads and compare-and-sets, the sweep's lease, and announcing ends once."""

    def lapsed(self, now: float, lease: float, limit: int) -> list[Lapsed]:
        """Executing steps whose heartbeat is more than ``lease`` seconds old."""
        with self.read() as conn:
            rows = conn.execute(
                select(*STEP_IDENTITY, nodes.c.worker, nodes.c.heartbeat_at, nodes.c.started_at)
                .where(nodes.c.state == StepState.EXECUTING, nodes.c.heartbeat_at < now - lease)
                .limit(limit)
            ).all()
        return [
            Lapsed(
                Claimed(
                    row.id,
                    row.workflow_id,
                    row.step_name,
                    row.task,
                    row.args,
                    row.attempt,
                    row.worker or "",
                    row.started_at or now,
                ),
                row.heartbeat_at,
            )
            for row in rows
        ]

    def waiting_since(self, before: float, limit: int) -> list[Waiting]:
        """Steps due to run since before ``before``, longest waiting first."""
        with self.read() as conn:
            rows = conn.execute(
                select(nodes.c.id, nodes.c.task, nodes.c.scheduled_at)
                .where(nodes.c.state.in_(CLAIMABLE), nodes.c.scheduled_at < before)
                .order_by(nodes.c.scheduled_at)
                .limit(limit)
            ).all()
        return [Waiting(*row) for row in rows]

    def settled_but_running(self, limit: int) -> list[str]:
        """Workflows still ``running`` with no step left to settle."""
        with self.read() as conn:
            return list(
                conn.execute(
                    select(workflows.c.id)
                    .where(workflows.c.state == WorkflowState.RUNNING, workflows.c.unsettled == 0)
                    .limit(limit)
                ).scalars()
            )

    def unannounced(self, before: float, limit: int) -> list[WorkflowEnd]:
        """Workflow ends recorded before ``before`` that nobody announced."""
        with self.read() as conn:
            rows = conn.execute(
                select(completions)
                .where(completions.c.announced_at.is_(None), completions.c.finished_at < before)
                .limit(limit)
            ).all()
        return [_end(row) for row in rows]

    def unpublished(self, before: float, limit: int) -> list[WorkflowEnd]:
        """Workflow ends announced before ``before`` that were never marked published: the outbox."""
        with self.read() as conn:
            rows = conn.execute(
                select(completions)
                .where(completions.c.published_at.is_(None), completions.c.announced_at < before)
                .order_by(completions.c.announced_at)
                .limit(limit)
            ).all()
        return [_end(row) for row in rows]

    def rescue(self, conn: Connection, claimed: Claimed, heartbeat_at: float | None, reason: str, now: float) -> bool:
        """Make a lapsed step ``retryable``, unless its consumer renewed the lease since ``heartbeat_at``."""
        moved = conn.execute(
            update(nodes)
            .where(
                *running_where(claimed.node_id, claimed.attempt),
                nodes.c.heartbeat_at == heartbeat_at if heartbeat_at is not None else nodes.c.heartbeat_at.is_(None),
            )
            .values(state=StepState.RETRYABLE, error=reason, worker=None, scheduled_at=now)
        )
        return moved.rowcount == 1

    def heartbeat_of(self, conn: Connection, node_id: str) -> float | None:
        """The heartbeat of a step still executing (None: no heartbeat, or not executing)."""
        found: float | None = conn.execute(
            select(nodes.c.heartbeat_at).where(nodes.c.id == node_id, nodes.c.state == StepState.EXECUTING)
        ).scalar_one_or_none()
        return found

    def requeue(self, conn: Connection, node_id: str, seen_at: float, now: float) -> bool:
        """Mark a waiting step handed to Huey again, if nobody did since the sweep saw it."""
        moved = conn.execute(
            update(nodes)
            .where(nodes.c.id == node_id, nodes.c.state.in_(CLAIMABLE), nodes.c.scheduled_at == seen_at)
            .values(scheduled_at=now)
        )
        return moved.rowcount == 1

    def mark_announced(self, conn: Connection, workflow_id: str, now: float, *, published: bool) -> bool:
        """Claim the one announcement of a workflow's end; True for the winner.

        ``published``: its event is written in this same transaction (the
        database feed), so the end does not enter the outbox.
        """
        params = {"workflow_id": workflow_id, "now": now, "published": now if published else None}
        return bool(self._run(conn, hotpath.MARK_ANNOUNCED, params).rowcount == 1)

    def mark_published(self, conn: Connection, workflow_ids: Sequence[str], now: float) -> None:
        """Take announced ends out of the outbox: their ``workflow_finished`` is with the transport."""
        conn.execute(
            update(completions)
            .where(completions.c.workflow_id.in_(workflow_ids), completions.c.published_at.is_(None))
            .values(published_at=now)
        )

    def take_lease(self, name: str, holder: str, now: float, until: float) -> bool:
        """Hold the named lease until ``until`` if it is free (expired or new), in a transaction of its own."""
        try:
            with self.write() as conn:
                taken = conn.execute(
                    update(locks).where(locks.c.name == name, locks.c.until <= now).values(holder=holder, until=until)
                ).rowcount
                if taken:
                    return True
                if conn.execute(select(locks.c.name).where(locks.c.name == name)).first() is not None:
                    return False
                conn.execute(insert(locks), {"name": name, "holder": holder, "until": until})
                return True
        except exc.IntegrityError:
            return False  # another consumer created the lease row first


def _end(row: Any) -> WorkflowEnd:
    """The end a ``baton_completions`` row records."""
    return WorkflowEnd(row.workflow_id, row.outcome, json.loads(row.failed_steps), row.finished_at)
