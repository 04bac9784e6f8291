"""A big workflow's page over HTTP and its websocket, on both backends: folded, filtered, paged, and live in its view.

What a browser does with it is in ``test_dashboard_big_browser.py``.
"""

# ruff: noqa: F811 (tests take the fixtures imported below as arguments)
from __future__ import annotations

import json
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from simple_websocket import Client

from flask_baton import Workflow
from flask_baton.dashboard.folding import fold, node_key
from flask_baton.records import StepOutline

from .steps import baton, constant, fail_until, raise_message, record_args, wait_for_file
from .support import ThreadConsumer, wait_finished, wait_for
from .test_dashboard import app_overrides, body, client, page_token  # noqa: F401 (fixtures: access, a client)
from .test_dashboard_live import Inbox, LiveServer, socket_path


def fan_and_chain(width: int = 300, length: int = 50) -> Workflow:
    """split → item:000.. → merge → step:000 → …, inserted; nothing runs it unless a consumer does."""
    wf = Workflow("big").add("split", constant.new(value=1))
    for i in range(width):
        wf.add(f"item:{i:03d}", constant.new(value=i), deps=["split"])
    wf.add("merge", record_args.new(), deps=[f"item:{i:03d}" for i in range(width)])
    for i in range(length):
        wf.add(f"step:{i:03d}", constant.new(value=i), deps=[f"step:{i - 1:03d}" if i else "merge"])
    wf.insert()
    return wf


def keys(app: Flask, workflow_id: str) -> dict[str, str]:
    """The fold keys of a workflow's twins and chain."""
    outline = app.extensions["baton"].query.get_workflow_outline(workflow_id)
    return {node.kind: node.key for node in fold([(s.step_name, s.deps) for s in outline]).nodes if node.folded}


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="s-([0-9a-f]+)"', html)


