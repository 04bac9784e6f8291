"""Approvals in the dashboard: what a waiting step shows, Approve / Reject with CSRF, confirmation and who decided."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_baton import Workflow

from .steps import await_approval, baton, record_args, wait_without_reading
from .support import ThreadConsumer, step_states, wait_finished, wait_for


class Reviewer:
    """What ``BATON_DASHBOARD_AUTH`` may return: a user object with a ``name``."""

    name = "ana"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": Reviewer, "SECRET_KEY": "approvals-test-secret"}


def _waiting_approval(app: Flask) -> Workflow:
    wf = (
        Workflow(name="brief")
        .add("review", await_approval.new(timeout=3600))
        .add("publish", record_args.new(), deps=["review"])
    )
    wf.insert()
    wait_for(lambda: step_states(app, wf.workflow_id)["review"] == "waiting", "review waiting")
    return wf


def _step_url(workflow_id: str, step: str = "review") -> str:
    return f"/baton/workflows/{workflow_id}/steps/{quote(step)}"


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _decide(client: FlaskClient, workflow_id: str, token: str | None, **form: str) -> Any:
    data = {"step": "review", **form} | ({} if token is None else {"csrf_token": token})
    return client.post(f"/baton/workflows/{workflow_id}/decide", data=data)


def test_a_waiting_approval_shows_what_it_waits_for_and_until_when_with_approve_and_reject(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = _waiting_approval(app)
    html = app.test_client().get(_step_url(wf.workflow_id)).get_data(as_text=True)
    assert 'badge st-waiting">waiting<' in html
    assert "a person to approve or reject" in html and "then the step is discarded" in html
    assert html.count("<time") >= 2  # since, until
    assert 'id="decide-approve"' in html and 'id="decide-reject"' in html
    assert 'hx-confirm="Approve step “review”?"' in html


def test_approving_records_who_and_the_comment_and_the_workflow_ends(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _waiting_approval(app)
    client = app.test_client()
    token = _token(client.get(_step_url(wf.workflow_id)).get_data(as_text=True))

    done = _decide(client, wf.workflow_id, token, decision="approve", comment="ship it", confirmed="1")

    assert done.status_code == 303 and done.headers["Location"].endswith(_step_url(wf.workflow_id))
    assert wait_finished(app, wf.workflow_id).state == "completed"
    signal = app.extensions["baton"].query.get_signals(wf.workflow_id)["approval"]
    assert (signal.payload, signal.sent_by) == ({"approved": True, "comment": "ship it", "by": "ana"}, "ana")
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Step “review” approved by ana." in page  # flashed
    assert re.search(r"<strong>approved</strong> by ana at <time[^>]*>[^<]+</time>: “ship it”", page)
    assert 'id="decide-approve"' not in page


def test_rejecting_sends_approved_false(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _waiting_approval(app)
    client = app.test_client()
    token = _token(client.get(_step_url(wf.workflow_id)).get_data(as_text=True))
    _decide(client, wf.workflow_id, token, decision="reject", confirmed="1")
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert app.extensions["baton"].query.get_signals(wf.workflow_id)["approval"].payload == {
        "approved": False,
        "comment": "",
        "by": "ana",
    }


def test_a_decision_without_javascript_asks_to_confirm_first(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _waiting_approval(app)
    client = app.test_client()
    token = _token(client.get(_step_url(wf.workflow_id)).get_data(as_text=True))

    asked = _decide(client, wf.workflow_id, token, decision="reject", comment="too long")

    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Reject “review”?" in html and "with the comment “too long”" in html
    assert 'name="confirmed" value="1"' in html and 'name="comment" value="too long"' in html
    assert app.extensions["baton"].query.get_signals(wf.workflow_id) == {}


def test_bad_decisions_are_refused_and_change_nothing(app: Flask, consumer: ThreadConsumer) -> None:
    wf = _waiting_approval(app)
    client = app.test_client()
    token = _token(client.get(_step_url(wf.workflow_id)).get_data(as_text=True))

    assert _decide(client, wf.workflow_id, None, decision="approve", confirmed="1").status_code == 400  # no CSRF
    assert _decide(client, wf.workflow_id, token, decision="maybe", confirmed="1").status_code == 400
    assert _decide(client, "nope", token, decision="approve", confirmed="1").status_code == 404
    assert _decide(client, wf.workflow_id, token, step="publish", decision="approve", confirmed="1").status_code == 404
    assert app.extensions["baton"].query.get_signals(wf.workflow_id) == {}
    assert step_states(app, wf.workflow_id) == {"review": "waiting", "publish": "pending"}

    baton.signal(wf.workflow_id, "approval", {"approved": True}, by="script")
    late = _decide(client, wf.workflow_id, token, decision="reject", confirmed="1")
    assert late.status_code == 303
    page = client.get(late.headers["Location"]).get_data(as_text=True)
    assert "not waiting for a decision any more" in page or "was sent already by script" in page
    assert app.extensions["baton"].query.get_signals(wf.workflow_id)["approval"].sent_by == "script"


def test_a_wait_that_is_no_approval_shows_no_buttons(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow(name="reply").add("ask", wait_without_reading.new())
    wf.insert()
    wait_for(lambda: step_states(app, wf.workflow_id)["ask"] == "waiting", "ask waiting")
    html = app.test_client().get(_step_url(wf.workflow_id, "ask")).get_data(as_text=True)
    assert "the signal <code>reply</code>" in html and 'id="decide-approve"' not in html


def test_the_user_is_what_the_auth_callable_returned_when_it_names_someone() -> None:
    from flask_baton.dashboard.security import user_name

    assert user_name("bob") == "bob"
    assert user_name(Reviewer()) == "ana"
    assert user_name(type("Account", (), {"username": "cy"})()) == "cy"
    assert user_name(True) is None


def test_the_index_can_show_only_the_workflows_waiting_for_a_person(app: Flask, consumer: ThreadConsumer) -> None:
    waiting = _waiting_approval(app)
    other = Workflow(name="reply").add("ask", wait_without_reading.new())  # waits, but for no person
    other.insert()
    wait_for(lambda: step_states(app, other.workflow_id)["ask"] == "waiting", "ask waiting")
    client = app.test_client()

    everything = client.get("/baton").get_data(as_text=True)
    assert 'href="/baton?waiting=person">Waiting for a person <span class="n">1</span>' in everything
    assert f"w-{other.workflow_id}" in everything and f"w-{waiting.workflow_id}" in everything

    filtered = client.get("/baton?waiting=person").get_data(as_text=True)
    assert f"w-{waiting.workflow_id}" in filtered and f"w-{other.workflow_id}" not in filtered
    assert 'class="tab active st-waiting" href="/baton?waiting=person" aria-current="page"' in filtered

    baton.signal(waiting.workflow_id, "approval", {"approved": True})
    wait_finished(app, waiting.workflow_id)
    assert f"w-{waiting.workflow_id}" not in client.get("/baton?waiting=person").get_data(as_text=True)
