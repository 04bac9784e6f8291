"""Every dashboard page in Chromium: on a 390 px phone, by keyboard, through axe-core, light and dark.

Each page (index, workflow, a step's page, the overview) is opened at a
390 px viewport in both colour schemes: the document must be no wider than
the screen (wide tables scroll inside their box), and axe-core
(``tests/accessibility.py``, vendored for the tests only) must find nothing
serious or critical. Then the keyboard alone retries a failed step, and the
overview's figures are read as a user sees them against what the consumer
ran. SQLite only, like the other browser tests.

``BATON_UPDATE_SCREENSHOTS=1 pytest -m browser -k screenshot`` rewrites
``docs/screenshots/overview.png`` and ``workflow-phone.png``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow
from flask_baton.dashboard.layout import node_key
from flask_baton.ticks import run_due

from .accessibility import serious_violations
from .browser import LaunchedBrowser, launch_browser
from .steps import always_fail, constant, fake_llm, slow, wait_for_file
from .support import ThreadConsumer, step_states, wait_finished, wait_for
from .test_dashboard_browser import (  # noqa: F401 (the browser tests' fixtures: SQLite; live_server is conftest's)
    SCREENSHOTS,
    app_overrides,
    settings,
)
from .test_dashboard_live import LiveServer
from .test_schedules import declared, gated

pytestmark = pytest.mark.browser

PHONE = (390, 844)
SHOWN_WITHIN_MS = 5000


@pytest.fixture
def phone(live_server: LiveServer) -> Iterator[LaunchedBrowser]:
    """Chromium with a 390 px wide viewport, closed before the server stops."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, launch_browser(playwright, viewport=PHONE) as launched:
        launched.page.set_default_timeout(SHOWN_WITHIN_MS)
        yield launched


@pytest.fixture
def consumers(app: Flask) -> Iterator[None]:
    """Consumers on the default queue and on ``llm`` (``fake_llm``'s)."""
    with ThreadConsumer(app, workers=4), ThreadConsumer(app, workers=2, queue="llm"):
        yield


def _brief(name: str, *, fail: bool = False, gate: Path | None = None, budget_usd: float | None = None) -> Workflow:
    """A small brief: fetch, then a model call and a summary, then a step that may fail or wait."""
    flow = (
        Workflow(name, budget_usd=budget_usd)
        .add("fetch_sources", constant.new(value=3))
        .add("ask_model", fake_llm.new(prompt="Summarise <b>this</b>"), deps=["fetch_sources"])
        .add("summarize", slow.new(seconds=0.03), deps=["fetch_sources"])
    )
    if fail:
        flow.add("publish", always_fail.new(), deps=["summarize", "ask_model"])
    elif gate is not None:
        flow.add("publish", wait_for_file.new(path=str(gate), timeout=20), deps=["summarize", "ask_model"])
    flow.insert()
    return flow


