"""``flask baton cancel / retry / export``: acting on one workflow, named by its id or a unique start of it.

Cancel and retry call ``control``, as the public ``Baton`` methods and the
dashboard do, so their checks and their planning are the same everywhere; a
refusal (a finished workflow, a step that did not fail) exits 1 and changes
nothing.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from .. import control
from ..export import RENDERERS, export_workflow
from .common import app_state, baton_cli, resolve


@baton_cli.command("cancel")
@click.argument("workflow_id")
@click.option(
    "--reason",
    default="cancelled from the command line",
    show_default=True,
    help="Stored as the error of each step cancelled.",
)
@with_appcontext
def cancel(workflow_id: str, reason: str) -> None:
    """Cancel a running workflow: every step of it not finished yet is cancelled."""
    workflow = resolve(workflow_id)
    cancelled = control.cancel_workflow(app_state(), workflow.id, reason)
    click.echo(f"cancelled workflow {workflow.id} ({workflow.name}): {_steps(cancelled, 'cancelled')}")


@baton_cli.command("retry")
@click.argument("workflow_id")
@click.argument("step", required=False)
@with_appcontext
def retry(workflow_id: str, step: str | None) -> None:
    """Run a finished workflow's discarded and cancelled steps again, or only STEP (and what its failure cancelled)."""
    workflow = resolve(workflow_id)
    state = app_state()
    rearmed = (
        control.retry_workflow(state, workflow.id) if step is None else control.retry_step(state, workflow.id, step)
    )
    click.echo(f"retrying workflow {workflow.id} ({workflow.name}): {_steps(rearmed, 're-armed')}")
    for name, why in rearmed.left_cancelled.items():
        click.echo(f"still cancelled: {name} ({why})")


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


def _steps(names: list[str], done: str) -> str:
    """``2 step(s) re-armed: fetch, parse``."""
    return f"{len(names)} step(s) {done}" + (f": {', '.join(names)}" if names else "")
