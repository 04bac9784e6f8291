"""Reading workflows: by id, by id prefix, at a glance, a page at a time, counted by state.

Every read here is one ``SELECT``, so it works from a web process, a script
or a shell with no consumer running. The functions taking an ``Engine`` open
a read connection of their own; the ``load_*`` functions take the caller's
``Connection`` and read what its transaction sees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, func, select, true

from ..records import WorkflowPage, WorkflowRecord, WorkflowStatus
from ..states import StepState, WorkflowState
from . import waits
from .engine import read_connection
from .tables import nodes, step_stats, workflows
from .usage import as_cost, cost_total

_HEX = "0123456789abcdef"


def workflow(engine: Engine, workflow_id: str) -> WorkflowRecord | None:
    """The workflow with this id, or ``None``."""
    with read_connection(engine) as conn:
        row = conn.execute(select(workflows).where(workflows.c.id == workflow_id)).one_or_none()
    return None if row is None else _workflow(row)


def workflows_by_id(engine: Engine, workflow_ids: list[str]) -> dict[str, WorkflowRecord]:
    """The workflows with these ids that exist, by id."""
    if not workflow_ids:
        return {}
    with read_connection(engine) as conn:
        rows = conn.execute(select(workflows).where(workflows.c.id.in_(sorted(set(workflow_ids))))).all()
    return {row.id: _workflow(row) for row in rows}


def workflow_status(engine: Engine, workflow_id: str) -> WorkflowStatus | None:
    """The workflow's progress, timing and cost in one query, or ``None``.

    One round trip, however many steps: the per-state counts are one
    filtered aggregate over the workflow's steps, the cost a scalar
    subquery over its stats rows (they cannot be joined: each would
    multiply the other's rows).
    """
    counts = (
        select(*(func.count().filter(nodes.c.state == state).label(state.value) for state in StepState))
        .where(nodes.c.workflow_id == workflow_id)
        .subquery()
    )
    cost = select(cost_total()).where(step_stats.c.workflow_id == workflow_id)
    stmt = (
        select(workflows, *counts.c, cost.scalar_subquery().label("cost_usd"))
        .select_from(workflows.join(counts, true()))
        .where(workflows.c.id == workflow_id)
    )
    with read_connection(engine) as conn:
        row = conn.execute(stmt).one_or_none()
    if row is None:
        return None
    record = _workflow(row)
    return WorkflowStatus(
        record.id,
        record.name,
        record.state,
        {state: int(row._mapping[state.value]) for state in StepState},
        record.settled_steps,
        record.total_steps,
        record.created_at,
        record.finished_at,
        (record.finished_at or time.time()) - record.created_at,
        as_cost(row.cost_usd),
    )


def workflows_by_prefix(engine: Engine, prefix: str, limit: int) -> list[WorkflowRecord]:
    """Up to ``limit`` workflows whose id starts with ``prefix`` (lower case), highest id first.

    ``LIKE 'prefix%'`` on the primary key, bounded by the range
    ``[prefix, next prefix)`` that ids (hex) sort in whatever the collation,
    so the index is used on both databases.
    """
    condition = workflows.c.id.startswith(prefix, autoescape=True)
    if all(char in _HEX for char in prefix):
        condition &= workflows.c.id >= prefix
        upper = prefix.rstrip("f")
        if upper:
            condition &= workflows.c.id < upper[:-1] + _HEX[_HEX.index(upper[-1]) + 1]
    stmt = select(workflows).where(condition).order_by(workflows.c.id.desc()).limit(limit)
    with read_connection(engine) as conn:
        return [_workflow(row) for row in conn.execute(stmt)]


@dataclass(frozen=True)
class WorkflowFilter:
    """Which workflows a page keeps (every one by default).

    ``name`` matches exactly; ``label`` matches any part of the name, in any
    case, literally (``%`` and ``_`` are not wildcards). ``before`` /
    ``after`` keep the workflows older / newer than that id, ``since`` those
    started at that time or later; ``awaiting_person`` those with a step
    waiting for an approval now.
    """

    name: str | None = None
    label: str | None = None
    state: WorkflowState | None = None
    before: str | None = None
    after: str | None = None
    since: float | None = None
    awaiting_person: bool = False

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE of the workflows it keeps."""
        conditions: list[ColumnElement[bool]] = []
        if self.name is not None:
            conditions.append(workflows.c.name == self.name)
        if self.label:
            conditions.append(func.lower(workflows.c.name).contains(self.label.lower(), autoescape=True))
        if self.state is not None:
            conditions.append(workflows.c.state == self.state)
        if self.before is not None:
            conditions.append(workflows.c.id < self.before)
        if self.after is not None:
            conditions.append(workflows.c.id > self.after)
        if self.since is not None:
            conditions.append(workflows.c.created_at >= self.since)
        if self.awaiting_person:
            conditions.append(waits.awaiting_person())
        return conditions


def workflow_page(engine: Engine, limit: int, kept: WorkflowFilter) -> WorkflowPage:
    """The workflows ``kept`` keeps, newest first, ``limit`` at a time, keyset-paged on the id.

    One more row than the page is read, to tell whether there is a next page.
    """
    stmt = select(workflows).where(*kept.conditions()).order_by(workflows.c.id.desc()).limit(limit + 1)
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).all()
    page = [_workflow(row) for row in rows[:limit]]
    return WorkflowPage(page, page[-1].id if len(rows) > limit else None)


def count_workflows_by_state(engine: Engine, since: float | None = None) -> dict[str, int]:
    """How many workflows are in each state (of those started at ``since`` or later); states with none are absent."""
    stmt = select(workflows.c.state, func.count()).group_by(workflows.c.state)
    if since is not None:
        stmt = stmt.where(workflows.c.created_at >= since)
    with read_connection(engine) as conn:
        return {state: count for state, count in conn.execute(stmt)}


def load_running_holder(conn: Connection, unique_key: str) -> str | None:
    """The id of the running workflow that holds ``unique_key``, if any."""
    return conn.execute(
        select(workflows.c.id).where(workflows.c.unique_key == unique_key, workflows.c.state == WorkflowState.RUNNING)
    ).scalar_one_or_none()


def load_label(conn: Connection, workflow_id: str) -> str:
    """A workflow's name; empty when it no longer exists (pruned)."""
    return conn.execute(select(workflows.c.name).where(workflows.c.id == workflow_id)).scalar_one_or_none() or ""


def _workflow(row: Row[Any]) -> WorkflowRecord:
    return WorkflowRecord(
        row.id,
        row.name,
        WorkflowState(row.state),
        row.total_steps,
        row.unsettled,
        row.created_at,
        row.finished_at,
        row.unique_key,
        row.retried,
        row.budget_usd,
        row.on_budget,
    )
