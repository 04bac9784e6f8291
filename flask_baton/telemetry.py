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

from .errors import ArgumentError
from .states import StepState

logger = logging.getLogger("flask_baton")
signals = Namespace()

#: One signal per announced step state: executing, snoozed, completed, ...
STEP_STATES = (
    StepState.EXECUTING,
    StepState.SNOOZED,
    StepState.WAITING,
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


def attach_default_logger(level: int = logging.WARNING) -> None:
    """Kept for existing callers: failures are logged without it now.

    The worker's log (``flask_baton.worker``, see ``worklog``) logs every
    failed run, retry, discard, cascade, rescue and failed workflow where it
    happens, by default. This only lowers the ``flask_baton`` logger's level
    to ``level``, as this function always did; it attaches no receiver, so
    nothing is logged twice.
    """
    logger.setLevel(min(logger.level or level, level))
