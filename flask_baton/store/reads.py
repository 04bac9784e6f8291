"""The read models' statements: workflows, steps, status, pages, and the loaders transitions use.

Every read here is one ``SELECT`` (``steps`` is two, edges then nodes, in one
connection), so it works from a web process, a script or a shell with no
consumer running. The functions taking an ``Engine`` open a read connection
of their own; the ``load_*`` functions take the caller's ``Connection`` and
read what its transaction sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, func, select, true

from ..dag import StepGraph
from ..records import (
    AttemptRecord,
    Input,
    StepOutline,
    StepRecord,
    WorkflowPage,
    WorkflowRecord,
    WorkflowStatus,
)
from ..records.runs import row_run, step_runs
from ..records.workflows import decode_result
from ..states import AttemptOutcome, CancelledBy, StepState, WorkflowState
from . import waits
from .engine import read_connection
from .tables import attempts, edge_to_dep, edges, nodes, step_stats, workflows
from .usage import as_cost, cost_total

_HEX = "0123456789abcdef"
_STEP_STATES = {state.value: state for state in StepState}
_NO_POLICY: Mapping[str, str] = MappingProxyType({})


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


#: A name filter longer than this reads every step and filters in Python (bound parameters are limited).
MAX_NAMED_STEPS = 500


def steps(engine: Engine, workflow_id: str, names: Collection[str] | None = None) -> list[StepRecord]:
    """Every step of the workflow (or those named), in insertion order."""
    stmt = select(nodes).where(nodes.c.workflow_id == workflow_id).order_by(nodes.c.position)
    few = names is not None and len(names) <= MAX_NAMED_STEPS
    if few:
        stmt = stmt.where(nodes.c.step_name.in_(sorted(names or ())))
    with read_connection(engine) as conn:
        deps, tolerates = _edges(conn, workflow_id, names if few else None)
        rows = conn.execute(stmt).all()
    if names is not None and not few:
        wanted = set(names)
        rows = [row for row in rows if row.step_name in wanted]
    return [_step(row, deps, tolerates) for row in rows]


def step_outlines(engine: Engine, workflow_id: str, previous: Sequence[StepOutline] | None = None) -> list[StepOutline]:
    """Every step of the workflow without its result, args and error, in insertion order.

    Two ``SELECT``s of small columns (nodes, then edges), so a drawing of
    10,000 steps reads no payload it does not show. The edges are taken from
    ``previous`` (an earlier outline) when it has the same steps: stored
    steps never gain dependencies, so only new steps bring new edges.
    """
    stmt = (
        select(
            nodes.c.step_name,
            nodes.c.task,
            nodes.c.state,
            nodes.c.attempt,
            nodes.c.scheduled_at,
            nodes.c.started_at,
            nodes.c.finished_at,
            nodes.c.cancelled_by,
        )
        .where(nodes.c.workflow_id == workflow_id)
        .order_by(nodes.c.position)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).all()
        deps: Mapping[str, Sequence[str]]
        tolerates: Mapping[str, Mapping[str, str]]
        if previous is not None and [s.step_name for s in previous] == [row[0] for row in rows]:
            deps = {s.step_name: s.deps for s in previous}
            tolerates = {s.step_name: s.tolerates for s in previous}
        else:
            deps, tolerates = _edges(conn, workflow_id)
    return [
        StepOutline(
            name,
            task,
            _STEP_STATES[state],
            attempt,
            tuple(deps.get(name, ())),
            scheduled_at,
            started_at,
            finished_at,
            tolerates.get(name, _NO_POLICY),
            _cancelled_by(state, cancelled_by),
        )
        for name, task, state, attempt, scheduled_at, started_at, finished_at, cancelled_by in rows
    ]


def step(engine: Engine, workflow_id: str, step_name: str) -> StepRecord | None:
    """One step of the workflow, or ``None``; reads its row and its own edges only."""
    with read_connection(engine) as conn:
        row = conn.execute(
            select(nodes).where(nodes.c.workflow_id == workflow_id, nodes.c.step_name == step_name)
        ).one_or_none()
        if row is None:
            return None
        deps, tolerates = _edges(conn, workflow_id, [step_name])
    return _step(row, deps, tolerates)


def _step(row: Row[Any], deps: dict[str, list[str]], tolerates: dict[str, dict[str, str]]) -> StepRecord:
    return StepRecord(
        row.id,
        row.workflow_id,
        row.step_name,
        row.task,
        StepState(row.state),
        row.attempt,
        tuple(deps.get(row.step_name, ())),
        decode_result(row.result),
        row.result is not None,
        row.error,
        row.worker,
        row.created_at,
        row.scheduled_at,
        row.started_at,
        row.finished_at,
        json.loads(row.args),
        tolerates.get(row.step_name, {}),
        _cancelled_by(row.state, row.cancelled_by),
        row.waiting_for if row.state == StepState.SNOOZED else None,
    )


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


def workflow_page(
    engine: Engine,
    *,
    limit: int,
    name: str | None = None,
    label: str | None = None,
    state: WorkflowState | None = None,
    before: str | None = None,
    after: str | None = None,
    since: float | None = None,
    awaiting_person: bool = False,
) -> WorkflowPage:
    """Workflows newest first, ``limit`` at a time, keyset-paged on the id.

    ``name`` matches exactly; ``label`` matches any part of the name, in any
    case, literally (``%`` and ``_`` are not wildcards). ``before`` / ``after``
    keep the workflows older / newer than that id, ``since`` those started
    at that time or later; ``awaiting_person`` those with a step waiting
    for an approval now. One more row than the page is read, to tell
    whether there is a next page.
    """
    conditions: list[ColumnElement[bool]] = []
    if name is not None:
        conditions.append(workflows.c.name == name)
    if label:
        conditions.append(func.lower(workflows.c.name).contains(label.lower(), autoescape=True))
    if state is not None:
        conditions.append(workflows.c.state == state)
    if before is not None:
        conditions.append(workflows.c.id < before)
    if after is not None:
        conditions.append(workflows.c.id > after)
    if since is not None:
        conditions.append(workflows.c.created_at >= since)
    if awaiting_person:
        conditions.append(waits.awaiting_person())
    stmt = select(workflows).where(*conditions).order_by(workflows.c.id.desc()).limit(limit + 1)
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


def load_inputs(conn: Connection, workflow_id: str, step_name: str) -> dict[str, Input]:
    """A step's dependencies, their states and results, in one query."""
    dep = nodes.alias("dep")
    rows = conn.execute(
        select(edges.c.dep_name, dep.c.state, dep.c.result)
        .select_from(edges.join(dep, edge_to_dep(dep)))
        .where(edges.c.workflow_id == workflow_id, edges.c.step_name == step_name)
        .order_by(edges.c.dep_name)
    )
    return {name: Input(StepState(state), decode_result(raw)) for name, state, raw in rows}


