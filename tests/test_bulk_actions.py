"""Acting on whole workflows and on several at once: resume, retry, bulk cancel and retry.

Through the Python API (``baton.resume_workflow``, ``cancel_workflows``,
``retry_workflows``), the CLI given several ids, and the dashboard's
endpoints (the workflow page's Retry workflow / Resume buttons, the index's
bulk form), on both backends with a real consumer. The browser side is in
``test_dashboard_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_baton import Workflow
from flask_baton.states import CancelledBy
from flask_baton.store import migrations

from . import ledger
from .steps import baton, constant, fails_while_file_exists, wait_for_file
from .support import ThreadConsumer, cancel_mid_run, make_version, step_states, wait_finished, wait_for
from .test_dashboard import body, page_token
from .test_outcome_headline import told

UNKNOWN = "0" * 32


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True, "SECRET_KEY": "bulk-test-secret"}


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[list[Path]]:
    """Files held steps wait for; all created at the end, so no consumer thread stays blocked."""
    made: list[Path] = []
    yield made
    for path in made:
        path.touch()


def held(gates: list[Path], tmp_path: Path, name: str) -> Workflow:
    """A running workflow: ``wait`` runs until its gate file exists, ``after`` waits for it."""
    gate = tmp_path / f"gate-{len(gates)}"
    gates.append(gate)
    wf = (
        Workflow(name).add("wait", wait_for_file.new(path=str(gate))).add("after", constant.new(value=1), deps=["wait"])
    )
    wf.insert()
    return wf


def failed(blocker: Path, name: str) -> Workflow:
    """A workflow that fails while ``blocker`` exists: ``fix`` discarded, ``after`` cancelled."""
    blocker.touch()
    wf = (
        Workflow(name)
        .add("fix", fails_while_file_exists.new(path=str(blocker)))
        .add("after", constant.new(value=2), deps=["fix"])
    )
    wf.insert()
    return wf


def failed_then_cancelled(app: Flask, tmp_path: Path, label: str, names: tuple[str, ...]) -> tuple[Workflow, Path]:
    """A workflow a user cancelled after one of its steps had failed on its own; and the file that failed it.

    ``names``: a root, a step that fails while the returned file exists and
    what waits for it (cancelled as a consequence), a step running when the
    cancel came and what waits for it (both cancelled by the user).
    """
    root, broken, after_broken, held, after_held = names
    blocker, gate = tmp_path / "blocker", tmp_path / "gate"
    blocker.touch()
    wf = (
        Workflow(label)
        .add(root, constant.new(value=1))
        .add(broken, fails_while_file_exists.new(path=str(blocker)), deps=[root])
        .add(after_broken, constant.new(value=2), deps=[broken])
        .add(held, wait_for_file.new(path=str(gate), value=3), deps=[root])
        .add(after_held, constant.new(value=4), deps=[held])
    )
    cancel_mid_run(app, wf, [gate], {broken: "discarded", held: "executing"})
    assert wait_finished(app, wf.workflow_id).state == "cancelled"
    return wf, blocker


def stored(app: Flask, workflow_id: str) -> tuple[Any, ...]:
    query = app.extensions["baton"].query
    return query.get_workflow(workflow_id), tuple(query.get_workflow_jobs(workflow_id))


# -- the Python API --------------------------------------------------------------------


def test_retry_workflows_retries_each_finished_one_and_says_why_it_skipped_the_others(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, gates: list[Path]
) -> None:
    blocker = tmp_path / "blocker"
    first, second = failed(blocker, "first"), failed(blocker, "second")
    done = Workflow("done").add("only", constant.new(value=1))
    done.insert()
    for wf in (first, second, done):
        wait_finished(app, wf.workflow_id)
    running = held(gates, tmp_path, "running")
    wait_for(lambda: step_states(app, running.workflow_id)["wait"] == "executing", "the held step to run")
    untouched = stored(app, running.workflow_id), stored(app, done.workflow_id)
    blocker.unlink()

    ids = [first.workflow_id, second.workflow_id, running.workflow_id, done.workflow_id, UNKNOWN]
    results = baton.retry_workflows(ids)

    assert [(r.workflow_id, r.steps, r.skipped) for r in results] == [
        (first.workflow_id, ["fix", "after"], None),
        (second.workflow_id, ["fix", "after"], None),
        (running.workflow_id, [], "still running"),
        (done.workflow_id, [], "nothing to retry"),
        (UNKNOWN, [], "not found"),
    ]
    assert "is still running" in (results[2].error or "") and results[2].label == "running"
    assert wait_finished(app, first.workflow_id).state == wait_finished(app, second.workflow_id).state == "completed"
    assert (stored(app, running.workflow_id), stored(app, done.workflow_id)) == untouched


def test_cancel_workflows_cancels_each_running_one_as_a_users_doing(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, gates: list[Path]
) -> None:
    one, two = held(gates, tmp_path, "one"), held(gates, tmp_path, "two")
    done = Workflow("done").add("only", constant.new(value=1))
    done.insert()
    wait_finished(app, done.workflow_id)

    results = baton.cancel_workflows([one.workflow_id, done.workflow_id, two.workflow_id], reason="too slow")

    assert [(r.steps, r.skipped) for r in results] == [
        (["after", "wait"], None),
        ([], "already completed"),
        (["after", "wait"], None),
    ]
    for wf in (one, two):
        steps = app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)
        assert {(s.state, s.cancelled_by, s.error) for s in steps} == {("cancelled", CancelledBy.USER, "too slow")}
        assert told(app, wf.workflow_id).title.startswith("Cancelled by a user at ")


def test_resume_runs_again_what_the_cancel_stopped_and_leaves_what_failed_on_its_own(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, ledger_path: Path
) -> None:
    wf, blocker = failed_then_cancelled(
        app, tmp_path, "mixed", ("root", "broken", "after_broken", "held", "after_held")
    )
    page = body(app.test_client().get(f"/baton/workflows/{wf.workflow_id}"))
    assert 'id="resume-workflow"' in page and 'id="retry-workflow"' in page  # they would do different things

    assert baton.resume_workflow(wf.workflow_id) == ["held", "after_held"]
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id)["broken"] == "discarded"
    assert told(app, wf.workflow_id).title == "Failed again because of broken"
    page = body(app.test_client().get(f"/baton/workflows/{wf.workflow_id}"))
    assert 'id="resume-workflow"' not in page and 'id="retry-workflow"' in page
    with pytest.raises(Exception, match="no step a user cancelled can run again"):
        baton.resume_workflow(wf.workflow_id)

    blocker.unlink()
    assert baton.retry_workflow(wf.workflow_id) == ["broken", "after_broken"]
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert told(app, wf.workflow_id).title == "Completed after 2 retries"
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert (runs["root"], runs["broken"], runs["held"], runs["after_held"]) == (1, 2, 2, 1)


def test_upgrading_to_schema_4_tells_the_steps_an_earlier_cancel_stopped_from_its_consequences(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    wf, _ = failed_then_cancelled(app, tmp_path, "from-v2", ("root", "broken", "after_broken", "held", "after_held"))
    expected = told(app, wf.workflow_id)
    make_version(app, 3)  # what was stored before: no marks

    assert baton.create_schema() == (3, migrations.SCHEMA_VERSION)

    steps = {s.step_name: s.cancelled_by for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert steps == {
        "root": None,
        "broken": None,
        "after_broken": CancelledBy.DEPENDENCY,
        "held": CancelledBy.USER,
        "after_held": CancelledBy.USER,
    }
    assert told(app, wf.workflow_id) == expected
    assert (
        expected.detail == "1 of 5 steps had completed; 2 steps cancelled; broken failed; 1 cancelled as a consequence."
    )


# -- the CLI -------------------------------------------------------------------------------


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["baton", *args])


def test_cli_cancel_and_retry_take_several_ids_and_report_each(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, gates: list[Path]
) -> None:
    one, two = held(gates, tmp_path, "one"), held(gates, tmp_path, "two")

    result = cli(app, "cancel", one.workflow_id[:16], two.workflow_id)
    assert result.exit_code == 0, result.output
    assert f"cancelled workflow {one.workflow_id} (one): 2 step(s) cancelled" in result.output
    assert f"cancelled workflow {two.workflow_id} (two): 2 step(s) cancelled" in result.output
    assert result.output.endswith("2 cancelled\n")

    for path in gates:
        path.touch()  # the retried steps find their gates open
    running = held(gates, tmp_path, "running")
    wait_for(lambda: step_states(app, running.workflow_id)["wait"] == "executing", "the held step to run")
    before = stored(app, running.workflow_id)
    result = cli(app, "retry", one.workflow_id, two.workflow_id[:16], running.workflow_id)
    assert result.exit_code == 1, result.output
    assert f"retrying workflow {one.workflow_id} (one): 2 step(s) re-armed: wait, after" in result.output
    assert f"skipped workflow {running.workflow_id} (running): workflow {running.workflow_id} is still running" in (
        result.output
    )
    assert result.output.endswith("2 retried, 1 skipped: still running\n")
    assert wait_finished(app, one.workflow_id).state == wait_finished(app, two.workflow_id).state == "completed"
    assert stored(app, running.workflow_id) == before


def test_cli_refuses_before_changing_anything_when_an_id_is_unknown_or_the_step_form_is_unclear(
    app: Flask, tmp_path: Path, gates: list[Path]
) -> None:
    one = held(gates, tmp_path, "one")
    before = stored(app, one.workflow_id)

    unknown = cli(app, "cancel", one.workflow_id, "ffff0000")
    assert unknown.exit_code == 1 and "no workflow with id 'ffff0000'" in unknown.output
    several_with_step = cli(app, "retry", one.workflow_id, UNKNOWN, "--step", "wait")
    assert several_with_step.exit_code == 2 and "--step retries a step of one workflow" in several_with_step.output
    assert stored(app, one.workflow_id) == before


def test_cli_resume_runs_again_what_a_cancel_stopped(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, gates: list[Path]
) -> None:
    wf = held(gates, tmp_path, "paused")
    wait_for(lambda: step_states(app, wf.workflow_id)["wait"] == "executing", "the held step to run")
    assert cli(app, "cancel", wf.workflow_id).exit_code == 0
    gates[0].touch()
    wait_for(lambda: step_states(app, wf.workflow_id) == {"wait": "cancelled", "after": "cancelled"}, "the cancel")

    result = cli(app, "resume", wf.workflow_id)

    assert result.exit_code == 0, result.output
    assert f"resuming workflow {wf.workflow_id} (paused): 2 step(s) re-armed: wait, after" in result.output
    assert wait_finished(app, wf.workflow_id).state == "completed"
    again = cli(app, "resume", wf.workflow_id)
    assert again.exit_code == 1 and "no step a user cancelled can run again" in again.output


# -- the dashboard -------------------------------------------------------------------------


def hx(client: FlaskClient, url: str, token: str, **data: Any) -> Any:
    return client.post(url, data={**data, "confirmed": "1"}, headers={"X-CSRF-Token": token, "HX-Request": "true"})


def test_bulk_retry_over_htmx_returns_the_changed_rows_and_a_result_per_workflow(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, gates: list[Path]
) -> None:
    blocker = tmp_path / "blocker"
    broken = failed(blocker, "broken")
    wait_finished(app, broken.workflow_id)
    running = held(gates, tmp_path, "running")
    client = app.test_client()
    index = body(client.get("/baton"))
    assert f'value="{broken.workflow_id}" form="bulk"' in index and 'id="bulk-retry"' in index
    blocker.unlink()

    response = hx(
        client, "/baton/bulk", page_token(index), action="retry", ids=[broken.workflow_id, running.workflow_id]
    )

    assert response.status_code == 200
    html = body(response)
    assert html.startswith(f'<tr hx-swap-oob="true" id="w-{running.workflow_id}"') or html.startswith(
        f'<tr hx-swap-oob="true" id="w-{broken.workflow_id}"'
    )
    # Running again, or done already: the consumer may finish the retried steps before the row is read.
    assert re.search(f'id="w-{broken.workflow_id}" class="st-(running|completed)"', html)
    assert '<div hx-swap-oob="true" id="notice"' in html and "1 retried, 1 skipped: still running." in html
    assert re.search(r">broken</a>: 2 step\(s\)</li>", html) and re.search(
        r">running</a>: skipped, still running</li>", html
    )
    assert wait_finished(app, broken.workflow_id).state == "completed"


def test_bulk_cancel_without_javascript_asks_to_confirm_naming_how_many_then_redirects(
    app: Flask, tmp_path: Path, gates: list[Path]
) -> None:
    one, two = held(gates, tmp_path, "one"), held(gates, tmp_path, "two")  # no consumer: they stay running
    client = app.test_client()
    token = page_token(body(client.get("/baton")))
    ids = [one.workflow_id, two.workflow_id]

    asked = client.post("/baton/bulk", data={"csrf_token": token, "action": "cancel", "ids": ids})
    assert asked.status_code == 200 and "Cancel 2 workflows?" in body(asked)
    assert all(f'name="ids" value="{i}"' in body(asked) for i in ids)
    assert app.extensions["baton"].query.get_workflow(one.workflow_id).state == "running"

    done = client.post("/baton/bulk", data={"csrf_token": token, "action": "cancel", "ids": ids, "confirmed": "1"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/baton")
    assert "2 cancelled." in body(client.get(done.headers["Location"]))  # flashed
    assert {app.extensions["baton"].query.get_workflow(i).state for i in ids} == {"cancelled"}
    nothing = client.post("/baton/bulk", data={"csrf_token": token, "action": "cancel", "confirmed": "1"})
    assert "Select one or more workflows first." in body(client.get(nothing.headers["Location"]))


def test_whole_workflow_and_bulk_actions_refuse_a_missing_or_wrong_csrf_token(
    app: Flask, tmp_path: Path, gates: list[Path]
) -> None:
    wf = held(gates, tmp_path, "guarded")
    client = app.test_client()
    client.get("/baton")  # the session now has a token
    before = stored(app, wf.workflow_id)
    for url, data in (
        ("/baton/bulk", {"action": "cancel", "ids": [wf.workflow_id]}),
        (f"/baton/workflows/{wf.workflow_id}/retry-workflow", {}),
        (f"/baton/workflows/{wf.workflow_id}/resume", {}),
    ):
        for token in ({}, {"csrf_token": "forged"}):
            response = client.post(url, data={**data, **token, "confirmed": "1"})
            assert response.status_code == 400 and "CSRF token" in body(response), url
    assert stored(app, wf.workflow_id) == before


def test_retry_workflow_button_reruns_the_failures_and_says_which_steps(
    app: Flask, consumer: ThreadConsumer, client: FlaskClient, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    wf = failed(blocker, "button")
    wait_finished(app, wf.workflow_id)
    page = body(client.get(f"/baton/workflows/{wf.workflow_id}"))
    assert 'id="retry-workflow"' in page and 'id="resume-workflow"' not in page
    assert 'hx-confirm="Retry workflow “button”? Its failed and cancelled steps run again' in page
    blocker.unlink()

    response = hx(client, f"/baton/workflows/{wf.workflow_id}/retry-workflow", page_token(page))

    assert "2 step(s) will run again: fix, after." in body(response)
    assert wait_finished(app, wf.workflow_id).state == "completed"
    assert "Completed after 1 retry.</strong>" in body(client.get(f"/baton/workflows/{wf.workflow_id}"))
