"""The worker's log: one line an operator can act on per failure, retry, discard, cascade and rescue.

Logged on ``flask_baton.worker`` by the process where the step ran (or the
sweep that rescued it), after its transition committed and only if it won,
so each event is one line whatever the number of consumers. Levels: a failed
run with a retry scheduled, a cascade and a rescue are WARNING; a discarded
step and a failed workflow are ERROR; successes (a completed or snoozed
step, a completed workflow) are DEBUG, so a worker at INFO is quiet while all
goes well. A failure's traceback is a DEBUG record of its own, right after
its line, so it goes wherever DEBUG records go and nowhere else.

Every record carries its facts as attributes (``logging``'s ``extra=``), for
JSON log handlers: ``baton_event`` (which line it is) and ``workflow_id``,
``workflow_label``, ``step``, ``job_id``, ``attempt``, ``max_attempts`` on
each, plus ``error_type``, ``error_message``, ``retry_in``, ``retry_at``,
``cause``, ``cancelled``, ``lost_worker``, ``silent_for``, ``duration``,
``failed_steps`` or ``traceback`` where they apply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .appstate import AppState
from .effects import Effects, StepIdentity, WorkflowEnd
from .outcomes import WaitFor

#: The logger of every line here; documented in docs/consumers.md.
LOGGER_NAME = "flask_baton.worker"
logger = logging.getLogger(LOGGER_NAME)

#: An error message is cut to this many characters in the line (never in ``error_message``).
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Failure:
    """Why a run failed: the exception's type (None for a reason that is no exception) and message."""

    error_type: str | None
    error_message: str
    traceback: str | None = None

    @classmethod
    def of(cls, exc: BaseException, *, message: str | None = None, traceback: str | None = None) -> Failure:
        """The failure ``exc`` describes; builtins by bare name, others with their module."""
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        return cls(name, str(exc) if message is None else message, traceback)

    def __str__(self) -> str:
        """``ValueError: the message``, on one line and cut to ``MESSAGE_CHARS``."""
        text = " ".join(self.error_message.split())
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 1] + "…"
        return f"{self.error_type}: {text}" if self.error_type else text


def retrying(state: AppState, step: StepIdentity, max_attempts: int, failure: Failure, effects: Effects[Any]) -> None:
    """A run failed and the step will run again: when, and why it failed."""
    if not effects.changes or not effects.ready:
        return  # another consumer's transition won; it logs
    delay = effects.ready[0].delay
    at = effects.changes[0].timestamp + delay
    fields = _fields(
        state,
        "step_retrying",
        step,
        max_attempts,
        error_type=failure.error_type,
        error_message=failure.error_message,
        retry_in=delay,
        retry_at=at,
    )
    logger.warning(
        "%s failed on attempt %s: %s; retrying in %s (at %s)",
        _which(fields),
        _attempt(fields),
        failure,
        _seconds(delay),
        _clock(at),
        extra=fields,
    )
    _traceback(fields, failure)


def discarded(
    state: AppState, step: StepIdentity, max_attempts: int | None, failure: Failure, effects: Effects[Any]
) -> None:
    """A step failed for good; then the dependents its failure cancelled, if any."""
    if not effects.changes:
        return
    fields = _fields(
        state, "step_discarded", step, max_attempts, error_type=failure.error_type, error_message=failure.error_message
    )
    logger.error("%s discarded on attempt %s: %s", _which(fields), _attempt(fields), failure, extra=fields)
    _traceback(fields, failure)
    if effects.cancelled:
        cancelled = [item.step_name for item in effects.cancelled]
        cascade = _fields(state, "steps_cancelled", step, max_attempts, cause=step.step_name, cancelled=cancelled)
        logger.warning(
            "workflow %r (%s): step %r discarded, so %d dependent step(s) were cancelled: %s",
            cascade["workflow_label"],
            step.workflow_id,
            step.step_name,
            len(cancelled),
            ", ".join(cancelled),
            extra=cascade,
        )


