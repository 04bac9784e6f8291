"""Running schedules: a workflow inserted at every tick of a crontab, once, whatever the number of consumers.

``baton.schedule(name, crontab, build)`` declares one; every consumer of the
default queue checks the schedules from a Huey periodic task
(``queues.SCHEDULES_TASK``, as often as it checks the sweep, at least once a
minute). For each schedule the latest tick is due unless it was recorded
already (``cron.due_tick``: missed ticks are not run one by one, only the
latest). The consumer then calls ``build()`` and, in one transaction,
records the tick in ``baton_schedule_ticks`` and inserts the workflow: the
tick's primary key lets exactly one consumer's transaction through; the
others insert nothing and their workflows are dropped unwritten. So ``build``
may be called by several consumers for one tick, and must only build.

``overlap="skip"`` (the default) records the tick as skipped, and inserts
nothing, while a workflow the schedule started is still running;
``overlap="allow"`` inserts regardless. A workflow whose ``unique_key`` is
held skips its tick too. A ``build`` that raises, or returns something other
than a ``Workflow``, fails its tick: the error is logged and recorded, and
the schedule tries again at its next tick, not before.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from . import cron
from .appstate import AppState
from .dispatch import commit
from .effects import Effects, NewWorkflow
from .errors import DuplicateWorkflowError, ScheduleError
from .inserts import insert_workflows
from .records import ScheduleStatus
from .schedule import Overlap, Schedule
from .states import TickOutcome
from .store import Tx
from .store.schedules import last_ticks
from .workflow import Workflow, prepare_scheduled
from .worklog import logger as worker_log

logger = logging.getLogger("flask_baton")


class Ticked(NamedTuple):
    """A tick this process acted on (``run_due``): what it did, and the workflow it started."""

    schedule: str
    tick_at: float
    outcome: TickOutcome
    workflow_id: str | None
    detail: str | None = None


def statuses(state: AppState, now: float) -> list[ScheduleStatus]:
    """Every schedule of the app by name, with its next tick after ``now`` and its latest tick recorded."""
    schedules = sorted(state.schedules.values(), key=lambda schedule: schedule.name)
    last = last_ticks(state.ready().engine, [schedule.name for schedule in schedules])
    return [
        ScheduleStatus(s.name, s.crontab.expression, s.overlap, s.next_run(now), last.get(s.name)) for s in schedules
    ]


def run_due(state: AppState, now: float | None = None) -> list[Ticked]:
    """Insert the workflow of every schedule whose tick is due at ``now``; return the ticks this call recorded.

    The body of the periodic task every consumer runs; any number of them may
    call it at once. One schedule's failure is logged and does not keep the
    others from running.
    """
    now = time.time() if now is None else now
    schedules = state.schedules
    if not schedules:
        return []
    last = last_ticks(state.ready().engine, list(schedules))
    done: list[Ticked] = []
    for schedule in list(schedules.values()):
        record = last.get(schedule.name)
        tick = cron.due_tick(schedule.crontab, now, record.tick_at if record else None)
        if tick is None:
            continue
        try:
            ticked = _run_tick(state, schedule, tick)
        except Exception:
            logger.exception(
                "schedule %r: tick %s could not be recorded; tried again at the next check", schedule.name, tick
            )
            continue
        if ticked is not None:
            done.append(ticked)
    return done


def _run_tick(state: AppState, schedule: Schedule, tick: float) -> Ticked | None:
    """Build the tick's workflow and record the tick; None if another consumer recorded it first."""
    try:
        workflow = schedule.build()
        if not isinstance(workflow, Workflow):
            raise ScheduleError(schedule.name, f"build returned {type(workflow).__name__}, not a Workflow")
        new = prepare_scheduled(workflow, state)
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"
        ticked, _ = commit(state, record_tick, Ticked(schedule.name, tick, TickOutcome.FAILED, None, detail))
        _log(ticked, error)
        return ticked
    ticked, _ = commit(state, start_tick, schedule.name, schedule.overlap, tick, new)
    if ticked is not None and ticked.outcome is TickOutcome.STARTED:
        workflow.inserted = True
    _log(ticked)
    return ticked


def _log(ticked: Ticked | None, error: BaseException | None = None) -> None:
    """The worker's line about a tick this process recorded; none about a tick another consumer took.

    As for steps: a start is DEBUG (quiet while all goes well), a skip INFO,
    a failed build ERROR, its traceback a DEBUG line after it.
    """
    if ticked is None:
        return
    fields = {
        "baton_event": f"schedule_{ticked.outcome}",
        "schedule": ticked.schedule,
        "tick_at": ticked.tick_at,
        "workflow_id": ticked.workflow_id,
        "error_message": ticked.detail,
    }
    name, at = ticked.schedule, cron.utc_minute(ticked.tick_at)
    if ticked.outcome is TickOutcome.STARTED:
        worker_log.debug(
            "schedule %r started workflow %s for its tick of %s", name, ticked.workflow_id, at, extra=fields
        )
    elif ticked.outcome is TickOutcome.SKIPPED:
        worker_log.info("schedule %r skipped its tick of %s: %s", name, at, ticked.detail, extra=fields)
    else:
        worker_log.error("schedule %r failed to build its tick of %s: %s", name, at, ticked.detail, extra=fields)
        worker_log.debug(
            "schedule %r's build raised", name, exc_info=error, extra={**fields, "baton_event": "schedule_traceback"}
        )


def start_tick(tx: Tx, schedule: str, overlap: Overlap, tick: float, new: NewWorkflow) -> Effects[Ticked | None]:
    """Record a tick and insert its workflow, unless the tick is recorded already or ``overlap`` says skip.

    The tick's row goes in first: a consumer that loses the race for it
    writes nothing else. A ``unique_key`` held by a running workflow turns
    the tick into a skip (nothing of the workflow was written).
    """
    if overlap == "skip":
        running = tx.store.running_run(tx.conn, schedule)
        if running is not None:
            return record_tick(tx, Ticked(schedule, tick, TickOutcome.SKIPPED, None, f"{running} was still running"))
    started = Ticked(schedule, tick, TickOutcome.STARTED, new.workflow_id)
    if not tx.store.claim_tick(tx.conn, schedule, tick, started.outcome, new.workflow_id, None, tx.now):
        return Effects(None)
    try:
        inserted = insert_workflows(tx, [new])
    except DuplicateWorkflowError as held:
        skipped = Ticked(schedule, tick, TickOutcome.SKIPPED, None, str(held))
        tx.store.change_tick(tx.conn, schedule, tick, skipped.outcome, skipped.detail)
        return Effects(skipped)
    return Effects(started, ready=inserted.ready)


def record_tick(tx: Tx, ticked: Ticked) -> Effects[Ticked | None]:
    """Record a tick that starts no workflow (skipped, failed), unless it is recorded already."""
    won = tx.store.claim_tick(tx.conn, ticked.schedule, ticked.tick_at, ticked.outcome, None, ticked.detail, tx.now)
    return Effects(ticked if won else None)
