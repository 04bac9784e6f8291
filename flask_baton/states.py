"""The states of steps and workflows, and which of them mean what.

Pure data: the state machine (``transitions``, ``cascade``, ...) moves steps
between these, the store's statements compare-and-set on them, and the
dashboard colours them.
"""

from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    """Lifecycle of one step (one row of ``baton_nodes``)."""

    PENDING = "pending"  # waiting for dependencies
    AVAILABLE = "available"  # ready and handed to Huey
    EXECUTING = "executing"  # claimed by a consumer
    SNOOZED = "snoozed"  # asked to run later; no attempt used
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


#: States a delivered Huey message may claim (start executing) from.
CLAIMABLE = (StepState.AVAILABLE, StepState.SNOOZED, StepState.RETRYABLE)
#: States that will not change again (short of an explicit retry).
SETTLED = (StepState.COMPLETED, StepState.DISCARDED, StepState.CANCELLED)
#: Settled states that cancel a step's dependents.
FAILED = (StepState.DISCARDED, StepState.CANCELLED)
#: States a cascade may cancel: not started, or waiting to start again.
CANCELLABLE = (StepState.PENDING,) + CLAIMABLE
