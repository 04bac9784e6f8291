"""The state machine of a running step: claim, complete, retry, snooze, hand back, discard.

Each function is a transition: ``dispatch.commit(state, transition, *args)``
runs it inside one short write transaction (on PostgreSQL with events
outside the database, the claim and a completion without added steps run
without one: each of their statements is a whole change) and acts on the
``Effects`` it returns *after* the commit: steps to hand to Huey, events to
announce, hooks to call. Nothing is enqueued or announced for a change that
did not commit, and every statement the store sends names the state it
expects, so of two racing consumers exactly one wins. What each costs in
round trips is said by each store (``SqliteStore``, ``PostgresStore``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .cascade import cascade, finish, settle
from .effects import Claimed, Effects, NewStep, Ready, StepChange
from .inserts import add_steps
from .records import AttemptRecord
from .states import CANCELLABLE, AttemptOutcome, StepState
from .store import Tx

#: Seconds a handed-back step waits in Huey's schedule before it is queued again.
HAND_BACK_DELAY = 1.0


def claim(tx: Tx, node_id: str, worker: str) -> Effects[Claimed | None]:
    """Start executing a delivered step, if it is due and no dependency holds it back.

    This is the self-gate: whatever enqueued the step (a completion, a retry,
    the sweep, a duplicate delivery), it runs only from a claimable state and
    only when every dependency is completed (or failed in a way its edge
    tolerates: ``states.satisfied``), and only one claimer wins. The value is
    the step as claimed, None if it was not.
    """
    claimed = tx.store.claim(tx.conn, node_id, worker, tx.now)
    if claimed is None:
        return Effects(None)
    return Effects(claimed, changes=[_executing(claimed, tx.now)])


def _executing(claimed: Claimed, now: float) -> StepChange:
    """The ``executing`` transition of a claimed step, with how long it waited to be claimed."""
    return StepChange(
        claimed.workflow_id,
        claimed.node_id,
        claimed.step_name,
        StepState.EXECUTING,
        claimed.attempt,
        now,
        worker=claimed.worker,
        queue_wait=None if claimed.queued_at is None else max(now - claimed.queued_at, 0.0),
        label=claimed.label,
    )


def cancel_if_blocked(tx: Tx, node_id: str) -> Effects[None]:
    """For a delivered step that could not be claimed: cancel it if a dep failed.

    The cascade normally does this when the dependency fails; this covers a
    step that became runnable again (a manual retry) behind a failed dep.
    """
    step = tx.store.step_row(tx.conn, node_id)
    if step is None or step.state not in CANCELLABLE:
        return Effects(None)
    blocker = tx.store.failed_blocker(tx.conn, step.workflow_id, step.step_name)
    if blocker is None:
        return Effects(None)
    name, state = blocker
    return cascade(tx, step.workflow_id, {name: state}, only={step.step_name})


def complete(
    tx: Tx, claimed: Claimed, result: str | None, added: Sequence[NewStep], take: frozenset[str] = frozenset()
) -> Effects[Claimed | None]:
    """Store a step's result, release its dependents, add its new steps, and count it settled.

    Where the store can (PostgreSQL, no steps added), one statement does it
    all. Otherwise, in one transaction: the step, then its dependents as a
    later statement sees them (every step added behind this one since its
    claim), then the steps it added, then the counter.

    Direct hand-off: one released step that starts now and runs one of the
    tasks in ``take`` is claimed for the same worker in that same statement
    or transaction, with the compare-and-set of a claim, instead of being
    handed to Huey; the value is that step as claimed (its ``executing``
    change follows this step's ``completed`` one), else None.
    """
    change = claimed.change(StepState.COMPLETED, tx.now, has_result=result is not None)
    if not added:
        done = tx.store.complete_in_one(tx.conn, claimed, result, tx.now, take)
        if done is not None:
            effects: Effects[Claimed | None] = Effects(
                done.taken, ready=done.ready, changes=[change], ended=[done.ended] if done.ended else []
            )
            if done.taken is not None:
                effects.changes.append(_executing(done.taken, tx.now))
            if done.ended is None and done.settled_last:
                # The last steps settled at once: read their outcomes in a later statement.
                effects.merge(finish(tx, claimed.workflow_id))
            return effects
    with tx.store.atomic(tx.conn):
        if not tx.store.complete_step(tx.conn, claimed, result, tx.now):
            return Effects(None)
        effects = Effects(None, ready=tx.store.release_dependents(tx.conn, claimed, tx.now), changes=[change])
        if added:
            # After the release: added steps count this one as completed already.
            effects.merge(add_steps(tx, claimed.workflow_id, added))
        effects.merge(settle(tx, claimed.workflow_id, 1))
        if take:
            _take(tx, effects, claimed.worker, take)
        return effects


def _take(tx: Tx, effects: Effects[Claimed | None], worker: str, take: frozenset[str]) -> None:
    """Claim for ``worker`` the first step of ``effects.ready`` due now that runs a task in ``take``.

    The claim is the one a delivered message makes (``claim``): it checks
    the step is still due and every dependency satisfied. The step then
    leaves the list handed to Huey, and its ``executing`` change follows the
    changes made so far.
    """
    for index, ready in enumerate(effects.ready):
        if ready.delay == 0 and ready.task in take:
            claimed = claim(tx, ready.node_id, worker)
            if claimed.value is not None:
                del effects.ready[index]
                effects.value = claimed.value
                effects.merge(claimed)
            return


def retry_later(tx: Tx, claimed: Claimed, error: str, delay: float) -> Effects[None]:
    """A failed run with attempts left: run again after ``delay`` seconds."""
    return _reschedule(tx, claimed, StepState.RETRYABLE, AttemptOutcome.FAILED, delay, error=error)


def snooze(tx: Tx, claimed: Claimed, seconds: float, waiting_for: str | None = None) -> Effects[None]:
    """Run again after ``seconds``; the attempt is given back. ``waiting_for``: the limit it waits for."""
    return _reschedule(
        tx,
        claimed,
        StepState.SNOOZED,
        AttemptOutcome.SNOOZED,
        seconds,
        attempt=claimed.attempt - 1,
        waiting_for=waiting_for,
    )


def wake(tx: Tx, node_ids: Sequence[str]) -> Effects[None]:
    """Hand snoozed steps to Huey now: the slot they wait for freed (``pacing``). Others are left alone."""
    ready = [Ready(node_id, task) for node_id in node_ids if (task := tx.store.wake_snoozed(tx.conn, node_id, tx.now))]
    return Effects(None, ready=ready)


def _reschedule(
    tx: Tx,
    claimed: Claimed,
    state: StepState,
    outcome: AttemptOutcome,
    delay: float,
    *,
    error: str | None = None,
    attempt: int | None = None,
    waiting_for: str | None = None,
) -> Effects[None]:
    """Move the claimed run's step to ``state``, keeping the run: the next one takes over the step's row."""
    if not tx.store.reschedule(tx.conn, claimed, state, tx.now + delay, error, attempt, waiting_for):
        return Effects(None)
    tx.store.keep_attempt(tx.conn, claimed.ended(outcome, tx.now, error))
    return Effects(
        None, ready=[Ready(claimed.node_id, claimed.task, delay)], changes=[claimed.change(state, tx.now, error=error)]
    )


def hand_back(tx: Tx, node_id: str, worker: str) -> Effects[None]:
    """Hand a step back unrun: its consumer is stopping mid-step.

    Enqueued after a pause: right now the stopping consumer's idle workers
    may still be blocked on the queue and would take the message with them.
    """
    back = tx.store.hand_back(tx.conn, node_id, worker, tx.now)
    if back is None:
        return Effects(None)
    run = AttemptRecord(
        back.workflow_id,
        node_id,
        back.step_name,
        back.attempt,
        AttemptOutcome.HANDED_BACK,
        worker,
        back.started_at,
        tx.now,
        None,
    )
    tx.store.keep_attempt(tx.conn, run)
    return Effects(None, ready=[Ready(node_id, back.task, HAND_BACK_DELAY)])


def discard(tx: Tx, claimed: Claimed, reason: str) -> Effects[None]:
    """Fail a step for good and cancel everything downstream of it."""
    if not tx.store.discard_step(tx.conn, claimed, reason, tx.now):
        return Effects(None)
    effects = Effects(None, changes=[claimed.change(StepState.DISCARDED, tx.now, error=reason)])
    effects.merge(cascade(tx, claimed.workflow_id, {claimed.step_name: StepState.DISCARDED}, settled_first=1))
    return effects
