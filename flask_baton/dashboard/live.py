"""The websockets that keep an open page current.

A page is rendered from the database and opens a websocket (HTMX's ``ws``
extension, ``ws-connect``) carrying the version it was rendered at. The
socket then:

1. subscribes to the events (``events.subscribe_all`` for the index,
   ``events.subscribe_workflow`` for a workflow) *before* reading anything,
   so no transition falls between the read and the subscription;
2. re-reads the database and, unless nothing changed since the page was
   rendered, sends a full snapshot (a re-sync, also after a reconnect);
3. for every batch of events, re-reads what they touched and sends only the
   fragments whose HTML changed.

Each message is a run of elements with stable ids that HTMX swaps in place
(``hx-swap-oob``, by default the element with the same id): ``wf-table`` and
``wf-tabs`` (index), ``w-<workflow id>`` (an index row), ``wf-summary``,
``dag``, ``timeline``, ``steps-states`` and ``steps-table`` (a workflow
page), ``n-<key>`` (a graph node, a nested ``<svg>``), ``s-<key>`` (a step
row). A running step's streamed text (``workflow_step_streamed``) is the one
thing not read back from the database: it is appended, as it is heard, to the
row's ``so-<key>`` box (``<span hx-swap-oob="beforeend:#so-<key>">``), and a
socket opening mid-stream first reads what was streamed so far from the
transport (``Transport.streamed``). A workflow page's socket URL carries the page's query (``explore``:
its filter, its page of steps, its opened chains), so the socket renders
what that page shows; when the page changes its filter, it fetches the new
part over HTTP and opens its socket again with the new query. New index rows arrive in a
``<tbody hx-swap-oob="beforebegin:#w-<older id>">`` saying where they go.
The HTML parser only keeps a bare ``<tr>`` or ``<tbody>`` when table parts
start the message, so rows, inserted rows and everything else travel in
separate messages.

Events only say *that* something changed; what a fragment shows is always
read back from the database, so a lost or duplicated event can't leave a
page wrong, only late (a workflow page also re-reads every few seconds).

Every open socket holds one thread of the web server for as long as the page
stays open.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Protocol
from urllib.parse import parse_qsl

from flask import Blueprint, request
from flask_sock import Sock
from markupsafe import Markup
from simple_websocket import ConnectionClosed

from .. import events
from ..appstate import AppState
from ..events import STEP_STREAMED, Event, Running
from ..events.subscription import Subscription
from ..records import WorkflowRecord
from .explore import Explore
from .folding import node_key
from .reads import PAGE_SIZE, IndexFilters, RowReads, WorkflowReader, index_page, state_counts
from .step_view import StepView
from .streams import StreamedText
from .views import action_context, baton_state, fragment, state_tabs, workflow_fragments
from .workflow_view import WorkflowView

logger = logging.getLogger("flask_baton.dashboard")

#: Seconds a socket waits for an event before doing its periodic work and reading what the page sent.
IDLE_SECONDS = 0.1
#: How often the first index page looks for workflows no event announced yet
#: (inserted, not started).
NEW_WORKFLOWS_EVERY = 2.0
#: Least seconds between two recounts of workflows per state.
COUNTS_EVERY = 1.0
#: How often an open workflow page re-reads without an event (a safety net).
REFRESH_EVERY = 5.0
#: Close code asking the browser to reconnect (HTMX retries 1006, 1011-1013).
TRY_AGAIN = 1011


class OpenSockets:
    """How many dashboard sockets are open in this process (for tests and ops)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def opened(self) -> None:
        with self._lock:
            self.count += 1

    def closed(self) -> None:
        with self._lock:
            self.count -= 1


class Feed(Protocol):
    def start(self) -> list[str]:
        """The snapshot to send first; none when the page is current."""

    def update(self, batch: list[Event]) -> list[str]:
        """Messages to send for a batch of events (possibly empty: periodic work)."""

    def receive(self, text: str) -> list[str]:
        """Messages to send for a message the page sent."""


