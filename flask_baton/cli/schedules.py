"""``flask baton schedules``: the app's schedules, with their next tick and what their last one did."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import click
from flask.cli import with_appcontext

from ..cron import utc_minute
from ..records import ScheduleStatus
from ..ticks import statuses
from .common import app_state, baton_cli
from .render import table


@baton_cli.command("schedules")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable keys, epoch seconds) instead of a table.")
@with_appcontext
def schedules(as_json: bool) -> None:
    """List the schedules (``baton.schedule``): crontab, overlap, next run, and the last tick's run (UTC)."""
    found = statuses(app_state(), time.time())
    if as_json:
        click.echo(json.dumps({"schedules": [_document(status) for status in found]}, indent=2))
    elif not found:
        click.echo("No schedules: declare one with baton.schedule(name, crontab, build).")
    else:
        click.echo(schedule_table(found))


def schedule_table(found: Sequence[ScheduleStatus]) -> str:
    """NAME, CRONTAB, OVERLAP, NEXT RUN, then the last tick: when, what it did, its workflow and its state."""
    rows = []
    for status in found:
        last = status.last
        rows.append(
            [
                status.name,
                status.crontab,
                status.overlap,
                utc_minute(status.next_run),
                utc_minute(last.tick_at if last else None),
                last.outcome if last else "-",
                (last.workflow_id if last else None) or "-",
                (last.workflow_state if last else None) or "-",
            ]
        )
    return table(["NAME", "CRONTAB", "OVERLAP", "NEXT RUN", "LAST RUN", "OUTCOME", "WORKFLOW", "STATE"], rows)


def _document(status: ScheduleStatus) -> dict[str, object]:
    last = status.last
    return {
        "name": status.name,
        "crontab": status.crontab,
        "overlap": status.overlap,
        "next_run": status.next_run,
        "last_run": None
        if last is None
        else {
            "tick_at": last.tick_at,
            "outcome": last.outcome,
            "workflow_id": last.workflow_id,
            "workflow_state": last.workflow_state,
            "detail": last.detail,
        },
    }
