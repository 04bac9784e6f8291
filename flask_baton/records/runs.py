"""A step's runs and what they used: each attempt, its captured model calls, their token and dollar totals.

Plain frozen dataclasses (``flask_baton.records`` says why); ``store.attempts``
and ``store.usage`` fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..states import AttemptOutcome, StepState


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
