"""The pacing benchmark's app and its one rate-limited step (``python -m bench.pacing``).

``create_app()`` with no argument reads its settings, with their types, from
one JSON environment variable (``PACING_APP_SETTINGS``), so each consumer
subprocess started as ``flask --app bench.pacing_app:create_app baton worker``
builds the same app as the driver that inserts the workflow.
``PACING_WINDOW`` (seconds, default 60) is the window ``rpm`` and ``tpm``
count in (``flask_baton.limits.MINUTE``), so a quick run can cross several.

Every run of ``call`` appends one JSON line to the ledger ``PACING_LEDGER``
(``O_APPEND``: lines from threads and processes never interleave): when its
call was counted (``job.rate_limit.at``), the tokens counted, its attempt,
and when its function started and ended. A step that ran twice has two lines.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from flask_baton import Baton, Job, limits

ENV_SETTINGS = "PACING_APP_SETTINGS"
#: The key every call counts against.
KEY = "openai"

baton = Baton()


@baton.step()
def start(job: Job) -> None:
    """The fan-out's root (not rate-limited)."""


@baton.step(rate_limit=KEY, tokens=lambda job: int(job.args["tokens"]))
def call(job: Job) -> dict[str, Any]:
    """A "model call": sleep ``pause`` seconds, record ``tokens`` used (the estimate), note the run."""
    started = time.time()
    if job.args["pause"]:
        time.sleep(float(job.args["pause"]))
    tokens = int(job.args["tokens"])
    job.record_usage(model="gpt-4o-mini", input_tokens=tokens // 2, output_tokens=tokens - tokens // 2)
    grant = job.rate_limit
    run = {
        "step": job.step_name,
        "attempt": job.attempt,
        "at": grant.at if grant else None,
        "tokens": tokens,
        "start": started,
        "end": time.time(),
    }
    fd = os.open(current_app.config["PACING_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(run) + "\n").encode())
    finally:
        os.close(fd)
    return run


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """Build the pacing app; ``settings`` go into ``app.config`` (None: from ``PACING_APP_SETTINGS``)."""
    if settings is None:
        settings = json.loads(os.environ[ENV_SETTINGS])
    limits.MINUTE = float(settings.get("PACING_WINDOW", 60.0))  # read by init_app, below
    app = Flask("baton_pacing")
    app.config.update(settings)
    db = SQLAlchemy()
    db.init_app(app)
    baton.init_app(app, db=db)
    return app
