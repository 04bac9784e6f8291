"""The app factory of the fault tests' consumer subprocesses.

``tests.apps.create_app()`` reads its settings from the environment as
strings, which is right for URLs and names but fails config validation for
durations (``BATON_LEASE_SECONDS="2.0"`` is not a number). This factory turns
the numeric and boolean ``BATON_*`` settings back into numbers and flags,
then builds the very same app::

    flask --app tests.fault_app:create_app baton worker
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import apps

#: ``BATON_*`` keys whose values are seconds.
NUMERIC_KEYS = frozenset({
    "BATON_SQLITE_BUSY_TIMEOUT",
    "BATON_SWEEP_INTERVAL",
    "BATON_LEASE_SECONDS",
    "BATON_HEARTBEAT_SECONDS",
    "BATON_PRUNE_MAX_AGE",
    "BATON_DEBUG_LOG_MAX_AGE",
    "BATON_EVENT_RETENTION",
})
#: ``BATON_*`` keys whose values are True or False.
FLAG_KEYS = frozenset({"BATON_PRUNE"})


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings ``apps.environment_for`` wrote, with their types restored."""
    environ = os.environ if environ is None else environ
    prefix = apps.ENV_PREFIX
    settings: dict[str, Any] = {key[len(prefix):]: value for key, value in environ.items() if key.startswith(prefix)}
    for key in NUMERIC_KEYS & settings.keys():
        settings[key] = float(settings[key])
    for key in FLAG_KEYS & settings.keys():
        if settings[key] not in ("True", "False"):
            raise ValueError(f"{prefix}{key} must be True or False, got {settings[key]!r}")
        settings[key] = settings[key] == "True"
    return settings


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """``tests.apps.create_app`` with settings from the environment, typed."""
    return apps.create_app(settings_from_env() if settings is None else settings)
