"""``flask baton ...``: run a consumer, upgrade the schema, look at workflows."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import click
from flask import current_app
from flask.cli import with_appcontext

from .appstate import AppState
from .consumer import create_consumer
from .errors import WorkflowNotFoundError
from .explain import Explanation, describe_states, explain, last_line
from .export import RENDERERS, export_workflow
from .prune import PruneReport
from .prune import prune as prune_tables
from .query import WorkflowStatus
from .states import StepState
from .steps import DEFAULT_QUEUE
from .sweep import sweep as run_sweep


def _state() -> AppState:
    state = current_app.extensions.get("baton")
    if state is None:
        raise click.ClickException("flask_baton is not registered on this app (baton.init_app(app))")
    return state


@click.group("baton")
def baton_cli() -> None:
    """flask_baton workflows: consumers, schema, status, export."""


@baton_cli.command("worker")
@click.option("-w", "--workers", default=2, show_default=True, help="Worker threads or processes.")
@click.option(
    "-k", "--worker-type", type=click.Choice(["thread", "process", "greenlet"]), default="thread",
    show_default=True, help="Huey's execution model.",
)
@click.option("-q", "--queue", default=DEFAULT_QUEUE, show_default=True, help="Which named queue to consume.")
@click.option("--delay", default=0.05, show_default=True, help="Seconds between polls of an empty queue, at first.")
@click.option("--max-delay", default=1.0, show_default=True, help="Longest wait between polls of an idle queue.")
@click.option("-v", "--verbose", is_flag=True, help="Log every task (DEBUG).")
@with_appcontext
def worker(workers: int, worker_type: str, queue: str, delay: float, max_delay: float, verbose: bool) -> None:
    """Run a Huey consumer for this app's steps (Ctrl-C stops it gracefully)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(processName)s %(threadName)s %(name)s: %(message)s",
    )
    state = _state()
    consumer = create_consumer(
        state, queue, workers=workers, worker_type=worker_type, initial_delay=delay, max_delay=max_delay,
        backoff=1.15,
    )
    try:
        consumer.run()
    finally:
        state.close()


@baton_cli.group("db")
def db_group() -> None:
    """flask_baton's tables."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create flask_baton's tables, or upgrade them in place (idempotent)."""
    old, new = _state().baton.create_schema(current_app._get_current_object())  # type: ignore[attr-defined]
    if old == new:
        click.echo(f"flask_baton schema is up to date (version {new})")
    else:
        click.echo(f"flask_baton schema upgraded from version {old} to {new}")


@baton_cli.command("sweep")
@with_appcontext
def sweep() -> None:
    """Run one sweep now: rescue lost steps, finish settled workflows, announce unannounced ends, prune if on."""
    report = run_sweep(_state(), force=True)
    click.echo(
        f"rescued {len(report.rescued)} step(s), discarded {len(report.discarded)}, "
        f"re-enqueued {len(report.requeued)}, finished {len(report.finished)} settled workflow(s), "
        f"announced {len(report.announced)} workflow end(s), "
        f"trimmed {report.events_trimmed} feed event(s)"
    )
    if report.pruned is not None:
        click.echo(_pruned_line(report.pruned))


@baton_cli.command("prune")
@click.option("--max-age", type=float, default=None, help="Seconds since a workflow settled (default BATON_PRUNE_MAX_AGE).")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@with_appcontext
def prune(max_age: float | None, dry_run: bool) -> None:
    """Delete settled workflows older than --max-age, and old debug logs."""
    state = _state()
    if max_age is not None and max_age <= 0:
        raise click.BadParameter(f"must be a positive number of seconds, got {max_age}", param_hint="--max-age")
    report = prune_tables(
        state.engine, time.time(), max_age if max_age is not None else state.config.prune_max_age,
        state.config.debug_log_max_age, dry_run=dry_run,
    )
    click.echo(_pruned_line(report))


def _pruned_line(report: PruneReport) -> str:
    verb = "would remove" if report.dry_run else "removed"
    return f"{verb} {report.workflows} workflow(s), {report.steps} step(s), {report.debug_logs} debug log(s)"


@baton_cli.command("status")
@click.argument("workflow_id", required=False)
@click.option("--limit", default=20, show_default=True, help="Workflows to list without WORKFLOW_ID.")
@with_appcontext
def status(workflow_id: str | None, limit: int) -> None:
    """List recent workflows, or show each step of WORKFLOW_ID."""
    query = _state().query
    if workflow_id is None:
        page = query.list_workflows(limit=limit)
        click.echo(_table(
            ["ID", "NAME", "STATE", "STEPS", "CREATED", "DURATION"],
            [
                [w.id, w.name, w.state, f"{w.settled_steps}/{w.total_steps}", _clock(w.created_at),
                 _duration(w.created_at, w.finished_at)]
                for w in page.workflows
            ],
        ))
        return
    summary = query.workflow_status(workflow_id)
    if summary is None:
        raise click.ClickException(f"no workflow with id {workflow_id!r}")
    click.echo(_status_line(summary))
    steps = {step.step_name: step for step in query.get_workflow_jobs(workflow_id)}
    now = time.time()
    click.echo(_table(
        ["STEP", "STATE", "ATTEMPT", "STARTED", "DURATION", "WAITING ON", "ERROR"],
        [
            [s.step_name, s.state, str(s.attempt), _clock(s.started_at), _duration(s.started_at, s.finished_at),
             _waiting_on(explain(steps, s.step_name, now)), last_line(s.error)[:60]]
            for s in steps.values()
        ],
    ))


def _status_line(summary: WorkflowStatus) -> str:
    """``name (id): state, 3/4 steps settled, took 1.2s, cost $0.0042 [completed 3, executing 1]``."""
    cost = "" if summary.cost_usd is None else f", cost ${summary.cost_usd:.4f}"
    counts = ", ".join(f"{state.value} {count}" for state, count in summary.counts.items() if count)
    return (
        f"{summary.name} ({summary.id}): {summary.state}, "
        f"{summary.settled_steps}/{summary.total_steps} steps settled, "
        f"took {_seconds(summary.duration)}{cost} [{counts}]"
    )


def _waiting_on(why: Explanation) -> str:
    """The WAITING ON cell: unfinished dependencies, or when a scheduled step runs next."""
    if why.waiting_on:
        return describe_states(why.waiting_on)
    if why.state in (StepState.SNOOZED, StepState.RETRYABLE) and why.runs_at is not None:
        return f"next run {_clock(why.runs_at)}"
    return ""


@baton_cli.command("export")
@click.argument("workflow_id")
@click.option(
    "-f", "--format", "format_", type=click.Choice(sorted(RENDERERS)), default="mermaid", show_default=True,
    help="Mermaid or Graphviz DOT diagram, or JSON.",
)
@with_appcontext
def export(workflow_id: str, format_: str) -> None:
    """Print WORKFLOW_ID as a diagram (node labels carry each step's state) or as JSON."""
    try:
        click.echo(export_workflow(_state().query, workflow_id, format_), nl=False)
    except WorkflowNotFoundError as missing:
        raise click.ClickException(str(missing)) from None


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def _clock(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def _duration(start: float | None, end: float | None) -> str:
    if not start:
        return "-"
    return _seconds((end or time.time()) - start)


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
