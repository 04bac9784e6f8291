"""The overview page: the queues and consumers now, and what happened over a time range.

Built from what ``reads.read_overview`` read (an ``Activity``, the consumers
alive, the steps running, each queue's depth) with ``timeseries`` and
``charts``; every figure formatted by ``formatting``. Pure: no Flask, no SQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..huey_compat import QueueDepth
from ..records import Activity, ConsumerRecord, RunningStep, ScheduleStatus, StepDurations
from ..schedule import ScheduleRow, schedule_row
from ..states import WorkflowState
from ..timeseries import Window, dense, per_hour, per_minute, percentile, ratios
from .charts import Chart, Series, bar_chart
from .formatting import fingerprint, format_cost, format_count, format_duration

#: How workflows end, in the order the charts stack them.
ENDED_WORKFLOWS = (WorkflowState.COMPLETED.value, WorkflowState.FAILED.value, WorkflowState.CANCELLED.value)
#: Step names the durations table lists at most (busiest first).
SHOWN_STEP_NAMES = 50


@dataclass(frozen=True)
class QueueRow:
    name: str
    waiting: str  # messages on Huey's queue ("?" when the queue could not be read)
    scheduled: str  # messages in Huey's schedule: retries and snoozes due later
    running: int
    consumers: int


@dataclass(frozen=True)
class RunningRow:
    workflow_id: str
    workflow_label: str
    step_name: str
    attempt: int
    duration: str
    running_since: float | None


@dataclass(frozen=True)
class ConsumerRow:
    worker: str
    queues: str
    up: str
    up_since: float
    running: tuple[RunningRow, ...]
    alive: bool  # False: steps still executing under a worker no longer heard from


@dataclass(frozen=True)
class StepRow:
    name: str
    runs: int
    failed: int
    failure: str
    p50: str
    p95: str
    p50_seconds: float
    p95_seconds: float


@dataclass(frozen=True)
class Figure:
    """One number at the top of the range's section."""

    key: str
    label: str
    value: str
    detail: str


@dataclass(frozen=True)
class Overview:
    window: Window
    queues: tuple[QueueRow, ...]
    consumers: tuple[ConsumerRow, ...]
    figures: tuple[Figure, ...]
    charts: tuple[Chart, ...]
    steps: tuple[StepRow, ...]
    more_steps: int
    version: str
    schedules: tuple[ScheduleRow, ...] = ()


def overview(
    window: Window,
    activity: Activity,
    consumers: Sequence[ConsumerRecord],
    running: Sequence[RunningStep],
    depths: Mapping[str, QueueDepth | None],
    queue_of: Callable[[str], str | None],
    schedules: Sequence[ScheduleStatus] = (),
) -> Overview:
    """The page for ``window``; ``queue_of`` tells a step's queue from its task (None: unknown task)."""
    queues = _queues(depths, consumers, running, queue_of)
    figures, charts = _activity(window, activity)
    steps = sorted(activity.durations.items(), key=lambda item: (-item[1].runs, item[0]))
    shown = tuple(_step_row(name, durations) for name, durations in steps[:SHOWN_STEP_NAMES])
    # What the page is made of but the clock (rates and ages tick): equal versions show the same.
    version = fingerprint(
        window.start,
        activity,
        [(c.worker, c.queues, c.started_at) for c in consumers],
        [(r.workflow_id, r.step_name, r.attempt, r.worker) for r in running],
        sorted(depths.items()),
        schedules,
    )
    return Overview(
        window,
        queues,
        _consumers(consumers, running, window.now),
        figures,
        charts,
        shown,
        max(len(steps) - SHOWN_STEP_NAMES, 0),
        version,
        tuple(schedule_row(status) for status in schedules),
    )


def _queues(
    depths: Mapping[str, QueueDepth | None],
    consumers: Sequence[ConsumerRecord],
    running: Sequence[RunningStep],
    queue_of: Callable[[str], str | None],
) -> tuple[QueueRow, ...]:
    busy = Counter(queue_of(step.task) for step in running)
    served = Counter(queue for consumer in consumers for queue in consumer.queues)
    rows = []
    for name in sorted(set(depths) | set(served)):
        depth = depths.get(name)
        rows.append(
            QueueRow(
                name,
                "?" if depth is None else format_count(depth.waiting),
                "?" if depth is None else format_count(depth.scheduled),
                busy[name],
                served[name],
            )
        )
    return tuple(rows)


