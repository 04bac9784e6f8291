"""One row of a workflow's steps table, from a step's record and its model usage.

Kept apart from the page's other parts because both the table and the graph's
nodes (``graph_view``) read a step through this one view, so a node and its row
never disagree about a step's state, attempt or duration.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..multi_model import quorum_text
from ..records import StepRecord, StepUsage
from ..states import StepState
from ..tracebacks import trim
from .formatting import (
    Timestamp,
    error_summary,
    format_cost,
    format_count,
    format_duration,
    format_size,
    result_texts,
    timestamp,
)
from .layout import node_key

#: Largest result (pretty JSON) embedded in the page; larger ones get a link.
INLINE_RESULT_CHARS = 16_000


@dataclass(frozen=True)
class StepView:
    """One row of the steps table."""

    key: str
    name: str
    task: str
    state: str
    attempt: int
    max_attempts: int | None
    queued: Timestamp | None
    started: Timestamp | None
    finished: Timestamp | None
    duration: str
    running_since: float | None
    tokens: str
    tokens_title: str
    cost: str
    result_preview: str | None
    result_full: str | None
    result_size: str
    result_inline: bool
    error_summary: str | None
    error_full: str | None  # flask_baton's and Huey's frames folded (``tracebacks.trim``)
    worker: str | None
    deps: tuple[str, ...]
    quorum: str | None
    can_retry: bool
    streamed: str = ""  # what the running attempt streamed so far (``job.stream``), filled in by the live feed
    waiting_for: str | None = None  # the rate limit a snoozed step waits for

    @property
    def attempt_text(self) -> str:
        if self.max_attempts is None:
            return str(self.attempt)
        return f"{self.attempt}/{self.max_attempts}"


def step_view(
    step: StepRecord, usage: StepUsage | None, max_attempts: int | None, can_retry: bool, now: float
) -> StepView:
    state = step.state.value
    started = step.started_at if step.state != StepState.PENDING else None
    running = step.state == StepState.EXECUTING and started is not None
    duration = None
    if started is not None and step.finished_at is not None and step.finished_at >= started:
        duration = step.finished_at - started
    elif running:
        duration = now - started  # type: ignore[operator]
    preview, pretty, size = result_texts(step.result, step.has_result)
    if usage is not None:
        tokens = format_count(usage.total_tokens)
        tokens_title = (  # the disjoint counts a cost is made of; the figure shown leaves out cache reads
            f"{usage.input_tokens:,} input + {usage.cached_input_tokens:,} cached + "
            f"{usage.cache_write_tokens:,} cache-write + {usage.output_tokens:,} output + "
            f"{usage.reasoning_tokens:,} reasoning tokens in {usage.calls} call(s)"
        )
        cost = format_cost(usage.cost_usd)
    else:
        tokens, tokens_title, cost = "—", "no model usage recorded", "—"
    return StepView(
        key=node_key(step.step_name),
        name=step.step_name,
        task=step.task,
        state=state,
        attempt=step.attempt,
        max_attempts=max_attempts,
        queued=timestamp(step.scheduled_at),
        started=timestamp(started),
        finished=timestamp(step.finished_at) if step.settled else None,
        duration=format_duration(duration),
        running_since=started if running else None,
        tokens=tokens,
        tokens_title=tokens_title,
        cost=cost,
        result_preview=preview,
        result_full=pretty,
        result_size=format_size(size),
        result_inline=size <= INLINE_RESULT_CHARS,
        error_summary=error_summary(step.error),
        error_full=None if step.error is None else trim(step.error).text,  # whole on the step's page
        worker=step.worker,
        deps=step.deps,
        quorum=quorum_text(step.args),
        can_retry=can_retry,
        waiting_for=step.waiting_for,
    )
