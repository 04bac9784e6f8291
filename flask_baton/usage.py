"""LLM usage: recording what each attempt of a step spent, and adding it up.

``job.record_usage(...)`` writes one ``baton_step_stats`` row at once, in
its own transaction: an attempt that fails afterwards keeps its usage (the
provider billed it), and a step whose result is already stored never runs,
so records nothing new.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import ArgumentError
from .pricing import CostFunction, PriceTable, cost_usd
from .records import ModelCall, Usage
from .store import usage as store

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .store import Store

__all__ = ["Stats", "Usage", "record_usage"]


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


def record_usage(
    db: Store,
    pricing: PriceTable | CostFunction,
    call: ModelCall,
    *,
    workflow_id: str,
    node_id: str,
    step_name: str,
    attempt: int,
) -> float | None:
    """Store one call's usage; return its cost (``None`` if unpriced)."""
    model, latency = call.model, call.latency
    if not isinstance(model, str) or not model:
        raise ArgumentError(f"model must be a non-empty string, got {model!r}")
    counts = {
        name: _count(name, getattr(call, name))
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cache_write_tokens")
    }
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
        raise ArgumentError(f"latency must be a number of seconds >= 0, got {latency!r}")
    cost = cost_usd(pricing, model, **counts)
    store.insert_usage(
        db,
        {
            "workflow_id": workflow_id,
            "node_id": node_id,
            "step_name": step_name,
            "attempt": attempt,
            "model": model,
            **counts,
            "cost_usd": cost,
            "latency": latency,
            "created_at": time.time(),
        },
    )
    return cost


class Stats:
    """Usage totals of one app (``baton.stats``): per step, workflow, model, period.

    Each total is a ``Usage``; its ``cost_usd`` is ``None`` when no call
    counted had a known price (see ``Usage``).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def for_workflow(self, workflow_id: str) -> Usage:
        """Everything one workflow's steps spent, over all attempts."""
        return store.total(self._engine, workflow_id=workflow_id)

    def by_step(self, workflow_id: str) -> dict[str, Usage]:
        """One workflow's usage per step name."""
        return store.grouped(self._engine, "step_name", workflow_id=workflow_id)

    def by_model(self, since: float | None = None, until: float | None = None) -> dict[str, Usage]:
        """Usage per model, optionally within ``[since, until)`` (epoch seconds)."""
        return store.grouped(self._engine, "model", since=since, until=until)

    def total(self, since: float | None = None, until: float | None = None) -> Usage:
        """All usage, optionally within ``[since, until)`` (epoch seconds)."""
        return store.total(self._engine, since=since, until=until)
