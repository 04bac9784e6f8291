"""A workflow's budget in a real headless Chromium: shown, held, raised from the page.

SQLite only, as ``test_dashboard_browser``; the budget's HTML and its POST
are tested on both backends by ``test_dashboard_budget``.
``BATON_UPDATE_SCREENSHOTS=1 pytest -m browser -k budget`` rewrites
``docs/screenshots/budget.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from .browser import LaunchedBrowser
from .conftest import sqlite_settings
from .support import ThreadConsumer, wait_finished, wait_for
from .test_budget import DOLLAR, _held, chain
from .test_dashboard_browser import accepting, open_live, screenshots
from .test_dashboard_live import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(tmp_path: Path, ledger_path: Path) -> dict[str, Any]:
    return sqlite_settings(tmp_path, ledger_path)


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "browser-test-secret", "BATON_PRICING": DOLLAR}


def test_screenshot_the_budget_held_then_raised_from_the_page_runs_the_held_steps(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    workflow = chain("report:quarterly", 2, 1, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    wait_for(lambda: _held(workflow, "s1"), "s1 held")
    page = open_live(browser, f"{live_server.url}/baton/workflows/{workflow.workflow_id}")
    assert page.inner_text("#wf-budget .budget-text") == "budget: $2.00 of $2.00 (100%)"
    assert page.inner_text("#wf-held") == ("Budget reached. Steps not yet started are held until the budget is raised.")
    page.mouse.move(0, 0)
    page.locator("#wf-summary").screenshot(path=str(screenshots(tmp_path) / "budget.png"))
    asked = accepting(page)

    page.fill("#budget-usd", "5")
    page.click("#set-budget")

    page.wait_for_selector("#wf-summary .outcome-completed")
    assert asked[0].startswith("Set the budget of workflow “report:quarterly”?")
    assert "Budget set to $5.00. 1 held step(s) released: s1." in page.inner_text("#notice")
    assert page.inner_text("#wf-budget .budget-text") == "budget: $4.00 of $5.00 (80%)"
    assert page.query_selector("#wf-held") is None
    assert page.evaluate("window.__marker") == 1  # the same document: no reload
    assert wait_finished(app, workflow.workflow_id).state == "completed"
