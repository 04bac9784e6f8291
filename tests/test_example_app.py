"""The example app end to end: its pages start a brief that a real consumer runs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from example_app import DEVELOPMENT_SECRET_KEY, create_app
from example_app.steps import (
    BRIEF_BUDGET_USD,
    KEYWORD_MODELS,
    LLM_KEY,
    baton,
    fake_credibility,
    fake_keywords,
    fake_sources,
    fake_summary,
)
from example_app.survey import DRAFTS, READS
from flask_baton import limits
from flask_baton.events import STEP_STREAMED
from flask_baton.store.tables import events as feed

from .apps import close_app
from .support import ThreadConsumer, wait_for

MODEL_STEPS = [f"keywords:{model}" for model in KEYWORD_MODELS]
STEPS = ["fetch_sources", "summarize", "credibility", *MODEL_STEPS, "keywords", "compile_brief", "review", "publish"]
LLM_STEPS = ["summarize", "credibility", *MODEL_STEPS]


def _create(tmp_path: Path, **config: Any) -> Flask:
    """The example app on its own SQLite files, with the fake pauses off (and ``config``)."""
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.db'}",
            "BATON_HUEY_URL": f"sqlite:///{tmp_path / 'example-huey.db'}",
            "EXAMPLE_DELAY_SCALE": 0,
            **config,
        },
        instance_path=str(tmp_path / "instance"),
    )


@pytest.fixture
def example_app(tmp_path: Path) -> Iterator[Flask]:
    app = _create(tmp_path)
    yield app
    close_app(app)


def _start(client: FlaskClient, topic: str) -> str:
    """POST the form; return the id of the workflow the redirect points at."""
    response = client.post("/briefs", data={"topic": topic})
    assert response.status_code == 303, response.get_data(as_text=True)
    return parse_qs(urlsplit(response.location).query)["started"][0]


def _review_waiting(client: FlaskClient, workflow_id: str) -> None:
    def waiting() -> bool:
        data = client.get(f"/briefs/{workflow_id}.json").get_json()
        return any(step["step_name"] == "review" and step["state"] == "waiting" for step in data["steps"])

    wait_for(waiting, f"brief {workflow_id} to wait for its review")


def _approve(client: FlaskClient, workflow_id: str, decision: str = "approve", comment: str = "") -> None:
    """Click Approve (or Reject) on the review step's dashboard page, as an editor would."""
    step_url = f"/baton/workflows/{workflow_id}/steps/review"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(step_url).get_data(as_text=True))
    assert token is not None, "the review step's page has no Approve / Reject form"
    done = client.post(
        f"/baton/workflows/{workflow_id}/decide",
        data={"csrf_token": token[1], "step": "review", "decision": decision, "comment": comment, "confirmed": "1"},
    )
    assert done.status_code == 303, done.get_data(as_text=True)


