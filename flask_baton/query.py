"""Reading workflows and steps: the records views, scripts and the CLI use.

All reads are plain ``SELECT``s on flask_baton's tables, so they work from a
web process, a script or a shell with no consumer running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, true

from .errors import AmbiguousWorkflowIdError, WorkflowNotFoundError
from .states import SETTLED, StepState, WorkflowState
from .store.engine import read_connection
from .store.tables import edge_to_dep, edges, nodes, step_stats, workflows
from .errors import ArgumentError

#: Most workflows an ambiguous id prefix names in its error.
PREFIX_MATCHES = 10
_HEX = "0123456789abcdef"


def decode_result(raw: str | None) -> Any:
    """Turn a stored result back into its value."""
    return None if raw is None else json.loads(raw)


@dataclass(frozen=True)
class WorkflowRecord:
    """One workflow as stored."""

    id: str
    name: str
    state: WorkflowState
    total_steps: int
    unsettled_steps: int
    created_at: float
    finished_at: float | None
    unique_key: str | None = None

    @property
    def settled_steps(self) -> int:
        """Steps that are completed, discarded or cancelled."""
        return self.total_steps - self.unsettled_steps

    @property
    def label(self) -> str:
        """The workflow's name, as events and the dashboard call it."""
        return self.name


@dataclass(frozen=True)
class StepRecord:
    """One step of a workflow as stored (one row of ``baton_nodes``)."""

    id: str
    workflow_id: str
    step_name: str
    task: str
    state: StepState
    attempt: int
    deps: tuple[str, ...]
    result: Any
    has_result: bool
    error: str | None
    worker: str | None
    created_at: float
    scheduled_at: float | None
    started_at: float | None
    finished_at: float | None
    args: Mapping[str, Any] = field(default_factory=dict)
    #: The failure each dep's edge lets through (``Dep.tolerates``), for deps that have a policy.
    tolerates: Mapping[str, str] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """True once the step will not change again."""
        return self.state in SETTLED


@dataclass(frozen=True)
class WorkflowStatus:
    """A workflow at a glance (``baton.status``): progress, timing, outcome, cost."""

    id: str
    name: str
    state: WorkflowState
    counts: dict[StepState, int]  # every step state, 0 when no step is in it
    settled_steps: int
    total_steps: int
    created_at: float
    finished_at: float | None
    duration: float  # seconds from creation to the end, or to the read while running
    cost_usd: float | None  # None when no model call of the workflow has a known price

    @property
    def started(self) -> float:
        """When the workflow was inserted (its steps may start later)."""
        return self.created_at

    @property
    def outcome(self) -> WorkflowState:
        """The workflow's state: ``running`` until it finishes, then how it ended."""
        return self.state


@dataclass(frozen=True)
class StepUsage:
    """What a step's model calls used, over all its attempts (``baton_step_stats``)."""

    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float | None  # None when no call had a known price

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class WorkflowPage:
    """One page of ``list_workflows``; pass ``next_before`` for the next page."""

    workflows: list[WorkflowRecord]
    next_before: str | None


def _workflow(row: Any) -> WorkflowRecord:
    return WorkflowRecord(
        row.id, row.name, WorkflowState(row.state), row.total_steps, row.unsettled,
        row.created_at, row.finished_at, row.unique_key,
    )


