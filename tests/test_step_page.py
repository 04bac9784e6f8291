"""A step's page over HTTP (Flask test client), on both backends: its runs, tracebacks, transcripts.

The runs come from real consumers; the browser side (the page in Chromium,
``<script>`` in a transcript shown as text) is in ``test_dashboard_browser.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from flask_baton import Workflow

from .steps import chat_until, constant
from .support import ThreadConsumer, wait_finished

ATTACK = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def page_of(client: FlaskClient, workflow_id: str, step: str, **headers: str) -> Any:
    return client.get(f"/baton/workflows/{workflow_id}/steps/{step}", headers=headers)


def asked(app: Flask, name: str, **args: Any) -> str:
    """Run a workflow of one ``chat_until`` step, ``ask``, to its end; its id."""
    wf = Workflow(name).add("ask", chat_until.new(**args))
    wf.insert()
    wait_finished(app, wf.workflow_id)
    return wf.workflow_id


def test_a_step_that_failed_three_times_lists_four_runs_with_trimmed_tracebacks_and_transcripts(
    app: Flask, client: FlaskClient, consumer: ThreadConsumer
) -> None:
    response = page_of(client, asked(app, "flaky", failures=3, question=ATTACK), "ask")

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert re.findall(r'data-outcome="(\w+)"', text) == ["failed", "failed", "failed", "completed"]
    assert [f"#{n}" for n in range(1, 5)] == re.findall(r'<span class="run-n"[^>]*>(#\d)</span>', text)
    trimmed = re.findall(r'<pre class="tb"[^>]*>(.*?)</pre>', text, re.S)
    folded = [tb for tb in trimmed if "frames of flask_baton" in tb]
    assert len(folded) == 3, "each failed run shows its traceback with flask_baton's frames folded"
    for tb in folded:
        assert "flask_baton/runner.py" not in tb and "tests/steps.py" in tb and "raise ConnectionError" in tb
    assert "flask_baton/runner.py" in text  # the whole traceback is still there, folded away
    assert text.count("ConnectionError: provider unreachable on attempt") >= 3
    # Each run's model call, as a chat: roles, the tool call and its result, the response.
    assert text.count('class="transcript"') == 4
    for expected in ("You answer with one word.", 'calls <span class="mono">weather</span>', "sunny, 21 C"):
        assert text.count(expected) == 4, expected
    assert "Sunny (attempt 4)" in text and "gpt-4o-mini" in text
    assert str(escape(ATTACK)) in text and ATTACK not in text


def test_the_workflow_page_links_each_step_to_its_page_and_folds_frames_in_its_row(
    app: Flask, client: FlaskClient, consumer: ThreadConsumer
) -> None:
    wf = Workflow("links").add("ask", chat_until.new(failures=5)).add("model:openai/gpt-4o", constant.new(value=1))
    wf.insert()
    wait_finished(app, wf.workflow_id)

    text = client.get(f"/baton/workflows/{wf.workflow_id}").get_data(as_text=True)

    steps = f"/baton/workflows/{wf.workflow_id}/steps/"
    assert f'href="{steps}ask"' in text and f'href="{steps}model%3Aopenai/gpt-4o"' in text
    row = text[text.index('id="s-') :]
    assert "frames of flask_baton" in row and "flask_baton/runner.py" not in row
    named = page_of(client, wf.workflow_id, "model%3Aopenai/gpt-4o")
    assert named.status_code == 200 and 'data-outcome="completed"' in named.get_data(as_text=True)
    assert page_of(client, wf.workflow_id, "no-such-step").status_code == 404
    assert page_of(client, "0" * 32, "ask").status_code == 404


CONFIG = {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "step-page-secret", "BATON_DEBUG_CAPTURE": True}


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return CONFIG


@pytest.mark.parametrize("app_overrides", [{**CONFIG, "BATON_DEBUG_CAPTURE_MAX_BYTES": 200}])
def test_a_capture_cut_at_the_byte_cap_shows_the_cut_and_the_messages_stored_whole(
    app: Flask, client: FlaskClient, consumer: ThreadConsumer
) -> None:
    workflow_id = asked(app, "cut", failures=0)
    (capture,) = app.extensions["baton"].query.get_context_captures(workflow_id, "ask")
    assert capture.truncated

    text = page_of(client, workflow_id, "ask").get_data(as_text=True)

    assert '<span class="cut-flag">cut</span>' in text and "BATON_DEBUG_CAPTURE_MAX_BYTES" in text
    assert "You answer with one word." in text  # the first messages were stored whole
    assert "✂ cut here" in text


def test_an_open_page_asks_again_and_gets_nothing_until_the_step_changes(
    app: Flask, client: FlaskClient, consumer: ThreadConsumer
) -> None:
    workflow_id = asked(app, "poll", failures=0)
    text = page_of(client, workflow_id, "ask").get_data(as_text=True)
    assert "hx-trigger" not in text  # settled: nothing left to ask for
    version = re.search(r'data-version="([0-9a-f]+)"', text)
    assert version is not None

    same = page_of(client, workflow_id, "ask?v=" + version.group(1), **{"HX-Request": "true"})
    stale = page_of(client, workflow_id, "ask?v=old", **{"HX-Request": "true"})

    assert same.status_code == 204
    assert stale.status_code == 200 and stale.get_data(as_text=True).startswith('<div id="step-live"')