def _consumers(
    consumers: Sequence[ConsumerRecord], running: Sequence[RunningStep], now: float
) -> tuple[ConsumerRow, ...]:
    """The consumers alive, each with the steps it runs; then any worker running steps but silent."""
    by_worker: dict[str, list[RunningRow]] = {}
    for step in running:
        by_worker.setdefault(step.worker or "", []).append(
            RunningRow(
                step.workflow_id,
                step.workflow_label,
                step.step_name,
                step.attempt,
                format_duration(None if step.started_at is None else now - step.started_at),
                step.started_at,
            )
        )
    rows = [
        ConsumerRow(
            c.worker,
            ", ".join(c.queues),
            format_duration(now - c.started_at),
            c.started_at,
            tuple(by_worker.pop(c.worker, ())),
            True,
        )
        for c in consumers
    ]
    for worker, steps in sorted(by_worker.items()):
        rows.append(ConsumerRow(worker or "?", "—", "—", now, tuple(steps), False))
    return tuple(rows)


@dataclass(frozen=True)
class _Counts:
    """An ``Activity`` as one value per bucket of the window, by what is counted."""

    started: list[float]
    ended: dict[str, list[float]]  # by the state workflows ended in
    steps: dict[str, list[float]]  # by the state steps ended in
    cost: list[float]

    @classmethod
    def of(cls, window: Window, activity: Activity) -> _Counts:
        def by_state(counts: Mapping[tuple[int, str], int], states: Sequence[str]) -> dict[str, list[float]]:
            return {state: dense(window, {b: n for (b, s), n in counts.items() if s == state}) for state in states}

        return cls(
            dense(window, activity.workflows_started),
            by_state(
                activity.workflows_ended, [WorkflowState.COMPLETED, WorkflowState.FAILED, WorkflowState.CANCELLED]
            ),
            by_state(activity.steps_ended, ["completed", "discarded"]),
            dense(window, activity.cost),
        )


def _activity(window: Window, activity: Activity) -> tuple[tuple[Figure, ...], tuple[Chart, ...]]:
    counts = _Counts.of(window, activity)
    ended = [sum(values) for values in zip(*counts.ended.values(), strict=True)]
    started, finished, failed = sum(counts.started), sum(ended), sum(counts.ended["failed"])
    steps_done, steps_failed = sum(counts.steps["completed"]), sum(counts.steps["discarded"])
    cost, minutes, during = sum(counts.cost), (window.now - window.start) / 60, window.label
    figures = (
        Figure("started", "Workflows started", format_count(int(started)), f"{_rate(started / minutes)} a minute"),
        Figure("ended", "Workflows ended", format_count(int(finished)), f"{_rate(finished / minutes)} a minute"),
        Figure("failed", "Failed", format_count(int(failed)), f"{_percent(failed, finished)} of those ended"),
        Figure(
            "steps",
            "Steps ended",
            format_count(int(steps_done + steps_failed)),
            f"{_rate((steps_done + steps_failed) / minutes)} a minute, {format_count(int(steps_failed))} discarded",
        ),
        Figure("cost", "Cost", format_cost(cost), f"{format_cost(cost / (minutes / 60))} an hour"),
    )

    def rates(states: Mapping[str, list[float]]) -> list[Series]:
        return [Series(f"st-{state}", state, per_minute(window, values)) for state, values in states.items()]

    failure = [None if r is None else 100 * r for r in ratios(counts.ended["failed"], ended)]
    charts = (
        bar_chart(
            "workflows",
            "Workflows ended per minute",
            window,
            rates(counts.ended),
            _rate,
            f"Workflows ended per minute, {during}: {format_count(int(finished))} ended, "
            f"{format_count(int(failed))} failed.",
        ),
        bar_chart(
            "steps",
            "Steps ended per minute",
            window,
            rates(counts.steps),
            _rate,
            f"Steps ended per minute, {during}: {format_count(int(steps_done))} completed, "
            f"{format_count(int(steps_failed))} discarded.",
        ),
        bar_chart(
            "failure",
            "Workflow failure rate",
            window,
            [Series("st-failed", "failed", failure)],
            lambda value: f"{value:.3g} %",
            f"Share of the workflows ended that failed, {during}: {_percent(failed, finished)} overall.",
        ),
        bar_chart(
            "cost",
            "Cost per hour",
            window,
            [Series("cost", "an hour", per_hour(window, counts.cost))],
            format_cost,
            f"Cost of model calls per hour, {during}: {format_cost(cost)} in all.",
        ),
    )
    return figures, charts


def _step_row(name: str, durations: StepDurations) -> StepRow:
    p50, p95 = (
        percentile(durations.classes, fraction, durations.shortest, durations.longest) for fraction in (0.5, 0.95)
    )
    return StepRow(
        name,
        durations.runs,
        durations.discarded,
        _percent(durations.discarded, durations.runs),
        format_duration(p50),
        format_duration(p95),
        p50,
        p95,
    )


def _rate(value: float) -> str:
    """A rate per minute: ``0``, ``0.25``, ``3.4``, ``120``."""
    if value == 0:
        return "0"
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def _percent(part: float, whole: float) -> str:
    if not whole:
        return "—"
    share = 100 * part / whole
    return f"{share:.0f} %" if share == 0 or share >= 10 else f"{share:.2g} %"
