"""The states of steps and workflows, which of them mean what, and when an edge holds its step back.

Pure data: the state machine (``transitions``, ``cascade``, ...) moves steps
between these, the store's statements compare-and-set on them, and the
dashboard colours them. ``satisfied`` is the one definition of "this
dependency no longer holds its dependent back": the claim, the cascade, a
workflow's outcome (``store.hotpath`` writes the SQL of it from
``Tolerance``), ``explain``, a retry's plan and the dashboard's retry button
all follow it.
"""

from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    """Lifecycle of one step (one row of ``baton_nodes``)."""

    PENDING = "pending"  # waiting for dependencies
    AVAILABLE = "available"  # ready and handed to Huey
    EXECUTING = "executing"  # claimed by a consumer
    SNOOZED = "snoozed"  # asked to run later; no attempt used
    WAITING = "waiting"  # waits for a named signal (``WaitFor``); no worker held, no attempt used
    RETRYABLE = "retryable"  # failed, will run again after its delay
    COMPLETED = "completed"
    DISCARDED = "discarded"  # failed for good
    CANCELLED = "cancelled"  # a dependency failed, or the workflow was cancelled


class WorkflowState(StrEnum):
    """Lifecycle of a whole workflow (one row of ``baton_workflows``)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptOutcome(StrEnum):
    """How one run of a step ended (a row of ``baton_attempts``, or the run its step's row holds).

    A failed run followed by another, a snooze, a hand back and a rescue each
    leave the step's row to the next run, so they are kept as rows of their
    own; the last run of a step is its row.
    """

    RUNNING = "running"  # still executing
    COMPLETED = "completed"
    FAILED = "failed"  # raised (or timed out); the step ran again after its delay
    SNOOZED = "snoozed"  # asked to run later; its attempt was given back
    WAITED = "waited"  # returned ``WaitFor``: waited for a signal; its attempt was given back
    HANDED_BACK = "handed_back"  # its consumer stopped mid-run; its attempt was given back
    LOST = "lost"  # its consumer stopped renewing its lease; the sweep rescued the step
    DISCARDED = "discarded"  # failed for good
    CANCELLED = "cancelled"  # cancelled while running


class CancelledBy(StrEnum):
    """Who cancelled a ``cancelled`` step: what its workflow's outcome says about it.

    Stored in ``baton_nodes.cancelled_by`` as ``user`` or ``budget`` only; a
    cascade leaves it NULL, so the statements every step runs never write it.
    """

    USER = "user"  # cancel_workflow: the dashboard, the CLI or a script
    BUDGET = "budget"  # its workflow's budget_usd, or BATON_BUDGET_USD_PER_DAY, was reached
    DEPENDENCY = "dependency"  # a dependency failed in a way its edge does not tolerate


class TickOutcome(StrEnum):
    """What a schedule's tick did (``baton_schedule_ticks.outcome``)."""

    STARTED = "started"  # it inserted a workflow
    SKIPPED = "skipped"  # overlap="skip" and the previous run was still running, or its unique_key was held
    FAILED = "failed"  # building the workflow raised; the error is kept, the tick not tried again


#: States a delivered Huey message may claim (start executing) from.
CLAIMABLE = (StepState.AVAILABLE, StepState.SNOOZED, StepState.RETRYABLE)
#: States that will not change again (short of an explicit retry).
SETTLED = (StepState.COMPLETED, StepState.DISCARDED, StepState.CANCELLED)
#: Settled states that cancel a step's dependents.
FAILED = (StepState.DISCARDED, StepState.CANCELLED)
#: States a cascade may cancel: not started, or waiting to start again (a
#: ``waiting`` step runs again when its signal arrives).
CANCELLABLE = (StepState.PENDING, *CLAIMABLE, StepState.WAITING)


class Tolerance(StrEnum):
    """A dependency's failure an edge lets its dependent run after (``Dep(..., ignore_*=True)``).

    Stored in ``baton_edges.tolerates``; no tolerance (``None``) means the
    dependent runs only after its dep completed, and is cancelled when it fails.
    """

    CANCELLED = "cancelled"
    DISCARDED = "discarded"
    ANY = "any"

    @property
    def failures(self) -> frozenset[StepState]:
        """The failed states of a dep this tolerance lets through."""
        return _LETS_THROUGH[self]

    @classmethod
    def of(cls, failures: frozenset[StepState]) -> Tolerance | None:
        """The tolerance that lets exactly ``failures`` through (None for none)."""
        return next((tolerance for tolerance in cls if tolerance.failures == failures), None)


_LETS_THROUGH: dict[str | None, frozenset[StepState]] = {
    None: frozenset(),
    Tolerance.CANCELLED: frozenset({StepState.CANCELLED}),
    Tolerance.DISCARDED: frozenset({StepState.DISCARDED}),
    Tolerance.ANY: frozenset(FAILED),
}


def lets_through(tolerance: str | None) -> frozenset[StepState]:
    """The failed states of a dep that an edge with ``tolerance`` (as stored; None: none) lets through."""
    return _LETS_THROUGH.get(tolerance, frozenset())


def tolerated(tolerance: str | None, dep_state: str) -> bool:
    """Whether an edge with ``tolerance`` lets its dependent run after its dep failed into ``dep_state``."""
    return dep_state in lets_through(tolerance)


def satisfied(dep_state: str, tolerance: str | None) -> bool:
    """Whether an edge no longer holds its dependent back: its dep completed, or failed in a way it tolerates."""
    return dep_state == StepState.COMPLETED or tolerated(tolerance, dep_state)