def test_the_outline_has_every_step_without_payloads_and_named_steps_are_read_alone(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = (
        Workflow("outline")
        .add("a", constant.new(value=1))
        .add("b", record_args.new(), deps=["a"])
        .add("c", raise_message.new(message="no"), deps=["a", "b"])
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)
    query = app.extensions["baton"].query
    full = query.get_workflow_jobs(wf.workflow_id)
    outline = query.get_workflow_outline(wf.workflow_id)
    assert [(s.step_name, s.task, s.state, s.attempt, s.deps, s.cancelled_by) for s in outline] == [
        (s.step_name, s.task, s.state, s.attempt, s.deps, s.cancelled_by) for s in full
    ]
    assert [(s.scheduled_at, s.started_at, s.finished_at) for s in outline] == [
        (s.scheduled_at, s.started_at, s.finished_at) for s in full
    ]
    assert not hasattr(outline[0], "result") and not hasattr(outline[0], "error")
    (c,) = query.get_workflow_jobs(wf.workflow_id, ["c"])
    assert c == full[2] and c.deps == ("a", "b") and "no" in (c.error or "")
    assert query.get_workflow_jobs(wf.workflow_id, []) == []
    # Same steps as an earlier outline: their deps are taken from it, not read again.
    earlier = [StepOutline(*s[:4], ("z",), *s[5:]) for s in outline]
    assert [s.deps for s in query.get_workflow_outline(wf.workflow_id, earlier)] == [("z",)] * 3
    assert query.get_workflow_outline(wf.workflow_id, earlier[:2]) == outline  # a step more: read again


def test_a_big_workflows_page_is_folded_filtered_and_paged_server_side(app: Flask, client: FlaskClient) -> None:
    wf = fan_and_chain()
    page = f"/baton/workflows/{wf.workflow_id}"
    folds = keys(app, wf.workflow_id)

    html = body(client.get(page))
    assert html.count('<svg id="n-') == 4 and 'class="node st-pending group chain"' in html
    assert len(rows(html)) == 50 and "1–50 of 352" in html and 'rel="next"' in html
    assert '<svg class="timeline-svg"' in html and html.count('class="trow') == 4

    html = body(client.get(f"{page}?state=pending&q=ITEM:2&page=2"))
    assert rows(html) == [node_key(f"item:{i}") for i in range(250, 300)] and "51–100 of 100" in html
    assert 'ws-connect="/baton/ws/workflows/' in html and "state=pending&amp;q=ITEM%3A2&amp;page=2" in html
    # Without JavaScript the name filter is a form that keeps the other filters.
    assert '<input type="hidden" name="state" value="pending">' in html and 'value="ITEM:2"' in html

    html = body(client.get(f"{page}?open={folds['chain']}&node={folds['chain']}"))
    assert html.count('<svg id="n-') == 53 and f'id="x-{folds["chain"]}" class="frame"' in html
    assert rows(html) == [node_key(f"step:{i:03d}") for i in range(50)]
    assert "step:000 → … → step:049 (50 steps)" in html

    html = body(client.get(f"{page}?state=exploded&node=<b>&page=-1"))  # nonsense is ignored
    assert len(rows(html)) == 50 and "&lt;b&gt;" not in html


def test_the_part_route_and_actions_answer_with_the_view_of_the_page(app: Flask, client: FlaskClient) -> None:
    wf = fan_and_chain(width=30, length=12)
    page = f"/baton/workflows/{wf.workflow_id}"
    twins = keys(app, wf.workflow_id)["twins"]
    html = body(client.get(f"{page}/part?node={twins}&state=pending"))
    for fragment in ("wf-view", "wf-summary", "dag", "timeline", "steps-states", "steps-table"):
        assert f'hx-swap-oob="true" id="{fragment}"' in html
    assert f'data-view="?node={twins}&amp;state=pending"' in html and len(rows(html)) == 30
    assert client.get("/baton/workflows/0123/part").status_code == 404

    token = page_token(body(client.get(page)))
    response = client.post(
        f"{page}/cancel",
        data={"confirmed": "1"},
        headers={"X-CSRF-Token": token, "HX-Request": "true", "HX-Current-URL": f"http://x{page}?q=step:01"},
    )
    assert rows(body(response)) == [node_key("step:010"), node_key("step:011")]  # still the page's filter


def test_the_socket_answers_a_view_request_in_order_then_keeps_that_view_live(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = Workflow("gated-fan").add("split", constant.new(value=1))
    for i in range(30):
        step = wait_for_file.new(path=str(gate), value=i, timeout=15) if i == 7 else constant.new(value=i)
        wf.add(f"item:{i:02d}", step, deps=["split"])
    wf.add("merge", record_args.new(), deps=[f"item:{i:02d}" for i in range(30)])
    wf.insert()
    query = app.extensions["baton"].query
    try:
        wait_for(lambda: query.get_workflow_jobs(wf.workflow_id, ["item:07"])[0].state == "executing", "item:07")
        wait_for(lambda: query.get_workflow(wf.workflow_id).unsettled_steps == 2, "the other items to finish")
        html = app.test_client().get(f"/baton/workflows/{wf.workflow_id}").get_data(as_text=True)
        ws = Client.connect(live_server.ws_url + socket_path(html))
        inbox = Inbox(ws)
        try:
            twins = keys(app, wf.workflow_id)["twins"]
            ws.send("not json")  # ignored
            ws.send(json.dumps({"view": f"?node={twins}", "request": 3}))
            answer = inbox.wait(lambda m: 'data-request="3"' in m, "the answer")
            assert answer.index('id="wf-view"') < answer.index('id="steps-table"')
            assert rows(answer)[0] == node_key("item:07") and len(rows(answer)) == 30  # the running one first
            assert "item:00 … item:29 (30 steps)" in answer

            gate.touch()
            finished = f'<tr id="s-{node_key("item:07")}" class="st-completed"'
            done = inbox.wait(lambda m: 'id="steps-table"' in m and finished in m, "the table, live")
            assert rows(done)[7] == node_key("item:07") and len(rows(done)) == 30  # still that node's steps
            inbox.wait(lambda m: "Completed.</strong>" in m, "the outcome")
        finally:
            ws.close()
    finally:
        gate.touch()
    assert baton.status(wf.workflow_id).outcome == "completed"


def test_the_timeline_draws_a_retried_steps_earlier_runs_and_their_waits(app: Flask, client: FlaskClient) -> None:
    wf = Workflow("flaky").add("first", constant.new(value=1)).add("flaky", fail_until.new(failures=2), deps=["first"])
    wf.insert()
    with ThreadConsumer(app):
        assert wait_finished(app, wf.workflow_id).state == "completed"
    kept = app.extensions["baton"].query.get_workflow_attempts(wf.workflow_id)
    assert [(run.attempt, run.outcome) for run in kept["flaky"]] == [(1, "failed"), (2, "failed")]
    html = body(client.get(f"/baton/workflows/{wf.workflow_id}"))
    row = html.split(f'<g id="t-{node_key("flaky")}"')[1].split("</g>")[0]
    assert row.count('class="tbar running st-retryable"') == 2  # each failed try
    assert 'class="tbar waiting st-retryable"' in row  # the retry delays (a few ms apart: one bar at this scale)
    assert row.count('class="tbar running st-completed"') == 1
