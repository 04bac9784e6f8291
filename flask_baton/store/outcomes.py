"""The facts a workflow's outcome sentence is written from (``headline.OutcomeFacts``), for many workflows at once.

Two queries whatever the number of workflows, both over their discarded and
cancelled steps only: counts by cause, and the first few names of the
discarded ones. A discarded step *fails* its workflow unless every edge out
of it tolerates the failure, the test ``hotpath.FAILING`` makes when a
workflow ends (written from the same ``hotpath.satisfied``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, case, exists, func, literal_column, not_, or_, select

from ..headline import NAMED, OutcomeFacts
from ..states import FAILED, CancelledBy, StepState
from .engine import read_connection
from .hotpath import satisfied
from .tables import edges, nodes


def _fails_workflow() -> ColumnElement[Any]:
    """1 for a discarded step that fails its workflow, 0 for one every dependent tolerates (and other steps)."""
    out = edges.alias("e")
    from_step = (out.c.workflow_id == nodes.c.workflow_id) & (out.c.dep_name == nodes.c.step_name)
    tolerated: ColumnElement[bool] = literal_column(satisfied(f"{nodes.name}.state", "e.tolerates"))  # it failed
    fails = or_(not_(exists().where(from_step)), exists().where(from_step, not_(tolerated)))
    return case((nodes.c.state == StepState.DISCARDED, case((fails, 1), else_=0)), else_=0).label("fails")


def outcome_facts(engine: Engine, workflow_ids: Sequence[str]) -> dict[str, OutcomeFacts]:
    """Each workflow's ``OutcomeFacts``; a workflow without discarded or cancelled steps is left out."""
    if not workflow_ids:
        return {}
    steps = (
        select(
            nodes.c.workflow_id,
            nodes.c.step_name,
            nodes.c.position,
            nodes.c.state,
            nodes.c.cancelled_by,
            nodes.c.finished_at,
            nodes.c.error,
            _fails_workflow(),
        )
        .where(nodes.c.workflow_id.in_(sorted(set(workflow_ids))), nodes.c.state.in_(FAILED))
        .subquery()
    )
    counts = select(
        steps.c.workflow_id,
        steps.c.state,
        steps.c.cancelled_by,
        steps.c.fails,
        func.count(),
        func.max(steps.c.finished_at),
        # The budget's reason: its steps' errors (the others' are tracebacks, not read).
        func.max(case((steps.c.cancelled_by == CancelledBy.BUDGET, steps.c.error))),
    ).group_by(steps.c.workflow_id, steps.c.state, steps.c.cancelled_by, steps.c.fails)
    discarded = (
        select(
            steps.c.workflow_id,
            steps.c.step_name,
            steps.c.fails,
            func.row_number()
            .over(partition_by=(steps.c.workflow_id, steps.c.fails), order_by=steps.c.position)
            .label("nth"),
        )
        .where(steps.c.state == StepState.DISCARDED)
        .subquery()
    )
    first = (
        select(discarded.c.workflow_id, discarded.c.step_name, discarded.c.fails)
        .where(discarded.c.nth <= NAMED)
        .order_by(discarded.c.workflow_id, discarded.c.fails, discarded.c.nth)
    )
    with read_connection(engine) as conn:
        grouped = conn.execute(counts).all()
        named = conn.execute(first).all()
    facts: dict[str, dict[str, Any]] = {}
    for workflow_id, state, cancelled_by, fails, count, last, budget_reason in grouped:
        found = facts.setdefault(workflow_id, {})
        if state == StepState.DISCARDED:
            key = "failed" if fails else "tolerated"
        elif cancelled_by == CancelledBy.USER:
            key = "cancelled_by_user"
            found["cancelled_at"] = last
        elif cancelled_by == CancelledBy.BUDGET:
            key = "cancelled_by_budget"
            found["budget_reason"] = budget_reason
        else:
            key = "consequences"
        found[key] = found.get(key, 0) + count
    for workflow_id, step_name, fails in named:
        key = "failed_names" if fails else "tolerated_names"
        facts[workflow_id][key] = (*facts[workflow_id].get(key, ()), step_name)
    return {workflow_id: OutcomeFacts(**found) for workflow_id, found in facts.items()}
