"""The records reads return: workflows, steps, status, pages, usage totals.

Plain frozen dataclasses with no database in sight, so the CLI, the
dashboard, ``explain`` and ``export`` use them (and their tests build them)
without importing SQLAlchemy. ``flask_baton.store`` fills them in;
``flask_baton.query`` and ``flask_baton.usage`` hand them out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .states import SETTLED, CancelledBy, StepState, WorkflowState


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
    #: Times a retry (``retry_step``, ``retry_workflow``, ``resume_workflow``) ran it again.
    retried: int = 0

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
    #: Who cancelled it, when it is cancelled: a user (``cancel_workflow``) or a dependency's failure.
    cancelled_by: CancelledBy | None = None

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
class WorkflowPage:
    """One page of ``list_workflows``; pass ``next_before`` for the next page."""

    workflows: list[WorkflowRecord]
    next_before: str | None


@dataclass(frozen=True)
class Usage:
    """Totals of some model calls: token counts and dollars.

    ``cost_usd`` is the sum over the calls whose model had a known price, and
    ``None`` when none had one (no calls, or only unpriced ones): "unknown",
    never a made-up ``0.0``. Every cost flask_baton reports (``baton.stats``,
    ``baton.status``, ``Query.step_usage``, the dashboard) follows this rule.
    ``unpriced_calls`` counts the calls left out of ``cost_usd``.
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``, as the dashboard shows a step's usage."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ModelCall:
    """One model call a step reports (``job.record_usage``), checked and priced when stored."""

    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    latency: float


#: What a step's model calls used over all its attempts (``Query.step_usage``): the same totals as ``Usage``.
StepUsage = Usage


@dataclass(frozen=True)
class Input:
    """One dependency as its dependent sees it when it runs."""

    state: StepState
    result: Any
