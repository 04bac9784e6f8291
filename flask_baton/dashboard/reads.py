"""The dashboard's database reads, turned into view models (``index_view``, ``workflow_view``).

Shared by the pages, the action responses and the websockets, so a page
load and a live update of it show the same thing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from ..appstate import AppState
from ..dag import gc_paused
from ..errors import AmbiguousWorkflowIdError, WorkflowNotFoundError
from ..records import StepOutline, WorkflowRecord
from ..states import WorkflowState
from .attempt_view import SHOWN_RUNS, StepPage, step_page
from .explore import Explore, steps_page
from .formatting import fingerprint
from .graph_view import structure_of
from .index_view import WorkflowRow, row_version, workflow_row
from .step_view import step_view
from .workflow_view import Drawing, WorkflowView, workflow_view

#: Workflows per index page.
PAGE_SIZE = 50
#: Longest label filter accepted.
MAX_QUERY = 200
_ID = re.compile(r"^[0-9a-f]{32}$")
#: Search text that may be the start of an id (ids are 32 hex digits).
_ID_PREFIX = re.compile(r"^[0-9a-fA-F]{1,32}$")
STATES = tuple(state.value for state in WorkflowState)


@dataclass(frozen=True)
class IndexFilters:
    """What the index shows: a state, part of a label, a page cursor."""

    state: str | None = None
    label: str | None = None
    before: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> IndexFilters:
        """Read ``state``, ``q`` and ``before`` query arguments; bad values are ignored."""
        state = args.get("state") or None
        label = (args.get("q") or "").strip()[:MAX_QUERY] or None
        before = args.get("before") or None
        return cls(
            state if state in STATES else None,
            label,
            before if before is not None and _ID.match(before) else None,
        )

    def matches(self, record: WorkflowRecord) -> bool:
        """Whether a (new) workflow belongs on this listing."""
        if self.state is not None and record.state.value != self.state:
            return False
        return self.label is None or self.label.lower() in record.name.lower()

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query arguments for a URL of these filters, with ``changes``."""
        values = {"state": self.state, "q": self.label, "before": self.before, **changes}
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
class IndexPage:
    filters: IndexFilters
    rows: tuple[WorkflowRow, ...]
    records: tuple[WorkflowRecord, ...]
    costs: dict[str, float]
    counts: dict[str, int]
    next_before: str | None
    version: str


def index_page(state: AppState, filters: IndexFilters, limit: int = PAGE_SIZE) -> IndexPage:
    """One page of the index, newest first."""
    page = state.query.search_workflows(filters.label, filters.state, limit=limit, before=filters.before)
    records = tuple(page.workflows)
    costs = state.query.workflow_costs([r.id for r in records])
    counts = state.query.count_workflows_by_state()
    now = time.time()
    rows = tuple(workflow_row(r, costs.get(r.id), now) for r in records)
    version = fingerprint([(r.id, row_version(r, costs.get(r.id))) for r in records], sorted(counts.items()))
    return IndexPage(filters, rows, records, costs, counts, page.next_before, version)


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
        kept = self.state.query.get_workflow_attempts(self.workflow_id)
        return workflow_view(
            record,
            outline,
            records,
            usage,
            self._max_attempts,
            time.time(),
            drawing=self._drawing,
            explore=self.explore,
            table=table,
            kept=kept,
        )

    def _max_attempts(self, task: str) -> int | None:
        step = self.state.step(task)
        return None if step is None else step.max_attempts


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
    return step_page(workflow_id, record.name, view, runs, captures, state.config.debug_capture_max_bytes, now)
