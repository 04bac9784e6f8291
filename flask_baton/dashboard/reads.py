"""The dashboard's database reads, turned into view models (``index_view``, ``workflow_view``).

Shared by the pages, the action responses and the websockets, so a page
load and a live update of it show the same thing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..appstate import AppState
from ..budget import reached, used
from ..budget_control import spent_today
from ..dag import gc_paused
from ..errors import AmbiguousWorkflowIdError, WorkflowNotFoundError
from ..headline import OutcomeFacts
from ..huey_compat import QueueDepth, queue_depth
from ..records import StepOutline, WorkflowRecord
from ..states import WorkflowState
from ..steps import DEFAULT_QUEUE
from ..ticks import statuses
from ..timeseries import RANGES, window
from .attempt_view import SHOWN_RUNS, StepPage, step_page
from .explore import Explore, steps_page
from .formatting import fingerprint
from .graph_view import structure_of
from .index_view import WorkflowRow, row_version, workflow_row
from .overview_view import Overview, overview
from .step_view import step_view
from .wait_view import wait_view
from .workflow_view import Drawing, WorkflowView, workflow_view

logger = logging.getLogger("flask_baton")

#: Workflows per index page.
PAGE_SIZE = 50
#: Running steps the overview lists at most.
RUNNING_SHOWN = 200
#: Longest label filter accepted.
MAX_QUERY = 200
#: A whole workflow id, as the index's links and forms carry them.
WORKFLOW_ID = re.compile(r"^[0-9a-f]{32}$")
#: Search text that may be the start of an id (ids are 32 hex digits).
_ID_PREFIX = re.compile(r"^[0-9a-fA-F]{1,32}$")
STATES = tuple(state.value for state in WorkflowState)
#: ``?waiting=person``: the index's filter of workflows with a step waiting for an approval; also
#: the key of their count among the tabs' counts.
WAITING_FOR_PERSON = "person"


@dataclass(frozen=True)
class IndexFilters:
    """What the index shows: a state, part of a label, a page cursor, a time range (a key of ``RANGES``),
    and whether only workflows waiting for a person (a step's approval) are shown.
    """

    state: str | None = None
    label: str | None = None
    before: str | None = None
    range: str | None = None
    waiting: bool = False

    @classmethod
    def from_args(cls, args: Any) -> IndexFilters:
        """Read ``state``, ``q``, ``before``, ``range`` and ``waiting`` query arguments; bad values are ignored."""
        state = args.get("state") or None
        label = (args.get("q") or "").strip()[:MAX_QUERY] or None
        before = args.get("before") or None
        span = args.get("range") or None
        return cls(
            state if state in STATES else None,
            label,
            before if before is not None and WORKFLOW_ID.match(before) else None,
            span if span in RANGES else None,
            args.get("waiting") == WAITING_FOR_PERSON,
        )

    def since(self, now: float) -> float | None:
        """The earliest start a listed workflow may have (None: any)."""
        return None if self.range is None else now - RANGES[self.range][0]

    def matches(self, record: WorkflowRecord) -> bool:
        """Whether a (new) workflow belongs on this listing (one waiting for a person shows once reloaded)."""
        if self.waiting:
            return False
        if self.state is not None and record.state.value != self.state:
            return False
        since = self.since(time.time())
        if since is not None and record.created_at < since:
            return False
        return self.label is None or self.label.lower() in record.name.lower()

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query arguments for a URL of these filters, with ``changes``."""
        waiting = WAITING_FOR_PERSON if self.waiting else None
        values = {
            "state": self.state,
            "q": self.label,
            "before": self.before,
            "range": self.range,
            "waiting": waiting,
            **changes,
        }
        return {key: value for key, value in values.items() if value}


@dataclass(frozen=True)
class IdSearch:
    """The index's search text read as a workflow id or the start of one (the short ids the index shows).

    ``workflow_id``: the one workflow it names, the index sends the browser
    there. ``ambiguous``: the workflows it could mean, listed to pick from.
    ``unknown``: hex text no id starts with (a label may still contain it).
    """

    workflow_id: str | None = None
    ambiguous: AmbiguousWorkflowIdError | None = None
    unknown: bool = False


def search_by_id(state: AppState, filters: IndexFilters) -> IdSearch:
    """Resolve the search text as an id prefix, the way the CLI resolves its ids."""
    text = filters.label
    if text is None or filters.before is not None or not _ID_PREFIX.match(text):
        return IdSearch()
    try:
        return IdSearch(state.query.resolve_workflow_id(text).id)
    except AmbiguousWorkflowIdError as several:
        return IdSearch(ambiguous=several)
    except WorkflowNotFoundError:
        return IdSearch(unknown=True)


@dataclass(frozen=True)
class RowReads:
    """What index rows show beyond their records, read for many rows at once: costs, outcomes' facts."""

    costs: dict[str, float]
    facts: dict[str, OutcomeFacts]

    @classmethod
    def of(cls, state: AppState, records: Iterable[WorkflowRecord]) -> RowReads:
        """One read (three when some of them ended), however many rows."""
        records = list(records)
        ended = [r.id for r in records if r.state != WorkflowState.RUNNING]
        return cls(state.query.workflow_costs([r.id for r in records]), state.query.outcome_facts(ended))

    def row(self, record: WorkflowRecord, now: float) -> WorkflowRow:
        return workflow_row(record, self.costs.get(record.id), self.facts.get(record.id), now)

    def version(self, record: WorkflowRecord) -> tuple[Any, ...]:
        return row_version(record, self.costs.get(record.id), self.facts.get(record.id))


@dataclass(frozen=True)
class IndexPage:
    filters: IndexFilters
    rows: tuple[WorkflowRow, ...]
    records: tuple[WorkflowRecord, ...]
    reads: RowReads
    counts: dict[str, int]
    next_before: str | None
    version: str
    #: Today's spend against ``BATON_BUDGET_USD_PER_DAY`` (None without a daily cap).
    today: DailyBudget | None = None


@dataclass(frozen=True)
class DailyBudget:
    """``today's spend: $1.20 of $10.00 (12%)``, and whether the cap is reached (every step then stops)."""

    text: str
    reached: bool


def daily_budget(state: AppState) -> DailyBudget | None:
    """Today's spend against the daily cap, or None when the app has none."""
    cap = state.config.budget_usd_per_day
    if cap is None:
        return None
    spent = spent_today(state)
    return DailyBudget(used(spent, cap, "today's spend"), reached(spent, cap) is not None)


def index_page(state: AppState, filters: IndexFilters, limit: int = PAGE_SIZE) -> IndexPage:
    """One page of the index, newest first."""
    now = time.time()
    page = state.query.search_workflows(
        filters.label,
        filters.state,
        limit=limit,
        before=filters.before,
        since=filters.since(now),
        awaiting_person=filters.waiting,
    )
    records = tuple(page.workflows)
    reads = RowReads.of(state, records)
    counts = state_counts(state, filters)
    rows = tuple(reads.row(r, now) for r in records)
    version = fingerprint([(r.id, reads.version(r)) for r in records], sorted(counts.items()))
    return IndexPage(filters, rows, records, reads, counts, page.next_before, version, daily_budget(state))


def state_counts(state: AppState, filters: IndexFilters) -> dict[str, int]:
    """How many workflows of the listing's time range are in each state, and waiting for a person (the index's tabs)."""
    since = filters.since(time.time())
    counts = state.query.count_workflows_by_state(since)
    counts[WAITING_FOR_PERSON] = state.query.count_awaiting_person(since)
    return counts


class WorkflowReader:
    """Reads one workflow into a ``WorkflowView`` of ``explore``, keeping its drawing while the graph is unchanged.

    Every step is read in outline; only the steps shown one by one are read in full.
    """

    def __init__(self, state: AppState, workflow_id: str, explore: Explore | None = None) -> None:
        self.state = state
        self.workflow_id = workflow_id
        self.explore = explore or Explore()
        self._drawing: Drawing | None = None
        self._outline: list[StepOutline] | None = None

    def read(self) -> WorkflowView | None:
        """The view, read and built with the collector held off: a few containers per step, and no cycle."""
        with gc_paused():
            return self._read()

    def _read(self) -> WorkflowView | None:
        record = self.state.query.get_workflow(self.workflow_id)
        if record is None:
            return None
        outline = self.state.query.get_workflow_outline(self.workflow_id, self._outline)
        self._outline = outline
        structure = structure_of(outline)
        if self._drawing is None or not self._drawing.fits(structure, self.explore.opened):
            self._drawing = Drawing.of(structure, self.explore.opened)
        table = steps_page(outline, self.explore, self._drawing.folding)
        shown = self._drawing.shown(table)
        records = self.state.query.get_workflow_jobs(self.workflow_id, shown) if shown else []
        usage = self.state.query.step_usage(self.workflow_id)
        facts = OutcomeFacts()
        if record.state != WorkflowState.RUNNING:
            facts = self.state.query.outcome_facts([self.workflow_id]).get(self.workflow_id, facts)
        kept = self.state.query.get_workflow_attempts(self.workflow_id)
        return workflow_view(
            record,
            outline,
            records,
            usage,
            self._max_attempts,
            time.time(),
            facts=facts,
            drawing=self._drawing,
            explore=self.explore,
            table=table,
            kept=kept,
            budget_action=self.state.config.budget_action,
        )

    def _max_attempts(self, task: str) -> int | None:
        step = self.state.step(task)
        return None if step is None else step.max_attempts


def read_overview(state: AppState, range_key: str) -> Overview:
    """The overview for the range ``range_key`` (a key of ``timeseries.RANGES``), as of now."""
    now = time.time()
    span = window(range_key, now)
    activity = state.query.get_activity(span.start, span.width)
    consumers = state.query.get_consumers(now - state.config.lease_seconds)
    running = state.query.get_running_steps(RUNNING_SHOWN)
    names = {step.queue for step in state.steps.values()} | {DEFAULT_QUEUE}
    depths = {name: _depth(state, name) for name in sorted(names)}

    def queue_of(task: str) -> str | None:
        step = state.step(task)
        return None if step is None else step.queue

    return overview(span, activity, consumers, running, depths, queue_of, statuses(state, now))


def _depth(state: AppState, queue: str) -> QueueDepth | None:
    """A queue's depth; None when its storage cannot be read (the rest of the page still shows)."""
    try:
        return queue_depth(state.queues.huey(queue))
    except Exception:
        logger.warning("could not read the depth of queue %r", queue, exc_info=True)
        return None


def read_step_page(state: AppState, workflow_id: str, step_name: str) -> StepPage | None:
    """One step's page: the step, its newest runs and the contexts they captured; None if there is no such step."""
    record = state.query.get_workflow(workflow_id)
    step = state.query.get_workflow_job(workflow_id, step_name)
    if record is None or step is None:
        return None
    runs = state.query.get_step_attempts(workflow_id, step_name, limit=SHOWN_RUNS + 1)
    since = runs[-SHOWN_RUNS].started_at if len(runs) > SHOWN_RUNS else None
    captures = state.query.get_context_captures(workflow_id, step_name, since=since)
    usage = state.query.step_usage(workflow_id).get(step_name)
    task = state.step(step.task)
    now = time.time()
    view = step_view(step, usage, None if task is None else task.max_attempts, False, now)
    wait = state.query.get_waits(workflow_id).get(step_name)
    return step_page(
        workflow_id,
        record.name,
        view,
        runs,
        captures,
        state.config.debug_capture_max_bytes,
        now,
        None if wait is None else wait_view(wait),
    )
