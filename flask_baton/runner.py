"""Running one delivered step: claim, call the function, record what it did.

This is the body of the ``flask_baton.run`` Huey task. The claim and the
outcome are two short transactions; the step function runs between them with
no transaction open, so a slow LLM call holds no database lock.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from functools import partial
from typing import Any

from . import transitions, worklog
from .appstate import AppState, worker_id
from .dispatch import LogLines, Transition, commit, make_job
from .effects import Claimed, Effects, StepChange
from .errors import StepTimeout
from .heartbeat import leased
from .job import Job
from .outcomes import Discard, Snooze
from .states import StepState
from .steps import Step
from .store import Tx
from .store.engine import riding_out_outages

logger = logging.getLogger("flask_baton")


def run_node(state: AppState, node_id: str) -> None:
    """Run the step ``node_id`` if it is claimable, and record its outcome."""
    worker = worker_id()
    claims: list[Claimed] = []

    def claim(tx: Tx) -> Effects:
        claimed = transitions.claim(tx, node_id, worker)
        if claimed is None:
            return Effects()
        claims.append(claimed)
        state.remember_label(claimed.workflow_id, claimed.label or "")
        now = tx.now
        queue_wait = None if claimed.queued_at is None else max(now - claimed.queued_at, 0.0)
        return Effects(changes=[StepChange(
            claimed.workflow_id, node_id, claimed.step_name, StepState.EXECUTING, claimed.attempt, now,
            worker=worker, queue_wait=queue_wait,
        )])

    commit(state, claim, autocommit=True)
    if not claims:
        commit(state, lambda tx: transitions.cancel_if_blocked(tx, node_id))
        return
    claimed = claims[0]
    step = state.step(claimed.task)
    if step is None:
        reason = f"no step named {claimed.task!r} is registered in this consumer"
        commit(state, lambda tx: transitions.discard(tx, claimed, reason),
               log=partial(worklog.discarded, state, claimed, None, worklog.Failure(None, reason)))
        return
    with leased(state.store, worker, state.config.heartbeat_seconds, node_id):
        _execute(state, step, claimed)


def hand_back(state: AppState, node_id: str) -> None:
    """Return a step this process was running to the queue (consumer stopping)."""
    worker = worker_id()
    commit(state, lambda tx: transitions.hand_back(tx, node_id, worker))


def _execute(state: AppState, step: Step, claimed: Claimed) -> None:
    """Run the step and record its outcome; the worker's log says what happened (``worklog``)."""
    job = make_job(state, claimed)
    try:
        value = _call(state, step, job)
        if isinstance(value, Snooze):
            raise value
        result = _encode(claimed, value)
    except Snooze as snooze:
        seconds = snooze.seconds
        _record(state, lambda tx: transitions.snooze(tx, claimed, seconds),
                partial(worklog.snoozed, state, claimed, step.max_attempts, seconds))
    except (Discard, _ResultError) as given_up:
        reason = given_up.reason if isinstance(given_up, Discard) else str(given_up)
        # A result that cannot be stored is named by what refused it (TypeError, ValueError).
        refused = given_up.__cause__ if isinstance(given_up, _ResultError) else None
        failure = worklog.Failure.of(refused or given_up, message=reason)
        _record(state, lambda tx: transitions.discard(tx, claimed, reason),
                partial(worklog.discarded, state, claimed, step.max_attempts, failure))
    except Exception as exc:
        error = traceback.format_exc()
        failure = worklog.Failure.of(exc, traceback=error)
        if claimed.attempt <= step.retries:
            delay = step.delay_before(claimed.attempt)
            _record(state, lambda tx: transitions.retry_later(tx, claimed, error, delay),
                    partial(worklog.retrying, state, claimed, step.max_attempts, failure))
        else:
            _record(state, lambda tx: transitions.discard(tx, claimed, error),
                    partial(worklog.discarded, state, claimed, step.max_attempts, failure))
    except BaseException:
        # The consumer is stopping (Ctrl-C, a process worker's interrupt) mid-step.
        hand_back(state, claimed.node_id)
        raise
    else:
        added = job.added_steps
        _record(state, lambda tx: transitions.complete(tx, claimed, result, added),
                partial(worklog.completed, state, claimed, step.max_attempts), autocommit=not added)


def _record(state: AppState, transition: Transition, log: LogLines, *, autocommit: bool = False) -> Effects:
    """``commit`` a step's outcome and ``log`` it, riding out a brief database outage.

    The step's lease stays renewed meanwhile. If the database stays away, the
    error propagates, the lease lapses and the sweep rescues the step: its
    function runs again, since its result was never stored.
    """
    return riding_out_outages(
        lambda: commit(state, transition, autocommit=autocommit, log=log), "record a step outcome"
    )


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
