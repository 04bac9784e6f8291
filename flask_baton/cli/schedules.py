"""``flask baton schedules``: the app's schedules, with their next tick and what their last one did."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import click
from flask.cli import with_appcontext

from ..records import ScheduleStatus
from ..schedule import schedule_row
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
    rows = [
        [
            row.name,
            row.crontab,
            row.overlap,
            row.next_run,
            row.last_run,
            row.outcome or "-",
            row.workflow_id or "-",
            row.workflow_state or "-",
        ]
        for row in map(schedule_row, found)
    ]
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
