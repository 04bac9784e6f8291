"""A streamed answer grows on the workflow page in a real Chromium, on both transports.

The ``app`` fixture runs each test on SQLite with the database feed and on
PostgreSQL with Redis pub/sub; a real Huey consumer runs the step, which
streams words and waits at gates the test opens. With
``BATON_UPDATE_SCREENSHOTS=1`` the first writes ``docs/screenshots/streaming.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow
from flask_baton.dashboard.layout import node_key

from .browser import LaunchedBrowser
from .steps import stream_words
from .support import ThreadConsumer, step_states, wait_finished, wait_for
from .test_dashboard_browser import open_live, screenshots
from .test_dashboard_live import LiveServer

pytestmark = pytest.mark.browser

ROW = f"#s-{node_key('answer')}"
STREAM = f"#so-{node_key('answer')}"
WORDS = ["Once", "<i>upon</i>", "a", "time", "there", "was", "a", "stream."]


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "browser-test-secret"}


def _streaming(app: Flask, gates: dict[int, Path]) -> Workflow:
    """A workflow whose one step streams ``WORDS``, waiting before each word that has a gate."""
    wf = Workflow("stream:page").add(
        "answer", stream_words.new(words=WORDS, gates={str(i): str(path) for i, path in gates.items()})
    )
    wf.insert()
    wait_for(lambda: step_states(app, wf.workflow_id)["answer"] == "executing", "the step to run")
    return wf


def _shows(page: Any, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel)?.textContent === text", arg=[STREAM, text], timeout=10_000
    )


def test_a_streamed_answer_grows_on_the_open_page_then_its_result_replaces_it(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    gates = {0: tmp_path / "start", 2: tmp_path / "more", 5: tmp_path / "end"}
    wf = _streaming(app, gates)
    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    assert page.text_content(STREAM) == ""

    gates[0].touch()
    _shows(page, "Once <i>upon</i> ")
    gates[2].touch()
    _shows(page, "Once <i>upon</i> a time there ")
    assert page.evaluate(f"document.querySelectorAll('{STREAM} i, {STREAM} script').length") == 0  # text, not HTML
    page.locator("#steps-table").screenshot(path=str(screenshots(tmp_path) / "streaming.png"))
    gates[5].touch()

    page.wait_for_selector(f"{ROW}[data-state=completed]")
    assert page.query_selector(STREAM) is None
    assert "Once <i>upon</i> a time there was a stream." in page.inner_text(ROW)
    assert page.evaluate("window.__marker") == 1  # same document: no reload
    assert wait_finished(app, wf.workflow_id).state == "completed"


def test_a_page_opened_mid_stream_shows_what_was_streamed_so_far(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    gates = {3: tmp_path / "more", 6: tmp_path / "end"}
    wf = _streaming(app, gates)
    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    _shows(page, "Once <i>upon</i> a ")

    gates[3].touch()
    _shows(page, "Once <i>upon</i> a time there was ")
    gates[6].touch()
    page.wait_for_selector(f"{ROW}[data-state=completed]")
    assert wait_finished(app, wf.workflow_id).state == "completed"


def test_a_long_stream_keeps_its_end_in_view(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    words = [f"word{i}" for i in range(401)]
    start, end = tmp_path / "start", tmp_path / "end"
    wf = Workflow("stream:long").add("answer", stream_words.new(words=words, gates={"0": str(start), "400": str(end)}))
    wf.insert()
    wait_for(lambda: step_states(app, wf.workflow_id)["answer"] == "executing", "the step to run")
    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    start.touch()
    _shows(page, "".join(f"{word} " for word in words[:400]))
    box = f"document.querySelector('{STREAM}')"
    assert page.evaluate(f"{box}.scrollHeight > {box}.clientHeight")  # it overflows its box
    assert page.evaluate(f"{box}.scrollHeight - {box}.scrollTop - {box}.clientHeight < 8")  # scrolled to the end
    end.touch()
    assert wait_finished(app, wf.workflow_id).state == "completed"