def serve(ws: Any, subscription: Subscription, feed: Feed, sockets: OpenSockets) -> None:
    """Run one socket until the browser goes away."""
    sockets.opened()
    try:
        with subscription:
            for message in feed.start():
                ws.send(message)
            while ws.connected:
                event = subscription.get(IDLE_SECONDS)
                batch = [] if event is None else [event, *_drain(subscription)]
                for message in feed.update(batch):
                    ws.send(message)
                while (text := ws.receive(timeout=0)) is not None:
                    for message in feed.receive(str(text)):
                        ws.send(message)
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("dashboard websocket %s failed; the browser will reconnect", request.path)
        try:
            ws.close(reason=TRY_AGAIN, message="server error")
        except Exception:
            logger.debug("could not close the failed socket", exc_info=True)
    finally:
        sockets.closed()


def _drain(subscription: Subscription) -> list[Event]:
    """Events already received, without waiting for more."""
    more = []
    while (event := subscription.get(0)) is not None:
        more.append(event)
    return more


# -- the index -------------------------------------------------------------------


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


# -- a workflow ----------------------------------------------------------------------


class WorkflowFeed:
    """One workflow's summary, graph nodes, timeline and step table, as the page's ``Explore`` shows them.

    The page asks for another view (a filter, a page of steps, a chain
    opened) by sending ``{"view": "?<query>", "request": <n>}``; the answer
    is the whole live part for that view, in order after every message sent
    for the view before, so nothing meant for the old view lands on the new.
    """

    def __init__(self, state: AppState, workflow_id: str, seen: str | None, explore: Explore) -> None:
        self.state = state
        self.reader = WorkflowReader(state, workflow_id, explore)
        self.workflow_id = workflow_id
        self.seen = seen
        self.sent: dict[str, str] = {}
        self.models: dict[str, Any] = {}
        self.version: str | None = None
        self.shape: str | None = None
        self.table: tuple[Any, ...] | None = None
        self.next_refresh = 0.0
        self.streamed = StreamedText()

    def _parts(self, view: WorkflowView, ctx: Any) -> tuple[dict[str, str], dict[str, Any]]:
        """Every fragment by id (step rows, ``s-``, are the table parts), and what each was rendered from.

        A fragment whose model equals the one last sent is not rendered again:
        a transition changes a node or two of a page of 10,000 steps.
        """
        wanted: dict[str, tuple[Any, Callable[[], Markup]]] = {
            "wf-view": ((view.explore, view.version), partial(fragment, "view_state", view, None)),
            "wf-summary": (view.summary, partial(fragment, "summary", view.summary, ctx)),
            "timeline": (view.timeline, partial(fragment, "timeline", view.timeline, view.explore)),
            "steps-states": ((view.table, view.explore), partial(fragment, "steps_states", view.table, view.explore)),
        }
        for node in view.graph.nodes:
            wanted["n-" + node.key] = (node, partial(fragment, "node", node))
        for step in view.steps:
            wanted["s-" + step.key] = (step, partial(fragment, "step_row", step, ctx))
        parts = {
            key: self.sent[key] if key in self.sent and self.models.get(key) == model else str(render())
            for key, (model, render) in wanted.items()
        }
        return parts, {key: model for key, (model, _) in wanted.items()}

    @staticmethod
    def _table(view: WorkflowView) -> tuple[Any, ...]:
        """What of the table only sending it whole can change: which rows, which pages."""
        table = view.table
        return (table.names, table.matched, table.page, table.pages, table.focus_label)

    def _read(self) -> tuple[WorkflowView | None, Any]:
        """The page's view, its running steps' rows with the text they streamed so far."""
        self.next_refresh = time.monotonic() + REFRESH_EVERY
        view = self.reader.read()
        if view is not None:
            view = replace(view, steps=tuple(self._with_streamed(step) for step in view.steps))
        return view, action_context(self.workflow_id, create_token=False)

    def _with_streamed(self, step: StepView) -> StepView:
        if step.state != "executing":
            self.streamed.forget(step.name)
            return step
        return replace(step, streamed=self.streamed.text(step.name, step.attempt))

    def _shown(self, view: WorkflowView, parts: tuple[dict[str, str], dict[str, Any]]) -> None:
        """Remember what the page shows now."""
        (self.sent, self.models), self.version = parts, view.version
        self.shape, self.table = view.graph.shape, self._table(view)

    def start(self) -> list[str]:
        view, ctx = self._read()
        if view is None:
            return [str(fragment("notice", "error", "This workflow no longer exists (it may have been pruned)."))]
        running = [Running(s.name, s.attempt, s.running_since) for s in view.steps if s.running_since is not None]
        # Read after subscribing (``serve``): a piece published meanwhile is in both, and added once.
        for event in self.state.events.streamed(self.workflow_id, running) if running else ():
            self.streamed.add(event.payload)
        view = replace(view, steps=tuple(self._with_streamed(step) for step in view.steps))
        self._shown(view, self._parts(view, ctx))
        if view.version == self.seen and not any(step.streamed for step in view.steps):
            return []
        return [workflow_fragments(view, ctx, oob=False)]

    def receive(self, text: str) -> list[str]:
        try:
            asked = json.loads(text)
            explore = Explore.from_args(dict(parse_qsl(str(asked["view"]).lstrip("?"))))
            request_id = int(asked.get("request", 0))
        except (ValueError, TypeError, KeyError, AttributeError):
            return []  # not something this page sends
        self.reader.explore = explore
        view, ctx = self._read()
        if view is None:
            return []
        self._shown(view, self._parts(view, ctx))
        return [workflow_fragments(view, ctx, oob=False, request=request_id)]

    def update(self, batch: list[Event]) -> list[str]:
        """Streamed text is appended to its step's row as heard; any other event re-reads the page."""
        pieces: dict[tuple[str, int], str] = {}
        for event in batch:
            name = str(event.payload.get("step_name"))
            if event.name == STEP_STREAMED and "s-" + node_key(name) in self.models:  # a row of this page
                key = (name, int(event.payload["attempt"]))
                pieces[key] = pieces.get(key, "") + self.streamed.add(event.payload)
        messages = self._changes([event for event in batch if event.name != STEP_STREAMED])
        appended = "".join(self._append(name, attempt, text) for (name, attempt), text in pieces.items() if text)
        return [*messages, appended] if appended else messages

    def _append(self, name: str, attempt: int, text: str) -> str:
        """The message appending ``text`` to a running step's row, if the page shows that run without it."""
        key = "s-" + node_key(name)
        row = self.models.get(key)
        if not isinstance(row, StepView) or row.state != "executing" or row.attempt != attempt:
            return ""
        full = self.streamed.text(name, attempt)
        if row.streamed == full:
            return ""  # the row was just sent with it
        # The page now holds the row as it would render with ``full``: only a real change re-sends it.
        self.models[key] = replace(row, streamed=full)
        return str(fragment("streamed", row.key, text))

    def _changes(self, batch: list[Event]) -> list[str]:
        """Messages for step transitions and workflow ends (or, with none, the periodic re-read)."""
        if not batch and time.monotonic() < self.next_refresh:
            return []
        view, ctx = self._read()
        if view is None or view.version == self.version:
            return []
        parts, table = self._parts(view, ctx), self._table(view)
        if view.graph.shape != self.shape:  # steps were added: redraw it all
            messages = [workflow_fragments(view, ctx, oob=False)]
        else:
            changed = [key for key, html in parts[0].items() if self.sent.get(key) != html]
            rows = "".join(parts[0][key] for key in changed if key.startswith("s-"))
            rest = "".join(parts[0][key] for key in changed if not key.startswith("s-"))
            if table != self.table:  # other rows, or other pages: the table is sent whole
                rows, rest = "", rest + str(fragment("steps_table", view, ctx))
            messages = [message for message in (rows, rest) if message]
        self._shown(view, parts)
        return messages


def register_sockets(bp: Blueprint, sockets: OpenSockets) -> None:
    """Add the index's and the workflow page's websockets to the blueprint."""
    sock = Sock()

    @sock.route("/ws", bp=bp, endpoint="live_index")  # type: ignore[untyped-decorator]
    def live_index(ws: Any) -> None:
        feed = IndexFeed(baton_state(), IndexFilters.from_args(request.args), request.args.get("v"))
        serve(ws, events.subscribe_all(), feed, sockets)

    @sock.route("/ws/workflows/<workflow_id>", bp=bp, endpoint="live_workflow")  # type: ignore[untyped-decorator]
    def live_workflow(ws: Any, workflow_id: str) -> None:
        feed = WorkflowFeed(baton_state(), workflow_id, request.args.get("v"), Explore.from_args(request.args))
        serve(ws, events.subscribe_workflow(workflow_id), feed, sockets)
