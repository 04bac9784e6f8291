"""``BATON_*`` settings as deployments give them: strings parsed, typos warned about."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from flask_baton import ConfigError, ConfigWarning

from .apps import close_app, create_app, environment_for
from .conftest import sqlite_settings


def config_of(tmp_path: Path, **settings: Any) -> Any:
    """The checked ``BatonConfig`` of a test app given ``settings``."""
    app = create_app({**sqlite_settings(tmp_path, tmp_path / "ledger"), **settings})
    close_app(app)
    return app.extensions["baton"].config


@pytest.mark.parametrize(
    ("key", "text", "field", "expected"),
    [
        ("BATON_SWEEP_INTERVAL", "30", "sweep_interval", 30.0),
        ("BATON_EVENT_RETENTION", "1.5", "event_retention", 1.5),
        ("BATON_PRUNE_MAX_AGE", " 86400 ", "prune_max_age", 86400.0),
        ("BATON_DEBUG_CAPTURE_MAX_BYTES", "4096", "debug_capture_max_bytes", 4096),
        ("BATON_PRUNE", "true", "prune", True),
        ("BATON_PRUNE", "false", "prune", False),
        ("BATON_PRUNE", "1", "prune", True),
        ("BATON_PRUNE", "0", "prune", False),
        ("BATON_PRUNE", "Yes", "prune", True),
        ("BATON_DEBUG_CAPTURE", "no", "debug_capture", False),
        ("BATON_DEBUG_CAPTURE", "ON", "debug_capture", True),
        (
            "BATON_PRICING",
            '{"house-model": {"input": 1, "output": 2.5}}',
            "pricing",
            {"house-model": {"input": 1, "output": 2.5}},
        ),
    ],
)
def test_string_value_is_parsed_to_its_type(tmp_path: Path, key: str, text: str, field: str, expected: Any) -> None:
    value = getattr(config_of(tmp_path, **{key: text}), field)
    assert value == expected
    assert type(value) is type(expected)


def test_settings_from_environment_variables_reach_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {
        **sqlite_settings(tmp_path, tmp_path / "ledger"),
        "BATON_SQLITE_BUSY_TIMEOUT": 5,
        "BATON_LEASE_SECONDS": 20,
        "BATON_HEARTBEAT_SECONDS": 2.5,
        "BATON_PRUNE": True,
        "BATON_PRICING": '{"m": {"input": 0, "output": 0}}',
    }
    for name, value in environment_for(settings).items():  # every value a string, as in a deployment
        monkeypatch.setenv(name, value)
    app = create_app()
    config = app.extensions["baton"].config
    assert (config.lease_seconds, config.heartbeat_seconds, config.prune) == (20.0, 2.5, True)
    assert config.pricing == {"m": {"input": 0, "output": 0}}
    with app.extensions["baton"].engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    close_app(app)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("BATON_SWEEP_INTERVAL", "30s"),
        ("BATON_SWEEP_INTERVAL", "-5"),
        ("BATON_SWEEP_INTERVAL", "nan"),
        ("BATON_LEASE_SECONDS", "inf"),
        ("BATON_DEBUG_CAPTURE_MAX_BYTES", "1.5"),
        ("BATON_PRUNE", "maybe"),
        ("BATON_PRUNE", ""),
        ("BATON_PRICING", "{not json"),
    ],
)
def test_string_that_does_not_parse_is_refused_naming_key_and_value(tmp_path: Path, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, **{key: text})
    assert str(caught.value).startswith(key)
    assert repr(text) in str(caught.value)


def test_json_that_parses_is_still_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"BATON_PRICING\['m'\] must be a mapping with 'input' and 'output'"):
        config_of(tmp_path, BATON_PRICING='{"m": {"input": 1}}')
    with pytest.raises(ConfigError, match="BATON_PRICING must be a mapping of model -> prices"):
        config_of(tmp_path, BATON_PRICING="[1, 2]")


def test_unknown_key_warns_once_with_the_closest_known_key(tmp_path: Path) -> None:
    with pytest.warns(ConfigWarning) as caught:
        config = config_of(tmp_path, BATON_SWEEP_INTERVALL="30")
    assert [str(w.message) for w in caught] == [
        "BATON_SWEEP_INTERVALL is not a flask_baton setting and is ignored; did you mean BATON_SWEEP_INTERVAL?"
    ]
    assert caught[0].filename.endswith("apps.py")  # where init_app was called
    assert config.sweep_interval == 60.0


def test_unknown_key_with_nothing_close_warns_without_a_guess(tmp_path: Path) -> None:
    with pytest.warns(ConfigWarning) as caught:
        config_of(tmp_path, BATON_XYZZY=1)
    assert [str(w.message) for w in caught] == ["BATON_XYZZY is not a flask_baton setting and is ignored"]


def test_known_keys_and_other_extensions_keys_are_not_warned_about(tmp_path: Path) -> None:
    first = create_app(sqlite_settings(tmp_path, tmp_path / "ledger"))
    close_app(first)
    every_setting = {key: value for key, value in first.config.items() if key.startswith("BATON_")}
    assert len(every_setting) > 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config_of(tmp_path, **every_setting, SQLALCHEMY_ECHO=False, BATONS="not ours")
