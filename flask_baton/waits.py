"""Durable waits: a step that returned ``WaitFor``, the signal that wakes it, and its timeout.

A waiting step holds no worker and no Huey message runs it: its row is
``waiting`` with its deadline as ``scheduled_at``, and its last ``WaitFor``
is kept in ``baton_waits``. ``signal`` keeps the payload in
``baton_signals`` (whether or not a step waits yet) and makes every step
waiting for it runnable again. At the deadline a delayed Huey message (the
step's own task, which cannot claim a waiting step) times the wait out; the
sweep does the same for a message lost with its queue.

One signal per workflow and name: a second is refused, not queued. A
signal is a decision (an approval, a reply) that a step reads with
``job.signal(name)`` as often as it runs; a queue would need each step to
say which one it has read, and two reviewers clicking at once must not
both be recorded as the decision.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

from . import transitions, worklog
from .appstate import AppState
from .cascade import cascade
from .dispatch import commit
from .effects import Claimed, Effects, Ready, StepChange, StepIdentity
from .errors import SignalError, WorkflowNotFoundError
from .outcomes import MAX_SIGNAL_NAME, WaitFor
from .states import AttemptOutcome, StepState, WorkflowState
from .store import Tx
from .store.waits import WaitRow

#: Waits the sweep times out per sweep.
BATCH = 1000


def wait(tx: Tx, claimed: Claimed, wait_for: WaitFor) -> Effects[None]:
    """The claimed run returned ``wait_for``: wait for its signal, or run again now if it was kept already.

    A signal kept before the wait wakes the step at once (it runs again, as
    after a snooze of 0 s). A step that returns ``WaitFor`` again for a
    signal it was woken by, or whose wait timed out, is discarded: it would
    wait for ever.
    """
    tx.store.lock_workflow(tx.conn, claimed.workflow_id)
    kept = tx.store.signal_row(tx.conn, claimed.workflow_id, wait_for.name)
    if kept is not None:
        if kept.timed_out:
            why = f"its wait timed out; check job.timed_out({wait_for.name!r})"
            return transitions.discard(tx, claimed, f"returned WaitFor({wait_for.name!r}) again after {why}")
        if kept.delivered_at is not None:
            why = f"the signal arrived; read it with job.signal({wait_for.name!r})"
            return transitions.discard(tx, claimed, f"returned WaitFor({wait_for.name!r}) again after {why}")
        tx.store.mark_delivered(tx.conn, claimed.workflow_id, wait_for.name, tx.now)
        return transitions.snooze(tx, claimed, 0.0)
    if not tx.store.enter_wait(tx.conn, claimed, wait_for, tx.now):
        return Effects(None)
    tx.store.keep_attempt(tx.conn, claimed.ended(AttemptOutcome.WAITED, tx.now))
    return Effects(
        None,
        ready=[Ready(claimed.node_id, claimed.task, wait_for.timeout)],  # the timeout's message
        changes=[claimed.change(StepState.WAITING, tx.now)],
    )


def signal(state: AppState, workflow_id: str, name: str, payload: Any, sent_by: str | None = None) -> list[str]:
    """Send the signal ``name`` with ``payload`` to a running workflow; return the steps it woke.

    Kept for a step that has not waited yet. Refused with ``SignalError``
    (nothing stored) for a payload that is None or not JSON, a workflow
    that is not running, or a second signal of the same name;
    ``WorkflowNotFoundError`` for an unknown workflow.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_SIGNAL_NAME:
        raise SignalError(f"a signal name must be a non-empty string of at most {MAX_SIGNAL_NAME} characters")
    if payload is None:
        raise SignalError(f"signal {name!r} needs a payload: job.signal() returns None while no signal has arrived")
    try:
        encoded = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SignalError(f"the payload of signal {name!r} is not JSON ({type(payload).__name__}): {exc}") from None
    woken, _ = commit(state, deliver, workflow_id, name, encoded, sent_by)
    return woken


def deliver(tx: Tx, workflow_id: str, name: str, payload: str, sent_by: str | None) -> Effects[list[str]]:
    """Keep the signal and wake the steps waiting for it; raise (rolling back) when it is refused."""
    found = tx.store.lock_workflow(tx.conn, workflow_id)
    if found is None:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    if found != WorkflowState.RUNNING:
        raise SignalError(f"workflow {workflow_id} is {found}: no step of it can wait for signal {name!r}")
    if not tx.store.keep_signal(tx.conn, workflow_id, name, payload, sent_by, tx.now):
        raise SignalError(_refusal(tx, workflow_id, name))
    return _wake(tx, workflow_id, name)


