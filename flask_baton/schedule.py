"""A declared schedule: its name, crontab, overlap policy and the function that builds its workflow.

Free of Flask and SQL, so ``AppState`` can hold the app's schedules (the
``Baton``'s registry, declared at import time like steps), and the CLI and
the dashboard show them the same way (``schedule_row``); ``ticks`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from . import cron
from .errors import ScheduleError
from .records import ScheduleStatus

Overlap = Literal["skip", "allow"]
#: Makes the workflow of a tick (a ``Workflow``; ``ticks`` checks); called with no arguments.
Build = Callable[[], object]
_NAME_LENGTH = 255


@dataclass(frozen=True)
class Schedule:
    """A declared schedule: its name, parsed crontab, overlap policy and the function building its workflow."""

    name: str
    crontab: cron.Crontab
    build: Build
    overlap: Overlap = "skip"

    def next_run(self, now: float) -> float | None:
        """When its next tick comes after ``now`` (epoch seconds, UTC)."""
        return self.crontab.next_after(now)


def declare(name: str, crontab: str, build: Build, overlap: Overlap) -> Schedule:
    """Check a schedule's parts and parse its crontab; ``ScheduleError`` naming it if any is wrong."""
    if not isinstance(name, str) or not name or len(name) > _NAME_LENGTH:
        raise ScheduleError(str(name), f"a schedule name must be a string of 1 to {_NAME_LENGTH} characters")
    if overlap not in get_args(Overlap):
        raise ScheduleError(name, f'overlap must be "skip" or "allow", got {overlap!r}')
    if not callable(build):
        raise ScheduleError(name, f"build must be a function returning a Workflow, got {build!r}")
    return Schedule(name, cron.parse(crontab, name), build, overlap)


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule as people read it: its next run, and what its last tick did (``schedule_row``)."""

    name: str
    crontab: str
    overlap: str
    next_run: str  # UTC minute, "-" for none
    last_run: str
    outcome: str  # started, skipped, failed; "" before its first tick
    workflow_id: str | None
    workflow_state: str | None  # None: no workflow, or pruned since
    detail: str  # why it was skipped or failed


def schedule_row(status: ScheduleStatus) -> ScheduleRow:
    """How ``flask baton schedules`` and the dashboard show a schedule: its times as UTC minutes."""
    last = status.last
    return ScheduleRow(
        status.name,
        status.crontab,
        status.overlap,
        cron.utc_minute(status.next_run),
        cron.utc_minute(last.tick_at if last else None),
        last.outcome if last else "",
        last.workflow_id if last else None,
        last.workflow_state if last else None,
        (last.detail or "") if last else "",
    )
