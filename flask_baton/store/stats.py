"""The overview's reads: activity over a time range, the consumers alive, the steps running.

Every aggregate is counted by the database, per bucket of time and per
duration class (``flask_baton.timeseries``), so a read returns a few hundred
rows at most, however long the history, and Python never sees a row per step.

Finding a range's steps without an index on their end: a step that ended at
``t`` belongs to a workflow still running or one that ended at ``t`` or
later, so the range's steps are those of the workflows running or ended
since its start (``ix_baton_workflows_finished`` and the state index), read
through their own index (``ux_baton_nodes_workflow_step``). The hot path
pays nothing for the overview: no index on ``baton_nodes`` was added for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Integer,
    Select,
    case,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..records import Activity, ConsumerRecord, RunningStep, StepDurations
from ..states import StepState, WorkflowState
from ..timeseries import DURATION_EDGES
from .engine import read_connection
from .tables import consumers, nodes, step_stats, workflows

#: Steps whose last run ended in a range, by how it ended.
ENDED = (StepState.COMPLETED, StepState.DISCARDED)


class bucket_index(FunctionElement[int]):
    """``floor((moment - start) / width)``: the bucket of ``timeseries.bucket_of``, for moments >= start."""

    type = Integer()
    inherit_cache = True


def _quotient(element: bucket_index, compiler: SQLCompiler, **kw: Any) -> str:
    moment, start, width = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({moment} - {start}) / {width}"


@compiles(bucket_index, "sqlite")
def _bucket_sqlite(element: bucket_index, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's CAST truncates, which is floor for the moments >= start counted here
    # (its floor() exists only when built with the math functions).
    return f"CAST({_quotient(element, compiler, **kw)} AS INTEGER)"


@compiles(bucket_index, "postgresql")
def _bucket_postgresql(element: bucket_index, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL's CAST to an integer rounds: floor first.
    return f"CAST(FLOOR({_quotient(element, compiler, **kw)}) AS INTEGER)"


def duration_class(seconds: ColumnElement[float], low: int = 0, high: int = len(DURATION_EDGES)) -> ColumnElement[int]:
    """``timeseries.duration_class`` in SQL: a binary search over the edges, seven comparisons a row.

    Answers in ``[low, high]``, for durations at or above edge ``low - 1`` and under edge ``high``.
    """
    if low == high:
        return literal_column(str(low), Integer)
    middle = (low + high) // 2
    edge = literal_column(repr(DURATION_EDGES[middle]), Float)
    return case(
        (seconds < edge, duration_class(seconds, low, middle)),
        else_=duration_class(seconds, middle + 1, high),
    )


def activity(engine: Engine, start: float, width: float) -> Activity:
    """Workflows, steps, durations and cost since ``start``, in buckets of ``width`` seconds.

    Four aggregate reads in one connection; the steps are read once, grouped
    by bucket, name, outcome and duration class, and folded here.
    """
    with read_connection(engine) as conn:
        started = _counts(conn, _by_bucket(workflows.c.created_at, start, width))
        ended = _counts(conn, _by_bucket(workflows.c.finished_at, start, width, workflows.c.state))
        steps, durations = _steps(conn, start, width)
        cost = {index: float(total) for index, total in conn.execute(_cost(start, width)) if total is not None}
    return Activity(start, width, started, ended, steps, durations, cost)


def _by_bucket(moment: Any, start: float, width: float, *by: Any, measure: Any = None) -> Select[*tuple[Any, ...]]:
    """Rows of (bucket, ``by``..., ``measure``: how many rows by default) since ``start``."""
    bucket = bucket_index(moment, start, width)
    measure = func.count() if measure is None else measure
    return select(bucket, *by, measure).where(moment >= start).group_by(bucket, *by)


def _counts(conn: Connection, stmt: Select[*tuple[Any, ...]]) -> dict[Any, int]:
    """Rows of (key..., count) as a mapping: one key as itself, several as a tuple."""
    counts: dict[Any, int] = {}
    for *key, count in conn.execute(stmt):
        counts[key[0] if len(key) == 1 else tuple(key)] = int(count)
    return counts


def _recent_workflows(start: float) -> Select[*tuple[Any, ...]]:
    """The workflows whose steps may have ended since ``start``: those running, or ended since."""
    running = workflows.c.state == WorkflowState.RUNNING
    return select(workflows.c.id).where(or_(workflows.c.finished_at >= start, running))


def _steps(conn: Connection, start: float, width: float) -> tuple[dict[tuple[int, str], int], dict[str, StepDurations]]:
    """Steps whose last run ended since ``start``: per (bucket, state), and per name with their durations."""
    runs = (
        select(
            bucket_index(nodes.c.finished_at, start, width).label("bucket"),
            nodes.c.step_name,
            nodes.c.state,
            (nodes.c.finished_at - nodes.c.started_at).label("took"),
        )
        .where(
            nodes.c.workflow_id.in_(_recent_workflows(start)),
            nodes.c.finished_at >= start,
            nodes.c.state.in_(ENDED),
            nodes.c.started_at.is_not(None),
        )
        .subquery()
    )
    klass = duration_class(runs.c.took)
    keys = (runs.c.bucket, runs.c.step_name, runs.c.state, klass)
    stmt = select(*keys, func.count(), func.min(runs.c.took), func.max(runs.c.took)).group_by(*keys)
    ended: dict[tuple[int, str], int] = {}
    parts: dict[str, tuple[dict[str, int], dict[int, int], float, float]] = {}
    for bucket, name, state, index, count, shortest, longest in conn.execute(stmt):
        ended[bucket, state] = ended.get((bucket, state), 0) + count
        by_state, classes, low, high = parts.setdefault(name, ({}, {}, float("inf"), float("-inf")))
        by_state[state] = by_state.get(state, 0) + count
        classes[index] = classes.get(index, 0) + count
        parts[name] = (by_state, classes, min(low, shortest), max(high, longest))
    durations = {
        name: StepDurations(
            by_state.get(StepState.COMPLETED, 0), by_state.get(StepState.DISCARDED, 0), classes, low, high
        )
        for name, (by_state, classes, low, high) in sorted(parts.items())
    }
    return ended, durations


def _cost(start: float, width: float) -> Select[*tuple[Any, ...]]:
    return _by_bucket(step_stats.c.created_at, start, width, measure=func.sum(step_stats.c.cost_usd))


def consumers_seen(engine: Engine, since: float) -> list[ConsumerRecord]:
    """Consumers whose heartbeat was stamped at or after ``since``, by worker, each with its queues."""
    stmt = (
        select(consumers.c.worker, consumers.c.queue, consumers.c.started_at, consumers.c.seen_at)
        .where(consumers.c.seen_at >= since)
        .order_by(consumers.c.worker, consumers.c.queue)
    )
    found: dict[str, ConsumerRecord] = {}
    with read_connection(engine) as conn:
        for worker, queue, started, seen in conn.execute(stmt):
            known = found.get(worker)
            if known is None:
                found[worker] = ConsumerRecord(worker, (queue,), started, seen)
            else:
                found[worker] = ConsumerRecord(
                    worker, (*known.queues, queue), min(known.started_at, started), max(known.seen_at, seen)
                )
    return list(found.values())


def running_steps(engine: Engine, limit: int) -> list[RunningStep]:
    """Up to ``limit`` steps executing now, longest running first, with their workflows' names."""
    stmt = (
        select(
            nodes.c.workflow_id,
            workflows.c.name,
            nodes.c.step_name,
            nodes.c.task,
            nodes.c.attempt,
            nodes.c.worker,
            nodes.c.started_at,
            nodes.c.heartbeat_at,
        )
        .join(workflows, workflows.c.id == nodes.c.workflow_id)
        .where(nodes.c.state == StepState.EXECUTING)
        .order_by(nodes.c.started_at, nodes.c.id)
        .limit(limit)
    )
    with read_connection(engine) as conn:
        return [RunningStep(*row) for row in conn.execute(stmt)]
