"""``flask baton ...``: run consumers, manage the schema, look at and operate workflows.

One module per concern: ``admin`` (worker, schema, sweep, prune), ``status``
(reading workflows, once or watching), ``operate`` (cancel, retry, export),
``schedules`` (the schedules and their last runs).
Importing them registers their commands on ``baton_cli``, the group
``init_app`` adds to ``app.cli``. Exit codes are in ``common``.
"""

from __future__ import annotations

from . import admin, operate, schedules, status  # noqa: F401  (each registers its commands)
from .common import baton_cli

__all__ = ["baton_cli"]
