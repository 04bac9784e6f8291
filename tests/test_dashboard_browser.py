"""The dashboard in a real headless Chromium: live updates, the confirm dialogs, bulk actions, screenshots.

SQLite only (the embedded default) to stay quick; the websocket protocol is
covered on both backends by ``test_dashboard_live.py``. Each test runs the
app on a real threaded server with a real consumer and keeps well under 20 s.

``BATON_UPDATE_SCREENSHOTS=1 pytest -m browser -k screenshot`` rewrites
``docs/screenshots/index.png``, ``workflow.png``, ``step.png``,
``index-bulk.png`` and ``outcome-banner.png``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow
from flask_baton.dashboard.layout import node_key
from flask_baton.store.tables import attempts, nodes, step_stats, workflows

from .browser import LaunchedBrowser
from .conftest import sqlite_settings
from .steps import (
    baton,
    chat_until,
    constant,
    core_echo,
    fetch_web,
    llm_complete,
    raise_message,
    record_args,
    summarize_sources,
    wait_for_file,
)
from .support import ThreadConsumer, step_states, wait_finished, wait_for
from .test_bulk_actions import failed_then_cancelled
from .test_dashboard_live import LiveServer, gated_workflow

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
#: Longest wait for something the page should show (a live update takes ~0.1 s).
SHOWN_WITHIN_MS = 5000


@pytest.fixture
def settings(tmp_path: Path, ledger_path: Path) -> dict[str, Any]:
    return sqlite_settings(tmp_path, ledger_path)


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "browser-test-secret", "BATON_DEBUG_CAPTURE": True}


def open_live(browser: LaunchedBrowser, url: str) -> Any:
    """Open ``url`` and wait until its websocket is connected; mark the window."""
    page = browser.page
    page.set_default_timeout(SHOWN_WITHIN_MS)
    page.goto(url)
    page.wait_for_selector("body[data-live=open]")
    page.evaluate("window.__marker = 1")
    return page


def test_a_step_completing_changes_the_open_page_without_a_reload(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = gated_workflow(gate)
    wait_for(lambda: step_states(app, wf.workflow_id)["wait"] == "executing", "the gated step to run")
    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    row, node = f"#s-{node_key('wait')}", f"#n-{node_key('wait')}"
    assert page.get_attribute(row, "data-state") == "executing"
    assert "st-executing" in page.get_attribute(node, "class")

    gate.touch()

    page.wait_for_selector(f"{row}[data-state=completed]")
    page.wait_for_selector(f"{node}.st-completed")  # the SVG node, swapped as SVG
    page.wait_for_selector("#wf-summary .outcome-completed")
    assert page.evaluate("window.__marker") == 1  # same document: no reload
    assert page.evaluate("document.querySelectorAll('#dag svg.node').length") == 3
    assert '{"done":true}' in page.inner_text(row)
    assert wait_finished(app, wf.workflow_id).state == "completed"


def test_cancel_asks_for_confirmation_then_the_page_shows_the_workflow_cancelled(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = gated_workflow(gate)
    try:
        wait_for(lambda: step_states(app, wf.workflow_id)["wait"] == "executing", "the gated step to run")
        page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        page.click("#cancel-workflow")

        page.wait_for_selector("#wf-summary .badge.st-cancelled")
        page.wait_for_selector("#wf-summary .outcome-cancelled")
        assert len(dialogs) == 1 and dialogs[0].startswith("Cancel workflow “gated”?")
        assert "Workflow cancelled" in page.inner_text("#notice")
        assert page.get_attribute(f"#s-{node_key('wait')}", "data-state") == "cancelled"
        assert page.query_selector("#cancel-workflow") is None
        assert page.evaluate("window.__marker") == 1
        assert app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "cancelled"
    finally:
        gate.touch()  # let the blocked step return (its outcome is dropped)


def test_the_index_shows_new_workflows_and_their_progress_live(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    page = open_live(browser, f"{live_server.url}/baton")
    gate = tmp_path / "gate"

    wf = gated_workflow(gate, name="appears-live")
    page.wait_for_selector(f"#w-{wf.workflow_id}.st-running")
    assert page.inner_text(f"#w-{wf.workflow_id} .count").startswith(("0/3", "1/3"))
    gate.touch()

    page.wait_for_selector(f"#w-{wf.workflow_id}.st-completed")
    assert page.inner_text(f"#w-{wf.workflow_id} .count") == "3/3"
    assert page.evaluate("window.__marker") == 1
    assert page.evaluate("document.querySelectorAll('#wf-rows tr[id]').length") == 1


def test_text_from_steps_is_shown_as_text_never_run(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser
) -> None:
    attack = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    wf = (
        Workflow(f"xss {attack}")
        .add("echo", core_echo.new(value=attack))
        .add("boom", raise_message.new(message=attack))
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)

    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    page.click(f"#s-{node_key('boom')} details.err summary")

    assert attack in page.inner_text("#wf-summary h1")
    assert attack in page.inner_text(f"#s-{node_key('boom')}")
    assert page.evaluate("window.__xss") is None


# -- screenshots for the docs ------------------------------------------------------

BRIEF_SOURCES = {
    "sources": [
        {"title": "Logical qubits with neutral atoms", "url": "https://arxiv.org/abs/2312.03982"},
        {
            "title": "Quantum error correction below threshold",
            "url": "https://www.nature.com/articles/s41586-024-08449-y",
        },
        {"title": "The state of quantum computing 2025", "url": "https://www.mckinsey.com/quantum"},
    ]
}
LANGUAGES = ("de", "fr", "es", "ja", "pt")


def _usage(app: Flask, rows: list[tuple[str, str, str, int, int, float]]) -> None:
    with app.extensions["baton"].engine.begin() as conn:
        conn.execute(
            step_stats.insert(),
            [
                {
                    "workflow_id": wf,
                    "node_id": "0" * 32,
                    "step_name": step,
                    "attempt": 1,
                    "model": model,
                    "input_tokens": inp,
                    "output_tokens": out,
                    "cached_input_tokens": 0,
                    "cost_usd": cost,
                    "latency": 1.2,
                    "created_at": time.time(),
                }
                for wf, step, model, inp, out, cost in rows
            ],
        )


def _brief(topic: str, gates: dict[str, Path] | None = None, fail: str | None = None) -> Workflow:
    """The research-brief diamond followed by a fan-out of translations."""
    gates = gates or {}
    wf = (
        Workflow(f"brief:{topic}")
        .add("fetch_sources", fetch_web.new(value=BRIEF_SOURCES))
        .add(
            "summarize",
            llm_complete.new(
                value={
                    "summary": f"{topic.capitalize()}: error rates fell 10x in two "
                    "years; logical qubits now outlive physical ones."
                }
            ),
            deps=["fetch_sources"],
        )
        .add(
            "keywords",
            llm_complete.new(value=["error correction", "neutral atoms", "logical qubits", "cryogenics"]),
            deps=["fetch_sources"],
        )
        .add("credibility", llm_complete.new(value={"score": 0.82, "peer_reviewed": 2}), deps=["fetch_sources"])
        .add(
            "compile_brief",
            llm_complete.new(value={"words": 1840, "sections": 6}),
            deps=["summarize", "keywords", "credibility"],
        )
    )
    for lang in LANGUAGES:
        name = f"translate:{lang}"
        if lang == fail:
            wf.add(
                name,
                raise_message.new(message="RateLimitError: 429 Too Many Requests (retry after 20 s)"),
                deps=["compile_brief"],
            )
        elif lang in gates:
            wf.add(
                name,
                wait_for_file.new(path=str(gates[lang]), value={"lang": lang, "words": 1790}, timeout=15),
                deps=["compile_brief"],
            )
        else:
            wf.add(name, llm_complete.new(value={"lang": lang, "words": 1700 + 31 * len(name)}), deps=["compile_brief"])
    wf.add("publish", record_args.new(), deps=[f"translate:{lang}" for lang in LANGUAGES])
    wf.insert()
    return wf


#: Seconds each step "took", so the pictures show LLM-like timings, not test ones.
TYPICAL_SECONDS = {
    "fetch_sources": 2.4,
    "summarize": 7.8,
    "keywords": 2.1,
    "credibility": 3.6,
    "compile_brief": 9.3,
    "translate": 5.1,
    "publish": 0.6,
    "collect": 1.2,
    "report": 3.0,
    "split": 0.8,
    "chunk": 1.4,
    "merge": 2.2,
}


def _as_if_it_took_time(app: Flask, workflow_id: str, started: float) -> None:
    """Rewrite a finished or running workflow's times as if its steps took ``TYPICAL_SECONDS``."""
    query = app.extensions["baton"].query
    steps = query.get_workflow_jobs(workflow_id)
    record = query.get_workflow(workflow_id)
    finish: dict[str, float] = {}
    changes = []
    for index, step in enumerate(steps):  # insertion order is a topological order here
        ready = max((finish[dep] for dep in step.deps if dep in finish), default=started)
        took = TYPICAL_SECONDS.get(step.step_name.split(":")[0], 0.05) * (1 + 0.07 * (index % 4))
        start = ready + 0.12
        if step.started_at is not None and step.state in ("completed", "discarded", "executing"):
            end = start + took if step.state != "executing" else None
            changes.append({"i": step.id, "q": ready + 0.01, "s": start, "f": end})
        elif step.finished_at is not None:
            end = ready
            changes.append({"i": step.id, "q": None, "s": None, "f": end})
        else:
            end = None
        finish[step.step_name] = end if end is not None else ready
    done = None if record.state == "running" else max(f for f in finish.values())
    write_times(app, workflow_id, changes, started, done)


