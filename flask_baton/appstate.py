"""What flask_baton keeps per Flask app (``app.extensions["baton"]``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy import Engine

from .config import BatonConfig
from .database import read_connection
from .events.transport import Transport
from .query import Query
from .queues import Queues
from .schema_check import SchemaCheck
from .steps import Step
from .store.reads import load_label

if TYPE_CHECKING:
    from .extension import Baton

_LABEL_CACHE_SIZE = 4096


@dataclass
class AppState:
    """One app's engine, queues and config, shared by every flask_baton part."""

    baton: Baton
    app: Flask
    config: BatonConfig
    engine: Engine
    queues: Queues = field(init=False)
    events: Transport = field(init=False)
    query: Query = field(init=False)
    schema_check: SchemaCheck = field(init=False)
    _labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.query = Query(self.engine)
        self.schema_check = SchemaCheck(self.engine)

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
        return self.baton.steps.get(task)

    def label(self, workflow_id: str) -> str:
        """A workflow's name; names never change, so they are cached."""
        label = self._labels.get(workflow_id)
        if label is None:
            with read_connection(self.engine) as conn:
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
        self.queues.close()
        self.engine.dispose()


def worker_id() -> str:
    """This consumer process as events and the dashboard show it (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"
