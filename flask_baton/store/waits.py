"""Statements of durable waits: a step entering ``waiting``, the signals that wake it, its timeout.

A wait and a signal meet under the workflow's row lock (``lock_workflow``):
the step that returns ``WaitFor`` and ``baton.signal`` each take it first,
so on PostgreSQL neither can miss the other's uncommitted row (SQLite's
write lock does the same). The order, workflow row then steps, is the one a
cancel takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, delete, exists, func, insert, select, update

from ..effects import Claimed, StepIdentity
from ..outcomes import WaitFor
from ..records import SignalRecord, WaitRecord
from ..records.workflows import decode_result
from ..states import StepState
from .core import StoreCore
from .engine import read_connection
from .steps import claimed_where
from .tables import STEP_IDENTITY, nodes, signals, waits, workflows


class SignalRow(NamedTuple):
    """A signal kept for a workflow (``baton_signals``)."""

    payload: str | None
    sent_by: str | None
    sent_at: float
    delivered_at: float | None
    timed_out: bool


class Woken(NamedTuple):
    """A waiting step a signal or a timeout made runnable (or discarded)."""

    node_id: str
    step_name: str
    task: str
    attempt: int


@dataclass(frozen=True)
class WaitRow(StepIdentity):
    """A step's last ``WaitFor``, with its step's identity (a timeout's view of it)."""

    name: str
    until: float
    on_timeout: str


class WaitStatements(StoreCore):
    """Entering a wait, keeping and delivering signals, timing out waits."""

    def lock_workflow(self, conn: Connection, workflow_id: str) -> str | None:
        """Lock the workflow's row until the transaction ends; its state (None: no such workflow)."""
        state: str | None = conn.execute(
            select(workflows.c.state).where(workflows.c.id == workflow_id).with_for_update()
        ).scalar_one_or_none()
        return state

    def signal_row(self, conn: Connection, workflow_id: str, name: str) -> SignalRow | None:
        """The signal ``name`` kept for the workflow, if any."""
        row = conn.execute(
            select(
                signals.c.payload, signals.c.sent_by, signals.c.sent_at, signals.c.delivered_at, signals.c.timed_out
            ).where(signals.c.workflow_id == workflow_id, signals.c.name == name)
        ).one_or_none()
        return None if row is None else SignalRow(*row)

    def keep_signal(
        self,
        conn: Connection,
        workflow_id: str,
        name: str,
        payload: str | None,
        sent_by: str | None,
        now: float,
        *,
        timed_out: bool = False,
    ) -> bool:
        """Keep a signal; False if one of that name is kept already (the first one stays)."""
        stmt = self._insert_or_skip(signals).values(
            workflow_id=workflow_id, name=name, payload=payload, sent_by=sent_by, sent_at=now, timed_out=timed_out
        )
        return conn.execute(stmt.on_conflict_do_nothing().returning(signals.c.name)).first() is not None

    def mark_delivered(self, conn: Connection, workflow_id: str, name: str, now: float) -> None:
        """A waiting step was woken by the signal."""
        conn.execute(
            update(signals)
            .where(signals.c.workflow_id == workflow_id, signals.c.name == name, signals.c.delivered_at.is_(None))
            .values(delivered_at=now)
        )

    def enter_wait(self, conn: Connection, claimed: Claimed, wait: WaitFor, now: float) -> bool:
        """Move the claimed attempt to ``waiting`` until its deadline, its attempt given back; False if it moved."""
        until = now + wait.timeout
        moved = conn.execute(
            update(nodes)
            .where(*claimed_where(claimed))
            .values(state=StepState.WAITING, scheduled_at=until, worker=None, attempt=claimed.attempt - 1)
        )
        if moved.rowcount != 1:
            return False
        conn.execute(delete(waits).where(waits.c.node_id == claimed.node_id))
        conn.execute(
            insert(waits),
            {
                "node_id": claimed.node_id,
                "workflow_id": claimed.workflow_id,
                "name": wait.name,
                "since": now,
                "until": until,
                "on_timeout": wait.on_timeout,
                "approval": wait.approval,
            },
        )
        return True

    def wake(self, conn: Connection, workflow_id: str, name: str, now: float) -> list[Woken]:
        """Make every step of the workflow waiting for ``name`` available now; those woken."""
        rows = conn.execute(
            update(nodes)
            .where(
                nodes.c.workflow_id == workflow_id,
                nodes.c.state == StepState.WAITING,
                exists().where(waits.c.node_id == nodes.c.id, waits.c.name == name),
            )
            .values(state=StepState.AVAILABLE, scheduled_at=now)
            .returning(nodes.c.id, nodes.c.step_name, nodes.c.task, nodes.c.attempt)
        ).all()
        return sorted((Woken(*row) for row in rows), key=lambda woken: woken.step_name)

    def expired_wait(self, conn: Connection, node_id: str, now: float) -> WaitRow | None:
        """The step's wait, if it is waiting and its deadline has passed."""
        row = conn.execute(
            select(*STEP_IDENTITY, waits.c.name, nodes.c.scheduled_at, waits.c.on_timeout)
            .select_from(nodes.join(waits, waits.c.node_id == nodes.c.id))
            .where(nodes.c.id == node_id, nodes.c.state == StepState.WAITING, nodes.c.scheduled_at <= now)
        ).one_or_none()
        return None if row is None else WaitRow(*row)

    def expired_waits(self, now: float, limit: int) -> list[str]:
        """Steps waiting past their deadline (the sweep's backstop to the timeout's Huey message)."""
        with self.read() as conn:
            return list(
                conn.execute(
                    select(nodes.c.id)
                    .where(nodes.c.state == StepState.WAITING, nodes.c.scheduled_at <= now)
                    .order_by(nodes.c.scheduled_at)
                    .limit(limit)
                ).scalars()
            )

    def end_wait(self, conn: Connection, wait: WaitRow, state: StepState, now: float, error: str | None) -> bool:
        """Move a timed-out waiting step to ``state`` (``available`` or ``discarded``); False if it moved."""
        values: dict[str, Any] = {"state": state, "error": error}
        values |= {"finished_at": now, "scheduled_at": None} if state == StepState.DISCARDED else {"scheduled_at": now}
        moved = conn.execute(
            update(nodes)
            .where(nodes.c.id == wait.node_id, nodes.c.state == StepState.WAITING, nodes.c.scheduled_at == wait.until)
            .values(**values)
        )
        return moved.rowcount == 1


def load_signals(conn: Connection, workflow_id: str) -> dict[str, SignalRecord]:
    """Every signal kept for the workflow, by name (what ``job.signal`` reads)."""
    rows = conn.execute(
        select(
            signals.c.name,
            signals.c.payload,
            signals.c.sent_by,
            signals.c.sent_at,
            signals.c.delivered_at,
            signals.c.timed_out,
        ).where(signals.c.workflow_id == workflow_id)
    ).all()
    return {
        row.name: SignalRecord(
            row.name, decode_result(row.payload), row.sent_by, row.sent_at, row.delivered_at, bool(row.timed_out)
        )
        for row in rows
    }


def workflow_signals(engine: Engine, workflow_id: str) -> dict[str, SignalRecord]:
    """``load_signals`` on a connection of its own."""
    with read_connection(engine) as conn:
        return load_signals(conn, workflow_id)


def step_waits(engine: Engine, workflow_id: str) -> dict[str, WaitRecord]:
    """Each step's last ``WaitFor``, by step name, with the signal it waits for if one was kept."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(
                nodes.c.step_name,
                nodes.c.state,
                waits.c.name,
                waits.c.since,
                waits.c.until,
                waits.c.on_timeout,
                waits.c.approval,
            )
            .select_from(waits.join(nodes, nodes.c.id == waits.c.node_id))
            .where(waits.c.workflow_id == workflow_id)
        ).all()
        kept = load_signals(conn, workflow_id) if rows else {}
    return {
        row.step_name: WaitRecord(
            row.step_name,
            row.name,
            row.since,
            row.until,
            row.on_timeout,
            bool(row.approval),
            row.state == StepState.WAITING,
            kept.get(row.name),
        )
        for row in rows
    }


def awaiting_person() -> ColumnElement[bool]:
    """A workflow (``baton_workflows`` row) with a step waiting for an approval now."""
    return exists().where(
        nodes.c.workflow_id == workflows.c.id,
        nodes.c.state == StepState.WAITING,
        waits.c.node_id == nodes.c.id,
        waits.c.approval.is_(True),
    )


def count_awaiting_person(engine: Engine, since: float | None = None) -> int:
    """How many workflows (started at ``since`` or later) have a step waiting for an approval now.

    Counted from the waiting steps (the state index finds them), not by
    asking every workflow: the index's tab counts it on every page load.
    """
    waiting = nodes.join(waits, waits.c.node_id == nodes.c.id)
    if since is not None:
        waiting = waiting.join(workflows, workflows.c.id == nodes.c.workflow_id)
    stmt = (
        select(func.count(func.distinct(nodes.c.workflow_id)))
        .select_from(waiting)
        .where(nodes.c.state == StepState.WAITING, waits.c.approval.is_(True))
    )
    if since is not None:
        stmt = stmt.where(workflows.c.created_at >= since)
    with read_connection(engine) as conn:
        return int(conn.execute(stmt).scalar_one())