def _refusal(tx: Tx, workflow_id: str, name: str) -> str:
    """Why a second signal ``name`` is refused: what the first one was."""
    first = tx.store.signal_row(tx.conn, workflow_id, name)
    if first is None:  # the first one's transaction rolled back meanwhile
        return f"signal {name!r} of workflow {workflow_id} is being sent right now; try again"
    when = datetime.fromtimestamp(first.sent_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if first.timed_out:
        return f"the wait for signal {name!r} of workflow {workflow_id} timed out at {when}; signal refused"
    by = f" by {first.sent_by}" if first.sent_by else ""
    return (
        f"signal {name!r} of workflow {workflow_id} was sent already{by} at {when}; "
        "a signal is sent once per workflow and name, the first one stands"
    )


def _wake(tx: Tx, workflow_id: str, name: str) -> Effects[list[str]]:
    """Make the steps waiting for ``name`` run again now (announced ``snoozed``: due now, no attempt used)."""
    woken = tx.store.wake(tx.conn, workflow_id, name, tx.now)
    if woken:
        tx.store.mark_delivered(tx.conn, workflow_id, name, tx.now)
    return Effects(
        [step.step_name for step in woken],
        ready=[Ready(step.node_id, step.task) for step in woken],
        changes=[
            StepChange(workflow_id, step.node_id, step.step_name, StepState.SNOOZED, step.attempt, tx.now)
            for step in woken
        ],
    )


def unclaimed(tx: Tx, node_id: str) -> Effects[None]:
    """A delivered message that could not claim its step: a waiting step's timeout, else ``cancel_if_blocked``."""
    timed_out = time_out_if_expired(tx, node_id, tx.now)
    return timed_out if timed_out.changes else transitions.cancel_if_blocked(tx, node_id)


def time_out_if_expired(tx: Tx, node_id: str, now: float) -> Effects[None]:
    """``time_out`` the step if it still waits past its deadline at ``now`` (a compare-and-set on what it saw)."""
    expired = tx.store.expired_wait(tx.conn, node_id, now)
    return Effects(None) if expired is None else time_out(tx, expired)


def time_out(tx: Tx, expired: WaitRow) -> Effects[None]:
    """End a wait past its deadline: discard the step (its dependents cancelled), or run it again.

    With ``on_timeout="continue"`` a timed-out signal is kept (payload None),
    so ``job.timed_out(name)`` says so and a late signal is refused.
    """
    tx.store.lock_workflow(tx.conn, expired.workflow_id)
    if expired.on_timeout == "continue":
        if not tx.store.end_wait(tx.conn, expired, StepState.SNOOZED, tx.now, None):
            return Effects(None)
        tx.store.keep_signal(tx.conn, expired.workflow_id, expired.name, None, None, tx.now, timed_out=True)
        return Effects(
            None,
            ready=[Ready(expired.node_id, expired.task)],
            changes=[_change(expired, StepState.SNOOZED, tx.now)],
        )
    reason = timeout_reason(expired.name)
    if not tx.store.end_wait(tx.conn, expired, StepState.DISCARDED, tx.now, reason):
        return Effects(None)
    effects = Effects(None, changes=[_change(expired, StepState.DISCARDED, tx.now, reason)])
    effects.merge(cascade(tx, expired.workflow_id, {expired.step_name: StepState.DISCARDED}, settled_first=1))
    return effects


def timeout_reason(name: str) -> str:
    """The error of a step discarded because its wait timed out."""
    return f"timed out waiting for {name!r}"


def _change(expired: WaitRow, state: StepState, now: float, error: str | None = None) -> StepChange:
    return StepChange(expired.workflow_id, expired.node_id, expired.step_name, state, expired.attempt, now, error=error)


def time_out_expired(state: AppState, now: float | None = None) -> list[str]:
    """Time out every wait past its deadline whose message was lost (the sweep's backstop); the steps changed."""
    now = time.time() if now is None else now
    changed = []
    for node_id in state.store.expired_waits(now, BATCH):
        _, effects = commit(state, time_out_if_expired, node_id, now, log=partial(log_timeout, state))
        if effects.changes:
            changed.append(node_id)
    return changed


def log_timeout(state: AppState, effects: Effects[Any]) -> None:
    """A wait that timed out into a discard is logged as one (ERROR), with its cascade."""
    for change in effects.changes[:1]:
        if change.state == StepState.DISCARDED:
            step = StepIdentity(change.node_id, change.workflow_id, change.step_name, "", "", change.attempt)
            worklog.discarded(state, step, None, worklog.Failure(None, change.error or ""), effects)
