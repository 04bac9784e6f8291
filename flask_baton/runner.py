"""Running one delivered step: claim, call the function, record what it did.

This is the body of the ``flask_baton.run`` Huey task. The claim and the
outcome are two short transactions; the step function runs between them with
no transaction open, so a slow LLM call holds no database lock. A
completion may claim, with it, a step it released for this worker to run
next in the same delivery (``handoff``): that step's claim is then part of
the outcome's transaction.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, TypeVarTuple

from . import budget_control, heartbeat, transitions, waits, worklog
from .appstate import AppState, worker_id
from .dispatch import LogLines, commit, make_job
from .effects import Claimed, Effects
from .errors import StepTimeout
from .handoff import HandOff
from .job import Job
from .outcomes import Discard, Snooze, WaitFor
from .pacing import Pacer
from .records import ModelCall
from .steps import DEFAULT_QUEUE, Step
from .store import Tx
from .store.engine import riding_out_outages

logger = logging.getLogger("flask_baton")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")
#: Per delivered step (Huey's message), the step that delivery is running now
#: (itself, or one handed off to it): what ``hand_back`` returns to the queue.
_running: dict[str, str] = {}


def run_node(state: AppState, node_id: str) -> None:
    """Run the delivered step ``node_id`` if it is claimable, then each step handed off to this worker.

    Each completion may claim a step it released for this worker to run
    next (``handoff``), until the delivery's budget is spent.
    """
    worker = worker_id()
    claimed, _ = commit(state, transitions.claim, node_id, worker, autocommit=True)
    if claimed is None:
        # A waiting step's message is its timeout (``waits``).
        commit(state, waits.unclaimed, node_id, log=partial(waits.log_timeout, state))
        return
    state.remember_label(claimed.workflow_id, claimed.label or "")
    step = state.step(claimed.task)
    queue = DEFAULT_QUEUE if step is None else step.queue
    hand_off = HandOff(state.steps, queue, state.config.handoff_seconds, partial(state.queues.stopping, queue))
    try:
        while claimed is not None:
            _running[node_id] = claimed.node_id
            claimed = _run_claimed(state, claimed, hand_off)
    finally:
        _running.pop(node_id, None)


def _run_claimed(state: AppState, claimed: Claimed, hand_off: HandOff) -> Claimed | None:
    """Run a claimed step and record its outcome; the step its completion handed off, if any."""
    step = state.step(claimed.task)
    if step is None:
        reason = f"no step named {claimed.task!r} is registered in this consumer"
        commit(
            state,
            transitions.discard,
            claimed,
            reason,
            log=partial(worklog.discarded, state, claimed, None, worklog.Failure(None, reason)),
        )
        return None
    if not budget_control.may_start(state, claimed):
        return None
    with heartbeat.leased(state.store, claimed.worker, state.config.heartbeat_seconds, claimed.node_id):
        return _execute(state, step, claimed, hand_off)


def hand_back(state: AppState, node_id: str) -> None:
    """Return a step this process was running to the queue (consumer stopping).

    ``node_id`` is the step Huey delivered; the step handed back is the one
    that delivery is running now, which may be one handed off to it since.
    """
    commit(state, transitions.hand_back, _running.get(node_id, node_id), worker_id())


def serving(state: AppState, queue: str, started: bool) -> None:
    """A Huey worker of this process starts (or stops) taking ``queue``'s steps: its heartbeat says so."""
    beat = heartbeat.serve if started else heartbeat.leave
    beat(state.store, worker_id(), state.config.heartbeat_seconds, queue)