def load_graph(conn: Connection, workflow_id: str) -> StepGraph:
    """A workflow's steps, states and edge policies as ``conn``'s transaction sees them."""
    deps, tolerates = _edges(conn, workflow_id)
    states = dict(
        conn.execute(
            select(nodes.c.step_name, nodes.c.state)
            .where(nodes.c.workflow_id == workflow_id)
            .order_by(nodes.c.position)
        ).all()
    )
    return StepGraph(
        states,
        {name: {dep: tolerates.get(name, {}).get(dep) for dep in deps.get(name, ())} for name in states},
    )


def load_step_names(conn: Connection, workflow_id: str) -> set[str]:
    """Names of every step stored for a workflow."""
    return set(conn.execute(select(nodes.c.step_name).where(nodes.c.workflow_id == workflow_id)).scalars())


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


def _cancelled_by(state: str, stored: str | None) -> CancelledBy | None:
    """Who cancelled a step: NULL on a cancelled step means its dependency's failure did."""
    if state != StepState.CANCELLED:
        return None
    return CancelledBy.DEPENDENCY if stored is None else CancelledBy(stored)


def _edges(
    conn: Connection, workflow_id: str, names: Collection[str] | None = None
) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Each step's deps (of the named steps only, if given), and the policy of those edges that have one."""
    deps: dict[str, list[str]] = {}
    tolerates: dict[str, dict[str, str]] = {}
    stmt = select(edges.c.step_name, edges.c.dep_name, edges.c.tolerates).where(edges.c.workflow_id == workflow_id)
    if names is not None:
        stmt = stmt.where(edges.c.step_name.in_(sorted(names)))
    for name, dep_name, policy in conn.execute(stmt):
        deps.setdefault(name, []).append(dep_name)
        if policy is not None:
            tolerates.setdefault(name, {})[dep_name] = policy
    return deps, tolerates
