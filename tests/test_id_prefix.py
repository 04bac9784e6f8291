"""Workflow ids given as a unique prefix, the short ids the dashboard shows among them.

One resolution (``baton.query.resolve_workflow_id``) serves the CLI and the
dashboard's search: a prefix matching nothing or several workflows is a clear
error naming them, and changes nothing. Both backends.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_baton import AmbiguousWorkflowIdError, Workflow, WorkflowNotFoundError
from flask_baton.ids import SHORT_ID_CHARS, new_id
from flask_baton.query import PREFIX_MATCHES

from .steps import constant


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def running(name: str, workflow_id: str | None = None) -> Workflow:
    """A one-step workflow that stays running (no consumer runs), with ``workflow_id`` if given."""
    wf = Workflow(name).add("only", constant.new())
    if workflow_id is not None:
        wf.workflow_id = workflow_id
    wf.insert()
    return wf


def twins() -> tuple[Workflow, Workflow]:
    """Two workflows whose ids share their first 24 characters and differ after."""
    base = new_id()[:24]
    return running("twin:low", base + "0" * 8), running("twin:high", base + "f" * 8)


def stored(app: Flask, *workflow_ids: str) -> list[Any]:
    query = app.extensions["baton"].query
    return [(query.get_workflow(w), query.get_workflow_jobs(w)) for w in workflow_ids]


def shown_short_ids(client: FlaskClient) -> list[str]:
    return re.findall(r'<span class="id">([0-9a-f]+)</span>', client.get("/baton").get_data(as_text=True))


def test_resolve_takes_a_whole_id_a_unique_prefix_in_any_case(app: Flask) -> None:
    low, high = twins()
    resolve = app.extensions["baton"].query.resolve_workflow_id
    assert resolve(low.workflow_id).id == low.workflow_id
    assert resolve(low.workflow_id[:25]).id == low.workflow_id
    assert resolve(f"  {high.workflow_id[:25].upper()} ").id == high.workflow_id


def test_resolve_of_an_ambiguous_prefix_names_each_match(app: Flask) -> None:
    low, high = twins()
    with pytest.raises(AmbiguousWorkflowIdError) as caught:
        app.extensions["baton"].query.resolve_workflow_id(low.workflow_id[:24])
    assert caught.value.matches == {high.workflow_id: "twin:high", low.workflow_id: "twin:low"}
    assert not caught.value.more
    assert f"{low.workflow_id}  twin:low" in str(caught.value) and "matches 2 workflows" in str(caught.value)


def test_resolve_names_at_most_ten_matches_and_says_there_are_more(app: Flask) -> None:
    base = new_id()[:20]
    for index in range(PREFIX_MATCHES + 2):
        running(f"many:{index}", f"{base}{index:012x}")
    with pytest.raises(AmbiguousWorkflowIdError) as caught:
        app.extensions["baton"].query.resolve_workflow_id(base)
    assert len(caught.value.matches) == PREFIX_MATCHES and caught.value.more
    assert f"matches more than {PREFIX_MATCHES} workflows" in str(caught.value)


def test_resolve_of_text_no_id_starts_with_names_it(app: Flask) -> None:
    running("some")
    resolve = app.extensions["baton"].query.resolve_workflow_id
    for text in ("fff", "no-such-id", "%", "_", "0" * 33):  # % and _ are characters, not wildcards
        with pytest.raises(WorkflowNotFoundError, match=re.escape(f"no workflow with id {text!r}")):
            resolve(text)
    with pytest.raises(WorkflowNotFoundError, match="no workflow id given"):
        resolve(" ")


def test_resolve_keeps_each_id_on_its_side_of_a_prefix_ending_in_f(app: Flask) -> None:
    """The index range of prefix ``…af`` ends before ``…b0``, that of ``…a`` includes ``…af…``."""
    base = new_id()[:22]
    before = running("before", base + "af" + "0" * 8)
    after = running("after", base + "b0" + "0" * 8)
    resolve = app.extensions["baton"].query.resolve_workflow_id
    assert resolve(base + "af").id == before.workflow_id
    assert resolve(base + "a").id == before.workflow_id
    assert resolve(base + "b").id == after.workflow_id
    assert resolve(base + "b0" + "0" * 8).id == after.workflow_id


def test_the_cli_takes_the_short_id_the_dashboard_shows(app: Flask, client: FlaskClient) -> None:
    wf = running("shown")
    [short] = shown_short_ids(client)
    assert len(short) == SHORT_ID_CHARS and wf.workflow_id.startswith(short)
    result = app.test_cli_runner().invoke(args=["baton", "status", short])
    assert result.exit_code == 0, result.output
    assert f"shown ({wf.workflow_id}): running" in result.output


def test_workflows_inserted_in_the_same_millisecond_show_different_short_ids(app: Flask, client: FlaskClient) -> None:
    """An id's first 12 characters are its millisecond; the short id goes on into the random part."""
    first = new_id()
    second = first[:12] + ("1" if first[12] == "0" else "0") + first[13:]
    running("first", first)
    running("second", second)
    shorts = shown_short_ids(client)
    assert len(set(shorts)) == 2
    for short in shorts:
        assert app.test_cli_runner().invoke(args=["baton", "status", short]).exit_code == 0


