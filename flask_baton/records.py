"""The records reads return: workflows, steps, their runs and captured model calls, status, pages, usage totals.

Plain frozen dataclasses with no database in sight, so the CLI, the
dashboard, ``explain`` and ``export`` use them (and their tests build them)
without importing SQLAlchemy. ``flask_baton.store`` fills them in;
``flask_baton.query`` and ``flask_baton.usage`` hand them out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .states import SETTLED, AttemptOutcome, CancelledBy, StepState, WorkflowState


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
class AttemptRecord:
    """One run of a step (``Query.get_step_attempts``): when, where, how it ended, its error.

    ``attempt`` is ``job.attempt`` of that run: a snooze or a hand back gives
    it back, so the next run has the same number, and a retry by hand starts
    the count again at 1. ``finished_at`` is None while it runs; a lost run
    ends when its consumer was last heard from.
    """

    workflow_id: str
    node_id: str
    step_name: str
    attempt: int
    outcome: AttemptOutcome
    worker: str | None
    started_at: float
    finished_at: float | None
    error: str | None

    @property
    def duration(self) -> float | None:
        """Seconds it ran, None while it runs."""
        return None if self.finished_at is None else max(self.finished_at - self.started_at, 0.0)


#: The run a step's row holds, by the row's state.
_ROW_RUN = {
    StepState.EXECUTING: AttemptOutcome.RUNNING,
    StepState.COMPLETED: AttemptOutcome.COMPLETED,
    StepState.DISCARDED: AttemptOutcome.DISCARDED,
    StepState.CANCELLED: AttemptOutcome.CANCELLED,
    StepState.RETRYABLE: AttemptOutcome.FAILED,
    StepState.SNOOZED: AttemptOutcome.SNOOZED,
    StepState.WAITING: AttemptOutcome.WAITED,
}


def row_run(
    workflow_id: str,
    node_id: str,
    step_name: str,
    state: StepState,
    attempt: int,
    worker: str | None,
    started_at: float | None,
    finished_at: float | None,
    error: str | None,
) -> AttemptRecord | None:
    """The run a step's row (``baton_nodes``) holds, from its columns; None if it holds none.

    It holds its last run while it executes and once it completed, was
    discarded or was cancelled; a row waiting to run again holds the run
    that ended, which was kept then (rows written before runs were kept
    have it only here).
    """
    outcome = _ROW_RUN.get(state)
    if outcome is None or started_at is None or attempt < 1:
        return None
    running = outcome == AttemptOutcome.RUNNING
    return AttemptRecord(
        workflow_id,
        node_id,
        step_name,
        attempt,
        outcome,
        worker,
        started_at,
        None if running else finished_at or started_at,
        None if running or outcome == AttemptOutcome.COMPLETED else error,
    )


def step_runs(kept: list[AttemptRecord], row: AttemptRecord | None) -> list[AttemptRecord]:
    """A step's runs, oldest first: ``kept`` (``baton_attempts``) and its row's run unless kept already.

    A run kept when it ended left the row with the same ``started_at``: the
    row then holds nothing new (waiting to run again, or cancelled while waiting).
    """
    if row is None or any(run.started_at == row.started_at for run in kept):
        return kept
    return [*kept, row]


@dataclass(frozen=True)
class ContextCapture:
    """One model call's context as ``job.capture_context`` stored it (``Query.get_context_captures``).

    ``messages`` and ``response`` are the JSON text stored; when
    ``truncated``, one of them was cut at ``BATON_DEBUG_CAPTURE_MAX_BYTES``
    and is no longer valid JSON.
    """

    workflow_id: str
    node_id: str
    step_name: str
    attempt: int
    messages: str
    response: str
    truncated: bool
    created_at: float


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
    ``unpriced_calls`` counts the calls left out of ``cost_usd``. The token
    counts are disjoint (see ``flask_baton.sdk_usage``): ``input_tokens``
    leaves out the cached and cache-written ones, ``output_tokens`` the
    reasoning ones.
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Every token but the cache reads, as the dashboard shows a step's usage.

        ``input_tokens + cache_write_tokens + output_tokens + reasoning_tokens``:
        what a call sent and got, less what its provider's cache gave back.
        """
        return self.input_tokens + self.cache_write_tokens + self.output_tokens + self.reasoning_tokens


@dataclass(frozen=True)
class ModelCall:
    """One model call a step reports (``job.record_usage``), checked and priced when stored."""

    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    latency: float
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0


#: What a step's model calls used over all its attempts (``Query.step_usage``): the same totals as ``Usage``.
StepUsage = Usage


@dataclass(frozen=True)
class Input:
    """One dependency as its dependent sees it when it runs."""

    state: StepState
    result: Any


@dataclass(frozen=True)
class ConsumerRecord:
    """A consumer process heard from (``Query.get_consumers``): its heartbeat's rows, one per queue, joined."""

    worker: str  # host:pid, as a step's ``worker``
    queues: tuple[str, ...]
    started_at: float  # when it began serving its first queue
    seen_at: float  # its latest heartbeat


@dataclass(frozen=True)
class RunningStep:
    """A step executing now (``Query.get_running_steps``), with its workflow's name."""

    workflow_id: str
    workflow_label: str
    step_name: str
    task: str
    attempt: int
    worker: str | None
    started_at: float | None
    heartbeat_at: float | None


@dataclass(frozen=True)
class StepDurations:
    """How one step name's runs that ended in a time range went, and how long they took.

    ``classes``: runs per duration class (``flask_baton.timeseries.duration_class``),
    from which ``timeseries.percentile`` estimates p50 and p95 within
    ``shortest`` and ``longest``.
    """

    completed: int
    discarded: int
    classes: Mapping[int, int]
    shortest: float
    longest: float

    @property
    def runs(self) -> int:
        return self.completed + self.discarded


@dataclass(frozen=True)
class Activity:
    """What happened since ``start``, counted per bucket of ``bucket_seconds`` (``Query.get_activity``).

    A bucket is an index: bucket ``i`` holds ``[start + i * bucket_seconds,
    start + (i + 1) * bucket_seconds)``. Workflows count where they started
    and where they ended (by the state they ended in); steps where their last
    run ended, completed or discarded; costs where their model call was recorded.
    """

    start: float
    bucket_seconds: float
    workflows_started: Mapping[int, int]
    workflows_ended: Mapping[tuple[int, str], int]
    steps_ended: Mapping[tuple[int, str], int]
    durations: Mapping[str, StepDurations]
    cost: Mapping[int, float]


@dataclass(frozen=True)
class TickRecord:
    """The last tick a schedule acted on: when, what it did, and where its workflow is now.

    ``workflow_state`` is ``None`` when no workflow was started (skipped,
    failed) or it was pruned since.
    """

    schedule: str
    tick_at: float
    outcome: str  # states.TickOutcome
    workflow_id: str | None
    workflow_state: str | None
    detail: str | None


@dataclass(frozen=True)
class ScheduleStatus:
    """A declared schedule as ``flask baton schedules`` and the dashboard list it (``ticks.statuses``)."""

    name: str
    crontab: str
    overlap: str  # "skip" or "allow"
    next_run: float | None
    last: TickRecord | None  # its latest tick, None before its first
