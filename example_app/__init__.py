"""flask_baton's example app: research briefs as a diamond workflow.

Run it (from the repository root) with ``python3 dev.py example``, or by hand
with two processes::

    flask --app example_app baton worker     # the Huey consumer runs the steps
    flask --app example_app run              # the web pages start and show them

Out of the box everything lives in SQLite files in the app's instance folder
(zero services). Settings come, lowest priority first, from the defaults
below, ``FLASK_*`` environment variables (``FLASK_SQLALCHEMY_DATABASE_URI``,
``FLASK_BATON_HUEY_URL=redis://...``, ``FLASK_EXAMPLE_DELAY_SCALE=0``), and
the ``config`` mapping given to ``create_app`` (what tests use).

The fake model calls share one rate limit, ``fake-llm``: ``EXAMPLE_LLM_RPM``
calls a minute and ``EXAMPLE_LLM_CONCURRENCY`` at once (or a whole
``BATON_RATE_LIMITS``, which wins). One brief makes five calls and runs
unhindered; start several at once and the later calls wait their turn
("waiting for fake-llm: 20 of 20 rpm used" on the dashboard) instead of failing.

The default ``SECRET_KEY`` is for development only: it is written in this
file, so anyone can sign a session with it. It lets the dashboard's cancel and
retry buttons work out of the box (their CSRF token lives in the session).
Anywhere else, set ``FLASK_SECRET_KEY`` to a random value
(``python -c "import secrets; print(secrets.token_hex())"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from .steps import LLM_KEY, baton

__all__ = ["DEVELOPMENT_SECRET_KEY", "baton", "create_app", "db"]

#: Signs the session (the dashboard's CSRF token) in development only; see above.
DEVELOPMENT_SECRET_KEY = "flask-baton-example-development-only"

#: The app's own database; flask_baton keeps its tables in it too.
db = SQLAlchemy()


def create_app(config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """Build the example app, ready to serve or to consume on a fresh machine.

    ``config`` overrides every other setting; ``instance_path`` (absolute)
    moves the instance folder, where the default SQLite files live.
    """
    app = Flask(__name__, instance_path=instance_path)
    # The default SQLite files go here, and SQLite will not create a folder.
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=_sqlite_url(app, "example.db"),
        BATON_HUEY_URL=_sqlite_url(app, "example-huey.db"),
        SECRET_KEY=DEVELOPMENT_SECRET_KEY,  # FLASK_SECRET_KEY replaces it
        # Keep each fake model call's prompt and answer, so a step's page in
        # the dashboard shows them as a transcript (off by default: prompts
        # may hold what a production database should not keep).
        BATON_DEBUG_CAPTURE=True,
        # Multiplies the fake models' pauses: 1 is watchable, 0 is for tests.
        EXAMPLE_DELAY_SCALE=1.0,
        # The fake models' shared limit: four briefs' calls a minute, five at once.
        EXAMPLE_LLM_RPM=20,
        EXAMPLE_LLM_CONCURRENCY=5,
    )
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    app.config.setdefault(
        "BATON_RATE_LIMITS",
        {LLM_KEY: {"rpm": app.config["EXAMPLE_LLM_RPM"], "concurrency": app.config["EXAMPLE_LLM_CONCURRENCY"]}},
    )

    db.init_app(app)
    baton.init_app(app, db=db)
    # Idempotent and safe with a worker and a web process starting together,
    # so both may build the app on a machine that has never seen it.
    baton.create_schema(app)

    from .views import bp

    app.register_blueprint(bp)
    return app


def _sqlite_url(app: Flask, filename: str) -> str:
    return "sqlite:///" + os.path.join(app.instance_path, filename)
