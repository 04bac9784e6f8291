"""Reading workflows and steps: the records views, scripts and the CLI use (``baton.query``).

All reads are plain ``SELECT``s on flask_baton's tables (written in
``store.workflow_reads``, ``store.step_reads``, ``store.attempts`` and
``store.usage``), so they work from a web process, a
script or a shell with no consumer running. This module checks arguments
and turns "nothing" or "too many" into the errors callers expect.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from .errors import AmbiguousWorkflowIdError, ArgumentError, WorkflowNotFoundError
from .headline import OutcomeFacts
from .records import (
    Activity,
    AttemptRecord,
    ConsumerRecord,
    ContextCapture,
    Input,
    RunningStep,
    SignalRecord,
    StepDurations,
    StepOutline,
    StepRecord,
    StepUsage,
    WaitRecord,
    WorkflowPage,
    WorkflowRecord,
    WorkflowStatus,
)
from .records.workflows import decode_result
from .states import WorkflowState
from .store import attempts, outcomes, stats, step_reads, workflow_reads
from .store import usage as usage_store
from .store import waits as waits_store
from .store.workflow_reads import WorkflowFilter

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = [
    "PREFIX_MATCHES",
    "Activity",
    "AttemptRecord",
    "ConsumerRecord",
    "ContextCapture",
    "Input",
    "Query",
    "RunningStep",
    "SignalRecord",
    "StepDurations",
    "StepOutline",
    "StepRecord",
    "StepUsage",
    "WaitRecord",
    "WorkflowPage",
    "WorkflowRecord",
    "WorkflowStatus",
    "decode_result",
]

#: Most workflows an ambiguous id prefix names in its error.
PREFIX_MATCHES = 10


class Query:
    """Read-only access to one app's workflows (``baton.query``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow with this id, or ``None``."""
        return workflow_reads.workflow(self._engine, workflow_id)

    def get_workflow_jobs(self, workflow_id: str, steps: Collection[str] | None = None) -> list[StepRecord]:
        """Every step of the workflow, or only those named in ``steps``, in insertion order."""
        return step_reads.steps(self._engine, workflow_id, steps)

    def get_workflow_outline(
        self, workflow_id: str, previous: Sequence[StepOutline] | None = None
    ) -> list[StepOutline]:
        """Every step of the workflow without its result, args and error, in insertion order.

        What a view of thousands of steps reads first, to then read in full
        (``get_workflow_jobs(id, steps=...)``) only the steps it shows. Pass
        the outline read before as ``previous`` to read again only what can
        change: the steps' dependencies are read only if steps were added.
        """
        return step_reads.step_outlines(self._engine, workflow_id, previous)

    def get_workflow_job(self, workflow_id: str, step_name: str) -> StepRecord | None:
        """One step of the workflow, as ``get_workflow_jobs`` has it, or ``None`` (reads that step only)."""
        return step_reads.step(self._engine, workflow_id, step_name)

    def get_step_attempts(self, workflow_id: str, step_name: str, *, limit: int | None = None) -> list[AttemptRecord]:
        """Every run of one step, oldest first: when, on which worker, how it ended, its error.

        Runs retried, snoozed, handed back, rescued after a lost lease or
        re-armed by a retry are kept in ``baton_attempts``; the last run is
        the step's own row. ``limit`` keeps the newest runs only (a step
        that snoozes every few seconds runs often). Empty for a step that
        never ran or does not exist.
        """
        if limit is not None and limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        return attempts.step_attempts(self._engine, workflow_id, step_name, limit)

    def get_waits(self, workflow_id: str) -> dict[str, WaitRecord]:
        """Each step's last ``WaitFor``, by step name: what for, since and until when, and its signal if sent."""
        return waits_store.step_waits(self._engine, workflow_id)

    def get_signals(self, workflow_id: str) -> dict[str, SignalRecord]:
        """Every signal sent to the workflow, by name (and the marks of waits that timed out and continued)."""
        return waits_store.workflow_signals(self._engine, workflow_id)

    def get_workflow_attempts(self, workflow_id: str, *, limit: int = 10_000) -> dict[str, list[AttemptRecord]]:
        """The runs kept for the workflow's steps, by step name, oldest first (the newest ``limit`` in all).

        Only the runs their rows no longer hold (retried, snoozed, handed
        back, rescued, re-armed): a step's last run is its row, in
        ``get_workflow_outline``. What a timeline of the whole workflow
        draws besides each step's row, in one read.
        """
        if limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        return attempts.kept_runs(self._engine, workflow_id, limit)

    def get_context_captures(
        self, workflow_id: str, step_name: str, *, since: float | None = None
    ) -> list[ContextCapture]:
        """What ``job.capture_context`` stored for one step, oldest first (made at or after ``since``).

        Each capture names the attempt that made it; kept while
        ``BATON_DEBUG_LOG_MAX_AGE`` allows.
        """
        return usage_store.captures(self._engine, workflow_id, step_name, since)

    def workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        """The workflow's progress, timing and cost in one query, or ``None``.

        ``cost_usd`` is ``None`` when none of its model calls had a known
        price, like every cost flask_baton reports (see ``Usage``).
        """
        return workflow_reads.workflow_status(self._engine, workflow_id)

    def resolve_workflow_id(self, text: str) -> WorkflowRecord:
        """The one workflow whose id is ``text`` or starts with it (any case).

        What the CLI and the dashboard's search do with an id someone typed or
        copied, such as the short ids the dashboard shows. Raises
        ``WorkflowNotFoundError`` when nothing matches and
        ``AmbiguousWorkflowIdError``, naming up to ``PREFIX_MATCHES`` of them,
        when several do. One query, on the primary key's index.
        """
        prefix = text.strip().lower()
        if not prefix:
            raise WorkflowNotFoundError("no workflow id given")
        found = workflow_reads.workflows_by_prefix(self._engine, prefix, PREFIX_MATCHES + 1)
        if not found:
            raise WorkflowNotFoundError(f"no workflow with id {text!r} or an id starting with it")
        if len(found) > 1:
            shown = found[:PREFIX_MATCHES]
            raise AmbiguousWorkflowIdError(text, {w.id: w.name for w in shown}, more=len(found) > PREFIX_MATCHES)
        return found[0]

    def list_workflows(
        self,
        name: str | None = None,
        state: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
    ) -> WorkflowPage:
        """Workflows newest first, ``limit`` at a time (keyset paging on the id)."""
        return self._page(limit, WorkflowFilter(name=name, state=_state(state), before=before))

    def search_workflows(
        self,
        label: str | None = None,
        state: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
        since: float | None = None,
        awaiting_person: bool = False,
    ) -> WorkflowPage:
        """Like ``list_workflows``, with ``label`` matching any part of the name.

        ``label`` is case-insensitive and taken literally (``%`` and ``_`` are
        not wildcards). ``after`` keeps only workflows newer than that id,
        ``since`` only those started at that time (epoch seconds) or later,
        ``awaiting_person`` only those with a step waiting for an approval
        (``WaitFor(..., approval=True)``) now.
        """
        kept = WorkflowFilter(
            label=label, state=_state(state), before=before, after=after, since=since, awaiting_person=awaiting_person
        )
        return self._page(limit, kept)

    def count_awaiting_person(self, since: float | None = None) -> int:
        """How many workflows (started at ``since`` or later) have a step waiting for an approval now."""
        return waits_store.count_awaiting_person(self._engine, since)

    def get_workflows(self, workflow_ids: list[str]) -> dict[str, WorkflowRecord]:
        """The workflows with these ids that exist, by id."""
        return workflow_reads.workflows_by_id(self._engine, workflow_ids)

    def outcome_facts(self, workflow_ids: list[str]) -> dict[str, OutcomeFacts]:
        """What each workflow's failed steps were, by cause, for its outcome's sentence (``headline``).

        A workflow with no discarded or cancelled step is left out (its facts
        are all zero: ``OutcomeFacts()``). Two queries, however many workflows.
        """
        return outcomes.outcome_facts(self._engine, workflow_ids)

    def count_workflows_by_state(self, since: float | None = None) -> dict[str, int]:
        """How many workflows are in each state (of those started at ``since`` or later, if given)."""
        return workflow_reads.count_workflows_by_state(self._engine, since)

    def workflow_costs(self, workflow_ids: list[str]) -> dict[str, float]:
        """Total ``cost_usd`` per workflow, for those with a priced model call (absent: ``None``)."""
        return usage_store.workflow_costs(self._engine, workflow_ids)

    def step_usage(self, workflow_id: str) -> dict[str, StepUsage]:
        """Tokens and cost per step name of one workflow (steps with stats rows only).

        The same totals as ``baton.stats.by_step``: ``cost_usd`` is ``None``
        for a step none of whose calls had a known price.
        """
        return usage_store.grouped(self._engine, "step_name", workflow_id=workflow_id)

    def get_activity(self, start: float, bucket_seconds: float) -> Activity:
        """What happened since ``start``, counted per bucket of ``bucket_seconds``: the dashboard's overview.

        Workflows started and ended, steps ended (completed or discarded),
        their durations per step name by class, and the cost of the model
        calls recorded. Four aggregate reads, however long the history.
        """
        if bucket_seconds <= 0:
            raise ArgumentError(f"bucket_seconds must be > 0, got {bucket_seconds!r}")
        return stats.activity(self._engine, start, bucket_seconds)

    def get_consumers(self, alive_since: float) -> list[ConsumerRecord]:
        """The consumer processes whose heartbeat was stamped at ``alive_since`` or later, with their queues."""
        return stats.consumers_seen(self._engine, alive_since)

    def get_running_steps(self, limit: int = 200) -> list[RunningStep]:
        """Steps executing now (up to ``limit``), longest running first."""
        if limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        return stats.running_steps(self._engine, limit)

    def _page(self, limit: int, kept: WorkflowFilter) -> WorkflowPage:
        """The one listing both ``list_workflows`` and ``search_workflows`` are, after checking ``limit``."""
        if limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        return workflow_reads.workflow_page(self._engine, limit, kept)


def _state(state: str | None) -> WorkflowState | None:
    """A state filter as given (a ``WorkflowState`` value), checked."""
    return None if state is None else WorkflowState(state)
