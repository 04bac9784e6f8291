"""``flask baton worker / db upgrade / sweep / prune``: running and maintaining an install."""

from __future__ import annotations

import sys
import time

import click
from flask.cli import with_appcontext

from ..consumer import configure_logging, create_consumer, log_banner
from ..steps import DEFAULT_QUEUE
from ..store import PruneReport
from ..sweep import sweep as run_sweep
from .common import app_state, baton_cli


@baton_cli.command("worker")
@click.option("-w", "--workers", default=2, show_default=True, help="Worker threads or processes.")
@click.option(
    "-k",
    "--worker-type",
    type=click.Choice(["thread", "process", "greenlet"]),
    default="thread",
    show_default=True,
    help="Huey's execution model.",
)
@click.option("-q", "--queue", default=DEFAULT_QUEUE, show_default=True, help="Which named queue to consume.")
@click.option("--delay", default=0.05, show_default=True, help="Seconds between polls of an empty queue, at first.")
@click.option("--max-delay", default=1.0, show_default=True, help="Longest wait between polls of an idle queue.")
@click.option("-v", "--verbose", is_flag=True, help="Also log successes, tracebacks and Huey's lines per task (DEBUG).")
@with_appcontext
def worker(workers: int, worker_type: str, queue: str, delay: float, max_delay: float, verbose: bool) -> None:
    """Run a Huey consumer for this app's steps (Ctrl-C stops it gracefully).

    Logs one line per failure, retry, discard, cascade and rescue on the
    flask_baton.worker logger; quiet about successes unless -v.
    """
    configure_logging(verbose)
    state = app_state(check_schema=False)  # create_consumer checks it, riding out a brief outage
    consumer = create_consumer(
        state,
        queue,
        workers=workers,
        worker_type=worker_type,
        initial_delay=delay,
        max_delay=max_delay,
        backoff=1.15,
    )
    log_banner(state, queue)
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
    old, new = app_state(check_schema=False).store.upgrade(time.time())
    if old == new:
        click.echo(f"flask_baton schema is up to date (version {new})")
    else:
        click.echo(f"flask_baton schema upgraded from version {old} to {new}")


@baton_cli.command("sweep")
@with_appcontext
def sweep() -> None:
    """Run one sweep now: rescue lost steps, finish settled workflows, announce and publish ends, take back
    dead consumers' rate-limit slots, prune if on."""
    report = run_sweep(app_state(), force=True)
    click.echo(
        f"rescued {len(report.rescued)} step(s), discarded {len(report.discarded)}, "
        f"re-enqueued {len(report.requeued)}, finished {len(report.finished)} settled workflow(s), "
        f"announced {len(report.announced)} workflow end(s), "
        f"published {len(report.republished)} end(s) again from the outbox, "
        f"trimmed {report.events_trimmed} feed event(s), "
        f"took back {len(report.slots_reclaimed)} rate-limit slot(s)"
    )
    if report.pruned is not None:
        click.echo(
            f"pruned {report.pruned.workflows} workflow(s), {report.pruned.steps} step(s), "
            f"{report.pruned.debug_logs} debug log(s)"
        )


@baton_cli.command("prune")
@click.option(
    "--max-age", type=float, default=None, help="Seconds since a workflow settled (default BATON_PRUNE_MAX_AGE)."
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing (never asks).")
@click.option("-y", "--yes", is_flag=True, help="Delete without asking (for scripts and cron).")
@with_appcontext
def prune(max_age: float | None, dry_run: bool, yes: bool) -> None:
    """Delete settled workflows older than --max-age, and old debug logs.

    Prints the rows it would delete per table, then asks before deleting
    unless --yes. Without a terminal to ask on (cron, a pipe) and without
    --yes it refuses, exit code 1, instead of waiting for an answer.
    """
    state = app_state()
    if max_age is not None and max_age <= 0:
        raise click.BadParameter(f"must be a positive number of seconds, got {max_age}", param_hint="--max-age")
    now = time.time()  # one cutoff for the count and the delete: what is deleted is what was shown

    def run(dry: bool) -> PruneReport:
        age = max_age if max_age is not None else state.config.prune_max_age
        return state.store.prune(now, age, state.config.debug_log_max_age, dry_run=dry)

    counted = run(dry=True)
    if not counted.total:
        click.echo("nothing to prune")
        return
    click.echo(_report(counted))
    if dry_run:
        return
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise click.ClickException(
                "not deleting without confirmation: standard input is not a terminal; pass --yes to delete"
            )
        click.confirm(f"Delete these {counted.total} row(s)?", abort=True)
    click.echo(_report(run(dry=False)))


def _report(report: PruneReport) -> str:
    """``would remove:`` (or ``removed:``) and one aligned line per table."""
    width = max(map(len, report.rows))
    lines = [f"  {table.ljust(width)}  {count:>8}" for table, count in report.rows.items()]
    return "\n".join(["would remove:" if report.dry_run else "removed:", *lines])
