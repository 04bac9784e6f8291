"""The dashboard's websockets, over a real threaded server and a real socket client.

Both backends: the event feed is the database (SQLite or PostgreSQL) here.
What a browser does with the messages is in ``test_dashboard_browser.py``.
"""

from __future__ import annotations

import html as htmllib
import http.client
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import pytest
from flask import Flask
from simple_websocket import Client
from werkzeug.serving import make_server

from flask_baton import Workflow
from flask_baton.dashboard import EXTENSION_KEY
from flask_baton.dashboard.layout import node_key

from .apps import open_app
from .steps import baton, constant, record_args, wait_for_file
from .support import ThreadConsumer, wait_finished, wait_for


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "live-test-secret"}


class LiveServer:
    """The app on a real threaded Werkzeug server on 127.0.0.1 (flask-sock works on it).

    On exit it stops the server and waits until every dashboard socket has
    noticed its client left, so nothing polls a database that is going away.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.ws_url = f"ws://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    @property
    def open_sockets(self) -> int:
        return self.app.extensions[EXTENSION_KEY].sockets.count  # type: ignore[no-any-return]

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        wait_for(lambda: self.open_sockets == 0, "dashboard sockets to close", timeout=10)


def socket_path(page_html: str) -> str:
    found = re.search(r'ws-connect="([^"]+)"', page_html)
    assert found, "the page opens no websocket"
    return htmllib.unescape(found.group(1))


class Inbox:
    """Every message a socket client received, to wait for one with a deadline."""

    def __init__(self, ws: Client) -> None:
        self.ws = ws
        self.messages: list[str] = []

    def wait(self, wanted: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        """The first message so far or to come that is ``wanted``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if wanted(message):
                    return message
            seen = len(self.messages)
            left = deadline - time.monotonic()
            message = self.ws.receive(timeout=left) if left > 0 else None
            if message is None:
                raise AssertionError(
                    f"no message with {what} within {timeout}s; got {[m[:100] for m in self.messages]}"
                )
            self.messages.append(message)


def gated_workflow(gate: Path, name: str = "gated") -> Workflow:
    wf = (
        Workflow(name)
        .add("fetch", constant.new(value=1))
        .add("wait", wait_for_file.new(path=str(gate), value={"done": True}, timeout=15), deps=["fetch"])
        .add("after", record_args.new(), deps=["wait"])
    )
    wf.insert()
    return wf


def test_workflow_socket_resyncs_on_connect_then_sends_only_what_changed(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = gated_workflow(gate)
    query = app.extensions["baton"].query
    wait_for(lambda: query.get_workflow_jobs(wf.workflow_id)[1].state == "executing", "the gated step to run")
    ws = Client.connect(f"{live_server.ws_url}/baton/ws/workflows/{wf.workflow_id}?v=stale")
    inbox = Inbox(ws)
    try:
        snapshot = inbox.wait(lambda m: 'id="steps-table"' in m, "the snapshot")
        assert inbox.messages == [snapshot]
        assert 'id="wf-summary"' in snapshot and 'id="dag"' in snapshot
        assert f'id="n-{node_key("wait")}" class="node st-executing"' in snapshot

        gate.touch()
        wait_key, fetch_key = node_key("wait"), node_key("fetch")
        rows = inbox.wait(lambda m: f'<tr id="s-{wait_key}" class="st-completed"' in m, "the completed step's row")
        assert rows.startswith("<tr ")  # table rows travel on their own
        assert f'id="s-{fetch_key}"' not in rows  # unchanged rows are not sent again
        inbox.wait(lambda m: f'id="n-{wait_key}" class="node st-completed"' in m, "the graph node")
        inbox.wait(lambda m: "Completed.</strong>" in m, "the workflow's outcome")
        assert wait_finished(app, wf.workflow_id).state == "completed"
    finally:
        gate.touch()
        ws.close()


def test_a_socket_opened_by_a_current_page_sends_nothing_until_something_changes(
    app: Flask, live_server: LiveServer
) -> None:
    wf = Workflow("quiet").add("only", constant.new())
    wf.insert()  # no consumer: it stays as the page shows it
    page = app.test_client().get(f"/baton/workflows/{wf.workflow_id}").get_data(as_text=True)
    ws = Client.connect(live_server.ws_url + socket_path(page))
    try:
        assert ws.receive(timeout=0.6) is None
        baton.cancel_workflow(wf.workflow_id)
        Inbox(ws).wait(lambda m: 'badge st-cancelled">cancelled<' in m, "the cancellation")
    finally:
        ws.close()


def test_index_socket_inserts_new_workflows_in_place_and_updates_rows(app: Flask, live_server: LiveServer) -> None:
    older = Workflow("report:older").add("only", constant.new())
    older.insert()
    page = app.test_client().get("/baton?q=report").get_data(as_text=True)
    ws = Client.connect(live_server.ws_url + socket_path(page))
    inbox = Inbox(ws)
    try:
        assert ws.receive(timeout=0.3) is None  # the page is current
        skipped = Workflow("other").add("only", constant.new())
        skipped.insert()
        newer = Workflow("report:newer").add("only", constant.new())
        newer.insert()  # no consumer, so no event: the socket finds it by itself

        inserted = inbox.wait(lambda m: f'id="w-{newer.workflow_id}"' in m, "the new workflow")
        assert inserted.startswith(f'<tbody hx-swap-oob="beforebegin:#w-{older.workflow_id}">')
        assert skipped.workflow_id not in inserted  # the label filter holds for live rows too

        baton.cancel_workflow(newer.workflow_id)
        changed = inbox.wait(lambda m: f'<tr id="w-{newer.workflow_id}" class="st-cancelled"' in m, "the row")
        assert f'id="w-{older.workflow_id}"' not in changed
        inbox.wait(lambda m: re.search(r'Cancelled <span class="n">1</span>', m) is not None, "the new counts")
    finally:
        ws.close()


def test_sockets_are_refused_without_access(settings: dict[str, Any]) -> None:
    with open_app(settings) as app:  # no BATON_DASHBOARD_AUTH, not debug
        baton.create_schema(app)
        with LiveServer(app) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.server.server_port, timeout=5)
            try:
                connection.request(
                    "GET",
                    "/baton/ws",
                    headers={
                        "Connection": "Upgrade",
                        "Upgrade": "websocket",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    },
                )
                response = connection.getresponse()
                assert response.status == 403
                assert "BATON_DASHBOARD_AUTH" in response.read().decode()
            finally:
                connection.close()
            assert server.open_sockets == 0
