"""A big workflow in a real headless Chromium: the graph fits and zooms, chains open, the table filters, it stays live.

The workflow is the one issue 15 was seen on: a split, a 300-wide fan-out
whose fan-in tolerates its 3 discarded items, then a 50-step chain, run by a
real consumer. SQLite only (the embedded default), as the other browser tests.

``BATON_UPDATE_SCREENSHOTS=1 pytest -m browser -k screenshots`` rewrites
``docs/screenshots/big-graph.png``, ``big-table.png`` and ``timeline.png``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Dep, Workflow
from flask_baton.dashboard.explore import PAGE_ROWS
from flask_baton.dashboard.folding import node_key

from .browser import LaunchedBrowser
from .steps import constant, raise_message, wait_for_file
from .support import ThreadConsumer, step_states, wait_finished, wait_for
from .test_dashboard_browser import (  # noqa: F401 (the browser tests' fixtures: SQLite; live_server and browser are conftest's)
    SCREENSHOTS,
    app_overrides,
    open_live,
    settings,
    write_times,
)
from .test_dashboard_live import LiveServer

pytestmark = pytest.mark.browser


FAILED_ITEMS = (17, 123, 256)
ROWS = "#steps-body tr[id]"


def big_workflow(app: Flask, gate: Path | None = None) -> Workflow:
    """split → item:000..item:299 (3 fail, tolerated) → merge → step:000 → … → step:049 (step:025 waits on ``gate``)."""
    wf = Workflow("big:fan-out-and-chain").add("split", constant.new(value=1))
    for i in range(300):
        step = raise_message.new(message=f"item {i} broke") if i in FAILED_ITEMS else constant.new(value=i)
        wf.add(f"item:{i:03d}", step, deps=["split"])
    wf.add("merge", constant.new(value=0), deps=[Dep(f"item:{i:03d}", ignore_discarded=True) for i in range(300)])
    for i in range(50):
        step = wait_for_file.new(path=str(gate), value=i, timeout=15) if gate and i == 25 else constant.new(value=i)
        wf.add(f"step:{i:03d}", step, deps=[f"step:{i - 1:03d}" if i else "merge"])
    wf.insert()
    return wf


def transform(page: Any) -> tuple[float, float, float]:
    """The graph's (x, y, scale), from its viewport's transform."""
    text = page.get_attribute("#dag g.viewport", "transform")
    found = re.fullmatch(r"translate\(([-\d.e]+),([-\d.e]+)\) scale\(([-\d.e]+)\)", text or "")
    assert found, f"the graph has no zoom transform: {text!r}"
    x, y, k = (float(v) for v in found.groups())
    return x, y, k


def fits(page: Any) -> bool:
    """The whole drawing (nodes and edges) is inside its box."""
    return bool(
        page.evaluate(
            """() => {
              const box = document.querySelector('#dag').getBoundingClientRect();
              const drawn = document.querySelector('#dag g.viewport').getBoundingClientRect();
              return drawn.width > 100 && drawn.left >= box.left - 1 && drawn.right <= box.right + 1
                && drawn.top >= box.top - 1 && drawn.bottom <= box.bottom + 1;
            }"""
        )
    )


def row_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.id)"))


def row_states(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.state)"))


def open_big(app: Flask, live_server: LiveServer, browser: LaunchedBrowser) -> tuple[Any, Workflow]:
    wf = big_workflow(app)
    assert wait_finished(app, wf.workflow_id, timeout=60).state == "completed"
    return open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}"), wf


def test_the_big_graph_fits_its_box_on_load_and_zooms_with_buttons_keys_wheel_and_drag(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser
) -> None:
    page, _ = open_big(app, live_server, browser)
    assert fits(page)
    assert page.eval_on_selector_all("#dag svg.node", "nodes => nodes.length") == 4  # split, fan, merge, chain
    fitted = transform(page)

    page.click("[data-zoom=in]")
    assert transform(page)[2] > fitted[2]
    page.click("[data-zoom=out]")
    page.click("[data-zoom=out]")
    assert transform(page)[2] < fitted[2]
    page.click("[data-zoom=fit]")
    assert transform(page) == fitted and fits(page)

    page.focus(".dag-view")
    page.keyboard.press("+")
    zoomed = transform(page)
    assert zoomed[2] > fitted[2]
    page.keyboard.press("ArrowLeft")
    assert transform(page)[0] > zoomed[0]
    page.keyboard.press("0")
    assert transform(page) == fitted

    box = page.locator(".dag-view").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 30)  # the dotted background, not a node
    page.mouse.wheel(0, -400)
    assert transform(page)[2] > fitted[2]
    before = transform(page)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 60, steps=5)
    page.mouse.up()
    moved = transform(page)
    assert moved[0] > before[0] and moved[1] > before[1] and moved[2] == before[2]
    assert page.evaluate("window.__marker") == 1


def test_a_folded_chain_opens_on_click_lists_its_steps_and_folds_again(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser
) -> None:
    page, wf = open_big(app, live_server, browser)
    label = page.text_content("#dag svg.node.chain .label")
    assert label == "step:000 → step:049"
    assert "50 steps" in page.text_content("#dag svg.node.chain .detail")

    page.click("#dag svg.node.chain a")
    page.wait_for_selector("#dag g.frame")
    assert page.eval_on_selector_all("#dag svg.node", "nodes => nodes.length") == 53
    assert page.query_selector("#dag svg.node.chain") is None
    assert "step:000 → … → step:049 (50 steps)" in page.inner_text("#steps-table .focus")
    assert row_ids(page) == [f"s-{node_key(f'step:{i:03d}')}" for i in range(50)]
    assert re.search(r"[?&]open=c[0-9a-f]+", page.url) and "node=c" in page.url

    page.click("#dag g.frame a")
    page.wait_for_selector("#dag svg.node.chain")
    assert page.query_selector("#dag g.frame") is None
    assert "open=" not in page.url
    assert page.evaluate("window.__marker") == 1  # no reload, all along

    page.go_back()  # the URL is the view: back opens the chain again
    page.wait_for_selector("#dag g.frame")
    assert "open=" in page.url


def test_the_step_table_pages_and_filters_by_state_and_by_name_with_the_filter_in_the_url(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser
) -> None:
    page, wf = open_big(app, live_server, browser)
    assert len(row_ids(page)) == PAGE_ROWS
    assert "1–50 of 352" in page.inner_text("#steps-table .pager")

    page.click("#steps-table .pager a[rel=next]")
    page.wait_for_function("document.querySelector('#steps-table .pager').innerText.includes('51–100')")
    assert row_ids(page)[0] == f"s-{node_key('item:049')}"

    page.click("#steps-states a.chip.st-discarded")
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === 3")
    assert row_states(page) == ["discarded"] * 3 and "state=discarded" in page.url and "page=" not in page.url

    page.fill(".steps-tools input[name=q]", "item:12")
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === 1")
    assert row_ids(page) == [f"s-{node_key('item:123')}"]
    assert "q=item%3A12" in page.url

    page.reload()  # the page's own URL renders the same filtered table, server side
    page.wait_for_selector("body[data-live=open]")
    assert row_ids(page) == [f"s-{node_key('item:123')}"]
    assert page.input_value(".steps-tools input[name=q]") == "item:12"

    page.click("#steps-states a.chip.st-completed")
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === 9")  # item:120..129 but item:123
    assert set(row_states(page)) == {"completed"}


def test_a_click_on_the_folded_fan_out_lists_its_steps_failures_first(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser
) -> None:
    page, _ = open_big(app, live_server, browser)
    page.click("#dag svg.node.twins a")
    page.wait_for_selector("#steps-table .focus")
    assert "item:000 … item:299 (300 steps)" in page.inner_text("#steps-table .focus")
    assert row_ids(page)[:4] == [f"s-{node_key(name)}" for name in ("item:017", "item:123", "item:256", "item:000")]
    assert row_states(page)[:4] == ["discarded", "discarded", "discarded", "completed"]
    assert "1–50 of 300" in page.inner_text("#steps-table .pager")
    assert "selected" in page.get_attribute("#dag svg.node.twins", "class")


def test_a_filtered_table_and_an_opened_chain_stay_live(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    wf = big_workflow(app, gate)
    try:
        wait_for(lambda: step_states(app, wf.workflow_id)["step:025"] == "executing", "step:025 to run", timeout=60)
        page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
        page.click("#dag svg.node.chain a")
        page.wait_for_selector("#dag g.frame")
        waiting = f"#s-{node_key('step:025')}"
        assert row_ids(page)[0] == waiting[1:]  # the running step first: nothing failed in the chain
        assert page.get_attribute(waiting, "data-state") == "executing"

        gate.touch()

        page.wait_for_selector(f"{waiting}[data-state=completed]")
        page.wait_for_selector(f"#n-{node_key('step:049')}.st-completed")  # a node of the opened chain
        page.wait_for_selector(f"#s-{node_key('step:049')}[data-state=completed]")
        page.wait_for_selector("#wf-summary .outcome-completed")
        assert page.evaluate("window.__marker") == 1
        assert page.query_selector("#dag g.frame") is not None  # still opened
        assert len(row_ids(page)) == PAGE_ROWS  # still the chain's 50 steps
    finally:
        gate.touch()


# -- screenshots for the docs --------------------------------------------------------------

#: Seconds each kind of step "took" in the pictures, and how many workers ran them.
TOOK = {"split": 0.8, "item": 1.4, "merge": 2.2, "step": 0.6}
WORKERS = 8


def _as_if_run_by_workers(app: Flask, workflow_id: str, started: float) -> None:
    """Rewrite a finished workflow's times as ``WORKERS`` workers running steps of ``TOOK`` seconds."""
    query = app.extensions["baton"].query
    free = [started] * WORKERS
    ended: dict[str, float] = {}
    changes = []
    for index, step in enumerate(query.get_workflow_jobs(workflow_id)):  # insertion order is topological here
        ready = max((ended[dep] for dep in step.deps), default=started) + 0.05
        worker = min(range(WORKERS), key=lambda w: free[w])
        start = max(ready, free[worker]) + 0.03
        took = TOOK[step.step_name.split(":")[0]] * (1 + 0.11 * (index % 5))
        free[worker] = ended[step.step_name] = start + took
        changes.append({"i": step.id, "q": ready, "s": start, "f": start + took})
    write_times(app, workflow_id, changes, started, max(ended.values()))


