"""The index's rows: one workflow each, and the progress fields its page header shares.

A row is what the index page and its live updates show of a workflow, so it
holds only what is cheap to read for many workflows at once (the record, a
total cost, and the outcome's facts of those that ended). The workflow
page's header (``workflow_view``) starts from the same ``Progress``, so the
two never disagree about a workflow's progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..headline import PLAIN, Headline, OutcomeFacts, headline
from ..ids import short_id
from ..records import WorkflowRecord
from ..states import WorkflowState
from .formatting import Timestamp, format_cost, format_duration, timestamp


def progress(record: WorkflowRecord, total: int, now: float) -> dict[str, Any]:
    """The ``Progress`` fields of ``record``, for a row or a page header to build on."""
    running = record.state == WorkflowState.RUNNING
    end = now if running or record.finished_at is None else record.finished_at
    return {
        "id": record.id,
        "label": record.name,
        "state": record.state.value,
        "settled": record.settled_steps,
        "total": total,
        "percent": 100.0 * record.settled_steps / total if total else 100.0,
        "started": timestamp(record.created_at, with_date=True),
        "duration": format_duration(end - record.created_at),
        "running_since": record.created_at if running else None,
    }


@dataclass(frozen=True)
class Progress:
    """How far a workflow is: what its index row and its page header both show."""

    id: str
    label: str
    state: str
    settled: int
    total: int
    percent: float
    started: Timestamp
    duration: str
    running_since: float | None


@dataclass(frozen=True)
class WorkflowRow(Progress):
    cost: str
    outcome: Headline | None  # how it ended, when that says more than its state badge

    @property
    def short_id(self) -> str:
        return short_id(self.id)


def workflow_row(record: WorkflowRecord, cost: float | None, facts: OutcomeFacts | None, now: float) -> WorkflowRow:
    """``facts``: what ``Query.outcome_facts`` read for it (None: no failed step).

    The outcome is left out while it runs, and when it is a plain "Completed"
    (every step completed at the first try): the badge says that already.
    """
    outcome = None if record.state == WorkflowState.RUNNING else headline(record, facts or OutcomeFacts())
    if outcome is not None and outcome.title == PLAIN:
        outcome = None
    return WorkflowRow(**progress(record, record.total_steps, now), cost=format_cost(cost), outcome=outcome)


def row_version(record: WorkflowRecord, cost: float | None, facts: OutcomeFacts | None) -> tuple[Any, ...]:
    """What a row shows, but the clock: equal versions render the same."""
    return (
        record.state.value,
        record.unsettled_steps,
        record.total_steps,
        record.finished_at,
        record.retried,
        cost,
        facts,
    )
