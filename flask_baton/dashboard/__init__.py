"""The live dashboard: a blueprint at ``BATON_DASHBOARD_PREFIX`` (default ``/baton``).

- ``views.py``: the index, workflow and step pages, a step's raw result, and
  the cancel / retry actions (POST + CSRF); ``actions.py``: retrying or
  resuming a whole workflow, and the index's bulk cancel / retry;
- ``live.py``: the websockets (flask-sock on this blueprint) that keep an open
  page current with HTML fragments HTMX swaps in by id, as ``index_feed.py``
  and ``workflow_feed.py`` read them;
- ``reads.py``: the database reads both use, turned into view models:
  ``workflow_view.py`` (the workflow page, from ``step_view.py`` and
  ``graph_view.py``), ``index_view.py`` (the index's rows) and
  ``attempt_view.py`` (a step's runs, their tracebacks folded by
  ``flask_baton.tracebacks``, their captured model calls read by
  ``transcript.py``, pure), all formatted by ``formatting.py``;
- ``layout.py``: the DAG's layered left-to-right layout (pure);
- ``security.py``: ``BATON_DASHBOARD_AUTH`` and CSRF tokens.

Templates live in ``flask_baton/templates/baton/`` and static files in
``flask_baton/static/baton/`` (HTMX vendored, no CDN, no build step); a host
app overrides a template by shipping its own ``templates/baton/<name>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import Blueprint, Flask

from ..appstate import AppState
from .actions import register_actions
from .live import OpenSockets, register_sockets
from .views import register_views

#: Where ``register_dashboard`` keeps its per-app object.
EXTENSION_KEY = "baton.dashboard"

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Dashboard:
    """The dashboard mounted on one app."""

    blueprint: Blueprint
    prefix: str
    sockets: OpenSockets


def create_blueprint(sockets: OpenSockets) -> Blueprint:
    """A fresh dashboard blueprint (one per app: each app has its own sockets)."""
    bp = Blueprint(
        "baton",
        __name__,
        template_folder=os.path.join(_PACKAGE, "templates"),
        static_folder=os.path.join(_PACKAGE, "static", "baton"),
        static_url_path="/static",
    )
    register_views(bp)
    register_actions(bp)
    register_sockets(bp, sockets)
    return bp


def register_dashboard(app: Flask, state: AppState) -> None:
    """Mount the dashboard on ``app`` at ``BATON_DASHBOARD_PREFIX``."""
    prefix = state.config.dashboard_prefix
    assert prefix is not None
    sockets = OpenSockets()
    bp = create_blueprint(sockets)
    app.register_blueprint(bp, url_prefix=None if prefix == "/" else prefix)
    app.extensions[EXTENSION_KEY] = Dashboard(bp, prefix, sockets)
