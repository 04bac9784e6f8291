"""Statements on ``baton_step_stats`` and ``baton_debug_logs``: usage rows, their totals, captures.

Each write is one short transaction of its own (one INSERT), so an attempt
that fails afterwards keeps what it recorded. Each total is one aggregate
query. Costs add up by one rule everywhere (``Usage``): SQL's ``SUM`` over
the priced rows, ``NULL`` (so ``None``) when no row had a price.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, func, insert, select

from ..records import ContextCapture, Usage
from .core import StoreCore
from .engine import read_connection
from .tables import debug_logs, step_stats

#: What ``grouped`` can total usage by.
Grouping = Literal["step_name", "model"]


def cost_total() -> ColumnElement[Any]:
    """The summed cost of the rows aggregated: ``NULL`` when none of them had a price."""
    return func.sum(step_stats.c.cost_usd)


def as_cost(total: Any) -> float | None:
    """A ``cost_total()`` value as ``Usage.cost_usd`` reports it."""
    return None if total is None else float(total)


def insert_usage(db: StoreCore, row: dict[str, Any]) -> None:
    """Store one model call's usage (one ``baton_step_stats`` row) in a transaction of its own."""
    with db.write() as conn:
        conn.execute(insert(step_stats), row)


def insert_capture(db: StoreCore, row: dict[str, Any]) -> None:
    """Store one model call's prompt and response (one ``baton_debug_logs`` row) in a transaction of its own."""
    with db.write() as conn:
        conn.execute(insert(debug_logs), row)


def captures(engine: Engine, workflow_id: str, step_name: str, since: float | None = None) -> list[ContextCapture]:
    """A step's captured contexts, oldest first (those made at or after ``since``)."""
    stmt = select(debug_logs).where(debug_logs.c.workflow_id == workflow_id, debug_logs.c.step_name == step_name)
    if since is not None:
        stmt = stmt.where(debug_logs.c.created_at >= since)
    with read_connection(engine) as conn:
        rows = conn.execute(stmt.order_by(debug_logs.c.created_at, debug_logs.c.id)).all()
    return [
        ContextCapture(
            r.workflow_id,
            r.node_id,
            r.step_name,
            r.attempt,
            r.messages or "null",
            r.response or "null",
            bool(r.truncated),
            r.created_at,
        )
        for r in rows
    ]


def total(
    engine: Engine, *, workflow_id: str | None = None, since: float | None = None, until: float | None = None
) -> Usage:
    """Usage of every call that matches, as one ``Usage`` (all zeros and no cost when none does)."""
    with read_connection(engine) as conn:
        row = conn.execute(select(*_sums()).where(*_where(workflow_id, since, until))).one()
    return _usage(row)


def grouped(
    engine: Engine,
    by: Grouping,
    *,
    workflow_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Usage]:
    """Usage of the calls that match per step name or model; groups with no call are absent."""
    column = step_stats.c[by]
    stmt = select(column, *_sums()).where(*_where(workflow_id, since, until)).group_by(column)
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).all()
    return {row[0]: _usage(row[1:]) for row in rows}


def workflow_costs(engine: Engine, workflow_ids: Iterable[str]) -> dict[str, float]:
    """Total cost per workflow, for the workflows with at least one priced call (the rest: ``None``)."""
    ids = sorted(set(workflow_ids))
    if not ids:
        return {}
    stmt = (
        select(step_stats.c.workflow_id, cost_total())
        .where(step_stats.c.workflow_id.in_(ids), step_stats.c.cost_usd.is_not(None))
        .group_by(step_stats.c.workflow_id)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).all()
    return {workflow_id: cost for workflow_id, raw in rows if (cost := as_cost(raw)) is not None}


def _sums() -> list[ColumnElement[Any]]:
    """The aggregates ``_usage`` reads, in ``Usage``'s field order."""
    c = step_stats.c

    def summed(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(column), 0)

    return [
        func.count(),
        summed(c.input_tokens),
        summed(c.output_tokens),
        summed(c.cached_input_tokens),
        cost_total(),
        func.count() - func.count(c.cost_usd),
        summed(c.reasoning_tokens),
        summed(c.cache_write_tokens),
    ]


def _usage(row: Sequence[Any]) -> Usage:
    calls, inputs, outputs, cached, cost, unpriced, reasoning, cache_writes = row
    return Usage(
        int(calls),
        int(inputs),
        int(outputs),
        int(cached),
        as_cost(cost),
        int(unpriced),
        int(reasoning),
        int(cache_writes),
    )


def _where(workflow_id: str | None, since: float | None, until: float | None) -> list[ColumnElement[bool]]:
    where = []
    if workflow_id is not None:
        where.append(step_stats.c.workflow_id == workflow_id)
    if since is not None:
        where.append(step_stats.c.created_at >= since)
    if until is not None:
        where.append(step_stats.c.created_at < until)
    return where
