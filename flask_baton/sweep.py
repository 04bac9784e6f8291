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
- steps waiting for a signal past their deadline whose timeout message was
  lost: timed out now (``waits``);
- workflows whose last step settled but which never finished (on
  PostgreSQL, when the last steps settle at once, the workflow's end is a
  statement after the last completion; its consumer died between them):
  finished now;
- finished workflows whose end was never announced (on SQLite with Redis,
  the last worker died between the end's commit and its announcement):
  announced now, once;
- the outbox: ends announced but not yet known to be sent. Those the event
  transport lacks (their worker died between the commit and the
  publication, or Redis was away) are published again, with the same
  ``event_id``, so ``workflow_finished`` is delivered at least once; all
  are then marked published;
- concurrency slots of ``BATON_RATE_LIMITS`` held by steps no longer
  running on a live consumer (``pacing.reclaim_slots``): given back, and
  the steps waiting for them woken;
- with ``BATON_PRUNE`` on, settled workflows and debug logs past their age;
  event-feed rows past ``BATON_EVENT_RETENTION`` always, the heartbeat
  rows of consumers silent for a lease (they died without saying so), and
  schedules' ticks older than ``TICK_RETENTION`` (each schedule's latest
  and its running workflows' kept).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial

from . import huey_compat, transitions, waits, worklog
from .appstate import AppState, worker_id
from .cascade import finish
from .dispatch import announce_end, commit, empty_outbox
from .effects import Claimed, Effects, Ready, StepChange
from .pacing import reclaim_slots
from .states import AttemptOutcome, StepState
from .store import PruneReport, Tx
from .telemetry import emit, plugin_pruned, plugin_rescued

logger = logging.getLogger("flask_baton")

#: Runs a step may lose to dead consumers beyond its retries before it is discarded.
LOST_RUNS_ALLOWED = 2
#: Rows looked at per kind per sweep, so one sweep stays short.
BATCH = 1000
#: A waiting step counts as lost after this many leases even when its queue
#: is not empty (with an empty queue, after one lease).
BUSY_QUEUE_LEASES = 10
#: Seconds a schedule's tick is kept (what ``flask baton schedules`` shows is its latest, always kept).
TICK_RETENTION = 7 * 86400.0


@dataclass
class SweepReport:
    """What one sweep did."""

    ran: bool
    rescued: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    pruned: PruneReport | None = None
    events_trimmed: int = 0
    consumers_forgotten: int = 0
    ticks_trimmed: int = 0
    slots_reclaimed: list[str] = field(default_factory=list)


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
    report.timed_out = waits.time_out_expired(state, now)
    report.slots_reclaimed = reclaim_slots(state, now)
    _finish_settled(state, report)
    _announce_unannounced(state, now, report)
    _empty_outbox(state, now, report)
    config = state.config
    if config.prune:
        report.pruned = state.store.prune(now, config.prune_max_age, config.debug_log_max_age)
        emit(
            plugin_pruned,
            workflows=report.pruned.workflows,
            steps=report.pruned.steps,
            debug_logs=report.pruned.debug_logs,
            timestamp=now,
        )
    report.events_trimmed = state.store.trim_event_feed(now, config.event_retention)
    report.consumers_forgotten = state.store.forget_silent_consumers(now - config.lease_seconds)
    report.ticks_trimmed = state.store.trim_schedule_ticks(now - TICK_RETENTION)
    return report


def _take_turn(state: AppState, now: float) -> bool:
    return state.store.take_lease("sweep", worker_id(), now, now + state.config.sweep_interval * 0.9)


def _rescue_dead(state: AppState, now: float, report: SweepReport) -> None:
    for claimed, heartbeat_at in state.store.lapsed(now, state.config.lease_seconds, BATCH):
        step = state.step(claimed.task)
        max_attempts = step.max_attempts if step else None
        allowed = (max_attempts or 1) + LOST_RUNS_ALLOWED
        silent = now - (heartbeat_at or now)
        if claimed.attempt < allowed:
            reason = f"consumer {claimed.worker} stopped renewing its lease ({silent:.0f}s ago); step rescued"
            log = partial(worklog.rescued, state, claimed, max_attempts, claimed.worker, silent)
            _, effects = commit(state, rescue, claimed, heartbeat_at, reason, log=log)
            found = report.rescued
        else:
            reason = f"lost with its consumer {claimed.attempt} times (last: {claimed.worker}); discarded"
            log = partial(worklog.discarded, state, claimed, max_attempts, worklog.Failure(None, reason))
            _, effects = commit(state, _discard_if_unchanged, claimed, heartbeat_at, reason, log=log)
            found = report.discarded
        if effects.changes:
            found.append(claimed.node_id)
            emit(
                plugin_rescued,
                workflow_id=claimed.workflow_id,
                workflow_label=state.label(claimed.workflow_id),
                step_name=claimed.step_name,
                job_id=claimed.node_id,
                worker=claimed.worker or None,
                attempt=claimed.attempt,
                reason=reason,
                timestamp=now,
            )


def rescue(tx: Tx, claimed: Claimed, heartbeat_at: float | None, reason: str) -> Effects[None]:
    """Make a step whose consumer died runnable again (state ``retryable``).

    Fenced on the heartbeat the sweep saw: a consumer that renewed its lease
    in the meantime keeps its step. The lost run is kept, as ending when its
    consumer was last heard from.
    """
    if not tx.store.rescue(tx.conn, claimed, heartbeat_at, reason, tx.now):
        return Effects(None)
    last_heard = tx.now if heartbeat_at is None else heartbeat_at
    tx.store.keep_attempt(tx.conn, claimed.ended(AttemptOutcome.LOST, last_heard, reason))
    return Effects(
        None,
        ready=[Ready(claimed.node_id, claimed.task)],
        changes=[
            StepChange(
                claimed.workflow_id,
                claimed.node_id,
                claimed.step_name,
                StepState.RETRYABLE,
                claimed.attempt,
                tx.now,
                worker=claimed.worker,
                error=reason,
            )
        ],
    )


def _discard_if_unchanged(tx: Tx, claimed: Claimed, heartbeat_at: float | None, reason: str) -> Effects[None]:
    """Discard a step lost too often, unless its consumer renewed the lease meanwhile."""
    if tx.store.heartbeat_of(tx.conn, claimed.node_id) != heartbeat_at:
        return Effects(None)
    return transitions.discard(tx, claimed, reason)


def _requeue_lost(state: AppState, now: float, report: SweepReport) -> None:
    lease = state.config.lease_seconds
    busy: dict[str, bool] = {}
    for node_id, task, scheduled_at in state.store.waiting_since(now - lease, BATCH):
        step = state.step(task)
        if step is None:
            continue
        if step.queue not in busy:
            busy[step.queue] = huey_compat.queue_depth(state.queues.huey(step.queue)).waiting > 0
        if busy[step.queue] and scheduled_at >= now - lease * BUSY_QUEUE_LEASES:
            continue  # probably still in a long queue, not lost
        _, effects = commit(state, requeue, node_id, task, scheduled_at)
        if effects.ready:
            report.requeued.append(node_id)


def requeue(tx: Tx, node_id: str, task: str, seen_at: float) -> Effects[None]:
    """Hand a waiting step to Huey again (its message was lost), once per sweeper."""
    ready = tx.store.requeue(tx.conn, node_id, seen_at, tx.now)
    return Effects(None, ready=[Ready(node_id, task)] if ready else [])


def _finish_settled(state: AppState, report: SweepReport) -> None:
    for workflow_id in state.store.settled_but_running(BATCH):
        # Announced by commit, once, even if the step's own consumer gets there too.
        _, effects = commit(state, finish, workflow_id)
        if effects.ended:
            report.finished.append(workflow_id)


def _announce_unannounced(state: AppState, now: float, report: SweepReport) -> None:
    for end in state.store.unannounced(now - state.config.heartbeat_seconds, BATCH):
        if announce_end(state, end):
            report.announced.append(end.workflow_id)


def _empty_outbox(state: AppState, now: float, report: SweepReport) -> None:
    """Every end announced a heartbeat ago or more (younger ones are still being sent), a batch at a time."""
    while ends := state.store.unpublished(now - state.config.heartbeat_seconds, BATCH):
        try:
            report.republished += empty_outbox(state, ends)
        except Exception:
            logger.exception("could not publish %d workflow end(s) again; the next sweep will try", len(ends))
            return
        if len(ends) < BATCH:
            return
