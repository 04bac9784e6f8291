"""Workflows and steps as stored, at a glance and by the page, and what a running step reads: its inputs, its signals.

Plain frozen dataclasses (``flask_baton.records`` says why);
``store.workflow_reads``, ``store.step_reads`` and ``store.waits`` fill them in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..states import SETTLED, CancelledBy, StepState, WorkflowState


def decode_result(raw: str | None) -> Any:
    """Turn a stored result back into its value."""
    return None if raw is None else json.loads(raw)


@dataclass(frozen=True)
class SignalRecord:
    """A signal sent to a workflow (``baton.signal``), or the mark of a wait that timed out and continued."""

    name: str
    payload: Any  # None for a timed-out wait
    sent_by: str | None
    sent_at: float
    delivered_at: float | None  # when it woke a waiting step (None: no step waited for it yet)
    timed_out: bool


@dataclass(frozen=True)
class WaitRecord:
    """A step's last ``WaitFor`` (``baton.query.get_waits``): what for, since and until when."""

    step_name: str
    name: str
    since: float
    until: float
    on_timeout: str  # "discard" or "continue"
    approval: bool  # a person decides: the dashboard shows Approve / Reject
    waiting: bool  # the step waits now
    signal: SignalRecord | None  # the signal kept for ``name``, if any


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
    #: ``Workflow(budget_usd=...)``, or as ``set_budget`` raised it; None: no cap of its own.
    budget_usd: float | None = None
    #: What reaching the cap does (``"cancel"`` or ``"pause"``); None: the app's ``BATON_BUDGET_ACTION``.
    on_budget: str | None = None

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
    #: Why it waits, while it is snoozed by a rate limit ("waiting for openai: 40 of 40 rpm used").
    waiting_for: str | None = None

    @property
    def settled(self) -> bool:
        """True once the step will not change again."""
        return self.state in SETTLED


class StepOutline(NamedTuple):
    """A step without its payloads (``Query.get_workflow_outline``): enough to draw and filter any number of them.

    The fields ``StepRecord`` has too, but not its result, args, error and
    worker, which can be large and which a drawing of thousands of steps
    does not show. A named tuple, as a page of 10,000 steps builds one per
    step on every read (a frozen dataclass costs three times as much).
    """

    step_name: str
    task: str
    state: StepState
    attempt: int
    deps: tuple[str, ...]
    scheduled_at: float | None
    started_at: float | None
    finished_at: float | None
    tolerates: Mapping[str, str]
    #: Who cancelled it, as ``StepRecord.cancelled_by``: the workflow page's Resume button asks.
    cancelled_by: CancelledBy | None


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
class Input:
    """One dependency as its dependent sees it when it runs."""

    state: StepState
    result: Any
