"""The flask_baton side of the benchmark: its steps and its app factory.

``create_app()`` with no argument reads its settings from ``BENCH_APP_*``
environment variables, so the consumer subprocess started with
``flask --app bench.app:create_app baton worker ...`` builds the same app as
the driver that inserts the workflows.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from huey.signals import SIGNAL_EXECUTING

from flask_baton import Baton, Job, telemetry

from . import counters, ledger

ENV_PREFIX = "BENCH_APP_"

baton = Baton()


@baton.step()
def noop(job: Job) -> None:
    """A no-op step: note that it ran, store no result."""
    ledger.write("x", job.args["k"])


@baton.step()
def value(job: Job) -> int:
    """A no-op step that returns a small result for a fan-in to read."""
    ledger.write("x", job.args["k"])
    return int(job.args.get("v", 1))


@baton.step()
def fan_in(job: Job) -> int:
    """Read every dependency's result (one query) and sum them."""
    total = sum(v for v in job.results().values() if v is not None)
    ledger.write("x", job.args["k"])
    return total


def _on_snoozed(_sender: Any, **event: Any) -> None:
    ledger.write("s", f"{event['workflow_id']}:{event['step_name']}")


# Counts snoozes of any bench step (none are expected: nothing here snoozes,
# and a fan-in that was delivered too early would show up here or as a
# delivery without an execution).
telemetry.step_signal("snoozed").connect(_on_snoozed, weak=False)


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """Build the benchmark app; ``settings`` go into ``app.config``."""
    if settings is None:  # the consumer: also count its statements if the benchmark asks
        counters.install_from_env()
        settings = {k[len(ENV_PREFIX) :]: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    app = Flask("baton_bench")
    app.config.update(settings)
    db = SQLAlchemy()
    db.init_app(app)
    baton.init_app(app, db=db)
    huey = app.extensions["baton"].queues.huey()

    @huey.signal(SIGNAL_EXECUTING)
    def _delivered(_signal: str, task: Any) -> None:
        # Only step deliveries (flask_baton's periodic sweep task has no args).
        if task.args:
            ledger.write("d", str(task.args[0]))

    return app


def environment_for(settings: dict[str, Any]) -> dict[str, str]:
    """Environment variables that make ``create_app()`` rebuild ``settings``."""
    return {ENV_PREFIX + key: str(value) for key, value in settings.items()}