def _wait_settled(client: FlaskClient, workflow_id: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        data = client.get(f"/briefs/{workflow_id}.json").get_json()
        return data if data["workflow"]["state"] != "running" else None

    return wait_for(settled, f"brief {workflow_id} to finish")


def test_a_brief_started_from_the_page_is_published_once_an_editor_approves_it(example_app: Flask) -> None:
    example_app.debug = True  # as `python3 dev.py example` serves on loopback: the dashboard opens
    client = example_app.test_client()
    with ThreadConsumer(example_app, workers=2), ThreadConsumer(example_app, workers=4, queue="llm"):
        workflow_id = _start(client, "  Solid-state   batteries ")
        _review_waiting(client, workflow_id)
        _approve(client, workflow_id, comment="good to go")
        data = _wait_settled(client, workflow_id)

    assert data["workflow"]["state"] == "completed"
    assert data["workflow"]["name"] == "brief:Solid-state batteries"
    assert data["workflow"]["settled_steps"] == data["workflow"]["total_steps"] == len(STEPS)
    steps = {step["step_name"]: step for step in data["steps"]}
    assert list(steps) == STEPS
    assert {name: step["state"] for name, step in steps.items()} == dict.fromkeys(STEPS, "completed")
    assert sorted(steps["compile_brief"]["deps"]) == ["credibility", "keywords", "summarize"]
    assert steps["review"]["result"] == {"approved_by": None, "comment": "good to go"}  # debug mode names nobody
    assert steps["publish"]["result"] == {"published": True, "topic": "Solid-state batteries", "approved_by": None}

    brief = steps["compile_brief"]["result"]
    for name in ("summarize", "keywords", "credibility"):
        assert brief[name] == steps[name]["result"]
    sources = steps["fetch_sources"]["result"]["sources"]
    assert brief["summarize"] == {"summary": fake_summary("Solid-state batteries", sources)}
    assert brief["keywords"]["models"] == sorted(KEYWORD_MODELS)
    agreed = set.intersection(*(set(fake_keywords("Solid-state batteries", m)) for m in KEYWORD_MODELS))
    assert agreed <= set(brief["keywords"]["keywords"][: len(agreed)])
    assert brief["credibility"] == fake_credibility(sources)
    assert brief["brief"].startswith("# Research brief: Solid-state batteries\n")
    with example_app.app_context():
        usage = baton.stats.by_step(workflow_id)
        with baton.state().store.read() as conn:
            rows = conn.execute(
                select(feed.c.payload).where(feed.c.workflow_id == workflow_id, feed.c.name == STEP_STREAMED)
            ).scalars()
            streamed = [json.loads(row) for row in rows]
    assert "".join(p["text"] for p in streamed) == brief["summarize"]["summary"]  # streamed word by word
    assert {p["step_name"] for p in streamed} == {"summarize"}
    assert set(usage) == {"summarize", "credibility", *MODEL_STEPS}
    assert all(u.calls == 1 and u.cost_usd > 0 for u in usage.values())

    example_app.debug = True  # as `python3 dev.py example` serves on loopback: the dashboard opens
    step_page = client.get(f"/baton/workflows/{workflow_id}/steps/summarize").get_data(as_text=True)
    assert '<details class="transcript"' in step_page, "the model call's prompt and answer are not shown"
    assert "Summarise: [" in step_page  # the fake prompt, escaped: its quotes are &#39;
    assert "&#39;url&#39;" in step_page and "'url'" not in step_page

    page = client.get(f"/?started={workflow_id}").get_data(as_text=True)
    assert workflow_id in page and "brief:Solid-state batteries" in page
    assert 'href="/baton"' in page
    assert 'http-equiv="refresh"' not in page  # it only reloads while running


def _button(html: str, form_action: str, step: str | None = None) -> str:
    """The submit button of the dashboard form posting to ``form_action`` (for ``step``)."""
    forms = re.findall(r'(<form method="post" action="' + re.escape(form_action) + r'".*?</form>)', html, re.S)
    matching = [f for f in forms if step is None or f'name="step" value="{step}"' in f]
    assert len(matching) == 1, f"expected one form posting to {form_action} for {step}, found {len(matching)}"
    return re.search(r"<button[^>]*>", matching[0], re.S)[0]


def test_each_workflow_links_to_its_dashboard_page_where_cancel_and_retry_work(example_app: Flask) -> None:
    assert example_app.secret_key == DEVELOPMENT_SECRET_KEY
    example_app.debug = True  # as `python3 dev.py example` serves on loopback: the dashboard opens
    client = example_app.test_client()
    workflow_id = _start(client, "tidal power")  # no consumer yet: it stays running

    page = client.get(f"/?started={workflow_id}").get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    dashboard_url = f"/baton/workflows/{workflow_id}"
    assert f'<a href="{dashboard_url}">brief:tidal power</a>' in page

    dashboard = client.get(dashboard_url).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', dashboard)
    assert found is not None, "the dashboard page has no CSRF token: its actions are disabled"
    token = found[1]
    assert "disabled" not in _button(dashboard, f"{dashboard_url}/cancel")
    cancelled = client.post(f"{dashboard_url}/cancel", data={"csrf_token": token, "confirmed": "1"})
    assert cancelled.status_code in (302, 303), cancelled.get_data(as_text=True)

    dashboard = client.get(dashboard_url).get_data(as_text=True)
    assert "disabled" not in _button(dashboard, f"{dashboard_url}/retry", step="fetch_sources")
    retried = client.post(
        f"{dashboard_url}/retry", data={"csrf_token": token, "confirmed": "1", "step": "fetch_sources"}
    )
    assert retried.status_code in (302, 303), retried.get_data(as_text=True)
    with ThreadConsumer(example_app, workers=2), ThreadConsumer(example_app, workers=4, queue="llm"):
        _review_waiting(client, workflow_id)
        _approve(client, workflow_id)
        assert _wait_settled(client, workflow_id)["workflow"]["state"] == "completed"


def test_a_rejected_brief_is_not_published(example_app: Flask) -> None:
    example_app.debug = True
    client = example_app.test_client()
    with ThreadConsumer(example_app, workers=2), ThreadConsumer(example_app, workers=4, queue="llm"):
        workflow_id = _start(client, "cold fusion")
        _review_waiting(client, workflow_id)
        _approve(client, workflow_id, decision="reject", comment="sources too thin")
        data = _wait_settled(client, workflow_id)
    assert data["workflow"]["state"] == "failed"
    steps = {step["step_name"]: step for step in data["steps"]}
    assert (steps["review"]["state"], steps["review"]["error"]) == (
        "discarded",
        "rejected by an editor: sources too thin",
    )
    assert (steps["publish"]["state"], steps["publish"]["error"]) == ("cancelled", "dependency 'review' discarded")


def test_the_development_secret_key_gives_way_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-the-environment")
    app = _create(tmp_path)
    try:
        assert app.secret_key == "from-the-environment"
    finally:
        close_app(app)


def test_bad_topics_and_unknown_workflows(example_app: Flask) -> None:
    client = example_app.test_client()
    response = client.post("/briefs", data={"topic": "   "})
    assert response.status_code == 400
    assert "the topic is empty" in response.get_data(as_text=True)
    assert client.post("/briefs", data={"topic": "x" * 121}).status_code == 400
    assert client.get("/briefs/nope.json").status_code == 404
    with example_app.app_context():
        assert example_app.extensions["baton"].query.list_workflows().workflows == []


def test_the_fake_models_are_deterministic() -> None:
    sources = fake_sources("quantum error correction")
    assert sources == fake_sources("quantum error correction") != fake_sources("quantum sensing")
    assert 3 <= len(sources) <= 5
    credibility = fake_credibility(sources)
    assert set(credibility["scores"]) == {s["url"] for s in sources}
    assert all(40 <= score <= 100 for score in credibility["scores"].values())
    assert fake_keywords("Quantum error correction")[:3] == ["quantum", "error", "correction"]


def test_a_big_survey_completes_tolerating_its_lost_sources_with_every_run_kept(example_app: Flask) -> None:
    client = example_app.test_client()
    response = client.post("/surveys", data={"topic": "tidal power"})
    assert response.status_code == 303, response.get_data(as_text=True)
    workflow_id = parse_qs(urlsplit(response.location).query)["started"][0]
    with ThreadConsumer(example_app, workers=4):
        data = _wait_settled(client, workflow_id)

    luck = {i: hashlib.sha256(f"survey:tidal power:{i}".encode()).digest()[0] for i in range(READS)}
    lost = sorted(f"read:{i:03d}" for i, value in luck.items() if value < 3)
    retried = sorted(f"read:{i:03d}" for i, value in luck.items() if 3 <= value < 28)
    assert lost and retried, "pick a topic whose survey loses a source and retries some"
    steps = {step["step_name"]: step for step in data["steps"]}
    assert data["workflow"]["state"] == "completed" and len(steps) == READS + 2 + DRAFTS
    assert sorted(name for name, step in steps.items() if step["state"] == "discarded") == lost
    assert steps["tally"]["result"] == {"read": READS - len(lost), "lost": lost}
    assert {steps[name]["attempt"] for name in retried} == {2}
    with example_app.app_context():
        runs = example_app.extensions["baton"].query.get_step_attempts(workflow_id, retried[0])
    assert [run.outcome for run in runs] == ["failed", "completed"]


def _waiting_for_the_limit(workflow_ids: list[str]) -> str | None:
    """Why a step of these briefs waits, once one waits for the fake models' limit."""
    steps = [step for wf in workflow_ids for step in baton.query.get_workflow_jobs(wf)]
    return next((s.waiting_for for s in steps if (s.waiting_for or "").startswith(f"waiting for {LLM_KEY}:")), None)


def test_a_burst_of_briefs_is_paced_by_the_fake_model_limit_without_spending_an_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five briefs make 25 calls; 5 a window (1 s here, not 60) lets one brief through unhindered.
    monkeypatch.setattr(limits, "MINUTE", 1.0)
    app = _create(tmp_path, EXAMPLE_LLM_RPM=5, EXAMPLE_REVIEW_TIMEOUT=600)
    app.debug = True
    client = app.test_client()
    try:
        with ThreadConsumer(app, workers=2), ThreadConsumer(app, workers=4, queue="llm"):
            workflow_ids = [_start(client, f"topic {n}") for n in range(5)]
            with app.app_context():
                reason = wait_for(lambda: _waiting_for_the_limit(workflow_ids), "a call to wait for the fake-llm limit")
            for workflow_id in workflow_ids:
                _review_waiting(client, workflow_id)
                _approve(client, workflow_id)
            finished = [_wait_settled(client, workflow_id) for workflow_id in workflow_ids]
        with app.app_context():
            query = baton.query
            runs = [run for wf in workflow_ids for name in LLM_STEPS for run in query.get_step_attempts(wf, name)]
            costs = [baton.stats.by_step(wf) for wf in workflow_ids]
    finally:
        close_app(app)

    assert [data["workflow"]["state"] for data in finished] == ["completed"] * 5
    assert re.fullmatch(rf"waiting for {LLM_KEY}: \d of 5 rpm used.*", reason), reason  # as the dashboard shows
    assert any(run.outcome == "snoozed" for run in runs)
    assert {run.attempt for run in runs} == {1}  # waiting spent no attempt
    assert all(data["workflow"]["budget_usd"] == BRIEF_BUDGET_USD for data in finished)
    assert all(0 < sum(u.cost_usd for u in usage.values()) < BRIEF_BUDGET_USD / 10 for usage in costs)
