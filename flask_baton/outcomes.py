"""Ways a step function tells flask_baton what became of it, besides returning.

Mirrors Huey's style of signalling outcomes with exceptions (``RetryTask``,
``CancelExecution``): raising works from anywhere in the call stack, and
``Snooze`` may also be returned, which reads better at the end of a step.
"""

from __future__ import annotations

from .errors import ArgumentError


class Snooze(Exception):
    """Not ready yet: run this step again in ``seconds`` without using an attempt."""

    def __init__(self, seconds: float = 5.0) -> None:
        if seconds < 0:
            raise ArgumentError(f"Snooze seconds must be >= 0, got {seconds!r}")
        self.seconds = float(seconds)
        super().__init__(f"snoozed for {self.seconds:g}s")


class Discard(Exception):
    """Give up on this step now, with no retry; its dependents are cancelled."""

    def __init__(self, reason: str = "discarded by the step") -> None:
        self.reason = reason
        super().__init__(reason)
