"""Statements of the changes made from outside: cancelling a workflow, re-arming failed steps."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from sqlalchemy import Connection, exc, select, update

from ..dag import StepGraph
from ..errors import BatonError
from ..states import CANCELLABLE, FAILED, CancelledBy, StepState, WorkflowState
from .core import StoreCore
from .step_reads import load_graph
from .tables import completions, nodes, workflows


class Busy(BatonError):
    """Rows a change must lock stayed locked by another transaction longer than it may wait.

    Raised out of the transaction, which rolls back; the caller says what to do.
    """


class UniqueKeyTaken(BatonError):
    """Running this workflow again would make two running workflows with its ``unique_key``.

    Raised out of the transaction, which rolls back; the caller names the holder.
    """


class Reset(NamedTuple):
    """A step a retry made runnable again."""

    node_id: str
    task: str


class CancelledStep(NamedTuple):
    node_id: str
    step_name: str
    attempt: int


class ControlStatements(StoreCore):
    """Cancelling a running workflow; re-arming failed steps of any workflow."""

    def cancel_workflow_row(self, conn: Connection, workflow_id: str, now: float) -> bool:
        """Mark a running workflow cancelled; False if it is not running."""
        moved = conn.execute(
            update(workflows)
            .where(workflows.c.id == workflow_id, workflows.c.state == WorkflowState.RUNNING)
            .values(state=WorkflowState.CANCELLED, finished_at=now)
        )
        return moved.rowcount == 1

    def cancel_unsettled(
        self, conn: Connection, workflow_id: str, reason: str, now: float, by: CancelledBy = CancelledBy.USER
    ) -> list[CancelledStep]:
        """Cancel every step of the workflow not settled yet, as ``by``'s doing.

        A user's cancel takes a running step too, which keeps its worker: its
        row is then the run cancelled (a step waiting to run has none
        already). A budget's leaves a running step to finish.
        """
        states = (*CANCELLABLE, StepState.EXECUTING) if by == CancelledBy.USER else CANCELLABLE
        rows = conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.state.in_(states))
            .values(
                state=StepState.CANCELLED,
                error=reason,
                finished_at=now,
                scheduled_at=None,
                cancelled_by=by,
            )
            .returning(nodes.c.id, nodes.c.step_name, nodes.c.attempt)
        )
        return [CancelledStep(*row) for row in rows]

    def graph(self, conn: Connection, workflow_id: str) -> StepGraph:
        """A workflow's steps, states and edge policies as ``conn``'s transaction sees them."""
        return load_graph(conn, workflow_id)

    @contextmanager
    def busy_on_lock_timeout(self) -> Iterator[None]:
        """A lock wait cut short by ``lock_states`` in the block raises ``Busy``."""
        try:
            yield
        except exc.OperationalError as error:
            if not self._is_lock_timeout(error):
                raise
            raise Busy(str(error.orig)) from None

    def lock_states(self, conn: Connection, workflow_id: str, names: Sequence[str]) -> dict[str, str]:
        """Share-lock the named steps until the transaction ends; return their states read again.

        From here on the transaction waits for row locks a short while at
        most (where the database waits for them at all): see ``busy_on_lock_timeout``.
        """
        self._limit_lock_waits(conn)
        fresh = conn.execute(
            select(nodes.c.step_name, nodes.c.state)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name.in_(names))
            .order_by(nodes.c.step_name)
            .with_for_update(read=True)
        ).all()
        return dict(fresh)

    def rearm_step(self, conn: Connection, workflow_id: str, name: str, waiting: int, now: float) -> Reset | None:
        """Start a failed step afresh (attempt 0): ``pending`` on ``waiting`` deps, or available now.

        None if the step is no longer discarded or cancelled.
        """
        row = conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name == name, nodes.c.state.in_(FAILED))
            .values(
                state=StepState.PENDING if waiting else StepState.AVAILABLE,
                deps_pending=waiting,
                attempt=0,
                error=None,
                cancelled_by=None,
                result=None,
                worker=None,
                started_at=None,
                finished_at=None,
                heartbeat_at=None,
                scheduled_at=None if waiting else now,
            )
            .returning(nodes.c.id, nodes.c.task)
        ).one_or_none()
        return None if row is None else Reset(*row)

    def wait_again(self, conn: Connection, workflow_id: str, name: str, more: int) -> None:
        """A step still to run waits for ``more`` deps again.

        Relative, so a release racing this one is not lost; a step started
        meanwhile is left alone.
        """
        conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name == name, nodes.c.state.in_(CANCELLABLE))
            .values(deps_pending=nodes.c.deps_pending + more, state=StepState.PENDING, scheduled_at=None)
        )

    def reopen_workflow(self, conn: Connection, workflow_id: str, rearmed: int) -> None:
        """The workflow runs again with ``rearmed`` more steps to settle, and will announce its end again.

        Counted in ``retried``, which its outcome reports. Running again
        takes its ``unique_key`` back: if another running workflow holds it
        now, the unique index refuses (``UniqueKeyTaken``).
        """
        try:
            conn.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id)
                .values(
                    state=WorkflowState.RUNNING,
                    finished_at=None,
                    unsettled=workflows.c.unsettled + rearmed,
                    retried=workflows.c.retried + 1,
                )
            )
        except exc.IntegrityError as error:
            raise UniqueKeyTaken(f"workflow {workflow_id} cannot run again: {error.orig}") from error
        conn.execute(completions.delete().where(completions.c.workflow_id == workflow_id))

    @abstractmethod
    def _limit_lock_waits(self, conn: Connection) -> None:
        """Make this transaction's lock waits short, where the database waits for locks at all."""

    @abstractmethod
    def _is_lock_timeout(self, error: exc.OperationalError) -> bool:
        """Whether ``error`` is a lock wait that ran past ``_limit_lock_waits``."""