def _pages(app: Flask, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """One of each page, with content in every part: rows, a failure with a traceback, a step running."""
    gate = tmp_path / "gate"
    done = [_brief(f"brief:ocean-plastics-{i}") for i in range(3)]
    # With a budget: its bar and Set budget form are on the workflow page checked.
    failed = _brief("brief:a-rather-long-research-topic-on-solid-state-batteries", fail=True, budget_usd=0.5)
    running = _brief("brief:running", gate=gate)
    for flow in (*done, failed):
        wait_finished(app, flow.workflow_id)
    wait_for(lambda: step_states(app, running.workflow_id)["publish"] == "executing", "a step to run")
    pages = {
        "index": "/baton",
        "workflow": f"/baton/workflows/{failed.workflow_id}",
        "step": f"/baton/workflows/{failed.workflow_id}/steps/publish",
        "step with a model call": f"/baton/workflows/{failed.workflow_id}/steps/ask_model",
        "overview": "/baton/overview?range=1h",
    }
    return pages, gate


@pytest.mark.usefixtures("consumers")
def test_every_page_fits_a_390px_screen_and_axe_finds_nothing_serious_in_light_and_dark(
    app: Flask, live_server: LiveServer, phone: LaunchedBrowser, tmp_path: Path
) -> None:
    pages, gate = _pages(app, tmp_path)
    page = phone.page
    problems: list[str] = []
    # The overview lists schedules too: one that started a workflow, one not run yet.
    with (
        declared("every-minute", "* * * * *", gated("every-minute", gate)),
        declared("nightly-report-for-the-whole-research-team", "0 3 * * mon-fri", gated("nightly", gate)),
    ):
        assert run_due(app.extensions["baton"])
        _check_pages(pages, live_server, page, problems, gate)
    assert problems == []


def _check_pages(pages: dict[str, str], live_server: LiveServer, page: Any, problems: list[str], gate: Path) -> None:
    """Each page in light and dark: its width at 390 px, and axe-core's serious findings, into ``problems``."""
    try:
        for name, path in pages.items():
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.goto(live_server.url + path)
                page.wait_for_load_state("load")
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > PHONE[0]:
                    wide = page.evaluate(WIDEST)
                    problems.append(f"{name} ({scheme}) is {width} px wide at {PHONE[0]} px; widest: {wide}")
                problems += [f"{name} ({scheme}): {v}" for v in serious_violations(page)]
    finally:
        gate.touch()


#: The elements reaching furthest right outside a scroll box (what makes a page too wide).
WIDEST = """() => {
  const inScroller = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
    return false; };
  return [...document.querySelectorAll('body *')].filter(el => !inScroller(el))
    .map(el => [Math.round(el.getBoundingClientRect().right), el.tagName + '.' + el.className])
    .sort((a, b) => b[0] - a[0]).slice(0, 3);
}"""


@pytest.mark.usefixtures("consumers")
def test_the_keyboard_alone_reaches_a_failed_steps_retry_and_runs_it(
    app: Flask, live_server: LiveServer, phone: LaunchedBrowser, tmp_path: Path
) -> None:
    failed = _brief("brief:keyboard", fail=True)
    wait_finished(app, failed.workflow_id)
    page = phone.page
    page.goto(f"{live_server.url}/baton/workflows/{failed.workflow_id}")
    page.wait_for_selector("body[data-live=open]")
    page.on("dialog", lambda dialog: dialog.accept())
    row = f"#s-{node_key('publish')}"

    for _ in range(200):  # every link and button of the page at most
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.closest('{row} .c-act') !== null"):
            break
    else:
        pytest.fail("Tab never reached the failed step's Retry button")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    page.keyboard.press("Enter")

    wait_for(lambda: app.extensions["baton"].query.get_workflow(failed.workflow_id).state != "failed", "the retry")
    wait_finished(app, failed.workflow_id)
    runs = app.extensions["baton"].query.get_step_attempts(failed.workflow_id, "publish")
    assert len(runs) == 2, "Enter on the focused Retry ran the step again"


@pytest.mark.usefixtures("consumers")
def test_the_overview_shows_what_the_consumer_ran_and_what_it_runs_now(
    app: Flask, live_server: LiveServer, phone: LaunchedBrowser, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    for index in range(5):
        _brief(f"brief:ok-{index}")
    for index in range(2):
        _brief(f"brief:bad-{index}", fail=True)
    running = _brief("brief:now", gate=gate)
    try:
        wait_for(lambda: app.extensions["baton"].query.count_workflows_by_state().get("running") == 1, "the rest")
        wait_for(lambda: step_states(app, running.workflow_id)["publish"] == "executing", "the gated step")
        page = phone.page
        page.goto(f"{live_server.url}/baton/overview?range=1h")

        figures = {key: page.inner_text(f"#fig-{key} .figure") for key in ("started", "ended", "failed")}
        assert figures == {"started": "8", "ended": "7", "failed": "2"}
        assert "2 failed" in page.get_attribute("#chart-workflows svg", "aria-label")
        assert page.inner_text("#step-durations tr[data-step=publish] [data-value=discarded]") == "2"
        consumer = page.locator("#consumers tr.consumer", has_text="default")
        assert "publish" in consumer.inner_text() and "brief:now" in consumer.inner_text()
        assert page.inner_text("#queue-llm [data-value=consumers]") == "1"

        gate.touch()  # the overview asks again every 5 s and shows the step ended
        page.wait_for_function("document.querySelector('#fig-ended .figure').textContent === '8'", timeout=15_000)
        assert "idle" in page.locator("#consumers tr.consumer").first.inner_text()
    finally:
        gate.touch()


@pytest.mark.usefixtures("consumers")
def test_screenshots_of_the_overview_and_of_a_workflow_on_a_phone(
    app: Flask, live_server: LiveServer, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    target = SCREENSHOTS if os.environ.get("BATON_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    pages, gate = _pages(app, tmp_path)
    try:
        more = [_brief(f"brief:topic-{index:02d}", fail=index % 9 == 4) for index in range(36)]
        for flow in more:
            wait_finished(app, flow.workflow_id)
        for index, flow in enumerate(more):  # as if they had come over the last hour
            _shift(app, flow.workflow_id, 3500 * (1 - index / len(more)))
        with sync_playwright() as playwright:
            with launch_browser(playwright, viewport=(1280, 900)) as wide:
                shot(wide.page, live_server.url + pages["overview"], target / "overview.png")
            with launch_browser(playwright, viewport=PHONE) as narrow:
                shot(narrow.page, live_server.url + pages["workflow"], target / "workflow-phone.png")
    finally:
        gate.touch()
    assert (target / "overview.png").stat().st_size > 10_000
    assert (target / "workflow-phone.png").stat().st_size > 10_000


def _shift(app: Flask, workflow_id: str, seconds: float) -> None:
    """Move a finished workflow's every time ``seconds`` into the past."""
    from sqlalchemy import update

    from flask_baton.store.tables import nodes, step_stats, workflows

    with app.extensions["baton"].engine.begin() as conn:
        for table, columns in (
            (workflows, ("created_at", "finished_at")),
            (nodes, ("created_at", "scheduled_at", "started_at", "finished_at")),
            (step_stats, ("created_at",)),
        ):
            key = table.c.id if table is workflows else table.c.workflow_id
            values = {name: table.c[name] - seconds for name in columns}
            conn.execute(update(table).where(key == workflow_id).values(values))


def shot(page: Any, url: str, path: Path) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)  # the graph fits its box after load
    page.screenshot(path=str(path), full_page=True)
