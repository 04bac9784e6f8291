"""``flask baton cancel / retry / resume / budget / signal / export``: acting on workflows named by ids or starts.

Cancel, retry and resume take several ids and call ``bulk`` / ``control``,
as the public ``Baton`` methods and the dashboard do, so their checks and
their planning are the same everywhere. Every id is resolved first (an
unknown or ambiguous one changes nothing); then each workflow is changed on
its own, a refusal (a finished workflow, a step that did not fail) skipping
it with exit code 1 while the others are still changed.
"""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from .. import budget_control, bulk, control, waits
from ..budget import dollars
from ..bulk import BulkResult
from ..errors import SignalError, WorkflowError
from ..export import RENDERERS, export_workflow
from ..records import WorkflowRecord
from .common import app_state, baton_cli, resolve


@baton_cli.command("cancel")
@click.argument("workflow_ids", metavar="ID...", nargs=-1, required=True)
@click.option(
    "--reason",
    default="cancelled from the command line",
    show_default=True,
    help="Stored as the error of each step cancelled.",
)
@click.pass_context
@with_appcontext
def cancel(ctx: click.Context, workflow_ids: tuple[str, ...], reason: str) -> None:
    """Cancel running workflows: every step of each not finished yet is cancelled."""
    workflows = _resolve_all(workflow_ids)
    results = bulk.cancel_workflows(app_state(), list(workflows), reason)
    ctx.exit(_report(results, workflows, ("cancelled workflow", "cancelled", "cancelled")))


@baton_cli.command("retry")
@click.argument("workflow_ids", metavar="ID...", nargs=-1, required=True)
@click.option("--step", help="Retry only this step of the one workflow given (and what its failure cancelled).")
@click.pass_context
@with_appcontext
def retry(ctx: click.Context, workflow_ids: tuple[str, ...], step: str | None) -> None:
    """Run finished workflows' discarded and cancelled steps again, or only --step of one.

    ``retry ID STEP`` works too: with two arguments, the second is a step of
    the first unless it names a workflow.
    """
    workflow_ids, step = _step_form(workflow_ids, step)
    if step is not None:
        workflow = resolve(workflow_ids[0])
        rearmed = control.retry_step(app_state(), workflow.id, step)
        click.echo(f"retrying workflow {workflow.id} ({workflow.name}): {_steps(rearmed, 're-armed')}")
        _still_cancelled(rearmed.left_cancelled)
        return
    workflows = _resolve_all(workflow_ids)
    results = bulk.retry_workflows(app_state(), list(workflows))
    ctx.exit(_report(results, workflows, ("retrying workflow", "re-armed", "retried")))


@baton_cli.command("resume")
@click.argument("workflow_ids", metavar="ID...", nargs=-1, required=True)
@click.pass_context
@with_appcontext
def resume(ctx: click.Context, workflow_ids: tuple[str, ...]) -> None:
    """Run again what a user's cancel stopped in each workflow; steps that failed on their own stay failed."""
    workflows = _resolve_all(workflow_ids)
    results = bulk.resume_workflows(app_state(), list(workflows))
    ctx.exit(_report(results, workflows, ("resuming workflow", "re-armed", "resumed")))


@baton_cli.command("budget")
@click.argument("workflow_id", metavar="ID")
@click.argument("usd", type=float)
@with_appcontext
def budget(workflow_id: str, usd: float) -> None:
    """Set (raise) ID's spend cap to USD dollars and release the steps the cap held.

    Steps the cap cancelled stay cancelled: ``flask baton resume ID`` runs them again.
    """
    workflow = resolve(workflow_id)
    released = budget_control.set_budget(app_state(), workflow.id, usd)
    click.echo(
        f"budget of workflow {workflow.id} ({workflow.name}) set to {dollars(usd)}: {_steps(released, 'released')}"
    )


