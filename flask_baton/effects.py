"""The values a transition decides: what changed, what to enqueue, what to announce.

Plain data, no SQL and no Flask: the state machine (``transitions``,
``cascade``, ``inserts``, and the transitions of ``sweep`` and ``control``)
returns one shape, ``Effects``; the store (``flask_baton.store``) reads and
writes rows as these values; ``dispatch.commit`` acts on the effects once
the transaction committed and hands back the transition's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .records import AttemptRecord
from .states import AttemptOutcome, StepState, Tolerance

T = TypeVar("T")


@dataclass(frozen=True)
class StepChange:
    """A step transition to announce once its transaction committed."""

    workflow_id: str
    node_id: str
    step_name: str
    state: StepState
    attempt: int
    timestamp: float
    worker: str | None = None
    error: str | None = None
    has_result: bool = False
    duration: float | None = None  # seconds the attempt ran
    queue_wait: float | None = None  # seconds from available to claimed
    label: str | None = None  # the workflow's name, when the transition read it


@dataclass(frozen=True)
class WorkflowEnd:
    """A workflow that just settled its last step.

    ``announced``: the statement that recorded the end also claimed its one
    announcement (``baton_completions.announced_at``), so its caller
    announces it and nobody else will; otherwise the caller claims it first.
    """

    workflow_id: str
    outcome: str
    failed_steps: list[str]
    timestamp: float
    announced: bool = False


@dataclass(frozen=True)
class Ready:
    """A step to hand to Huey after commit, now or after ``delay`` seconds."""

    node_id: str
    task: str
    delay: float = 0.0


@dataclass(frozen=True)
class StepIdentity:
    """Which step, which task with which arguments, at which attempt."""

    node_id: str
    workflow_id: str
    step_name: str
    task: str
    args: str
    attempt: int


@dataclass(frozen=True)
class Cancelled(StepIdentity):
    """A step the cascade cancelled, for its ``on_dep_*`` hook."""

    reason: str
    dep_state: StepState


@dataclass(slots=True)
class Effects(Generic[T]):
    """What a transition decided: its ``value``, and what to do once its transaction has committed.

    ``value`` is what the caller asked for (the ``Claimed`` step of a claim,
    the plan of a retry; ``None`` for most); the lists are the after-commit
    work ``dispatch.commit`` does, in this order: publish ``changes``, hand
    ``ready`` to Huey, call the hooks of ``cancelled`` steps, announce ``ended``.
    """

    value: T
    ready: list[Ready] = field(default_factory=list)
    changes: list[StepChange] = field(default_factory=list)
    cancelled: list[Cancelled] = field(default_factory=list)
    ended: list[WorkflowEnd] = field(default_factory=list)

    def merge(self, more: Effects[Any]) -> None:
        """Add the after-commit work ``more`` asks for after this one's (its value is not kept)."""
        self.ready.extend(more.ready)
        self.changes.extend(more.changes)
        self.cancelled.extend(more.cancelled)
        self.ended.extend(more.ended)


@dataclass(frozen=True)
class Claimed(StepIdentity):
    """A step this consumer now owns: the row as it was claimed."""

    worker: str
    claimed_at: float
    queued_at: float | None = None
    label: str | None = None  # the workflow's name, when the claim read it
    # PostgreSQL: the dependents' names as the claim read them, and the
    # ``dependents_version`` that fences them (None: read them at completion).
    dependents: tuple[str, ...] | None = None
    dependents_version: int = 0
    #: Its workflow's spend cap when claimed (``Workflow(budget_usd=...)``); None: no cap of its own.
    budget_usd: float | None = None

    def change(self, state: StepState, now: float, **details: Any) -> StepChange:
        """This step's transition to ``state``, timed from the claim."""
        return StepChange(
            self.workflow_id,
            self.node_id,
            self.step_name,
            state,
            self.attempt,
            now,
            worker=self.worker,
            duration=now - self.claimed_at,
            label=self.label,
            **details,
        )

    def ended(self, outcome: AttemptOutcome, at: float, error: str | None = None) -> AttemptRecord:
        """This run, ended at ``at`` with ``outcome``, as ``baton_attempts`` keeps it."""
        return AttemptRecord(
            self.workflow_id,
            self.node_id,
            self.step_name,
            self.attempt,
            outcome,
            self.worker or None,
            self.claimed_at,
            at,
            error,
        )


@dataclass(frozen=True)
class NewStep:
    """A step row to insert (a workflow's or a running step's addition)."""

    node_id: str
    step_name: str
    task: str
    args: str
    deps: Sequence[str]
    tolerates: Mapping[str, Tolerance] = field(default_factory=dict)


@dataclass(frozen=True)
class NewWorkflow:
    """A workflow to insert: its id, name, steps and optional unique key."""

    workflow_id: str
    name: str
    steps: Sequence[NewStep]
    unique_key: str | None = None
    budget_usd: float | None = None
    on_budget: str | None = None
