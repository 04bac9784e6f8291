"""blinker signals for every transition, named like the Elixir library's events.

``[:baton, :step, :completed]`` there is ``step_signal("completed")`` here,
a blinker signal named ``"baton.step.completed"``. Receivers run in the
process where the transition happened (usually a consumer), after its
transaction committed. As in Huey's own ``_emit``, a receiver that raises is
logged and never breaks a step.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

from .states import StepState
from .errors import ArgumentError

logger = logging.getLogger("flask_baton")
signals = Namespace()

#: One signal per announced step state: executing, snoozed, completed, ...
STEP_STATES = (
    StepState.EXECUTING,
    StepState.SNOOZED,
    StepState.COMPLETED,
    StepState.RETRYABLE,
    StepState.DISCARDED,
    StepState.CANCELLED,
)
workflow_finished = signals.signal("baton.workflow.finished")
plugin_rescued = signals.signal("baton.plugin.rescued")
plugin_pruned = signals.signal("baton.plugin.pruned")


def step_signal(state: str) -> NamedSignal:
    """The signal sent when a step enters ``state`` (``"baton.step.<state>"``)."""
    if state not in STEP_STATES:
        raise ArgumentError(f"no step signal for state {state!r}; one of {', '.join(STEP_STATES)}")
    return signals.signal(f"baton.step.{state}")


def emit(signal: NamedSignal, **payload: Any) -> None:
    """Send ``signal`` to each receiver; log, never raise, a receiver's error."""
    if not signal.receivers:
        return
    for receiver in signal.receivers_for(None):
        try:
            receiver(None, **payload)
        except Exception:
            logger.exception("telemetry receiver %r of %s failed", receiver, signal.name)


def _log_failure(_sender: Any, **event: Any) -> None:
    logger.warning(
        "step %s of workflow %s (%s) is %s on attempt %s: %s",
        event["step_name"], event["workflow_label"], event["workflow_id"],
        event["state"], event["attempt"], event["error"],
    )


def _log_finished(_sender: Any, **event: Any) -> None:
    if event["outcome"] != "completed":
        logger.warning(
            "workflow %s (%s) failed; failed steps: %s",
            event["workflow_label"], event["workflow_id"], ", ".join(event["failed_steps"]),
        )


def _log_rescued(_sender: Any, **event: Any) -> None:
    logger.warning("rescued step %s of workflow %s: %s", event["step_name"], event["workflow_id"], event["reason"])


def attach_default_logger(level: int = logging.WARNING) -> None:
    """Log failures (retryable, discarded, cancelled, failed workflows) and rescues."""
    logger.setLevel(min(logger.level or level, level))
    for state in (StepState.RETRYABLE, StepState.DISCARDED, StepState.CANCELLED):
        step_signal(state).connect(_log_failure, weak=False)
    workflow_finished.connect(_log_finished, weak=False)
    plugin_rescued.connect(_log_rescued, weak=False)