def _execute(state: AppState, step: Step, claimed: Claimed, hand_off: HandOff) -> Claimed | None:
    """Run the step and record its outcome; the worker's log says what happened (``worklog``).

    The value is the step its completion handed off to this worker, if any.
    """
    pacer = Pacer(state, step, claimed)
    over_budget = partial(budget_control.after_usage, state, claimed.workflow_id, claimed.budget_usd)

    def on_usage(call: ModelCall) -> None:
        pacer.correct(call)  # the rate limit counts the tokens really used
        over_budget()  # and the spend caps the cost

    job = make_job(state, claimed, on_usage=on_usage)
    try:
        pacer.admit(job)
        with pacer:
            try:
                value = _call(state, step, job)
            finally:
                job.end_stream()  # its last words are heard before its outcome
            if isinstance(value, Snooze):
                raise value
            if isinstance(value, WaitFor):
                log = partial(worklog.waiting, state, claimed, step.max_attempts, value)
                _record(state, log, waits.wait, claimed, value)
                return None
        result = _encode(claimed, value)
    except Snooze as snooze:
        _record(
            state,
            partial(worklog.snoozed, state, claimed, step.max_attempts, snooze.seconds),
            transitions.snooze,
            claimed,
            snooze.seconds,
            snooze.waiting_for,
        )
    except (Discard, _ResultError) as given_up:
        reason = given_up.reason if isinstance(given_up, Discard) else str(given_up)
        # A result that cannot be stored is named by what refused it (TypeError, ValueError).
        refused = given_up.__cause__ if isinstance(given_up, _ResultError) else None
        failure = worklog.Failure.of(refused or given_up, message=reason)
        _record(
            state,
            partial(worklog.discarded, state, claimed, step.max_attempts, failure),
            transitions.discard,
            claimed,
            reason,
        )
    except Exception as exc:
        error = traceback.format_exc()
        failure = worklog.Failure.of(exc, traceback=error)
        if claimed.attempt <= step.retries:
            _record(
                state,
                partial(worklog.retrying, state, claimed, step.max_attempts, failure),
                transitions.retry_later,
                claimed,
                error,
                step.delay_before(claimed.attempt),
            )
        else:
            _record(
                state,
                partial(worklog.discarded, state, claimed, step.max_attempts, failure),
                transitions.discard,
                claimed,
                error,
            )
    except BaseException:
        # The consumer is stopping (Ctrl-C, a process worker's interrupt) mid-step.
        hand_back(state, claimed.node_id)
        raise
    else:
        added = job.added_steps
        return _record(
            state,
            partial(worklog.completed, state, claimed, step.max_attempts),
            transitions.complete,
            claimed,
            result,
            added,
            hand_off.take(),
            autocommit=not added,
        )
    return None


def _record(
    state: AppState,
    log: LogLines,
    transition: Callable[[Tx, *Ts], Effects[T]],
    *args: *Ts,
    autocommit: bool = False,
) -> T:
    """``commit`` a step's outcome and ``log`` it, riding out a brief database outage.

    The step's lease stays renewed meanwhile. If the database stays away, the
    error propagates, the lease lapses and the sweep rescues the step: its
    function runs again, since its result was never stored.
    """
    value, _ = riding_out_outages(
        lambda: commit(state, transition, *args, autocommit=autocommit, log=log), "record a step outcome"
    )
    return value


def _call(state: AppState, step: Step, job: Job) -> Any:
    """Run the step function, within its timeout if it has one.

    Python cannot stop a thread, so a timed-out function runs on in its own
    daemon thread until it returns; its outcome is ignored and the step fails
    with ``StepTimeout`` now. Give HTTP clients their own timeouts as well.
    """
    timeout = step.timeout_for(state.config.llm_timeout)
    if timeout is None:
        return step.func(job)
    outcome: dict[str, Any] = {}

    def target() -> None:
        with state.app.app_context():
            try:
                outcome["value"] = step.func(job)
            except BaseException as exc:  # handed to the consumer's thread below
                outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"baton-step-{job.step_name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise StepTimeout(f"step {job.step_name!r} ran longer than its timeout of {timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _ResultError(Exception):
    """A step returned something that cannot be stored."""


def _encode(claimed: Claimed, value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise _ResultError(
            f"step {claimed.step_name!r} returned a result that is not JSON-serialisable "
            f"({type(value).__name__}): {exc}"
        ) from exc
