"""Every ``BATON_*`` config key: its default, its type and its check.

This is the one place config keys are named. ``read_config`` runs once per app
in ``init_app``; a bad value fails there, naming the key, instead of deep in a
consumer thread an hour later.

Values may also be given as strings, as environment variables and deployment
tools give them: ``"30"``, ``"1.5"``, ``"true"``/``"false"`` (also ``1/0``,
``yes/no``, ``on/off``), JSON for mappings. A string is converted, then
checked like any value; one that does not convert fails that check, so the
error names the key and the string. A ``BATON_*`` key not listed here is
most likely a typo: it is ignored with a ``ConfigWarning`` suggesting the
closest known key. A warning rather than a log line: ``init_app`` usually runs
before logging is set up, and a test suite that turns warnings into errors
(``filterwarnings = error``) then catches the typo in CI.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask

from .budget import BudgetAction, check_action, check_budget
from .errors import BudgetError, ConfigError, ConfigWarning
from .limits import RateLimits, parse_rate_limits
from .pricing import CostFunction, PriceTable, check_pricing

PREFIX = "BATON_"

SQLITE_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
POSTGRES_COMMIT_LEVELS = ("off", "local", "remote_write", "on", "remote_apply")


@dataclass(frozen=True)
class BatonConfig:
    """The validated ``BATON_*`` settings of one app."""

    huey_url: str
    huey_name: str | None
    database_uri: str | None
    sqlite_synchronous: str
    sqlite_busy_timeout: float
    postgres_synchronous_commit: str
    sweep_interval: float
    lease_seconds: float
    heartbeat_seconds: float
    prune: bool
    prune_max_age: float
    debug_log_max_age: float
    pubsub_url: str | None
    pubsub_prefix: str
    event_retention: float
    stream_flush: float
    dashboard_prefix: str | None
    dashboard_auth: Callable[[], Any] | None
    pricing: PriceTable | CostFunction
    debug_capture: bool
    debug_capture_max_bytes: int
    llm_timeout: float
    handoff_seconds: float
    budget_usd_per_day: float | None
    budget_action: BudgetAction
    rate_limits: RateLimits


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _optional_string(key: str, value: Any) -> str | None:
    return None if value is None else _string(key, value)


#: How a yes/no setting may be spelled in a string (case-insensitive).
FLAG_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _from_string(value: Any, convert: Callable[[str], Any]) -> Any:
    """``value`` converted if it is a string (``"30"``), else as it is.

    A string ``convert`` refuses comes back unchanged, to fail the caller's
    type check: that message names the key and the value.
    """
    if not isinstance(value, str):
        return value
    try:
        return convert(value.strip())
    except (ValueError, KeyError):
        return value


def _positive_seconds(key: str, value: Any) -> float:
    number = _from_string(value, float)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number < math.inf:
        raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    return float(number)


def _seconds_or_off(key: str, value: Any) -> float:
    number = _from_string(value, float)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < math.inf:
        raise ConfigError(f"{key} must be a number of seconds, 0 to turn it off, got {value!r}")
    return float(number)


def _flag(key: str, value: Any) -> bool:
    flag = _from_string(value, lambda text: FLAG_WORDS[text.lower()])
    if not isinstance(flag, bool):
        raise ConfigError(f"{key} must be True or False (as a string: true/false, 1/0, yes/no, on/off), got {value!r}")
    return flag


def _pricing(key: str, value: Any) -> PriceTable | CostFunction:
    return check_pricing(key, _from_string(value, json.loads))


def _prefix(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _pubsub_url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    url = _string(key, value)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{key} must be a redis:// URL (or unset for the database feed), got {value!r}")
    return url


def _url_prefix(key: str, value: Any) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value.startswith("/") or (value.endswith("/") and value != "/"):
        raise ConfigError(f"{key} must be a path like '/baton' (or None to turn the dashboard off), got {value!r}")
    return value


def _optional_callable(key: str, value: Any) -> Callable[[], bool] | None:
    if value is not None and not callable(value):
        raise ConfigError(f"{key} must be a callable returning True to allow access, got {value!r}")
    return cast("Callable[[], bool] | None", value)


def _positive_int(key: str, value: Any) -> int:
    number = _from_string(value, int)
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ConfigError(f"{key} must be a positive whole number, got {value!r}")
    return number


def _daily_budget(key: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return check_budget(_from_string(value, float), key)
    except BudgetError as error:
        raise ConfigError(f"{error} (or None for no daily cap)") from None


def _budget_action(key: str, value: Any) -> BudgetAction:
    try:
        return check_action(value, key)
    except BudgetError as error:
        raise ConfigError(str(error)) from None


def _synchronous(key: str, value: Any) -> str:
    level = str(value).upper()
    if level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ConfigError(f"{key} must be one of {', '.join(SQLITE_SYNCHRONOUS_LEVELS)}, got {value!r}")
    return level


def _synchronous_commit(key: str, value: Any) -> str:
    level = str(value).lower()
    if level not in POSTGRES_COMMIT_LEVELS:
        raise ConfigError(f"{key} must be one of {', '.join(POSTGRES_COMMIT_LEVELS)}, got {value!r}")
    return level


def _huey_url(key: str, value: Any) -> str:
    url = _string(key, value)
    if not url.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
        raise ConfigError(f"{key} must start with sqlite:/// or redis://, got {value!r}")
    return url


def _default_huey_url(app: Flask) -> str:
    return "sqlite:///" + os.path.join(app.instance_path, "baton-huey.db")


_Parse = Callable[[str, Any], Any]
#: key -> (BatonConfig field, default or a function of the app, parser)
SETTINGS: dict[str, tuple[str, Any, _Parse]] = {
    "BATON_HUEY_URL": ("huey_url", _default_huey_url, _huey_url),
    "BATON_HUEY_NAME": ("huey_name", None, _optional_string),
    "BATON_DATABASE_URI": ("database_uri", None, _optional_string),
    "BATON_SQLITE_SYNCHRONOUS": ("sqlite_synchronous", "NORMAL", _synchronous),
    "BATON_SQLITE_BUSY_TIMEOUT": ("sqlite_busy_timeout", 30.0, _positive_seconds),
    "BATON_POSTGRES_SYNCHRONOUS_COMMIT": ("postgres_synchronous_commit", "off", _synchronous_commit),
    "BATON_SWEEP_INTERVAL": ("sweep_interval", 60.0, _positive_seconds),
    "BATON_LEASE_SECONDS": ("lease_seconds", 60.0, _positive_seconds),
    "BATON_HEARTBEAT_SECONDS": ("heartbeat_seconds", 15.0, _positive_seconds),
    "BATON_PRUNE": ("prune", False, _flag),
    "BATON_PRUNE_MAX_AGE": ("prune_max_age", 7 * 86400.0, _positive_seconds),
    "BATON_DEBUG_LOG_MAX_AGE": ("debug_log_max_age", 3 * 86400.0, _positive_seconds),
    "BATON_PUBSUB_URL": ("pubsub_url", None, _pubsub_url),
    "BATON_PUBSUB_PREFIX": ("pubsub_prefix", "", _prefix),
    "BATON_EVENT_RETENTION": ("event_retention", 3600.0, _positive_seconds),
    "BATON_STREAM_FLUSH_SECONDS": ("stream_flush", 0.1, _positive_seconds),
    "BATON_DASHBOARD_PREFIX": ("dashboard_prefix", "/baton", _url_prefix),
    "BATON_DASHBOARD_AUTH": ("dashboard_auth", None, _optional_callable),
    "BATON_PRICING": ("pricing", None, _pricing),
    "BATON_DEBUG_CAPTURE": ("debug_capture", False, _flag),
    "BATON_DEBUG_CAPTURE_MAX_BYTES": ("debug_capture_max_bytes", 256 * 1024, _positive_int),
    "BATON_LLM_TIMEOUT": ("llm_timeout", 120.0, _positive_seconds),
    "BATON_HANDOFF_SECONDS": ("handoff_seconds", 0.1, _seconds_or_off),
    "BATON_BUDGET_USD_PER_DAY": ("budget_usd_per_day", None, _daily_budget),
    "BATON_BUDGET_ACTION": ("budget_action", "cancel", _budget_action),
    "BATON_RATE_LIMITS": ("rate_limits", None, parse_rate_limits),
}


def warn_unknown_keys(keys: Iterable[Any]) -> None:
    """One ``ConfigWarning`` per ``BATON_*`` key that is not a setting, naming the closest one."""
    known = [key.removeprefix(PREFIX) for key in SETTINGS]
    for key in sorted(k for k in keys if isinstance(k, str) and k.startswith(PREFIX) and k not in SETTINGS):
        close = difflib.get_close_matches(key.removeprefix(PREFIX), known, n=1)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        # stacklevel: point at the code that called init_app.
        warnings.warn(f"{key} is not a flask_baton setting and is ignored{hint}", ConfigWarning, stacklevel=4)


def read_config(app: Flask) -> BatonConfig:
    """Fill in defaults on ``app.config`` and return the checked values."""
    warn_unknown_keys(app.config)
    values: dict[str, Any] = {}
    for key, (field, default, parse) in SETTINGS.items():
        if key not in app.config:
            app.config[key] = default(app) if callable(default) else default
        values[field] = parse(key, app.config[key])
    config = BatonConfig(**values)
    if config.heartbeat_seconds >= config.lease_seconds:
        raise ConfigError(
            f"BATON_HEARTBEAT_SECONDS ({config.heartbeat_seconds:g}) must be shorter than "
            f"BATON_LEASE_SECONDS ({config.lease_seconds:g}), or live consumers would be presumed dead"
        )
    return config
