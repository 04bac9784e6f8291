"""The chaos soak's app factory and steps (``python -m bench.chaos``).

Kept apart from ``bench/app.py`` (the benchmark's). ``create_app()`` with no
argument reads its settings, with their types, from one JSON environment
variable (``CHAOS_APP_SETTINGS``), so each consumer subprocess started as

    flask --app bench.chaos_app:create_app baton worker -w 2 --delay 0.005 --max-delay 0.05

builds the same app as the driver that inserts the workflows.

Every step run appends JSON lines to the ledger named by ``CHAOS_LEDGER``
(``O_APPEND``: lines from threads and processes never interleave):

- ``run`` when the function starts (with ``t``, the wall clock, and ``pid``);
- ``done`` just before it returns its value, ``error`` if it raises;
- ``rescued`` from a ``plugin_rescued`` receiver, each time the sweep of a
  consumer rescues a step (the sweep runs inside the consumers).

A step's result depends only on its args and its inputs, so the driver can
compute every expected result: ``value + the sum of every number in its
inputs`` (a sub-workflow's join result is a dict of numbers).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app, has_app_context
from flask_sqlalchemy import SQLAlchemy

from flask_baton import Baton, Job, telemetry

ENV_SETTINGS = "CHAOS_APP_SETTINGS"
LEDGER_KEY = "CHAOS_LEDGER"

baton = Baton()


def numeric_total(value: Any) -> int:
    """The sum of every number in a result (ints, nested dicts and lists; None is 0)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError(f"unexpected boolean in a chaos result: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return sum(numeric_total(item) for item in value.values())
    if isinstance(value, list):
        return sum(numeric_total(item) for item in value)
    raise TypeError(f"unexpected {type(value).__name__} in a chaos result: {value!r}")


def write_ledger(kind: str, **fields: Any) -> None:
    """Append one line to the ledger of the current app (no-op outside a chaos app)."""
    if not has_app_context():
        return
    path = current_app.config.get(LEDGER_KEY)
    if not path:
        return
    line = json.dumps({"kind": kind, "pid": os.getpid(), "t": time.time(), **fields}, separators=(",", ":"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _note(kind: str, job: Job, **extra: Any) -> None:
    write_ledger(kind, workflow_id=job.workflow_id, step=job.step_name, attempt=job.attempt, **extra)


@contextlib.contextmanager
def _ledgered(job: Job) -> Iterator[None]:
    """Note the run, then ``done`` or ``error``; pause ``ms`` milliseconds first."""
    _note("run", job)
    try:
        ms = float(job.args.get("ms", 0))
        if ms > 0:
            time.sleep(ms / 1000)
        yield
    except BaseException as exc:
        _note("error", job, error=f"{type(exc).__name__}: {exc}"[:300])
        raise
    _note("done", job)


# retries: a PostgreSQL connection dropped while the function itself reads its
# inputs can fail that run (flask_baton rides out outages up to ~8 s, then
# lets the error through); the retry must then succeed, not fail the workflow.
@baton.step(retries=3, retry_delay=0.05)
def work(job: Job) -> int:
    """``value`` + the sum of every number in the inputs, after ``ms`` milliseconds."""
    with _ledgered(job):
        return int(job.args["value"]) + sum(numeric_total(v) for v in job.results().values())


@baton.step(retries=3, retry_delay=0.05)
def spread(job: Job) -> int:
    """Dynamic fan-out: add ``items`` steps ``item:<i>`` (value i+1) and a ``total`` fan-in over them."""
    with _ledgered(job):
        names = []
        for index in range(int(job.args["items"])):
            name = f"item:{index}"
            job.add_step(name, work.new(value=index + 1, ms=job.args.get("item_ms", 0)), deps=[job.step_name])
            names.append(name)
        job.add_step("total", work.new(value=0), deps=names)
        return int(job.args["value"]) + sum(numeric_total(v) for v in job.results().values())


def _on_rescued(_sender: Any, **event: Any) -> None:
    write_ledger(
        "rescued",
        workflow_id=event["workflow_id"],
        step=event["step_name"],
        attempt=event["attempt"],
        worker=event["worker"],
    )


# Receivers are process-wide; write_ledger does nothing in apps without a ledger.
telemetry.plugin_rescued.connect(_on_rescued, weak=False)


def settings_from_env() -> dict[str, Any]:
    raw = os.environ.get(ENV_SETTINGS)
    if not raw:
        raise RuntimeError(f"{ENV_SETTINGS} is not set: bench.chaos starts the consumers with it")
    return json.loads(raw)


def environment_for(settings: dict[str, Any]) -> dict[str, str]:
    """Environment variables that make ``create_app()`` rebuild ``settings`` (types kept)."""
    return {ENV_SETTINGS: json.dumps(settings)}


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """The chaos app; ``settings`` (default: from the environment) go into ``app.config``."""
    app = Flask("baton_chaos")
    app.config.update(settings_from_env() if settings is None else settings)
    db = SQLAlchemy()
    db.init_app(app)
    baton.init_app(app, db=db)
    return app