def write_times(
    app: Flask, workflow_id: str, changes: list[dict[str, Any]], started: float, done: float | None
) -> None:
    """Store steps' times (``{"i": id, "q": queued, "s": started, "f": finished}``) and their workflow's."""
    with app.extensions["baton"].engine.begin() as conn:
        for change in changes:
            conn.execute(
                nodes.update()
                .where(nodes.c.id == change["i"])
                .values(scheduled_at=change["q"], started_at=change["s"], finished_at=change["f"])
            )
        conn.execute(
            workflows.update().where(workflows.c.id == workflow_id).values(created_at=started, finished_at=done)
        )


@pytest.fixture
def wide_consumer(app: Flask) -> Iterator[ThreadConsumer]:
    """Enough workers for every step the screenshots keep blocked, and more."""
    with ThreadConsumer(app, workers=10) as running:
        yield running


def test_screenshots_of_the_index_and_a_workflow_in_light_and_dark(
    app: Flask, wide_consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    target = SCREENSHOTS if os.environ.get("BATON_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    gates = {lang: tmp_path / f"gate-{lang}" for lang in ("fr", "pt")}
    try:
        done = []
        for topic in ("ocean plastics", "battery recycling", "gene therapy", "carbon capture", "solid-state batteries"):
            done.append(_brief(topic))
        failed = _brief("fusion startups", fail="ja")
        cancelled = (
            Workflow("digest:weekly-ops")
            .add("collect", constant.new(value=3))
            .add("report", wait_for_file.new(path=str(tmp_path / "never"), timeout=15), deps=["collect"])
        )
        cancelled.insert()
        imports = Workflow("import:customers-2025-11").add("split", constant.new(value=40))
        for i in range(40):
            imports.add(f"chunk:{i:02d}", constant.new(value=i), deps=["split"])
        imports.add("merge", record_args.new(), deps=[f"chunk:{i:02d}" for i in range(40)])
        imports.insert()
        for wf in (*done, failed, imports):
            wait_finished(app, wf.workflow_id)
        wait_for(lambda: step_states(app, cancelled.workflow_id)["report"] == "executing", "report to run")
        baton.cancel_workflow(cancelled.workflow_id)
        (tmp_path / "never").touch()  # free its worker; the late outcome is dropped
        second = _brief("ai act compliance", gates={"de": tmp_path / "gate-x", "es": tmp_path / "gate-y"})
        main = _brief("quantum computing", gates=gates)
        wait_for(
            lambda: (
                [step_states(app, main.workflow_id)[f"translate:{lang}"] for lang in gates]
                == ["executing", "executing"]
            ),
            "two translations to run",
        )
        wait_for(lambda: step_states(app, main.workflow_id)["translate:de"] == "completed", "the others to finish")
        usage = []
        for scale, wf in enumerate((*done, failed, second, main), start=3):
            k = scale / 5  # longer or shorter sources: different bills
            usage += [
                (wf.workflow_id, "summarize", "gpt-4o", int(5200 * k), 410, 0.0171 * k),
                (wf.workflow_id, "keywords", "gpt-4o-mini", int(5200 * k), 60, 0.0008 * k),
                (wf.workflow_id, "credibility", "claude-3-5-haiku", int(4800 * k), 120, 0.0043 * k),
                (wf.workflow_id, "compile_brief", "gpt-4o", int(7400 * k), 2300, 0.0415 * k),
            ]
            usage += [
                (wf.workflow_id, f"translate:{lang}", "gpt-4o-mini", 2400, 2500, 0.0019) for lang in ("de", "es", "ja")
            ]
        _usage(app, usage)
        now = time.time()
        ages = (5400, 4700, 3900, 3100, 2400, 1260, 900, 610, 75, 31)  # seconds ago, oldest first
        for wf, age in zip((*done, failed, cancelled, imports, second, main), ages):
            _as_if_it_took_time(app, wf.workflow_id, now - age)

        page = open_live(browser, f"{live_server.url}/baton")
        page.wait_for_function("document.querySelectorAll('#wf-rows tr[id]').length === 10")
        page.screenshot(path=str(target / "index.png"))

        page = open_live(browser, f"{live_server.url}/baton/workflows/{main.workflow_id}")
        page.wait_for_selector(f"#n-{node_key('translate:fr')}.st-executing")
        page.mouse.move(0, 0)
        page.screenshot(path=str(target / "workflow.png"))

        page.emulate_media(color_scheme="dark")
        page.wait_for_timeout(400)  # colours fade over 0.2 s
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background != "rgb(245, 246, 248)", "dark mode keeps the light background"
        page.screenshot(path=str(tmp_path / "workflow-dark.png"))
        assert (target / "index.png").stat().st_size > 10_000
        assert (target / "workflow.png").stat().st_size > 10_000
    finally:
        for path in (*gates.values(), tmp_path / "gate-x", tmp_path / "gate-y", tmp_path / "never"):
            path.touch()


# -- whole-workflow and bulk actions -------------------------------------------------


def screenshots(tmp_path: Path) -> Path:
    """Where this run's pictures go: the docs when asked to update them, else the test's own folder."""
    target = SCREENSHOTS if os.environ.get("BATON_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def accepting(page: Any) -> list[str]:
    """Accept every confirmation dialog of ``page``; the list fills with their messages."""
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_screenshots_selecting_two_workflows_and_confirming_cancels_both_rows_live(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    gates = [tmp_path / f"gate-{i}" for i in range(3)]
    flows = []
    try:
        for i, (name, gate) in enumerate(zip(("import:orders", "import:refunds", "import:invoices"), gates)):
            wf = Workflow(name).add("load", wait_for_file.new(path=str(gate), value=i))
            wf.add("index", constant.new(value=i), deps=["load"])
            wf.insert()
            flows.append(wf.workflow_id)
        done = Workflow("digest:daily").add("collect", constant.new(value=1))
        done.insert()
        wait_finished(app, done.workflow_id)
        page = open_live(browser, f"{live_server.url}/baton")
        page.wait_for_function("document.querySelectorAll('#wf-rows tr[id]').length === 4")
        first, second, third = flows

        page.focus(f"#w-{first} input.pick")
        page.keyboard.press("Space")  # reachable and usable from the keyboard
        page.click(f"#w-{second} input.pick")
        page.wait_for_selector("#picked:text('2 selected')")
        page.mouse.move(0, 0)
        page.screenshot(path=str(screenshots(tmp_path) / "index-bulk.png"))
        asked = accepting(page)
        page.click("#bulk-cancel")

        page.wait_for_selector(f"#w-{first}.st-cancelled")
        page.wait_for_selector(f"#w-{second}.st-cancelled")
        assert asked == ["Cancel 2 workflows? Their steps that have not finished will be cancelled."]
        assert "2 cancelled." in page.inner_text("#notice")
        assert "Cancelled by a user at" in page.inner_text(f"#w-{first} .row-outcome")
        assert page.get_attribute(f"#w-{third}", "class") == "st-running"
        assert page.evaluate("document.querySelectorAll('#wf-rows input.pick:checked').length") == 0
        assert page.inner_text("#picked") == "None selected"
        assert page.evaluate("window.__marker") == 1  # the same document: no reload
        query = app.extensions["baton"].query
        assert [query.get_workflow(i).state for i in flows] == ["cancelled", "cancelled", "running"]

        page.click(f"#w-{third} input.pick")
        gates[2].touch()  # the live feed replaces its row when it completes: the tick stays
        page.wait_for_selector(f"#w-{third}.st-completed")
        assert page.is_checked(f"#w-{third} input.pick") and page.inner_text("#picked") == "1 selected"
    finally:
        for gate in gates:
            gate.touch()


def test_screenshots_a_banner_after_a_failure_and_a_cancel_then_resume_from_the_page(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    names = ("fetch_sources", "summarize", "compile_brief", "translate:de", "publish")
    wf, _ = failed_then_cancelled(app, tmp_path, "brief:fusion startups", names)
    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    banner = page.inner_text("#wf-summary .outcome")
    assert banner.startswith("Cancelled by a user at ")
    assert banner.endswith(
        "1 of 5 steps had completed; 2 steps cancelled; summarize failed; 1 cancelled as a consequence."
    )
    page.mouse.move(0, 0)
    page.locator("#wf-summary").screenshot(path=str(screenshots(tmp_path) / "outcome-banner.png"))
    asked = accepting(page)

    page.click("#resume-workflow")

    page.wait_for_selector("#wf-summary .outcome-failed")
    assert asked[0].startswith("Resume workflow “brief:fusion startups”? The steps its cancel stopped run again")
    assert page.inner_text("#wf-summary .outcome strong") == "Failed again because of summarize."
    assert page.get_attribute(f"#s-{node_key('publish')}", "data-state") == "completed"
    assert page.get_attribute(f"#s-{node_key('summarize')}", "data-state") == "discarded"
    assert page.query_selector("#resume-workflow") is None and page.query_selector("#retry-workflow") is not None
    assert page.evaluate("window.__marker") == 1


# -- a step's page: its runs and their model calls ------------------------------------

STEP_ATTACK = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def test_a_steps_page_lists_its_runs_and_shows_a_script_in_a_transcript_as_text(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser
) -> None:
    wf = Workflow("flaky").add("ask", chat_until.new(failures=3, question=STEP_ATTACK))
    wf.insert()
    wait_finished(app, wf.workflow_id)
    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")

    page.click(f"#s-{node_key('ask')} a.name")

    page.wait_for_selector("#runs")
    outcomes = page.eval_on_selector_all("li.run", "runs => runs.map(r => r.dataset.outcome)")
    assert outcomes == ["failed", "failed", "failed", "completed"]
    last_failure = page.locator("li.run").nth(2)
    assert last_failure.locator("details.tb").get_attribute("open") is None
    last_failure.locator("details.tb > summary").click()
    shown = last_failure.locator("details.tb > pre.tb").inner_text()
    assert "… 2 frames of flask_baton …" in shown and "tests/steps.py" in shown
    assert "runner.py" not in shown
    style = last_failure.locator("details.tb > pre.tb").evaluate(
        "pre => [getComputedStyle(pre).whiteSpace, getComputedStyle(pre).overflowX]"
    )
    assert style == ["pre", "auto"]  # carets stay under their line; a long line scrolls

    transcript = page.locator("li.run").nth(3).locator("details.transcript")
    transcript.locator("summary").first.click()
    chat = transcript.inner_text()
    assert STEP_ATTACK in chat  # shown as text
    assert "sunny, 21 C" in chat and "Sunny (attempt 4)" in chat
    assert page.evaluate("window.__xss") is None
    assert page.locator("li.run").nth(3).locator("script, img").count() == 0


def _runs_as_if_they_took_time(app: Flask, workflow_id: str, start: float, runs: list[tuple[float, float]]) -> None:
    """Rewrite the step's runs (and its workflow) to start ``offset`` seconds after ``start`` and last ``seconds``."""
    with app.extensions["baton"].engine.begin() as conn:
        rows = conn.execute(
            attempts.select().where(attempts.c.workflow_id == workflow_id).order_by(attempts.c.started_at)
        ).all()
        for row, (offset, seconds) in zip(rows, runs):
            conn.execute(
                attempts.update()
                .where(attempts.c.id == row.id)
                .values(started_at=start + offset, finished_at=start + offset + seconds)
            )
        offset, seconds = runs[-1]
        conn.execute(
            nodes.update()
            .where(nodes.c.workflow_id == workflow_id)
            .values(scheduled_at=start + offset - 0.1, started_at=start + offset, finished_at=start + offset + seconds)
        )
        conn.execute(
            workflows.update()
            .where(workflows.c.id == workflow_id)
            .values(created_at=start - 0.2, finished_at=start + offset + seconds)
        )


def test_screenshot_of_a_steps_runs_and_its_model_call(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    target = SCREENSHOTS if os.environ.get("BATON_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    wf = Workflow("brief:quantum computing").add(
        "summarize", summarize_sources.new(topic="quantum error correction", rate_limited=2)
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)
    _runs_as_if_they_took_time(app, wf.workflow_id, time.time() - 95, [(0.0, 1.4), (2.6, 1.1), (6.3, 7.8)])

    page = browser.page
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.goto(f"{live_server.url}/baton/workflows/{wf.workflow_id}/steps/summarize")
    page.locator("li.run").nth(1).locator("details.tb > summary").click()
    page.locator("li.run").nth(2).locator("details.transcript > summary").click()
    page.mouse.move(0, 0)
    page.screenshot(path=str(target / "step.png"), full_page=True)

    assert page.eval_on_selector_all("li.run", "runs => runs.map(r => r.dataset.outcome)") == [
        "failed",
        "failed",
        "completed",
    ]
    assert "openai.RateLimitError: Error code: 429" in page.inner_text("li.run >> nth=0")
    assert (target / "step.png").stat().st_size > 10_000
