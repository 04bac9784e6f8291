"""The sweep: what makes a workflow finish when consumers die and messages vanish.

Huey delivers at most once: a consumer killed mid-task loses that task. The
database knows better. Every ``BATON_SWEEP_INTERVAL`` seconds one consumer
(whoever takes the ``sweep`` lease first) looks for

- steps ``executing`` whose consumer has not renewed its lease for
  ``BATON_LEASE_SECONDS``: presumed dead, made ``retryable`` and re-enqueued
  (a step lost ``LOST_RUNS_ALLOWED`` times more than its retries allow is
  discarded instead, so a step that kills its consumer cannot loop forever);
- steps waiting to run for longer than the lease: their message was lost
  (a consumer killed after dequeuing, a flushed Redis), so they are handed to
  Huey again; duplicates are harmless, as only one claim can win;
- workflows whose last step settled but which never finished (on
  PostgreSQL, when the last steps settle at once, the workflow's end is a
  statement after the last completion; its consumer died between them):
  finished now;
- finished workflows whose end was never announced (the last worker died
  between commit and publish): announced now, once;
- with ``BATON_PRUNE`` on, settled workflows and debug logs past their age;
  event-feed rows past ``BATON_EVENT_RETENTION`` always.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Connection, select
from sqlalchemy import exc as sa_exc

from . import transitions, worklog
from .appstate import AppState, worker_id
from .database import read_connection, write_transaction
from .dispatch import announce_end, commit
from .prune import PruneReport, prune, trim_event_feed
from .schema import completions, nodes, workflows
from .states import CLAIMABLE, StepState, WorkflowState
from .telemetry import emit, plugin_pruned, plugin_rescued
from .transitions import Claimed, Effects, WorkflowEnd

logger = logging.getLogger("flask_baton")

#: Runs a step may lose to dead consumers beyond its retries before it is discarded.
LOST_RUNS_ALLOWED = 2
#: Rows looked at per kind per sweep, so one sweep stays short.
BATCH = 1000
#: A waiting step counts as lost after this many leases even when its queue
#: is not empty (with an empty queue, after one lease).
BUSY_QUEUE_LEASES = 10


@dataclass
class SweepReport:
    """What one sweep did."""

    ran: bool
    rescued: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)
    pruned: PruneReport | None = None
    events_trimmed: int = 0


def sweep(state: AppState, *, force: bool = False, now: float | None = None) -> SweepReport:
    """Run one sweep unless another consumer holds this interval's lease.

    ``force`` skips the lease (``flask baton sweep``); every change is still a
    compare-and-set, so a forced sweep racing a scheduled one is safe.
    """
    now = time.time() if now is None else now
    if not force and not _take_turn(state, now):
        return SweepReport(ran=False)
    report = SweepReport(ran=True)
    _rescue_dead(state, now, report)
    _requeue_lost(state, now, report)
    _finish_settled(state, report)
    _announce_unannounced(state, now, report)
    config = state.config
    if config.prune:
        report.pruned = prune(state.engine, now, config.prune_max_age, config.debug_log_max_age)
        emit(plugin_pruned, workflows=report.pruned.workflows, steps=report.pruned.steps,
             debug_logs=report.pruned.debug_logs, timestamp=now)
    report.events_trimmed = trim_event_feed(state.engine, now, config.event_retention)
    return report


def _take_turn(state: AppState, now: float) -> bool:
    until = now + state.config.sweep_interval * 0.9
    try:
        with write_transaction(state.engine) as conn:
            return transitions.take_lock(conn, "sweep", worker_id(), now, until)
    except sa_exc.IntegrityError:
        return False  # another consumer created the lease row first


def _rescue_dead(state: AppState, now: float, report: SweepReport) -> None:
    lease = state.config.lease_seconds
    with read_connection(state.engine) as conn:
        rows = conn.execute(
            select(nodes.c.id, nodes.c.workflow_id, nodes.c.step_name, nodes.c.task, nodes.c.args,
                   nodes.c.attempt, nodes.c.worker, nodes.c.heartbeat_at, nodes.c.started_at)
            .where(nodes.c.state == StepState.EXECUTING, nodes.c.heartbeat_at < now - lease)
            .limit(BATCH)
        ).all()
    for row in rows:
        claimed = Claimed(row.id, row.workflow_id, row.step_name, row.task, row.args, row.attempt,
                          row.worker or "", row.started_at or now)
        step = state.step(row.task)
        max_attempts = step.max_attempts if step else None
        allowed = (max_attempts or 1) + LOST_RUNS_ALLOWED
        silent = now - (row.heartbeat_at or now)
        if row.attempt < allowed:
            reason = f"consumer {row.worker} stopped renewing its lease ({silent:.0f}s ago); step rescued"
            transition = partial(transitions.rescue, claimed=claimed, heartbeat_at=row.heartbeat_at, reason=reason)
            log = partial(worklog.rescued, state, claimed, max_attempts, claimed.worker, silent)
            found = report.rescued
        else:
            reason = f"lost with its consumer {row.attempt} times (last: {row.worker}); discarded"
            transition = partial(_discard_if_unchanged, claimed=claimed, heartbeat_at=row.heartbeat_at, reason=reason)
            log = partial(worklog.discarded, state, claimed, max_attempts, worklog.Failure(None, reason))
            found = report.discarded
        effects = commit(state, lambda conn, at, transition=transition: transition(conn, now=at), log=log)
        if effects.changes:
            found.append(row.id)
            emit(plugin_rescued, workflow_id=row.workflow_id, workflow_label=state.label(row.workflow_id),
                 step_name=row.step_name, job_id=row.id, worker=row.worker, attempt=row.attempt,
                 reason=reason, timestamp=now)


def _discard_if_unchanged(
    conn: Connection, claimed: Claimed, heartbeat_at: float | None, reason: str, now: float
) -> Effects:
    """Discard a step lost too often, unless its consumer renewed the lease meanwhile."""
    still_dead = conn.execute(
        select(nodes.c.heartbeat_at).where(nodes.c.id == claimed.node_id, nodes.c.state == StepState.EXECUTING)
    ).scalar_one_or_none()
    if still_dead != heartbeat_at:
        return Effects()
    return transitions.discard(conn, claimed, reason, now)


def _requeue_lost(state: AppState, now: float, report: SweepReport) -> None:
    lease = state.config.lease_seconds
    with read_connection(state.engine) as conn:
        rows = conn.execute(
            select(nodes.c.id, nodes.c.task, nodes.c.scheduled_at)
            .where(nodes.c.state.in_(CLAIMABLE), nodes.c.scheduled_at < now - lease)
            .order_by(nodes.c.scheduled_at)
            .limit(BATCH)
        ).all()
    busy: dict[str, bool] = {}
    for row in rows:
        step = state.step(row.task)
        if step is None:
            continue
        if step.queue not in busy:
            busy[step.queue] = state.queues.huey(step.queue).pending_count() > 0
        if busy[step.queue] and row.scheduled_at >= now - lease * BUSY_QUEUE_LEASES:
            continue  # probably still in a long queue, not lost
        requeue = partial(_requeue_effects, node_id=row.id, task=row.task, seen_at=row.scheduled_at)
        effects = commit(state, lambda conn, at, requeue=requeue: requeue(conn, now=at))
        if effects.ready:
            report.requeued.append(row.id)


def _requeue_effects(conn: Connection, node_id: str, task: str, seen_at: float, now: float) -> Effects:
    ready = transitions.requeue(conn, node_id, task, seen_at, now)
    return Effects(ready=[ready] if ready else [])


def _finish_settled(state: AppState, report: SweepReport) -> None:
    with read_connection(state.engine) as conn:
        ids = conn.execute(
            select(workflows.c.id)
            .where(workflows.c.state == WorkflowState.RUNNING, workflows.c.unsettled == 0)
            .limit(BATCH)
        ).scalars().all()
    for workflow_id in ids:
        # Announced by commit, once, even if the step's own consumer gets there too.
        effects = commit(state, lambda conn, at, workflow_id=workflow_id: transitions.finish(conn, workflow_id, at))
        if effects.ended:
            report.finished.append(workflow_id)


def _announce_unannounced(state: AppState, now: float, report: SweepReport) -> None:
    grace = state.config.heartbeat_seconds
    with read_connection(state.engine) as conn:
        rows = conn.execute(
            select(completions)
            .where(completions.c.announced_at.is_(None), completions.c.finished_at < now - grace)
            .limit(BATCH)
        ).all()
    for row in rows:
        end = WorkflowEnd(row.workflow_id, row.outcome, json.loads(row.failed_steps), row.finished_at)
        if announce_end(state, end):
            report.announced.append(row.workflow_id)
