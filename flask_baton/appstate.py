"""What flask_baton keeps per Flask app (``app.extensions["baton"]``), and the one way to find it.

``extension.build_state`` makes the whole ``AppState`` in ``init_app``; it is
frozen, so no part of flask_baton completes or swaps a field later, and it
holds the app's step registry, not the ``Baton`` that made it, so nothing
below the extension imports the extension. Every part that needs the
current app's state calls ``get_state()``, which fails one way
(``SetupError``) when there is no app or flask_baton is not on it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask, current_app, has_app_context
from sqlalchemy import Engine

from .config import BatonConfig
from .errors import SetupError
from .events.transport import Transport
from .limiter import Limiter
from .query import Query
from .queues import Queues
from .schedule import Schedule
from .schema_check import SchemaCheck
from .steps import Step
from .store import Store
from .store.workflow_reads import load_label

#: Where ``init_app`` keeps the state, in ``app.extensions``.
EXTENSION_KEY = "baton"
_LABEL_CACHE_SIZE = 4096


@dataclass(frozen=True, eq=False)
class AppState:
    """One app's config, store, queues, event transport and readers, shared by every flask_baton part.

    ``store`` sends every statement; ``steps`` is the registry of the
    ``Baton`` that was given the app (the same dict, so steps declared after
    ``init_app`` are found too); ``schedules`` its schedules, the same way.
    """

    app: Flask
    config: BatonConfig
    store: Store
    steps: Mapping[str, Step]
    queues: Queues
    events: Transport
    query: Query
    schema_check: SchemaCheck
    #: Where the buckets of the rate limits live (Redis, or the database).
    limiter: Limiter
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    _labels: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        """The store's engine, for the readers that take one (``Query``, ``Stats``, the event feed)."""
        return self.store.engine

    def ready(self) -> AppState:
        """This state, once the database holds flask_baton's current schema (else ``SchemaError``).

        Every way in that touches the tables (insert, queries, CLI, dashboard,
        a consumer starting) goes through here; only the first call per
        process reads the database.
        """
        self.schema_check.ensure()
        return self

    def step(self, task: str) -> Step | None:
        """The registered step called ``task``, if this process has it."""
        return self.steps.get(task)

    def label(self, workflow_id: str) -> str:
        """A workflow's name; names never change, so they are cached."""
        label = self._labels.get(workflow_id)
        if label is None:
            with self.store.read() as conn:
                label = load_label(conn, workflow_id)
            if len(self._labels) >= _LABEL_CACHE_SIZE:
                self._labels.clear()
            self._labels[workflow_id] = label
        return label

    def remember_label(self, workflow_id: str, label: str) -> None:
        """Seed the cache with a workflow this process just inserted."""
        self._labels[workflow_id] = label

    def close(self) -> None:
        """Release every connection this app's flask_baton holds (see ``Baton.close``)."""
        self.events.close()
        self.limiter.close()
        self.queues.close()
        self.store.close()


def get_state(app: Flask | None = None) -> AppState:
    """flask_baton's state for ``app`` (default: the current app); ``SetupError`` if there is none.

    The schema is not checked here: callers that touch the tables use
    ``get_state().ready()``.
    """
    if app is None:
        if not has_app_context():
            raise SetupError(
                "no Flask app context: call this inside `with app.app_context():` or a request, or pass the app"
            )
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, AppState):
        raise SetupError("flask_baton is not registered on this app: did you call baton.init_app(app)?")
    return state


def worker_id() -> str:
    """This consumer process as events and the dashboard show it (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"
