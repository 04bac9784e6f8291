"""A workflow's outcome in one line, on real runs: tolerated failures, a user's cancel, consequences, retries.

Each case is reached by a real consumer on both backends, then read the
three ways an operator sees it: the workflow page's banner, the index row
and ``flask baton status``. They must say the same words (``headline``),
and those words must be true to what ran.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Dep, Workflow
from flask_baton.cli import render
from flask_baton.headline import Headline, OutcomeFacts, headline, utc_clock

from .steps import baton, constant, discard_now, fails_while_file_exists, wait_for_file
from .support import ThreadConsumer, cancel_mid_run, step_states, wait_finished, wait_for


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "headline-test-secret"}


def told(app: Flask, workflow_id: str, clock: Callable[[float], str] = utc_clock) -> Headline:
    """The headline the stored workflow reads as (what all three views are built from)."""
    query = app.extensions["baton"].query
    record = query.get_workflow(workflow_id)
    assert record is not None
    return headline(record, query.outcome_facts([workflow_id]).get(workflow_id, OutcomeFacts()), clock)


def shown_everywhere(app: Flask, workflow_id: str) -> Headline:
    """The headline, checked to be what the page, the index and ``flask baton status`` show.

    The dashboard writes times in UTC, the CLI in local time as all its times.
    """
    said = told(app, workflow_id)
    client = app.test_client()
    page = html.unescape(client.get(f"/baton/workflows/{workflow_id}").get_data(as_text=True))
    banner = re.search(r'<p class="outcome[^"]*"><strong>(.*?)\.</strong> (.*?)</p>', page, re.S)
    if said.kind == "running":
        assert banner is None
    else:
        assert banner is not None and banner.groups() == (said.title, said.detail)
    index = html.unescape(client.get("/baton").get_data(as_text=True))
    row = re.search(rf'<tr id="w-{workflow_id}".*?</tr>', index, re.S)
    assert row is not None
    if said.kind == "running" or said.title == "Completed":  # the state badge says it all
        assert "row-outcome" not in row.group(0)
    else:
        assert f'<span class="row-outcome outcome-{said.kind}">{said.title}</span>' in row.group(0)
    status = app.test_cli_runner().invoke(args=["baton", "status", workflow_id])
    assert status.output.splitlines()[1] == str(told(app, workflow_id, render.clock))
    listed = app.test_cli_runner().invoke(args=["baton", "status"])
    line = next(line for line in listed.output.splitlines() if line.startswith(workflow_id))
    assert line.endswith(told(app, workflow_id, render.clock).title)
    return said


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gate"
    yield path
    path.touch()  # free any consumer thread still waiting on it


def test_failures_every_dependent_tolerated_complete_the_workflow_with_that_said(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow("tolerant").add("root", constant.new(value=1))
    items = [f"item:{i}" for i in range(5)]
    for i, name in enumerate(items):
        wf.add(name, (discard_now if i in (1, 3) else constant).new(value=i), deps=["root"])
    wf.add("join", constant.new(value=9), deps=[Dep(name, ignore_discarded=True) for name in items])
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"

    said = shown_everywhere(app, wf.workflow_id)
    assert said == Headline(
        "completed", "Completed with 2 tolerated failures", "5 of 7 steps completed; item:1 and item:3 discarded."
    )


def test_a_users_cancel_says_when_and_what_had_finished(app: Flask, consumer: ThreadConsumer, gate: Path) -> None:
    wf = (
        Workflow("to-cancel")
        .add("first", constant.new(value=1))
        .add("held", wait_for_file.new(path=str(gate)), deps=["first"])
        .add("after", constant.new(value=2), deps=["held"])
    )
    cancel_mid_run(app, wf, [gate], {"held": "executing"})
    record = wait_finished(app, wf.workflow_id)
    assert record.state == "cancelled" and record.finished_at is not None

    said = shown_everywhere(app, wf.workflow_id)
    at = utc_clock(record.finished_at)  # the moment of the cancel
    assert said == Headline(
        "cancelled", f"Cancelled by a user at {at}", "1 of 3 steps had completed; 2 steps cancelled."
    )


def test_a_failure_names_its_step_and_counts_what_it_cancelled(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow("fails")
        .add("root", constant.new(value=1))
        .add("ok", constant.new(value=2), deps=["root"])
        .add("broken", discard_now.new(), deps=["root"])
        .add("next", constant.new(value=3), deps=["broken"])
        .add("last", constant.new(value=4), deps=["next", "ok"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"

    said = shown_everywhere(app, wf.workflow_id)
    assert said == Headline(
        "failed", "Failed because of broken", "2 of 5 steps completed; 2 cancelled as a consequence."
    )


def test_a_workflow_retried_after_a_failure_says_it_completed_after_the_retry(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.touch()
    wf = (
        Workflow("retried")
        .add("flaky", fails_while_file_exists.new(path=str(blocker)))
        .add("after", constant.new(value=1), deps=["flaky"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert shown_everywhere(app, wf.workflow_id).title == "Failed because of flaky"

    blocker.unlink()
    baton.retry_workflow(wf.workflow_id)
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert shown_everywhere(app, wf.workflow_id) == Headline(
        "completed", "Completed after 1 retry", "All 2 steps completed."
    )


def test_after_a_users_cancel_and_a_retry_of_one_step_the_rest_is_still_the_users_doing(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    gates = {i: tmp_path / f"gate-{i}" for i in range(4)}
    wf = Workflow("cancelled-then-one-retried").add("root", constant.new(value=1))
    for i, path in gates.items():
        wf.add(f"item:{i}", wait_for_file.new(path=str(path), value=i), deps=["root"])
    wf.add("join", constant.new(value=9), deps=[f"item:{i}" for i in gates])
    try:
        cancel_mid_run(app, wf, list(gates.values()), {f"item:{i}": "executing" for i in gates})
        gates[0].unlink()  # its retry waits again
        assert baton.retry_step(wf.workflow_id, "item:0") == ["item:0"]
        wait_for(lambda: step_states(app, wf.workflow_id)["item:0"] == "executing", "item:0 to run again")
        running = shown_everywhere(app, wf.workflow_id)
        assert running == Headline("running", "Running", "5 of 6 steps settled; running again after 1 retry.")
        gates[0].touch()
        assert wait_finished(app, wf.workflow_id).state == "failed"
    finally:
        for path in gates.values():
            path.touch()

    said = shown_everywhere(app, wf.workflow_id)
    assert re.fullmatch(r"Failed because 4 steps stayed cancelled by a user at [0-9: -]+ UTC", said.title)
    assert said.detail == "2 of 6 steps completed; after 1 retry."
