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
stays open. This module runs the sockets (``serve``) and routes them; what
each page's socket sends is its feed's: ``index_feed.IndexFeed`` and
``workflow_feed.WorkflowFeed``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from flask import Blueprint, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from .. import events
from ..events import Event
from ..events.subscription import Subscription
from .explore import Explore
from .index_feed import IndexFeed
from .reads import IndexFilters
from .views import baton_state
from .workflow_feed import WorkflowFeed

logger = logging.getLogger("flask_baton.dashboard")

#: Seconds a socket waits for an event before doing its periodic work and reading what the page sent.
IDLE_SECONDS = 0.1
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
