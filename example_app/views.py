"""The example's few pages: start a brief, list recent ones, read one as JSON.

Deliberately small: the live view of a workflow is flask_baton's own
dashboard (linked from the page); these views show what an app itself does
with flask_baton, namely insert workflows and read them with ``baton.query``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template_string, request, url_for

from flask_baton.query import StepRecord, WorkflowRecord

from .steps import MAX_TOPIC_LENGTH, baton, clean_topic, start_brief
from .survey import start_survey

bp = Blueprint("example", __name__)

#: How many workflows the index lists.
RECENT = 20

# One small inline template keeps the example in three readable modules.
# Flask autoescapes render_template_string, so topics are safe to show.
INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flask_baton example: research briefs</title>
{% if refresh %}<meta http-equiv="refresh" content="1">{% endif %}
<style>
  body { font: 15px/1.45 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  input[type=text] { width: 24rem; max-width: 100%; box-sizing: border-box; padding: .35rem; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; }
  tr.started { background: #fff8dc; }
  .running { color: #b36b00; } .completed { color: #1a7f37; } .failed, .cancelled { color: #c62828; }
  .error { color: #c62828; } small { color: #666; overflow-wrap: anywhere; }
  @media (max-width: 30rem) { th:nth-child(4), td:nth-child(4) { display: none; } }  /* phones: no start time */
</style>
</head>
<body>
<h1>Research briefs</h1>
<p>Each brief is a flask_baton workflow:
  <code>fetch_sources &rarr; (summarize, keywords, credibility) &rarr; compile_brief
  &rarr; review &rarr; publish</code>.
  A compiled brief waits for an editor: approve or reject it on its <code>review</code> step's dashboard page.
  {% if dashboard %}Watch them live in the <a href="{{ dashboard }}">flask_baton dashboard</a>
  (<a href="{{ dashboard }}?waiting=person">waiting for you</a>).{% endif %}</p>
<form method="post" action="{{ url_for('example.create_brief') }}">
  <input type="text" name="topic" placeholder="A topic, e.g. solid-state batteries"
         maxlength="{{ max_length }}" value="{{ topic }}" required autofocus>
  <button type="submit">Start a brief</button>
  <button type="submit" formaction="{{ url_for('example.create_survey') }}"
          title="352 steps: 300 reads in parallel, a tally, a 50-step chain">Start a big survey</button>
  {% if error %}<p class="error">{{ error }}</p>{% endif %}
</form>
<table>
  <thead><tr><th>Workflow</th><th>State</th><th>Steps</th><th>Started</th><th></th></tr></thead>
  <tbody>
  {% for wf in workflows %}
    <tr{% if wf.id == started %} class="started"{% endif %}>
      <td>{% if dashboard %}<a href="{{ url_for('baton.workflow', workflow_id=wf.id) }}">{{ wf.name }}</a>
          {%- else %}{{ wf.name }}{% endif %}<br><small>{{ wf.id }}</small></td>
      <td class="{{ wf.state }}">{{ wf.state }}</td>
      <td>{{ wf.settled_steps }}/{{ wf.total_steps }}</td>
      <td>{{ wf.created_at | clock }}</td>
      <td><a href="{{ url_for('example.brief_json', workflow_id=wf.id) }}">state (JSON)</a></td>
    </tr>
  {% else %}
    <tr><td colspan="5">No workflows yet: start a brief above.</td></tr>
  {% endfor %}
  </tbody>
</table>
</body>
</html>
"""


@bp.app_template_filter("clock")
def clock(at: float | None) -> str:
    """Format an epoch time as HH:MM:SS (local time); '-' when unset."""
    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "-"


def _index(*, topic: str = "", error: str | None = None, status: int = 200) -> tuple[str, int]:
    started = request.args.get("started")
    record = baton.query.get_workflow(started) if started else None
    html = render_template_string(
        INDEX,
        workflows=baton.query.list_workflows(limit=RECENT).workflows,
        started=started,
        # Reload once a second only while the brief just started runs, so the
        # page is watchable without JavaScript and stays still otherwise.
        refresh=record is not None and record.state == "running",
        # Each workflow links to its dashboard page, unless the dashboard is off.
        dashboard=url_for("baton.index") if "baton.index" in current_app.view_functions else None,
        max_length=MAX_TOPIC_LENGTH,
        topic=topic,
        error=error,
    )
    return html, status


@bp.get("/")
def index() -> tuple[str, int]:
    """The form and the recent workflows; ``?started=<id>`` highlights one."""
    return _index()


@bp.post("/briefs")
def create_brief() -> Response | tuple[str, int]:
    """Start a brief for the form's ``topic``, then redirect to the index (PRG)."""
    topic = request.form.get("topic", "")
    try:
        workflow_id = start_brief(topic)
    except ValueError as exc:
        return _index(topic=topic, error=f"Cannot start a brief: {exc}.", status=400)
    return redirect(url_for("example.index", started=workflow_id), code=303)


@bp.post("/surveys")
def create_survey() -> Response | tuple[str, int]:
    """Start the 352-step survey of the form's ``topic`` (the dashboard at scale), then redirect."""
    topic = request.form.get("topic", "")
    try:
        workflow_id = start_survey(clean_topic(topic))
    except ValueError as exc:
        return _index(topic=topic, error=f"Cannot start a survey: {exc}.", status=400)
    return redirect(url_for("example.index", started=workflow_id), code=303)


@bp.get("/briefs/<workflow_id>.json")
def brief_json(workflow_id: str) -> Response:
    """The workflow and each of its steps, as stored (read with ``baton.query``)."""
    record = baton.query.get_workflow(workflow_id)
    if record is None:
        abort(404, description=f"no workflow with id {workflow_id!r}")
    steps = baton.query.get_workflow_jobs(workflow_id)
    return jsonify(workflow=_workflow_json(record), steps=[_step_json(step) for step in steps])


def _workflow_json(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "state": record.state.value,
        "total_steps": record.total_steps,
        "settled_steps": record.settled_steps,
        "budget_usd": record.budget_usd,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
    }


def _step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "step_name": step.step_name,
        "state": step.state.value,
        "attempt": step.attempt,
        "deps": list(step.deps),
        "result": step.result,
        "error": step.error,
        "worker": step.worker,
        "created_at": step.created_at,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
    }