def test_an_ambiguous_prefix_fails_every_command_listing_the_matches_and_changes_nothing(app: Flask) -> None:
    low, high = twins()
    before = stored(app, low.workflow_id, high.workflow_id)
    runner = app.test_cli_runner()
    for command in (["status"], ["cancel"], ["retry"], ["export"], ["status", "--watch"]):
        result = runner.invoke(args=["baton", command[0], low.workflow_id[:24], *command[1:]])
        assert result.exit_code == 1, (command, result.output)
        assert f"id prefix '{low.workflow_id[:24]}' matches 2 workflows" in result.output
        assert low.workflow_id in result.output and high.workflow_id in result.output
    assert stored(app, low.workflow_id, high.workflow_id) == before


def test_a_prefix_matching_nothing_fails_every_command_naming_it(app: Flask) -> None:
    wf = running("alone")
    before = stored(app, wf.workflow_id)
    runner = app.test_cli_runner()
    for command in (["status"], ["cancel"], ["retry"], ["retry", "only"], ["export"]):
        result = runner.invoke(args=["baton", command[0], "fffff", *command[1:]])
        assert result.exit_code == 1, (command, result.output)
        assert "no workflow with id 'fffff' or an id starting with it" in result.output
    assert stored(app, wf.workflow_id) == before


def test_dashboard_search_goes_to_the_workflow_a_unique_prefix_names(app: Flask, client: FlaskClient) -> None:
    wf = running("found")
    running("other")
    [short] = [s for s in shown_short_ids(client) if wf.workflow_id.startswith(s)]
    for text in (short, short.upper(), wf.workflow_id):
        response = client.get("/baton", query_string={"q": text})
        assert response.status_code == 303
        assert response.headers["Location"] == f"/baton/workflows/{wf.workflow_id}"


def test_dashboard_search_lists_the_workflows_an_ambiguous_prefix_matches(app: Flask, client: FlaskClient) -> None:
    low, high = twins()
    html = client.get("/baton", query_string={"q": low.workflow_id[:24]}).get_data(as_text=True)
    assert "matches 2 workflows; pick one" in html
    for wf in (low, high):
        assert f'href="/baton/workflows/{wf.workflow_id}"' in html


def test_dashboard_search_says_no_id_starts_with_the_text_and_still_filters_labels(
    app: Flask, client: FlaskClient
) -> None:
    cafe = running("cafe orders")
    html = client.get("/baton", query_string={"q": "fffff"}).get_data(as_text=True)
    assert "No workflow id starts with “fffff”, and no label contains it." in html
    html = client.get("/baton", query_string={"q": "cafe"}).get_data(as_text=True)  # hex, and a label's text
    assert f'id="w-{cafe.workflow_id}"' in html and "No workflow id starts with" not in html