class Query:
    """Read-only access to one app's workflows (``baton.query``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow with this id, or ``None``."""
        with read_connection(self._engine) as conn:
            row = conn.execute(select(workflows).where(workflows.c.id == workflow_id)).one_or_none()
        return None if row is None else _workflow(row)

    def get_workflow_jobs(self, workflow_id: str) -> list[StepRecord]:
        """Every step of the workflow, in insertion order."""
        with read_connection(self._engine) as conn:
            deps, tolerates = _edges(conn, workflow_id)
            rows = conn.execute(
                select(nodes).where(nodes.c.workflow_id == workflow_id).order_by(nodes.c.position)
            ).all()
        return [
            StepRecord(
                row.id, row.workflow_id, row.step_name, row.task, StepState(row.state), row.attempt,
                tuple(deps.get(row.step_name, ())), decode_result(row.result), row.result is not None,
                row.error, row.worker, row.created_at, row.scheduled_at, row.started_at, row.finished_at,
                json.loads(row.args), tolerates.get(row.step_name, {}),
            )
            for row in rows
        ]

    def workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
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
        cost = select(func.sum(step_stats.c.cost_usd)).where(step_stats.c.workflow_id == workflow_id)
        stmt = (
            select(workflows, *counts.c, cost.scalar_subquery().label("cost_usd"))
            .select_from(workflows.join(counts, true()))
            .where(workflows.c.id == workflow_id)
        )
        with read_connection(self._engine) as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        record = _workflow(row)
        return WorkflowStatus(
            record.id, record.name, record.state,
            {state: int(row._mapping[state.value]) for state in StepState},
            record.settled_steps, record.total_steps, record.created_at, record.finished_at,
            (record.finished_at or time.time()) - record.created_at,
            None if row.cost_usd is None else float(row.cost_usd),
        )

    def resolve_workflow_id(self, text: str) -> WorkflowRecord:
        """The one workflow whose id is ``text`` or starts with it (any case).

        What the CLI and the dashboard's search do with an id someone typed or
        copied, such as the short ids the dashboard shows. Raises
        ``WorkflowNotFoundError`` when nothing matches and
        ``AmbiguousWorkflowIdError``, naming up to ``PREFIX_MATCHES`` of them,
        when several do. One query: ``LIKE 'prefix%'`` on the primary key,
        bounded by the range ``[prefix, next prefix)`` that ids (hex) sort in
        whatever the collation, so the index is used on both databases.
        """
        prefix = text.strip().lower()
        if not prefix:
            raise WorkflowNotFoundError("no workflow id given")
        condition = workflows.c.id.startswith(prefix, autoescape=True)
        if all(char in _HEX for char in prefix):
            condition &= workflows.c.id >= prefix
            upper = prefix.rstrip("f")
            if upper:
                condition &= workflows.c.id < upper[:-1] + _HEX[_HEX.index(upper[-1]) + 1]
        stmt = select(workflows).where(condition).order_by(workflows.c.id.desc()).limit(PREFIX_MATCHES + 1)
        with read_connection(self._engine) as conn:
            found = [_workflow(row) for row in conn.execute(stmt)]
        if not found:
            raise WorkflowNotFoundError(f"no workflow with id {text!r} or an id starting with it")
        if len(found) > 1:
            shown = found[:PREFIX_MATCHES]
            raise AmbiguousWorkflowIdError(text, {w.id: w.name for w in shown}, more=len(found) > PREFIX_MATCHES)
        return found[0]

    def list_workflows(
        self,
        name: str | None = None,
        state: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
    ) -> WorkflowPage:
        """Workflows newest first, ``limit`` at a time (keyset paging on the id)."""
        if limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        conditions = []
        if name is not None:
            conditions.append(workflows.c.name == name)
        if state is not None:
            conditions.append(workflows.c.state == WorkflowState(state))
        if before is not None:
            conditions.append(workflows.c.id < before)
        stmt = select(workflows).where(and_(True, *conditions)).order_by(workflows.c.id.desc()).limit(limit + 1)
        with read_connection(self._engine) as conn:
            rows = conn.execute(stmt).all()
        page = [_workflow(row) for row in rows[:limit]]
        return WorkflowPage(page, page[-1].id if len(rows) > limit else None)

    def count_steps(self, workflow_id: str) -> dict[str, int]:
        """How many steps of the workflow are in each state."""
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                select(nodes.c.state, func.count()).where(nodes.c.workflow_id == workflow_id).group_by(nodes.c.state)
            )
            return {state: count for state, count in rows}

    # -- reads for the dashboard (additive) ----------------------------------

    def search_workflows(
        self,
        label: str | None = None,
        state: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
    ) -> WorkflowPage:
        """Like ``list_workflows``, with ``label`` matching any part of the name.

        ``label`` is case-insensitive and taken literally (``%`` and ``_`` are
        not wildcards). ``after`` keeps only workflows newer than that id.
        """
        if limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        conditions = []
        if label:
            conditions.append(func.lower(workflows.c.name).contains(label.lower(), autoescape=True))
        if state is not None:
            conditions.append(workflows.c.state == WorkflowState(state))
        if before is not None:
            conditions.append(workflows.c.id < before)
        if after is not None:
            conditions.append(workflows.c.id > after)
        stmt = select(workflows).where(and_(True, *conditions)).order_by(workflows.c.id.desc()).limit(limit + 1)
        with read_connection(self._engine) as conn:
            rows = conn.execute(stmt).all()
        page = [_workflow(row) for row in rows[:limit]]
        return WorkflowPage(page, page[-1].id if len(rows) > limit else None)

    def get_workflows(self, workflow_ids: list[str]) -> dict[str, WorkflowRecord]:
        """The workflows with these ids that exist, by id."""
        if not workflow_ids:
            return {}
        with read_connection(self._engine) as conn:
            rows = conn.execute(select(workflows).where(workflows.c.id.in_(sorted(set(workflow_ids))))).all()
        return {row.id: _workflow(row) for row in rows}

    def count_workflows_by_state(self) -> dict[str, int]:
        """How many workflows are in each state."""
        with read_connection(self._engine) as conn:
            rows = conn.execute(select(workflows.c.state, func.count()).group_by(workflows.c.state))
            return {state: count for state, count in rows}

    def workflow_costs(self, workflow_ids: list[str]) -> dict[str, float]:
        """Total ``cost_usd`` per workflow, for those with a priced stats row."""
        if not workflow_ids:
            return {}
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                select(step_stats.c.workflow_id, func.sum(step_stats.c.cost_usd))
                .where(step_stats.c.workflow_id.in_(sorted(set(workflow_ids))), step_stats.c.cost_usd.is_not(None))
                .group_by(step_stats.c.workflow_id)
            )
            return {workflow_id: float(total) for workflow_id, total in rows if total is not None}

    def step_usage(self, workflow_id: str) -> dict[str, StepUsage]:
        """Tokens and cost per step name of one workflow (steps with stats rows only)."""
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                select(
                    step_stats.c.step_name,
                    func.count(),
                    func.coalesce(func.sum(step_stats.c.input_tokens), 0),
                    func.coalesce(func.sum(step_stats.c.output_tokens), 0),
                    func.coalesce(func.sum(step_stats.c.cached_input_tokens), 0),
                    func.sum(step_stats.c.cost_usd),
                )
                .where(step_stats.c.workflow_id == workflow_id)
                .group_by(step_stats.c.step_name)
            ).all()
        return {
            name: StepUsage(int(calls), int(inp), int(out), int(cached), None if cost is None else float(cost))
            for name, calls, inp, out, cached, cost in rows
        }


@dataclass(frozen=True)
class Input:
    """One dependency as its dependent sees it when it runs."""

    state: StepState
    result: Any


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


def _edges(conn: Connection, workflow_id: str) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Each step's deps, and the policy of those edges that have one, by step name."""
    deps: dict[str, list[str]] = {}
    tolerates: dict[str, dict[str, str]] = {}
    for step_name, dep_name, policy in conn.execute(
        select(edges.c.step_name, edges.c.dep_name, edges.c.tolerates).where(edges.c.workflow_id == workflow_id)
    ):
        deps.setdefault(step_name, []).append(dep_name)
        if policy is not None:
            tolerates.setdefault(step_name, {})[dep_name] = policy
    return deps, tolerates


def load_step_names(conn: Connection, workflow_id: str) -> set[str]:
    """Names of every step stored for a workflow."""
    return set(conn.execute(select(nodes.c.step_name).where(nodes.c.workflow_id == workflow_id)).scalars())


def load_label(conn: Connection, workflow_id: str) -> str:
    """A workflow's name; empty when it no longer exists (pruned)."""
    return conn.execute(select(workflows.c.name).where(workflows.c.id == workflow_id)).scalar_one_or_none() or ""
