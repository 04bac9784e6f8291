"""The test app as a deployment with JSON logs builds it: the app configures logging itself.

``create_app()`` gives the root logger one handler writing each record as a
JSON object on stderr, with the record's ``extra=`` attributes as keys (what
python-json-logger or structlog's stdlib formatter do), then builds
``tests.apps``'s app from the environment::

    flask --app tests.logging_app:create_app baton worker
"""

from __future__ import annotations

import json
import logging

from flask import Flask

from . import apps

#: Attributes every ``LogRecord`` has; anything else came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per record: logger, level, message, then each ``extra=`` field."""

    def format(self, record: logging.LogRecord) -> str:
        document = {"logger": record.name, "level": record.levelname, "message": record.getMessage()}
        document.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        return json.dumps(document, default=str)


def create_app() -> Flask:
    """Configure JSON logging once per process, then build the test app."""
    root = logging.getLogger()
    if not any(isinstance(handler.formatter, JsonLines) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return apps.create_app()
