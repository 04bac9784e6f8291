"""The chaos soak (``python -m bench.chaos``) at a small size, on both backends.

Real ``flask baton worker`` subprocesses run mixed workflows (chain,
diamond, 100-wide fan-in, dynamic fan-out, sub-workflow) while the soak
kills consumers with ``kill -9`` and starts new ones, drops the consumers'
PostgreSQL connections once (their own ``application_name`` only) and
loses the queue once. The queue loss here is a flush of this test's own
Huey keys (or SqliteHuey file), not a restart of the shared Redis, which
other tests may be using; ``python -m bench.chaos --storage postgres``
restarts Redis for real.

Storage comes from the ``settings`` fixture (a fresh PostgreSQL schema and
Huey name, or SQLite files), which removes it afterwards; the soak kills and
reaps its consumers whatever happens. Each run is bounded (deadline 50 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.chaos import Plan, run_chaos

pytestmark = pytest.mark.slow


def test_workflows_survive_kills_connection_drops_and_a_lost_queue(settings: dict[str, Any], tmp_path: Path) -> None:
    postgres = str(settings["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")
    plan = Plan(
        workflows=150,
        consumers=3 if postgres else 2,
        seconds=50.0,
        kill_every=2.0,
        max_kills=4,
        spare=1,  # one consumer lives through the run, for the memory comparison
        warm_age=2.0,
        pg_drop_at=0.25 if postgres else None,
        queue_loss="flush",
        queue_loss_at=0.5,
        lease=2.0,
        # PostgreSQL + Redis as in production: events over Redis Streams,
        # counted by a subscribe_all() in this process. SQLite: the feed table.
        events="redis" if postgres else "db",
    )
    report = run_chaos(settings, plan, tmp_path)
    text = report.format()
    print(text)  # the figures, with pytest -s
    assert report.ok, f"{report.logs}\n{text}"

    # The faults really happened while the workflows ran.
    assert len(report.faults["kills"]) >= 2, text
    assert report.faults["queue_loss"] is not None, text
    if postgres:
        assert report.faults["pg_drop"] is not None and report.faults["pg_drop"]["terminated"] > 0, text
    assert report.finished == plan.workflows
    assert set(report.shapes) == {"chain", "diamond", "wide", "dynamic", "subworkflow"}, report.shapes