def test_screenshots_of_a_big_workflows_graph_table_and_timeline(
    app: Flask, consumer: ThreadConsumer, live_server: LiveServer, browser: LaunchedBrowser, tmp_path: Path
) -> None:
    target = SCREENSHOTS if os.environ.get("BATON_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    wf = big_workflow(app)
    record = wait_finished(app, wf.workflow_id, timeout=60)
    _as_if_run_by_workers(app, wf.workflow_id, record.created_at - 120)

    page = open_live(browser, f"{live_server.url}/baton/workflows/{wf.workflow_id}")
    page.mouse.move(0, 0)
    assert fits(page)
    graph = page.locator("section.panel", has=page.locator("#dag"))
    graph.screenshot(path=str(target / "big-graph.png"))
    page.locator("section.panel", has=page.locator("#timeline")).screenshot(path=str(target / "timeline.png"))

    page.click("#dag svg.node.twins a")
    page.wait_for_selector("#steps-table .focus")
    page.click("#steps-states a.chip.st-discarded")
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === 3")
    page.mouse.move(0, 0)
    page.locator("section.panel", has=page.locator("#steps-table")).screenshot(path=str(target / "big-table.png"))
    for name in ("big-graph.png", "timeline.png", "big-table.png"):
        assert (target / name).stat().st_size > 5_000
