"""A workflow page's live feed: its summary, graph nodes, timeline, step rows and streamed text.

``live.serve`` runs it on the workflow page's socket (``live.py`` says what
a feed sends and why). Only the fragments whose model changed are rendered
again; a running step's streamed text is appended to its row as heard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from markupsafe import Markup

from ..appstate import AppState
from ..events import STEP_STREAMED, Event, Running
from .explore import Explore
from .folding import node_key
from .reads import WorkflowReader
from .step_view import StepView
from .streams import StreamedText
from .views import action_context, fragment, workflow_fragments
from .workflow_view import WorkflowView

#: How often an open workflow page re-reads without an event (a safety net).
REFRESH_EVERY = 5.0


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