@baton_cli.command("signal")
@click.argument("workflow_id", metavar="ID")
@click.argument("name")
@click.argument("payload", default="true")
@click.option("--by", help="Who sends it, recorded with the signal (the dashboard shows it).")
@with_appcontext
def signal(workflow_id: str, name: str, payload: str, by: str | None) -> None:
    """Send the signal NAME to a running workflow, waking the steps that wait for it.

    PAYLOAD is JSON (default: true), what the step reads with job.signal(NAME),
    e.g. '{"approved": true, "comment": "ship it"}'. A signal no step waits for
    yet is kept for the step that will; a second one of the same name is refused.
    """
    try:
        value = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise SignalError(f"PAYLOAD of signal {name!r} is not JSON: {exc}") from None
    workflow = resolve(workflow_id)
    woken = waits.signal(app_state(), workflow.id, name, value, by)
    what = _steps(woken, "woken") if woken else "kept for the step that will wait for it"
    click.echo(f"signal {name!r} sent to workflow {workflow.id} ({workflow.name}): {what}")


@baton_cli.command("export")
@click.argument("workflow_id")
@click.option(
    "-f",
    "--format",
    "format_",
    type=click.Choice(sorted(RENDERERS)),
    default="mermaid",
    show_default=True,
    help="Mermaid or Graphviz DOT diagram, or JSON.",
)
@with_appcontext
def export(workflow_id: str, format_: str) -> None:
    """Print WORKFLOW_ID as a diagram (node labels carry each step's state) or as JSON."""
    click.echo(export_workflow(app_state().query, resolve(workflow_id).id, format_), nl=False)


def _resolve_all(given: tuple[str, ...]) -> dict[str, WorkflowRecord]:
    """Every workflow named, by id, before anything changes: one unknown or ambiguous id stops it all."""
    return {workflow.id: workflow for workflow in map(resolve, given)}


def _step_form(given: tuple[str, ...], step: str | None) -> tuple[tuple[str, ...], str | None]:
    """Read ``retry ID STEP`` (the form from before several ids) as ``retry ID --step STEP``.

    The second of two arguments is a step unless it names a workflow (an
    id, or the unique start of one) and no step of the first; both is an
    error saying to use ``--step``.
    """
    if step is not None:
        if len(given) > 1:
            raise click.UsageError("--step retries a step of one workflow; give a single ID")
        return given, step
    if len(given) != 2:
        return given, None
    try:
        other = resolve(given[1])
    except WorkflowError:
        return given[:1], given[1]
    steps = {record.step_name for record in app_state().query.get_workflow_jobs(resolve(given[0]).id)}
    if given[1] in steps:
        raise click.UsageError(
            f"{given[1]!r} is a step of {given[0]} and the start of workflow {other.id}'s id; "
            f"say which: --step {given[1]}, or the whole id"
        )
    return given, None


def _report(results: list[BulkResult], workflows: dict[str, WorkflowRecord], words: tuple[str, str, str]) -> int:
    """Print a line per workflow (refusals on stderr) and, for several, the summary; the exit code.

    ``words``: what a line says a workflow is undergoing, what its steps
    underwent, and what the summary says of workflows changed. Exit code 0
    when every workflow was changed, 1 when one or more were skipped (each
    skipped one is left as it was; the others are changed).
    """
    doing, steps_done, done = words
    for result in results:
        name = workflows[result.workflow_id].name
        if result.done:
            click.echo(f"{doing} {result.workflow_id} ({name}): {_steps(result.steps, steps_done)}")
            _still_cancelled(result.left_cancelled)
        else:
            click.echo(f"skipped workflow {result.workflow_id} ({name}): {result.error}", err=True)
    if len(results) > 1:
        click.echo(bulk.summary(results, done))
    return 0 if all(result.done for result in results) else 1


def _still_cancelled(left: dict[str, str]) -> None:
    for name, why in left.items():
        click.echo(f"still cancelled: {name} ({why})")


def _steps(names: list[str], done: str) -> str:
    """``2 step(s) re-armed: fetch, parse``."""
    return f"{len(names)} step(s) {done}" + (f": {', '.join(names)}" if names else "")
