"""The dashboard over HTTP (Flask test client): access, pages, escaping, CSRF, actions.

Runs on both backends (``settings``). The live side is in
``test_dashboard_live.py`` (real websockets) and ``test_dashboard_browser.py``
(real Chromium).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from flask_baton import Dep, Workflow
from flask_baton.dashboard.layout import node_key
from flask_baton.dashboard.reads import PAGE_SIZE
from flask_baton.multi_model import fan_out
from flask_baton.store.tables import step_stats

from .apps import open_app
from .steps import (
    always_fail,
    baton,
    constant,
    core_echo,
    discard_now,
    fails_while_file_exists,
    raise_message,
    record_args,
    wait_for_file,
)
from .support import Deliveries, ThreadConsumer, step_states, wait_finished, wait_for

SECRET = "dashboard-test-secret"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": SECRET}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@contextmanager
def other_app(settings: dict[str, Any], **config: Any) -> Iterator[Flask]:
    """An app on the same storage with different dashboard settings."""
    with open_app({**settings, **config}) as app:
        baton.create_schema(app)
        yield app


#: What makes the test client's GET a websocket handshake to Werkzeug's router.
WEBSOCKET = {"Connection": "Upgrade", "Upgrade": "websocket"}


def page_token(html: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', html)  # body's hx-headers
    assert found, "the page carries no CSRF token"
    return found.group(1)


def body(response: Any) -> str:
    return response.get_data(as_text=True)


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="w-([0-9a-f]{32})"', html)


def pending_workflow(name: str = "pending", steps: int = 2) -> Workflow:
    """A workflow that stays running while no consumer runs."""
    wf = Workflow(name).add("first", constant.new(value=1))
    for index in range(1, steps):
        wf.add(f"step{index}", record_args.new(), deps=["first"])
    wf.insert()
    return wf


def add_stats(app: Flask, workflow_id: str, step_name: str, *, tokens: tuple[int, int], cost: float | None) -> None:
    with app.extensions["baton"].engine.begin() as conn:
        conn.execute(
            step_stats.insert(),
            {
                "workflow_id": workflow_id,
                "node_id": "n" * 32,
                "step_name": step_name,
                "attempt": 1,
                "model": "gpt-test",
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "cached_input_tokens": 0,
                "cost_usd": cost,
                "latency": 0.5,
                "created_at": time.time(),
            },
        )


# -- access ----------------------------------------------------------------------


def test_dashboard_answers_403_without_an_auth_callable_unless_debug(settings: dict[str, Any]) -> None:
    with other_app(settings) as app:
        with app.app_context():
            wf = pending_workflow()
        client = app.test_client()
        for path in ("/baton", f"/baton/workflows/{wf.workflow_id}", "/baton/static/baton.css"):
            response = client.get(path)
            assert response.status_code == 403, path
            assert "BATON_DASHBOARD_AUTH" in body(response)
        for path in ("/baton/ws", f"/baton/ws/workflows/{wf.workflow_id}"):
            assert client.get(path, headers=WEBSOCKET).status_code == 403, path
        app.debug = True
        assert client.get("/baton").status_code == 200
        assert client.get(f"/baton/workflows/{wf.workflow_id}").status_code == 200


def test_auth_callable_decides_every_request_including_the_websocket(settings: dict[str, Any]) -> None:
    calls: list[str] = []

    def staff_only() -> bool:
        calls.append(request.path)  # called inside the request context
        return request.headers.get("X-Staff") == "yes"

    with other_app(settings, BATON_DASHBOARD_AUTH=staff_only) as app:
        client = app.test_client()
        assert client.get("/baton").status_code == 403
        assert "refused" in body(client.get("/baton"))
        assert client.get("/baton/ws", headers=WEBSOCKET).status_code == 403
        assert client.get("/baton/ws/workflows/" + "0" * 32, headers=WEBSOCKET).status_code == 403
        assert client.get("/baton", headers={"X-Staff": "yes"}).status_code == 200
        app.debug = True  # debug does not override a callable that says no
        assert client.get("/baton").status_code == 403
    assert "/baton/ws" in calls


def test_dashboard_mounts_at_its_prefix_or_not_at_all(settings: dict[str, Any]) -> None:
    with other_app(settings, BATON_DASHBOARD_PREFIX="/ops/jobs", BATON_DASHBOARD_AUTH=lambda: True) as app:
        client = app.test_client()
        assert client.get("/ops/jobs").status_code == 200
        assert client.get("/ops/jobs/").status_code == 200
        assert client.get("/baton").status_code == 404
        assert 'ws-connect="/ops/jobs/ws?' in body(client.get("/ops/jobs"))
    with other_app(settings, BATON_DASHBOARD_PREFIX=None, BATON_DASHBOARD_AUTH=lambda: True) as app:
        assert app.test_client().get("/baton").status_code == 404


# -- the index -------------------------------------------------------------------


def test_index_lists_workflows_newest_first_with_state_progress_and_cost(app: Flask, client: FlaskClient) -> None:
    first = pending_workflow("first", steps=2)
    second = pending_workflow("second", steps=3)
    third = pending_workflow("third", steps=1)
    baton.cancel_workflow(second.workflow_id)
    add_stats(app, third.workflow_id, "first", tokens=(1000, 200), cost=0.0123)
    add_stats(app, third.workflow_id, "first", tokens=(10, 2), cost=0.0100)

    html = body(client.get("/baton"))

    assert row_ids(html) == [third.workflow_id, second.workflow_id, first.workflow_id]
    rows = dict(zip(row_ids(html), re.split(r'<tr id="w-', html)[1:]))
    assert ">first</a>" in rows[first.workflow_id] and 'badge st-running">running<' in rows[first.workflow_id]
    assert "0/2" in rows[first.workflow_id]
    assert 'badge st-cancelled">cancelled<' in rows[second.workflow_id] and "3/3" in rows[second.workflow_id]
    assert "$0.02" in rows[third.workflow_id]  # 0.0123 + 0.0100
    assert "—" in rows[first.workflow_id]  # no stats rows: no cost
    assert re.search(r'All <span class="n">3</span>', html)
    assert re.search(r'Running <span class="n">2</span>', html)
    assert re.search(r'Cancelled <span class="n">1</span>', html)
    assert f'href="/baton/workflows/{first.workflow_id}"' in html
    assert 'hx-ext="ws" ws-connect="/baton/ws?v=' in html


def test_index_pages_through_every_workflow_with_a_before_cursor(app: Flask, client: FlaskClient) -> None:
    inserted = [pending_workflow(f"wf-{i:03d}", steps=1).workflow_id for i in range(PAGE_SIZE + 7)]

    first = body(client.get("/baton"))
    older = re.search(r'href="(/baton\?before=[0-9a-f]{32})"', first)
    assert older, "the first page links to older workflows"
    assert "← Newest" not in first
    second = body(client.get(older.group(1)))

    assert len(row_ids(first)) == PAGE_SIZE and len(row_ids(second)) == 7
    assert row_ids(first) + row_ids(second) == sorted(inserted, reverse=True)
    assert "Older →" not in second and "← Newest" in second


def test_index_filters_by_state_and_by_label_text(app: Flask, client: FlaskClient) -> None:
    alpha = pending_workflow("report:alpha")
    beta = pending_workflow("Report:Beta")
    misc = pending_workflow("misc")
    odd = pending_workflow("100%_done")
    baton.cancel_workflow(beta.workflow_id)

    def listed(query: str) -> set[str]:
        response = client.get("/baton" + query)
        assert response.status_code == 200
        return set(row_ids(body(response)))

    assert listed("?q=report") == {alpha.workflow_id, beta.workflow_id}  # any case
    assert listed("?q=%25") == {odd.workflow_id}  # % is a character, not a wildcard
    assert listed("?q=_") == {odd.workflow_id}
    assert listed("?state=cancelled") == {beta.workflow_id}
    assert listed("?state=running&q=REPORT") == {alpha.workflow_id}
    assert listed("?state=completed") == set()
    assert listed("?state=exploded") == {alpha.workflow_id, beta.workflow_id, misc.workflow_id, odd.workflow_id}
    html = body(client.get("/baton?state=running&q=report"))
    assert 'class="tab active st-running"' in html and 'value="report"' in html
    assert "No workflows match these filters." in body(client.get("/baton?q=nothing-like-this"))


# -- a workflow page ---------------------------------------------------------------


def test_workflow_page_draws_the_graph_the_steps_and_the_outcome(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient
) -> None:
    wf = (
        Workflow("brief:ai")
        .add("fetch", constant.new(value=7))
        .add("summarize", record_args.new(), deps=["fetch"])
        .add("broken", always_fail.new(), deps=["fetch"])
        .add("compile", record_args.new(), deps=["summarize", "broken"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"

    html = body(client.get(f"/baton/workflows/{wf.workflow_id}"))

    for name in ("fetch", "summarize", "broken", "compile"):
        assert f'id="n-{node_key(name)}"' in html  # a node in the SVG
        assert f'<tr id="s-{node_key(name)}"' in html  # a row in the table
    assert html.count('class="edge"') == 4
    assert f'id="n-{node_key("broken")}" class="node st-discarded"' in html
    assert f'id="n-{node_key("compile")}" class="node st-cancelled"' in html
    assert "Failed because of broken.</strong> 2 of 4 steps completed; 1 cancelled as a consequence." in html
    assert "ValueError: this step always fails" in html  # the error's last line, in the row
    assert "Traceback (most recent call last)" in html  # the whole traceback, in <details>
    assert "<code>7</code>" in html  # fetch's result preview
    # Retry is offered for the failed step, not for the step it cancelled.
    rows = {name: html.split(f'<tr id="s-{node_key(name)}"')[1].split("</tr>")[0] for name in ("broken", "compile")}
    assert ">Retry</button>" in rows["broken"] and ">Retry</button>" not in rows["compile"]
    assert ">Cancel workflow</button>" not in html  # it is not running any more
    assert f'ws-connect="/baton/ws/workflows/{wf.workflow_id}?v=' in html


def test_attempts_tokens_and_cost_per_step(app: Flask, client: FlaskClient) -> None:
    wf = pending_workflow("llm", steps=2)
    add_stats(app, wf.workflow_id, "step1", tokens=(1200, 300), cost=0.0042)
    add_stats(app, wf.workflow_id, "step1", tokens=(800, 200), cost=None)

    html = body(client.get(f"/baton/workflows/{wf.workflow_id}"))

    row = html.split(f'<tr id="s-{node_key("step1")}"')[1].split("</tr>")[0]
    assert "2.5k" in row and "$0.0042" in row and "0/1" in row
    assert "2,000 input" in row  # the exact figures in the cell's title
    first_row = html.split(f'<tr id="s-{node_key("first")}"')[1].split("</tr>")[0]
    assert first_row.count("—") >= 3  # no usage, no cost, no result yet


def test_a_quorum_synthesis_says_how_many_models_it_needs(client: FlaskClient) -> None:
    wf = Workflow(name="models")
    fan_out(wf, "ask", constant.new(value=1), models=["a", "b", "c"], synthesize=("merge", record_args.new()), quorum=2)
    wf.insert()

    html = body(client.get(f"/baton/workflows/{wf.workflow_id}"))

    row = html.split(f'<tr id="s-{node_key("merge")}"')[1].split("</tr>")[0]
    assert "needs 2 of 3 models" in row
    model_row = html.split(f'<tr id="s-{node_key("ask:a")}"')[1].split("</tr>")[0]
    assert "needs" not in model_row


def test_unknown_workflow_is_404(client: FlaskClient) -> None:
    assert client.get("/baton/workflows/" + "f" * 32).status_code == 404
    assert client.get("/baton/workflows/" + "f" * 32 + "/result?step=x").status_code == 404


def test_results_errors_and_labels_are_escaped(app: Flask, consumer: ThreadConsumer, client: FlaskClient) -> None:
    attack = '<script>alert("baton")</script>'
    wf = (
        Workflow(f"label {attack}")
        .add("echo", core_echo.new(value={"html": attack}))
        .add("boom", raise_message.new(message=f"bad {attack}"))
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)

    for path in ("/baton", f"/baton/workflows/{wf.workflow_id}"):
        html = body(client.get(path))
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;alert(" in html, path
    raw = client.get(f"/baton/workflows/{wf.workflow_id}/result?step=echo")
    assert raw.mimetype == "application/json" and raw.headers["X-Content-Type-Options"] == "nosniff"
    assert raw.get_json() == {"html": attack}


def test_a_large_result_is_previewed_and_linked_in_full(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient
) -> None:
    big = {"text": "x" * 30_000}
    wf = Workflow("big").add("huge", core_echo.new(value=big))
    wf.insert()
    wait_finished(app, wf.workflow_id)

    html = body(client.get(f"/baton/workflows/{wf.workflow_id}"))

    assert "x" * 30_000 not in html and "…" in html
    assert re.search(r"whole result \(29\.\d KB\)", html)
    assert client.get(f"/baton/workflows/{wf.workflow_id}/result?step=huge").get_json() == big
    assert client.get(f"/baton/workflows/{wf.workflow_id}/result?step=nope").status_code == 404


# -- actions and CSRF ----------------------------------------------------------------


def test_actions_refuse_a_missing_or_wrong_csrf_token(app: Flask, client: FlaskClient) -> None:
    wf = pending_workflow()
    client.get(f"/baton/workflows/{wf.workflow_id}")  # the session now has a token
    url = f"/baton/workflows/{wf.workflow_id}/cancel"

    missing = client.post(url, data={"confirmed": "1"})
    wrong = client.post(url, data={"confirmed": "1", "csrf_token": "forged"})
    wrong_header = client.post(url, data={"confirmed": "1"}, headers={"X-CSRF-Token": "forged", "HX-Request": "true"})
    other_session = app.test_client().post(url, data={"confirmed": "1", "csrf_token": "forged"})

    for response in (missing, wrong, wrong_header, other_session):
        assert response.status_code == 400
        assert "CSRF token" in body(response)
    assert app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "running"


def test_cancel_through_htmx_sends_the_token_header_and_gets_fresh_fragments(app: Flask, client: FlaskClient) -> None:
    wf = pending_workflow(steps=3)
    token = page_token(body(client.get(f"/baton/workflows/{wf.workflow_id}")))
    assert f'hx-headers=\'{{"X-CSRF-Token": "{token}"}}\'' in body(client.get(f"/baton/workflows/{wf.workflow_id}"))

    response = client.post(
        f"/baton/workflows/{wf.workflow_id}/cancel",
        data={"confirmed": "1"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )

    assert response.status_code == 200
    html = body(response)
    assert '<div hx-swap-oob="true" id="notice"' in html and "Workflow cancelled (3 step(s) cancelled)." in html
    assert '<section hx-swap-oob="true" id="wf-summary"' in html and 'badge st-cancelled">cancelled<' in html
    assert '<div hx-swap-oob="true" id="steps-table"' in html and '<div hx-swap-oob="true" id="dag"' in html
    assert app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "cancelled"
    assert set(step_states(app, wf.workflow_id).values()) == {"cancelled"}


def test_cancel_without_javascript_asks_to_confirm_then_redirects(app: Flask, client: FlaskClient) -> None:
    wf = pending_workflow()
    token = page_token(body(client.get(f"/baton/workflows/{wf.workflow_id}")))
    url = f"/baton/workflows/{wf.workflow_id}/cancel"

    asked = client.post(url, data={"csrf_token": token})
    assert asked.status_code == 200 and "Cancel this workflow?" in body(asked)
    assert 'name="confirmed" value="1"' in body(asked)
    assert app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "running"

    done = client.post(url, data={"csrf_token": token, "confirmed": "1"})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/baton/workflows/{wf.workflow_id}")
    assert app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "cancelled"
    page = body(client.get(done.headers["Location"]))
    assert "Workflow cancelled" in page  # flashed
    # Cancelling again is refused with the reason, not a crash.
    again = client.post(url, data={"csrf_token": token, "confirmed": "1"}, follow_redirects=True)
    assert "only a running workflow can be cancelled" in body(again)


def test_actions_without_a_secret_key_fail_with_a_clear_message(settings: dict[str, Any]) -> None:
    with other_app(settings, BATON_DASHBOARD_AUTH=lambda: True) as app:
        with app.app_context():
            wf = pending_workflow()
        client = app.test_client()
        page = client.get(f"/baton/workflows/{wf.workflow_id}")
        assert page.status_code == 200
        assert "disabled" in body(page) and "SECRET_KEY" in body(page)
        response = client.post(f"/baton/workflows/{wf.workflow_id}/cancel", data={"confirmed": "1"})
        assert response.status_code == 400
        assert "SECRET_KEY" in body(response)
        with app.app_context():
            assert app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "running"


def test_retry_runs_a_discarded_step_again_with_the_steps_it_cancelled(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("retry-me")
        .add("root", constant.new(value=1))
        .add("flaky", fails_while_file_exists.new(path=str(blocker)), deps=["root"])
        .add("after", record_args.new(), deps=["flaky"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    token = page_token(body(client.get(f"/baton/workflows/{wf.workflow_id}")))
    url = f"/baton/workflows/{wf.workflow_id}/retry"

    refused = client.post(
        url, data={"step": "after", "confirmed": "1"}, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert refused.status_code == 200 and "notice-error" in body(refused)
    assert "depends on &#39;flaky&#39;" in body(refused) or "depends on 'flaky'" in body(refused)

    blocker.unlink()
    response = client.post(
        url, data={"step": "flaky", "confirmed": "1"}, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "will run again with 1 dependent step(s)" in body(response)
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert step_states(app, wf.workflow_id) == {"root": "completed", "flaky": "completed", "after": "completed"}


def test_retry_button_follows_each_edge_policy_as_retry_step_does(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = (
        Workflow("tolerant-retry")
        .add("optional", discard_now.new())
        .add("strict", record_args.new(), deps=["optional"])
        .add("tolerant", wait_for_file.new(path=str(gate), value=7), deps=[Dep("optional", ignore_discarded=True)])
        .add("blocked", record_args.new(), deps=["tolerant", "optional"])
    )
    with Deliveries(app) as deliveries:
        jobs = {job.step_name: job for job in wf.insert()}
        wait_for(lambda: step_states(app, wf.workflow_id)["tolerant"] == "executing", "tolerant to start")
        baton.cancel_workflow(wf.workflow_id)
        gate.touch()
        deliveries.wait(jobs["tolerant"].id, 1)  # the cancelled run has returned; its outcome was dropped
    html = body(client.get(f"/baton/workflows/{wf.workflow_id}"))
    rows = {
        name: html.split(f'<tr id="s-{node_key(name)}"')[1].split("</tr>")[0]
        for name in ("optional", "strict", "tolerant", "blocked")
    }
    # The one rule (dag.can_retry): a failed step whose failed deps its edges all tolerate.
    assert {name: 'name="step"' in row for name, row in rows.items()} == {
        "optional": True,
        "strict": False,
        "tolerant": True,
        "blocked": False,
    }

    response = client.post(
        f"/baton/workflows/{wf.workflow_id}/retry",
        data={"step": "tolerant", "confirmed": "1"},
        headers={"X-CSRF-Token": page_token(html), "HX-Request": "true"},
    )
    notice = "Step “tolerant” will run again. Still cancelled: “blocked” (dependency &#39;optional&#39; discarded)."
    assert notice in body(response)
    wait_for(lambda: step_states(app, wf.workflow_id)["tolerant"] == "completed", "tolerant to run again")


def test_retry_of_a_step_that_did_not_fail_is_refused_with_the_reason(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient
) -> None:
    wf = Workflow("fine").add("only", constant.new())
    wf.insert()
    wait_finished(app, wf.workflow_id)
    token = page_token(body(client.get(f"/baton/workflows/{wf.workflow_id}")))

    response = client.post(
        f"/baton/workflows/{wf.workflow_id}/retry",
        data={"step": "only", "csrf_token": token, "confirmed": "1"},
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert "only a discarded or cancelled step can be retried" in body(response)
    wait_for(lambda: step_states(app, wf.workflow_id) == {"only": "completed"}, "the step to stay completed", 1)
