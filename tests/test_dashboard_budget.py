"""The dashboard's spend caps: the workflow page's budget and its form, the index's daily spend, with real consumers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .steps import baton
from .support import ThreadConsumer, wait_finished, wait_for
from .test_budget import DOLLAR, _held, chain
from .test_dashboard import SECRET, body, page_token


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {
        "BATON_DASHBOARD_AUTH": lambda: True,
        "SECRET_KEY": SECRET,
        "BATON_PRICING": DOLLAR,
        "BATON_BUDGET_USD_PER_DAY": 100,
    }


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_the_workflow_page_shows_the_budget_used_and_why_the_budget_stopped_it(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient
) -> None:
    workflow = chain("page-capped", 1, 2, 1, budget_usd=2.5)
    workflow.insert()
    assert wait_finished(app, workflow.workflow_id).state == "cancelled"
    wait_for(lambda: baton.query.get_workflow(workflow.workflow_id).unsettled_steps == 0, "s1 to settle")  # type: ignore[union-attr]
    html = body(client.get(f"/baton/workflows/{workflow.workflow_id}"))
    assert '<span class="budget-text">budget: $3.00 of $2.50 (120%)</span>' in html
    assert 'class="budget-row reached"' in html and 'style="width: 100.0%"' in html
    assert "<strong>Cancelled: budget exceeded ($3.00 of $2.50).</strong>" in html


def test_the_budget_form_raises_the_cap_after_confirming_and_releases_held_steps(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient
) -> None:
    workflow = chain("page-paused", 2, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    wait_for(lambda: _held(workflow, "s1"), "s1 held")
    url = f"/baton/workflows/{workflow.workflow_id}"
    page = body(client.get(url))
    assert "Steps not yet started are held until the budget is raised." in page
    token = page_token(page)

    asked = client.post(f"{url}/budget", data={"csrf_token": token, "usd": "4"})
    assert asked.status_code == 200 and "Set this workflow&#39;s budget?" in body(asked)
    assert _held(workflow, "s1")

    forged = client.post(f"{url}/budget", data={"csrf_token": "forged", "usd": "4", "confirmed": "1"})
    assert forged.status_code == 400 and _held(workflow, "s1")

    refused = client.post(
        f"{url}/budget", data={"csrf_token": token, "usd": "none", "confirmed": "1"}, follow_redirects=True
    )
    assert "budget_usd must be a positive number of US dollars, got &#39;none&#39;" in body(refused)
    record = baton.query.get_workflow(workflow.workflow_id)
    assert record is not None and record.budget_usd == 2.0 and _held(workflow, "s1")

    done = client.post(
        f"{url}/budget", data={"csrf_token": token, "usd": "4", "confirmed": "1"}, headers={"HX-Request": "true"}
    )
    assert done.status_code == 200
    assert "Budget set to $4.00. 1 held step(s) released: s1." in body(done)
    assert wait_finished(app, workflow.workflow_id).state == "completed"
    assert "budget: $3.00 of $4.00 (75%)" in body(client.get(url))


def test_the_index_shows_todays_spend_against_the_daily_budget(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient
) -> None:
    workflow = chain("today", 3, 4)
    workflow.insert()
    assert wait_finished(app, workflow.workflow_id).state == "completed"
    html = body(client.get("/baton/"))
    assert '<p class="daily-budget" id="daily-budget"><strong>today&#39;s spend: $7.00 of $100.00 (7%)</strong>' in html
