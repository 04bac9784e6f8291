"""An approval clicked in a real headless Chromium ends its workflow (SQLite, a real consumer, a real server).

``BATON_UPDATE_SCREENSHOTS=1 pytest -m browser -k approval`` rewrites ``docs/screenshots/approval.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow

from . import test_dashboard_browser as shared
from .browser import LaunchedBrowser
from .steps import await_approval, record_args
from .support import ThreadConsumer, step_states, wait_finished, wait_for
from .test_dashboard_live import LiveServer
from .test_waits_dashboard import Reviewer

pytestmark = pytest.mark.browser
settings = shared.settings  # the same fixture (live_server and browser come from conftest)


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": Reviewer, "SECRET_KEY": "browser-approval-secret"}


def test_an_approval_clicked_in_the_browser_ends_the_workflow(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    wf = (
        Workflow(name="brief")
        .add("review", await_approval.new(timeout=3600))
        .add("publish", record_args.new(), deps=["review"])
    )
    wf.insert()
    wait_for(lambda: step_states(app, wf.workflow_id)["review"] == "waiting", "review waiting")
    page = browser.page
    page.set_default_timeout(shared.SHOWN_WITHIN_MS)
    page.goto(f"{live_server.url}/baton/workflows/{wf.workflow_id}/steps/review")
    page.fill("#decide-comment", "looks good")
    page.locator("#wait").screenshot(path=str(shared.screenshots(tmp_path) / "approval.png"))
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.click("#decide-approve")

    page.wait_for_selector("#wait-outcome")
    assert dialogs == ["Approve step “review”?"]
    assert "approved by ana" in page.inner_text("#wait-outcome") and "looks good" in page.inner_text("#wait-outcome")
    assert "Step “review” approved by ana." in page.inner_text("#notice")
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert step_states(app, wf.workflow_id) == {"review": "completed", "publish": "completed"}
