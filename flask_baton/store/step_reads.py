"""Reading steps: in full, as an outline, one at a time, and the loaders a transition calls.

Every read here is one ``SELECT`` (``steps`` is two, edges then nodes, in one
connection), so it works from a web process, a script or a shell with no
consumer running. The functions taking an ``Engine`` open a read connection
of their own; the ``load_*`` functions take the caller's ``Connection`` and
read what its transaction sees.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from ..dag import StepGraph
from ..records import Input, StepOutline, StepRecord
from ..records.workflows import decode_result
from ..states import CancelledBy, StepState
from .engine import read_connection
from .tables import edge_to_dep, edges, nodes

_STEP_STATES = {state.value: state for state in StepState}
_NO_POLICY: Mapping[str, str] = MappingProxyType({})


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