def rescued(
    state: AppState,
    step: StepIdentity,
    max_attempts: int | None,
    lost_worker: str,
    silent_for: float,
    effects: Effects[Any],
) -> None:
    """The sweep took back a step whose consumer stopped renewing its lease."""
    if not effects.changes:
        return
    fields = _fields(state, "step_rescued", step, max_attempts, lost_worker=lost_worker, silent_for=silent_for)
    logger.warning(
        "%s rescued by the sweep after attempt %s: its consumer %s was silent for %s; it runs again now",
        _which(fields),
        _attempt(fields),
        lost_worker,
        _seconds(silent_for),
        extra=fields,
    )


def completed(state: AppState, step: StepIdentity, max_attempts: int, effects: Effects[Any]) -> None:
    """A step completed (DEBUG: shown by ``flask baton worker -v``)."""
    if not effects.changes or not logger.isEnabledFor(logging.DEBUG):
        return
    duration = effects.changes[0].duration
    fields = _fields(state, "step_completed", step, max_attempts, duration=duration)
    logger.debug(
        "%s completed on attempt %s in %s", _which(fields), _attempt(fields), _seconds(duration or 0.0), extra=fields
    )


def snoozed(state: AppState, step: StepIdentity, max_attempts: int, seconds: float, effects: Effects[Any]) -> None:
    """A step snoozed (DEBUG); its attempt is given back, so it is not a failure."""
    if not effects.changes or not logger.isEnabledFor(logging.DEBUG):
        return
    fields = _fields(
        state, "step_snoozed", step, max_attempts, retry_in=seconds, retry_at=effects.changes[0].timestamp + seconds
    )
    logger.debug("%s snoozed for %s", _which(fields), _seconds(seconds), extra=fields)


def waiting(state: AppState, step: StepIdentity, max_attempts: int, wait: WaitFor, effects: Effects[Any]) -> None:
    """A step waits for a signal (DEBUG): nothing is wrong, no worker is held."""
    if not effects.changes or not logger.isEnabledFor(logging.DEBUG):
        return
    fields = _fields(state, "step_waiting", step, max_attempts, signal=wait.name, wait_until=time.time() + wait.timeout)
    logger.debug("%s waits for signal %r for up to %s", _which(fields), wait.name, _seconds(wait.timeout), extra=fields)


def workflow_ended(state: AppState, end: WorkflowEnd) -> None:
    """A workflow settled its last step: ERROR if it failed, DEBUG if it completed."""
    failed = end.outcome != "completed"
    if not failed and not logger.isEnabledFor(logging.DEBUG):
        return
    fields = {
        "baton_event": f"workflow_{end.outcome}",
        "workflow_id": end.workflow_id,
        "workflow_label": state.label(end.workflow_id),
        "failed_steps": list(end.failed_steps),
    }
    if failed:
        logger.error(
            "workflow %r (%s) failed; failed steps: %s",
            fields["workflow_label"],
            end.workflow_id,
            ", ".join(end.failed_steps),
            extra=fields,
        )
    else:
        logger.debug("workflow %r (%s) completed", fields["workflow_label"], end.workflow_id, extra=fields)


def _fields(state: AppState, event: str, step: StepIdentity, max_attempts: int | None, **more: Any) -> dict[str, Any]:
    return {
        "baton_event": event,
        "workflow_id": step.workflow_id,
        "workflow_label": state.label(step.workflow_id),
        "step": step.step_name,
        "job_id": step.node_id,
        "attempt": step.attempt,
        "max_attempts": max_attempts,
        **more,
    }


def _traceback(fields: dict[str, Any], failure: Failure) -> None:
    if failure.traceback and logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "traceback of %s, attempt %s:\n%s",
            _which(fields),
            _attempt(fields),
            failure.traceback.rstrip(),
            extra={**fields, "baton_event": "step_traceback", "traceback": failure.traceback},
        )


def _which(fields: dict[str, Any]) -> str:
    return f"step {fields['step']!r} of workflow {fields['workflow_label']!r} ({fields['workflow_id']})"


def _attempt(fields: dict[str, Any]) -> str:
    limit = fields["max_attempts"]
    return f"{fields['attempt']}/{limit}" if limit is not None else str(fields["attempt"])


def _seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds:.0f}s"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
