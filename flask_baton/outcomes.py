"""Ways a step function tells flask_baton what became of it, besides returning.

Mirrors Huey's style of signalling outcomes with exceptions (``RetryTask``,
``CancelExecution``): raising works from anywhere in the call stack, and
``Snooze`` may also be returned, which reads better at the end of a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .errors import ArgumentError

#: What becomes of a step whose ``WaitFor`` timed out.
OnTimeout = Literal["discard", "continue"]


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


@dataclass(frozen=True)
class WaitFor:
    """Returned by a step: wait for the signal ``name`` without holding a worker, then run again.

    ``baton.signal(workflow_id, name, payload)`` wakes the step: it runs again
    (the attempt is given back, as for a snooze) and ``job.signal(name)``
    returns the payload. A signal sent before the wait is kept, so the step
    then runs again at once. After ``timeout`` seconds with no signal the
    step is discarded (its dependents cancelled), or with
    ``on_timeout="continue"`` runs again with ``job.signal(name)`` None and
    ``job.timed_out(name)`` True. ``approval=True`` marks a wait for a person:
    the dashboard shows Approve / Reject buttons for it.
    """

    name: str
    timeout: float
    on_timeout: OnTimeout = "discard"
    approval: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > MAX_SIGNAL_NAME:
            raise ArgumentError(
                f"WaitFor name must be a non-empty string of at most {MAX_SIGNAL_NAME} characters, got {self.name!r}"
            )
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or not self.timeout > 0:
            raise ArgumentError(f"WaitFor({self.name!r}) timeout must be a number of seconds > 0, got {self.timeout!r}")
        if self.timeout == float("inf"):
            raise ArgumentError(f"WaitFor({self.name!r}) timeout must be finite, got {self.timeout!r}")
        if self.on_timeout not in ("discard", "continue"):
            raise ArgumentError(
                f"WaitFor({self.name!r}) on_timeout must be 'discard' or 'continue', got {self.on_timeout!r}"
            )


#: Longest signal name (``baton_signals.name``).
MAX_SIGNAL_NAME = 255
