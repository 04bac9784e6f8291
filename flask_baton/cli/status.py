"""``flask baton status``: recent workflows, one workflow's steps, or watching one until it settles."""

from __future__ import annotations

import sys
import time
from collections import Counter
from enum import StrEnum
from typing import TypeVar

import click
from flask.cli import with_appcontext

from .. import pacing
from ..errors import WorkflowNotFoundError
from ..headline import OutcomeFacts
from ..query import Query
from ..states import StepState, WorkflowState
from . import render
from .common import EXIT_INTERRUPTED, OUTCOME_EXIT_CODES, app_state, baton_cli, resolve

S = TypeVar("S", bound=StrEnum)
#: Readings ``_read`` takes at most to see a workflow, its summary and its steps agree.
CONSISTENT_READ_TRIES = 5


@baton_cli.command("status")
@click.argument("workflow_id", required=False)
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Workflows to list without WORKFLOW_ID."
)
@click.option(
    "--state",
    "state_name",
    metavar="STATE",
    help="Only workflows in this state (running, completed, failed, cancelled); "
    "with WORKFLOW_ID, only steps in this step state (pending, executing, discarded, ...).",
)
@click.option("--label", help="Only workflows whose label contains this text, any case (the list only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable keys) instead of a table.")
@click.option(
    "--watch", is_flag=True, help="Redraw WORKFLOW_ID until it settles; exit 0 completed, 3 failed, 4 cancelled."
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between reads with --watch.",
)
@click.option("--errors", is_flag=True, help="Also print each failed step's whole traceback.")
@click.option(
    "--step",
    "step_name",
    metavar="NAME",
    help="With WORKFLOW_ID: every run of this step (how each ended, its worker, its error) instead of the steps.",
)
@click.pass_context
@with_appcontext
def status(
    ctx: click.Context,
    workflow_id: str | None,
    limit: int,
    state_name: str | None,
    label: str | None,
    as_json: bool,
    watch: bool,
    interval: float,
    errors: bool,
    step_name: str | None,
) -> None:
    """List recent workflows, or show each step of WORKFLOW_ID (its id or a unique start of it)."""
    state = app_state()
    query = state.query
    if workflow_id is None:
        for flag, given in (("--watch", watch), ("--errors", errors), ("--step", step_name is not None)):
            if given:
                raise click.UsageError(f"{flag} needs a WORKFLOW_ID")
        page = query.search_workflows(label, _state_option(state_name, WorkflowState), limit=limit)
        if as_json:
            click.echo(render.workflow_list_json(page.workflows, page.next_before))
            return
        ended = [w.id for w in page.workflows if w.state != WorkflowState.RUNNING]
        click.echo(render.workflow_list(page.workflows, query.outcome_facts(ended)))
        limits = pacing.usage(state, time.time())
        if limits:
            click.echo("\nrate limits:\n" + "\n".join(f"  {usage.describe(time.time())}" for usage in limits))
        return
    if label is not None:
        raise click.UsageError("--label filters the list of workflows; leave it out with WORKFLOW_ID")
    workflow = resolve(workflow_id).id
    if step_name is not None:
        click.echo(
            _runs(query, workflow, step_name, state_name=state_name, watch=watch, as_json=as_json, errors=errors)
        )
        return
    only = _state_option(state_name, StepState)
    if watch:
        ctx.exit(_watch(query, workflow, only, interval, as_json=as_json, errors=errors))
    click.echo(_show(_read(query, workflow, only), as_json=as_json, errors=errors))


def _runs(
    query: Query, workflow_id: str, step_name: str, *, state_name: str | None, watch: bool, as_json: bool, errors: bool
) -> str:
    """Every run of one step, as a table (and their tracebacks, with ``errors``) or as JSON."""
    for flag, given in (("--state", state_name is not None), ("--watch", watch)):
        if given:
            raise click.UsageError(f"{flag} shows the steps of a workflow; leave it out with --step")
    if query.get_workflow_job(workflow_id, step_name) is None:
        raise WorkflowNotFoundError(f"workflow {workflow_id} has no step named {step_name!r}")
    runs = query.get_step_attempts(workflow_id, step_name)
    if as_json:
        return render.attempt_list_json(workflow_id, step_name, runs)
    return render.attempt_list(runs, errors=errors)


def _state_option(value: str | None, states: type[S]) -> S | None:
    """``--state`` as a state of the kind it filters, or a usage error listing the choices."""
    if value is None:
        return None
    try:
        return states(value.lower())
    except ValueError:
        kind = "workflow" if states is WorkflowState else "step"
        raise click.BadParameter(
            f"{value!r} is not a {kind} state; choose one of: {', '.join(states)}", param_hint="--state"
        ) from None


def _read(query: Query, workflow_id: str, only: StepState | None) -> render.Snapshot:
    """The workflow, its summary and its steps, read until the three agree.

    They are three reads, each in its own snapshot: a transition committed
    between two of them would show (and a watch print) a view that never was,
    such as a step already discarded in a workflow still running, or a failed
    workflow whose last step runs. A workflow that keeps moving may keep them
    apart: after ``CONSISTENT_READ_TRIES`` the last reading is shown.
    """
    snap = _read_once(query, workflow_id, only)
    for _ in range(CONSISTENT_READ_TRIES - 1):
        counted = {state: 0 for state in StepState} | Counter(step.state for step in snap.steps)
        if snap.record.state == snap.summary.state and snap.summary.counts == counted:
            break
        snap = _read_once(query, workflow_id, only)
    return snap


def _read_once(query: Query, workflow_id: str, only: StepState | None) -> render.Snapshot:
    record, summary = query.get_workflow(workflow_id), query.workflow_status(workflow_id)
    if record is None or summary is None:
        raise WorkflowNotFoundError(f"workflow {workflow_id} no longer exists (pruned?)")
    steps = query.get_workflow_jobs(workflow_id)
    facts = query.outcome_facts([workflow_id]).get(workflow_id, OutcomeFacts())
    return render.Snapshot(record, summary, steps, only, facts)


def _show(snap: render.Snapshot, *, as_json: bool, errors: bool, compact: bool = False) -> str:
    if as_json:
        return render.workflow_detail_json(snap, indent=None if compact else 2)
    return render.workflow_detail(snap, errors=errors)


def _watch(
    query: Query, workflow_id: str, only: StepState | None, interval: float, *, as_json: bool, errors: bool
) -> int:
    """Read every ``interval`` seconds until the workflow settles; its outcome's exit code.

    On a terminal the text view is redrawn in place each time (its clocks
    move); into a pipe or a file, and as JSON (one document per line), a
    view is printed only when a state or an attempt changed, so a log of a
    long watch stays short. Ctrl-C stops watching cleanly (exit 130).
    """
    redraw = not as_json and sys.stdout.isatty()
    printed = None
    try:
        while True:
            snap = _read(query, workflow_id, only)
            if redraw:
                click.clear()
                click.echo(_show(snap, as_json=False, errors=errors))
            elif snap.fingerprint() != printed:
                click.echo(_show(snap, as_json=as_json, errors=errors, compact=True))
                printed = snap.fingerprint()
            if snap.summary.state != WorkflowState.RUNNING:
                return OUTCOME_EXIT_CODES[snap.summary.state]
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped watching", err=True)
        return EXIT_INTERRUPTED
