"""Statements of a running step's transitions that both databases send alike.

Each is one compare-and-set (or one read) in the caller's transaction; the
state machine (``flask_baton.transitions``, ``flask_baton.cascade``) decides
which to send and what follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, select, update

from ..effects import Claimed, Ready
from ..states import CANCELLABLE, StepState
from . import hotpath
from .core import StoreCore
from .tables import edge_to_dependent, edges, nodes


class Dependent(NamedTuple):
    """A step still to run that waits on one of the steps a cascade reached."""

    id: str
    step_name: str
    task: str
    args: str
    attempt: int
    dep_name: str
    tolerates: str | None


class HandedBack(NamedTuple):
    """A step handed back unrun: its task, and the run that ended (its attempt now given back)."""

    task: str
    workflow_id: str
    step_name: str
    attempt: int  # the run's own number (the row's is one less again)
    started_at: float


class StepRow(NamedTuple):
    """Where a step is: its workflow, its name, its state."""

    workflow_id: str
    step_name: str
    state: str


def started(released: Iterable[Sequence[Any]]) -> list[Ready]:
    """The released rows (id, task, state, deps_pending, ...) that are ready to run now."""
    return [
        Ready(node_id, task)
        for node_id, task, state, deps_pending, *_ in released
        if state == StepState.AVAILABLE and deps_pending == 0
    ]


def completion(claimed: Claimed, result: str | None, now: float) -> dict[str, Any]:
    """The parameters that store a claimed attempt's result: the attempt it is, by the worker that claimed it."""
    return {
        "id": claimed.node_id,
        "attempt": claimed.attempt,
        "worker": claimed.worker,
        "result": result,
        "now": now,
    }


class StepStatements(StoreCore):
    """Claimed steps' outcomes, releases, the cascade's reads and writes, the workflow counter."""

    def complete_step(self, conn: Connection, claimed: Claimed, result: str | None, now: float) -> bool:
        """Store the result of the claimed attempt; False if the step moved meanwhile."""
        return bool(self._run(conn, hotpath.COMPLETE, completion(claimed, result, now)).rowcount == 1)

    def release_dependents(self, conn: Connection, claimed: Claimed, now: float) -> list[Ready]:
        """Count the claimed step done for each of its dependents (as this statement sees them); the ones to start."""
        params = {"workflow_id": claimed.workflow_id, "dep_name": claimed.step_name, "now": now}
        return started(self._run(conn, hotpath.RELEASE_DEPENDENTS, params).fetchall())

    def release(self, conn: Connection, workflow_id: str, names: Sequence[str], now: float) -> list[Ready]:
        """One of each named step's deps is done: count it; the steps that start now."""
        if not names:
            return []
        return started(self._run(conn, hotpath.RELEASE, {"workflow_id": workflow_id, "now": now}, names=names))

    def settle(self, conn: Connection, workflow_id: str, count: int) -> int:
        """Count ``count`` steps settled; return how many are left."""
        unsettled, _state = self._run(conn, hotpath.SETTLE, {"workflow_id": workflow_id, "count": count}).fetchone()
        return int(unsettled)

    def reschedule(
        self,
        conn: Connection,
        claimed: Claimed,
        state: StepState,
        at: float,
        error: str | None = None,
        attempt: int | None = None,
        waiting_for: str | None = None,
    ) -> bool:
        """Move the claimed attempt to ``state``, due at ``at``; False if it moved meanwhile.

        ``waiting_for``: why a snoozed step waits (a rate limit), shown while it is snoozed.
        """
        values: dict[str, Any] = {"state": state, "scheduled_at": at, "worker": None, "waiting_for": waiting_for}
        if error is not None:
            values["error"] = error
        if attempt is not None:
            values["attempt"] = attempt
        moved = conn.execute(update(nodes).where(*claimed_where(claimed)).values(**values))
        return moved.rowcount == 1

    def discard_step(self, conn: Connection, claimed: Claimed, reason: str, now: float) -> bool:
        """Fail the claimed attempt for good; False if it moved meanwhile.

        The row keeps its worker, as a completed one does: it is the step's last run.
        """
        gone = conn.execute(
            update(nodes)
            .where(*claimed_where(claimed))
            .values(state=StepState.DISCARDED, error=reason, finished_at=now)
        )
        return gone.rowcount == 1

    def hand_back(self, conn: Connection, node_id: str, worker: str, now: float) -> HandedBack | None:
        """Make a step ``worker`` runs available again, its attempt given back; None if it does not run it.

        Fenced by the worker rather than the attempt, because Huey's
        interrupted-task signal knows only the task, not our claim.
        """
        row = conn.execute(
            update(nodes)
            .where(nodes.c.id == node_id, nodes.c.state == StepState.EXECUTING, nodes.c.worker == worker)
            .values(state=StepState.AVAILABLE, attempt=nodes.c.attempt - 1, worker=None, scheduled_at=now)
            .returning(nodes.c.task, nodes.c.workflow_id, nodes.c.step_name, nodes.c.attempt + 1, nodes.c.started_at)
        ).one_or_none()
        return None if row is None else HandedBack(*row)

    def step_row(self, conn: Connection, node_id: str) -> StepRow | None:
        """A step's workflow, name and state."""
        row = conn.execute(
            select(nodes.c.workflow_id, nodes.c.step_name, nodes.c.state).where(nodes.c.id == node_id)
        ).one_or_none()
        return None if row is None else StepRow(*row)

    def failed_blocker(self, conn: Connection, workflow_id: str, step_name: str) -> tuple[str, StepState] | None:
        """A dep of the step that failed in a way its edge does not let through: its name and state."""
        failed = self._run(
            conn, hotpath.FAILED_BLOCKER, {"workflow_id": workflow_id, "step_name": step_name}
        ).fetchone()
        return None if failed is None else (failed[0], StepState(failed[1]))

    def cancellable_dependents(self, conn: Connection, workflow_id: str, deps: Sequence[str]) -> list[Dependent]:
        """The dependents of ``deps`` still to run, by name then dep."""
        rows = conn.execute(
            select(
                nodes.c.id,
                nodes.c.step_name,
                nodes.c.task,
                nodes.c.args,
                nodes.c.attempt,
                edges.c.dep_name,
                edges.c.tolerates,
            )
            .select_from(edges.join(nodes, edge_to_dependent()))
            .where(edges.c.workflow_id == workflow_id, edges.c.dep_name.in_(deps), nodes.c.state.in_(CANCELLABLE))
            .order_by(nodes.c.step_name, edges.c.dep_name)
        )
        return [Dependent(*row) for row in rows]

    def cancel_step(self, conn: Connection, node_id: str, reason: str, now: float) -> bool:
        """Cancel a step still to run; False if it started or settled meanwhile."""
        hit = conn.execute(
            update(nodes)
            .where(nodes.c.id == node_id, nodes.c.state.in_(CANCELLABLE))
            .values(state=StepState.CANCELLED, error=reason, finished_at=now, worker=None, scheduled_at=None)
        )
        return hit.rowcount == 1


def running_where(node_id: str, attempt: int) -> tuple[Any, ...]:
    """The WHERE of a compare-and-set on a run: the step still executes that attempt."""
    return (nodes.c.id == node_id, nodes.c.state == StepState.EXECUTING, nodes.c.attempt == attempt)


def claimed_where(claimed: Claimed) -> tuple[Any, ...]:
    """The WHERE of a compare-and-set on a claimed attempt: still executing, same attempt, same worker."""
    return (*running_where(claimed.node_id, claimed.attempt), nodes.c.worker == claimed.worker)
