"""The overview page and the index's time range over HTTP (Flask test client), on both backends.

What a real consumer ran is what the page says: workflows started, ended and
failed, steps per name with their runs and percentiles, queue depths, the
consumer alive and the step it runs. The browser side (Chromium, 390 px,
axe-core) is in ``test_dashboard_a11y.py``.
"""

from __future__ import annotations

import html as htmllib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from flask_baton import Workflow
from flask_baton.appstate import worker_id
from flask_baton.store.tables import workflows

from .steps import always_fail, constant, fail_then_wait_an_hour, slow, wait_for_file
from .support import step_states, wait_finished, wait_for

pytestmark = pytest.mark.usefixtures("consumer")


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "overview-test-secret"}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def run_mix(app: Flask, completed: int, failed: int) -> list[str]:
    """``completed`` two-step workflows that complete and ``failed`` ones whose second step fails."""
    flows = []
    for index in range(completed + failed):
        flow = Workflow(f"mix:{index}").add("fetch", constant.new(value=index))
        if index < completed:
            flow.add("parse", slow.new(seconds=0.02), deps=["fetch"])
        else:
            flow.add("parse", always_fail.new(), deps=["fetch"])
        flow.insert()
        flows.append(flow)
    return [wait_finished(app, flow.workflow_id).id for flow in flows]


def figure(page: str, key: str) -> str:
    found = re.search(rf'<div id="fig-{key}"><dt>[^<]*</dt><dd><span class="figure">([^<]*)</span>', page)
    assert found, f"no figure {key!r} on the page"
    return found.group(1)


def cell(page: str, row: str, value: str) -> str:
    """The text of ``<td data-value=value>`` in the row whose opening tag contains ``row``."""
    start = page.index(row)
    found = re.search(rf'<td class="[^"]*" data-value="{value}"[^>]*>([^<]*)</td>', page[start:])
    assert found, f"no {value!r} cell after {row!r}"
    return found.group(1)


def test_the_overview_says_how_many_workflows_ran_and_failed_and_each_step_s_runs(
    app: Flask, client: FlaskClient
) -> None:
    run_mix(app, completed=4, failed=3)

    page = client.get("/baton/overview?range=1h").get_data(as_text=True)

    assert (figure(page, "started"), figure(page, "ended"), figure(page, "failed")) == ("7", "7", "3")
    assert figure(page, "steps") == "14"  # 7 fetch + 4 parse completed + 3 parse discarded
    assert (cell(page, 'data-step="fetch"', "runs"), cell(page, 'data-step="fetch"', "discarded")) == ("7", "0")
    assert (cell(page, 'data-step="parse"', "runs"), cell(page, 'data-step="parse"', "discarded")) == ("7", "3")
    assert "3 failed." in htmllib.unescape(page)  # the workflows chart's summary for screen readers


def test_a_step_s_percentiles_on_the_page_are_within_a_duration_class_of_its_runs(
    app: Flask, client: FlaskClient
) -> None:
    ids = run_mix(app, completed=5, failed=0)
    query = app.extensions["baton"].query
    took = sorted(
        s.finished_at - s.started_at for i in ids for s in query.get_workflow_jobs(i) if s.step_name == "parse"
    )

    page = client.get("/baton/overview?range=1h").get_data(as_text=True)

    shown = {
        name: float(seconds)
        for name, seconds in re.findall(
            r'data-value="(p50|p95)" data-seconds="([0-9.e-]+)"', page[page.index('data-step="parse"') :]
        )[:2]
    }
    assert took[2] / 2**0.25 <= shown["p50"] <= took[2] * 2**0.25  # the 3rd of 5 runs
    assert took[4] / 2**0.25 <= shown["p95"] <= took[4]  # the slowest, never above it


