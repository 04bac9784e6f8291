"""The app factory the tests (and their consumer subprocesses) use.

``create_app()`` with no arguments reads its settings from environment
variables, so ``flask --app tests.apps:create_app baton worker`` started by a
test builds the same app as the test itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from .steps import baton

ENV_PREFIX = "BATON_TEST_APP_"


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """Build an app with the test steps; ``settings`` go into ``app.config``."""
    if settings is None:
        settings = {key[len(ENV_PREFIX) :]: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
    app = Flask("baton_tests")
    app.config.update(settings)
    db = SQLAlchemy()
    db.init_app(app)
    baton.init_app(app, db=db)
    return app


#: Label of the workflows whose completion kills the consumer of ``create_app_killed_at_an_end``.
KILLED_AT_THE_END = "killed-at-the-end"


def create_app_killed_at_an_end() -> Flask:
    """``create_app()`` whose process SIGKILLs itself when a step of a ``KILLED_AT_THE_END`` workflow completes.

    The ``step.completed`` signal is sent after the completion committed
    (with a one-step workflow, its end too) and before ``workflow_finished``
    is published: the process dies in that window, taking with it what its
    event transport still held.
    """
    import signal

    from flask_baton.telemetry import step_signal

    def die(_sender: object, **payload: Any) -> None:
        if payload["workflow_label"] == KILLED_AT_THE_END:
            os.kill(os.getpid(), signal.SIGKILL)

    step_signal("completed").connect(die, weak=False)
    return create_app()


def close_app(app: Flask) -> None:
    """Release every connection ``app`` opened: flask_baton's (what ``Baton.close`` does), then its ``db``'s."""
    app.extensions["baton"].close()
    with app.app_context():
        for engine in app.extensions["sqlalchemy"].engines.values():
            engine.dispose()


@contextmanager
def open_app(settings: dict[str, Any]) -> Iterator[Flask]:
    """``create_app(settings)``, closed after the block."""
    app = create_app(settings)
    try:
        yield app
    finally:
        close_app(app)


def environment_for(settings: dict[str, Any]) -> dict[str, str]:
    """Environment variables that make ``create_app()`` rebuild ``settings`` (``None``: unset)."""
    return {ENV_PREFIX + key: str(value) for key, value in settings.items() if value is not None}
