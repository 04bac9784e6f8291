"""Ways a step function tells flask_baton what became of it, besides returning.

Mirrors Huey's style of signalling outcomes with exceptions (``RetryTask``,
``CancelExecution``): raising works from anywhere in the call stack, and
``Snooze`` may also be returned, which reads better at the end of a step.
"""

from __future__ import annotations

import math

from .errors import ArgumentError


class Snooze(Exception):
    """Not ready yet: run this step again in ``seconds`` without using an attempt."""

    #: Why the step waits, shown while it is snoozed (set for the waits of a rate limit).
    waiting_for: str | None = None

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = _seconds(f"{type(self).__name__} seconds", seconds)
        super().__init__(f"snoozed for {self.seconds:g}s")


class RateLimited(Snooze):
    """The provider said "too many requests": run again in ``retry_after`` seconds, without using an attempt.

    A step with a ``rate_limit`` key also slows that key down: no step of it
    starts before then. An OpenAI or Anthropic SDK ``RateLimitError`` raised
    by a step, carrying a ``retry-after`` header, is turned into this, with that wait.
    """

    def __init__(self, retry_after: float = 10.0) -> None:
        super().__init__(_seconds("RateLimited retry_after", retry_after))
        self.retry_after = self.seconds
        self.waiting_for = f"rate limited by the provider; trying again in {self.seconds:g}s"


def _seconds(what: str, seconds: object) -> float:
    """``seconds`` as a float, or ``ArgumentError`` naming ``what``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise ArgumentError(f"{what} must be a number >= 0, got {seconds!r}")
    return float(seconds)


class Discard(Exception):
    """Give up on this step now, with no retry; its dependents are cancelled."""

    def __init__(self, reason: str = "discarded by the step") -> None:
        self.reason = reason
        super().__init__(reason)
