"""Writing new workflows and new steps: rows, edges, and the unique key's guard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, update

from ..effects import NewStep, NewWorkflow
from ..states import StepState, WorkflowState
from .core import StoreCore
from .tables import RUNNING_ONLY, edges, nodes, workflows
from .workflow_reads import load_running_holder


class PlacedStep(NamedTuple):
    """A step to write, where it goes, and how many of its deps it still waits for (0: ready now)."""

    workflow_id: str
    position: int
    step: NewStep
    deps: Sequence[str]
    pending: int


def workflow_row(new: NewWorkflow, now: float) -> dict[str, Any]:
    """The ``baton_workflows`` row of a workflow just inserted: running, every step unsettled."""
    return {
        "id": new.workflow_id,
        "name": new.name,
        "state": WorkflowState.RUNNING,
        "total_steps": len(new.steps),
        "unsettled": len(new.steps),
        "created_at": now,
        "finished_at": None,
        "unique_key": new.unique_key,
        "budget_usd": new.budget_usd,
        "on_budget": new.on_budget,
    }


class InsertStatements(StoreCore):
    """Inserting workflows and steps, and growing a running workflow."""

    def insert_workflows(self, conn: Connection, batch: Sequence[NewWorkflow], now: float) -> None:
        """Write the workflows' own rows (no unique key among them) in one statement."""
        if batch:
            conn.execute(insert(workflows), [workflow_row(new, now) for new in batch])

    def insert_unique_workflow(self, conn: Connection, new: NewWorkflow, now: float) -> bool:
        """Write a workflow's row unless a running workflow holds its ``unique_key``; True if written.

        ``ON CONFLICT DO NOTHING`` on the partial unique index, repeating its
        condition so the database matches the index.
        """
        stmt = (
            self._insert_or_skip(workflows)
            .values(workflow_row(new, now))
            .on_conflict_do_nothing(index_elements=[workflows.c.unique_key], index_where=RUNNING_ONLY)
            .returning(workflows.c.id)
        )
        return conn.execute(stmt).first() is not None

    def running_holder(self, conn: Connection, unique_key: str) -> str | None:
        """The id of the running workflow that holds ``unique_key``, if any."""
        return load_running_holder(conn, unique_key)

    def insert_steps(self, conn: Connection, placed: Sequence[PlacedStep], now: float) -> None:
        """Write the steps' rows and their edges, one statement for each table."""
        node_rows: list[dict[str, Any]] = []
        edge_rows: list[dict[str, Any]] = []
        for workflow_id, position, step, deps, pending in placed:
            node_rows.append(
                {
                    "id": step.node_id,
                    "workflow_id": workflow_id,
                    "step_name": step.step_name,
                    "position": position,
                    "task": step.task,
                    "args": step.args,
                    "state": StepState.PENDING if pending else StepState.AVAILABLE,
                    "attempt": 0,
                    "deps_pending": pending,
                    "created_at": now,
                    "scheduled_at": None if pending else now,
                }
            )
            edge_rows.extend(
                {
                    "workflow_id": workflow_id,
                    "step_name": step.step_name,
                    "dep_name": dep,
                    "tolerates": step.tolerates.get(dep),
                }
                for dep in deps
            )
        if node_rows:
            conn.execute(insert(nodes), node_rows)
        if edge_rows:
            conn.execute(insert(edges), edge_rows)

    def hold_deps_of_new_steps(self, conn: Connection, workflow_id: str, names: Sequence[str]) -> dict[str, str]:
        """Lock the named existing steps new steps will depend on; return their states.

        Moving their ``dependents_version`` takes their rows: a dependency
        cannot complete between reading its state and the new edges becoming
        visible, and one that read its dependents when claimed will not trust
        that list.
        """
        if not names:
            return {}
        rows = conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name.in_(names))
            .values(dependents_version=nodes.c.dependents_version + 1)
            .returning(nodes.c.step_name, nodes.c.state)
        )
        return {name: state for name, state in rows}

    def grow_workflow(self, conn: Connection, workflow_id: str, count: int) -> int:
        """Count ``count`` more steps in the workflow, all unsettled; return its new total."""
        total = conn.execute(
            update(workflows)
            .where(workflows.c.id == workflow_id)
            .values(total_steps=workflows.c.total_steps + count, unsettled=workflows.c.unsettled + count)
            .returning(workflows.c.total_steps)
        ).scalar_one()
        return int(total)
