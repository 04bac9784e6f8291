"""What the dashboard's overview shows: activity over time, step durations, consumers, running steps, schedules.

Plain frozen dataclasses (``flask_baton.records`` says why); ``store.stats``
and ``store.schedules`` fill them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
