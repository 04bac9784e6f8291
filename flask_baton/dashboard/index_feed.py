"""The index page's live feed: changed rows, new workflows, per-state counts.

``live.serve`` runs it on the index's socket (``live.py`` says what a feed
sends and why). Rows are re-read for the workflows an event touched; new
workflows no event announced yet (inserted, not started) are looked for
every ``NEW_WORKFLOWS_EVERY`` seconds on the first page.
"""

from __future__ import annotations

import time
from typing import Any

from ..appstate import AppState
from ..events import Event
from ..records import WorkflowRecord
from .reads import PAGE_SIZE, IndexFilters, RowReads, index_page, state_counts
from .views import fragment, state_tabs

#: How often the first index page looks for workflows no event announced yet
#: (inserted, not started).
NEW_WORKFLOWS_EVERY = 2.0
#: Least seconds between two recounts of workflows per state.
COUNTS_EVERY = 1.0


class IndexFeed:
    """Rows of the index: changed rows, new workflows, per-state counts."""

    def __init__(self, state: AppState, filters: IndexFilters, seen: str | None) -> None:
        self.state = state
        self.filters = filters
        self.seen = seen
        self.first_page = filters.before is None
        self.shown: dict[str, tuple[Any, ...]] = {}
        self.counts: dict[str, int] = {}
        self.counts_stale = False
        self.next_counts = 0.0
        self.next_poll = time.monotonic() + NEW_WORKFLOWS_EVERY

    def start(self) -> list[str]:
        page = index_page(self.state, self.filters)
        self.shown = {r.id: page.reads.version(r) for r in page.records}
        self.counts = page.counts
        if page.version == self.seen:
            return []
        return [
            str(fragment("workflows_table", page.rows, self.filters))
            + str(fragment("tabs", state_tabs(self.filters, page.counts)))
        ]

    def update(self, batch: list[Event]) -> list[str]:
        rows: list[str] = []
        inserted: list[str] = []
        other: list[str] = []
        now = time.monotonic()
        touched = {event.workflow_id for event in batch}
        if touched:
            self.counts_stale = True
            changed, new, reads = self._touched(sorted(touched))
            rows += changed
            inserted += self._place(new, reads)
        if self.first_page and now >= self.next_poll:
            self.next_poll = now + NEW_WORKFLOWS_EVERY
            newest = max(self.shown, default=None)
            page = self.state.query.search_workflows(
                self.filters.label,
                self.filters.state,
                limit=PAGE_SIZE,
                after=newest,
                awaiting_person=self.filters.waiting,
            )
            inserted += self._place([r for r in page.workflows if r.id not in self.shown])
        if self.counts_stale and now >= self.next_counts:
            self.counts_stale, self.next_counts = False, now + COUNTS_EVERY
            counts = state_counts(self.state, self.filters)
            if counts != self.counts:
                self.counts = counts
                other.append(str(fragment("tabs", state_tabs(self.filters, counts))))
        return [message for message in ("".join(rows), "".join(inserted), "".join(other)) if message]

    def receive(self, text: str) -> list[str]:
        """The index page sends nothing it expects an answer to."""
        return []

    def _touched(self, workflow_ids: list[str]) -> tuple[list[str], list[WorkflowRecord], RowReads]:
        """Rows that changed, and workflows new to this listing."""
        records = self.state.query.get_workflows(workflow_ids)
        reads = RowReads.of(self.state, records.values())
        rows, now, new = [], time.time(), []
        for workflow_id, record in records.items():
            version = reads.version(record)
            if workflow_id in self.shown:
                if self.shown[workflow_id] != version:
                    self.shown[workflow_id] = version
                    rows.append(str(fragment("workflow_row", reads.row(record, now))))
            elif self.first_page and self.filters.matches(record):
                new.append(record)
        return rows, new, reads

    def _place(self, records: list[WorkflowRecord], reads: RowReads | None = None) -> list[str]:
        """Insert rows for workflows not shown yet, each where it sorts (newest first)."""
        if not records:
            return []
        if reads is None:
            reads = RowReads.of(self.state, records)
        parts, now = [], time.time()
        for record in sorted(records, key=lambda r: r.id):
            older = [shown for shown in self.shown if shown < record.id]
            if older:
                where = f"beforebegin:#w-{max(older)}"
            elif len(self.shown) < PAGE_SIZE:
                where = "beforeend:#wf-rows"
            else:
                continue  # it belongs on a later page
            row = fragment("workflow_row", reads.row(record, now))
            parts.append(f'<tbody hx-swap-oob="{where}">{row}</tbody>')
            self.shown[record.id] = reads.version(record)
        return parts
