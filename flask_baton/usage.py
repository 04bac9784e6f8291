"""LLM usage: recording what each attempt of a step spent, and adding it up.

``job.record_usage(...)`` writes one ``baton_step_stats`` row at once, in
its own transaction: an attempt that fails afterwards keeps its usage (the
provider billed it), and a step whose result is already stored never runs,
so records nothing new.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select

from .store import Store
from .store.engine import read_connection
from .pricing import CostFunction, PriceTable, cost_usd
from .store.tables import step_stats
from .errors import ArgumentError


@dataclass(frozen=True)
class Usage:
    """Totals of some calls: token counts and dollars."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0  # calls whose model had no price: not in cost_usd


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


def record_usage(
    store: Store,
    pricing: PriceTable | CostFunction,
    *,
    workflow_id: str,
    node_id: str,
    step_name: str,
    attempt: int,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    latency: float | None = None,
) -> float | None:
    """Store one call's usage; return its cost (``None`` if unpriced)."""
    if not isinstance(model, str) or not model:
        raise ArgumentError(f"model must be a non-empty string, got {model!r}")
    counts = (
        _count("input_tokens", input_tokens),
        _count("output_tokens", output_tokens),
        _count("cached_input_tokens", cached_input_tokens),
    )
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0):
        raise ArgumentError(f"latency must be a number of seconds >= 0, got {latency!r}")
    cost = cost_usd(pricing, model, *counts)
    with store.write() as conn:
        conn.execute(insert(step_stats), {
            "workflow_id": workflow_id, "node_id": node_id, "step_name": step_name, "attempt": attempt,
            "model": model, "input_tokens": counts[0], "output_tokens": counts[1],
            "cached_input_tokens": counts[2], "cost_usd": cost, "latency": latency, "created_at": time.time(),
        })
    return cost


class Stats:
    """Usage totals of one app (``baton.stats``): per step, workflow, model, period."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def for_workflow(self, workflow_id: str) -> Usage:
        """Everything one workflow's steps spent, over all attempts."""
        return self._totals(step_stats.c.workflow_id == workflow_id).get(None, Usage())

    def by_step(self, workflow_id: str) -> dict[str, Usage]:
        """One workflow's usage per step name."""
        return self._totals(step_stats.c.workflow_id == workflow_id, group=step_stats.c.step_name)

    def by_model(self, since: float | None = None, until: float | None = None) -> dict[str, Usage]:
        """Usage per model, optionally within ``[since, until)`` (epoch seconds)."""
        return self._totals(*_window(since, until), group=step_stats.c.model)

    def total(self, since: float | None = None, until: float | None = None) -> Usage:
        """All usage, optionally within ``[since, until)`` (epoch seconds)."""
        return self._totals(*_window(since, until)).get(None, Usage())

    def _totals(self, *where: Any, group: Any = None) -> dict[Any, Usage]:
        columns = [
            func.count(),
            func.coalesce(func.sum(step_stats.c.input_tokens), 0),
            func.coalesce(func.sum(step_stats.c.output_tokens), 0),
            func.coalesce(func.sum(step_stats.c.cached_input_tokens), 0),
            func.coalesce(func.sum(step_stats.c.cost_usd), 0.0),
            func.count() - func.count(step_stats.c.cost_usd),
        ]
        stmt = select(*columns) if group is None else select(group, *columns).group_by(group)
        stmt = stmt.where(*where)
        with read_connection(self._engine) as conn:
            rows = conn.execute(stmt).all()
        if group is None:
            calls = rows[0][0]
            return {None: _usage(rows[0])} if calls else {}
        return {row[0]: _usage(row[1:]) for row in rows}


def _usage(row: Any) -> Usage:
    calls, inputs, outputs, cached, cost, unpriced = row
    return Usage(int(calls), int(inputs), int(outputs), int(cached), float(cost), int(unpriced))


def _window(since: float | None, until: float | None) -> list[Any]:
    where = []
    if since is not None:
        where.append(step_stats.c.created_at >= since)
    if until is not None:
        where.append(step_stats.c.created_at < until)
    return where