def test_the_overview_lists_the_consumer_alive_the_step_it_runs_and_the_retries_queued_for_later(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    running = Workflow("gated").add("wait", wait_for_file.new(path=str(gate)))
    later = Workflow("retrying").add("again", fail_then_wait_an_hour.new())
    running.insert()
    later.insert()
    try:
        wait_for(lambda: step_states(app, running.workflow_id)["wait"] == "executing", "the gated step to run")
        wait_for(lambda: step_states(app, later.workflow_id)["again"] == "retryable", "the retry to be scheduled")

        page = client.get("/baton/overview").get_data(as_text=True)

        consumer = page[page.index(f'data-worker="{worker_id()}"') :]
        consumer = consumer[: consumer.index("</tr>")]
        assert f"/baton/workflows/{running.workflow_id}/steps/wait" in consumer
        assert "default" in consumer
        assert cell(page, 'id="queue-default"', "running") == "1"
        assert cell(page, 'id="queue-default"', "consumers") == "1"
        assert cell(page, 'id="queue-default"', "scheduled") == "1"  # the retry due in an hour
        assert cell(page, 'id="queue-default"', "waiting") == "0"
    finally:
        gate.touch()
    wait_finished(app, running.workflow_id)


def test_the_overview_polls_for_its_live_part_and_gets_204_while_nothing_changed(
    app: Flask, client: FlaskClient
) -> None:
    run_mix(app, completed=1, failed=0)
    page = client.get("/baton/overview?range=6h").get_data(as_text=True)
    version = re.search(r'id="overview-live" data-version="([0-9a-f]+)"', page)
    assert version and 'hx-get="/baton/overview?range=6h&amp;v=' in page
    hx = {"HX-Request": "true"}

    assert client.get(f"/baton/overview?range=6h&v={version.group(1)}", headers=hx).status_code == 204
    part = client.get("/baton/overview?range=6h&v=older", headers=hx)
    assert part.status_code == 200 and part.get_data(as_text=True).startswith('<div id="overview-live"')


def test_an_unknown_range_shows_the_last_24_hours(client: FlaskClient) -> None:
    page = client.get("/baton/overview?range=forever").get_data(as_text=True)
    assert "The last 24 hours" in page
    assert re.search(r'<a class="tab active" href="/baton/overview\?range=24h"[^>]*aria-current="page"', page)


def _age(app: Flask, workflow_id: str, seconds: float) -> None:
    """Make a workflow look as if it started ``seconds`` ago."""
    with app.extensions["baton"].engine.begin() as conn:
        conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(created_at=time.time() - seconds))


def test_the_index_s_time_range_lists_and_counts_only_the_workflows_started_within_it(
    app: Flask, client: FlaskClient
) -> None:
    old_ok, old_bad, new_ok = run_mix(app, completed=1, failed=1) + run_mix(app, completed=1, failed=0)
    _age(app, old_ok, 2 * 3600)
    _age(app, old_bad, 2 * 3600)

    everything = client.get("/baton").get_data(as_text=True)
    last_hour = client.get("/baton?range=1h").get_data(as_text=True)
    failed_last_hour = client.get("/baton?range=1h&state=failed").get_data(as_text=True)

    assert {old_ok, old_bad, new_ok} <= set(re.findall(r'<tr id="w-([0-9a-f]{32})"', everything))
    assert re.findall(r'<tr id="w-([0-9a-f]{32})"', last_hour) == [new_ok]
    assert re.findall(r'<tr id="w-([0-9a-f]{32})"', failed_last_hour) == []
    assert "No workflows match these filters." in failed_last_hour
    tabs = re.findall(r'href="([^"]*)"[^>]*>(\w+) <span class="n">(\d+)</span>', last_hour)
    assert [(label, count) for _, label, count in tabs][:4] == [
        ("All", "1"),
        ("Running", "0"),
        ("Completed", "1"),
        ("Failed", "0"),
    ]
    assert all("range=1h" in htmllib.unescape(url) for url, _, _ in tabs), "a state tab drops the range"
    assert '<option value="1h" selected>' in last_hour
