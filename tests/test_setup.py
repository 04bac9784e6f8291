"""Extension setup: config checks, registration errors, schema install and upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import inspect, select

from flask_baton import Baton, ConfigError, Workflow
from flask_baton.store import migrations
from flask_baton.store import tables as store_tables

from .apps import close_app, create_app, open_app
from .conftest import sqlite_settings
from .steps import baton, constant
from .support import LINUX_PROC, open_files


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("BATON_SQLITE_SYNCHRONOUS", "SOMETIMES", "BATON_SQLITE_SYNCHRONOUS must be one of"),
        ("BATON_SQLITE_BUSY_TIMEOUT", -1, "BATON_SQLITE_BUSY_TIMEOUT must be a positive number"),
        ("BATON_SQLITE_BUSY_TIMEOUT", "five", "BATON_SQLITE_BUSY_TIMEOUT must be a positive number"),
        ("BATON_HUEY_URL", "amqp://localhost", "BATON_HUEY_URL must start with"),
        ("BATON_HUEY_NAME", "", "BATON_HUEY_NAME must be a non-empty string"),
    ],
)
def test_bad_config_value_is_refused_naming_the_key(tmp_path: Path, key: str, value: object, expected: str) -> None:
    settings = sqlite_settings(tmp_path, tmp_path / "ledger")
    settings[key] = value
    with pytest.raises(ConfigError, match=expected):
        create_app(settings)


def test_in_memory_sqlite_is_refused_with_the_reason(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, tmp_path / "ledger")
    settings["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    with pytest.raises(ConfigError, match="in-memory SQLite"):
        create_app(settings)


def test_init_app_twice_on_one_app_is_refused(tmp_path: Path) -> None:
    with open_app(sqlite_settings(tmp_path, tmp_path / "ledger")) as app:
        with pytest.raises(RuntimeError, match="already registered"):
            baton.init_app(app)


def test_using_baton_on_an_app_without_init_app_says_so(tmp_path: Path) -> None:
    other = Flask("other")
    with other.app_context(), pytest.raises(RuntimeError, match="did you call baton.init_app"):
        baton.query.list_workflows()
    with other.app_context(), pytest.raises(RuntimeError, match="did you call baton.init_app"):
        Workflow("x").add("a", constant.new()).insert()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mysql+pymysql://user:secret@db.example/app", r"mysql through pymysql\)\. .*MySQL has neither"),
        (
            "postgresql+psycopg2://user:secret@db.example/app",
            r"postgresql through psycopg2\)\. .*psycopg2 has no transaction\(\) block.*"
            r"write the URL as postgresql\+psycopg://user:\*\*\*@db.example/app",
        ),
        ("sqlite+aiosqlite:///app.db", r"sqlite through aiosqlite\)"),
    ],
)
def test_a_database_or_driver_flask_baton_cannot_run_on_is_refused_at_init_app_saying_which_it_can(
    tmp_path: Path, url: str, why: str
) -> None:
    settings = {**sqlite_settings(tmp_path, tmp_path / "ledger"), "BATON_DATABASE_URI": url}
    with pytest.raises(ConfigError, match=why) as refused:
        create_app(settings)
    message = str(refused.value)
    assert "supports SQLite (sqlite:///path, Python's sqlite3) and PostgreSQL through psycopg 3" in message
    assert "secret" not in message
    assert not (tmp_path / "huey.db").exists()  # refused before anything was made


def test_app_without_a_database_is_refused(tmp_path: Path) -> None:
    app = Flask("nodb")
    with pytest.raises(ConfigError, match="needs a database"):
        Baton().init_app(app)


def test_defaults_are_filled_into_app_config(tmp_path: Path) -> None:
    with open_app(sqlite_settings(tmp_path, tmp_path / "ledger")) as app:
        assert app.config["BATON_SQLITE_SYNCHRONOUS"] == "NORMAL"
        assert app.config["BATON_SQLITE_BUSY_TIMEOUT"] == 30.0


def test_sqlite_connections_use_wal_busy_timeout_and_configured_synchronous(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, tmp_path / "ledger")
    settings["BATON_SQLITE_SYNCHRONOUS"] = "full"
    with open_app(settings) as app, app.extensions["baton"].engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), ("FULL", 2), ("off", 0)])
def test_the_queue_file_runs_at_the_database_s_synchronous_level(
    tmp_path: Path, setting: str | None, expected: int
) -> None:
    """Huey's own default fsyncs every enqueue and dequeue; the sweep refills a queue that lost messages."""
    settings = sqlite_settings(tmp_path, tmp_path / "ledger")
    if setting is not None:
        settings["BATON_SQLITE_SYNCHRONOUS"] = setting
    with open_app(settings) as app:
        queues = app.extensions["baton"].queues
        for huey in (queues.huey(), queues.huey("llm")):
            with huey.storage.db() as cursor:
                assert cursor.execute("PRAGMA synchronous").fetchone()[0] == expected, huey.name


def test_a_huey_the_app_passes_keeps_its_own_synchronous_level(tmp_path: Path) -> None:
    from huey import SqliteHuey

    app = Flask("own-huey")
    app.config["BATON_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.db'}"
    huey = SqliteHuey("own", filename=str(tmp_path / "huey.db"), results=False, fsync=True)
    Baton(app, huey=huey)
    try:
        with huey.storage.db() as cursor:
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, as fsync=True asked
    finally:
        app.extensions["baton"].close()


def test_baton_can_be_given_app_db_and_huey_in_the_constructor(tmp_path: Path) -> None:
    from huey import SqliteHuey

    app = Flask("direct")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.db'}"
    db = SQLAlchemy(app)
    huey = SqliteHuey("direct", filename=str(tmp_path / "huey.db"))
    direct = Baton(app, db=db, huey=huey)
    try:
        assert direct.state(app) is app.extensions["baton"]
        assert direct.state(app).queues.huey() is huey
    finally:
        close_app(app)


@LINUX_PROC
def test_close_leaves_no_file_of_flask_baton_open(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path, tmp_path / "ledger"))
    try:
        with app.app_context():
            baton.create_schema()
            Workflow("w").add("a", constant.new()).insert()  # a message in SqliteHuey's file
            app.extensions["baton"].queues.enqueue_many(["x", "y"], "other", None)  # a named queue's too
            assert baton.query.list_workflows().workflows
        assert open_files(str(tmp_path)), "nothing is open: this test would prove nothing"

        baton.close(app)

        assert open_files(str(tmp_path)) == []
    finally:
        close_app(app)


def test_create_schema_is_idempotent_and_records_the_version(app: Flask) -> None:
    baton_state = app.extensions["baton"]
    assert baton.create_schema() == (migrations.SCHEMA_VERSION, migrations.SCHEMA_VERSION)
    tables = set(inspect(baton_state.engine).get_table_names())
    for name in ("baton_workflows", "baton_nodes", "baton_step_stats", "baton_debug_logs", "baton_completions"):
        assert name in tables
    with baton_state.engine.connect() as conn:
        assert conn.execute(select(store_tables.schema_versions.c.version)).scalars().all() == [
            migrations.SCHEMA_VERSION
        ]


def test_upgrade_applies_newer_migrations_in_place_and_keeps_rows(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    Workflow("kept").add("a", constant.new()).insert()
    newer = migrations.SCHEMA_VERSION + 1

    def add_note_column(conn: object) -> None:
        conn.execute(text("ALTER TABLE baton_workflows ADD COLUMN note VARCHAR(40)"))  # type: ignore[attr-defined]

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", newer)
    monkeypatch.setitem(migrations.MIGRATIONS, newer, add_note_column)
    assert baton.create_schema() == (newer - 1, newer)
    assert baton.create_schema() == (newer, newer)
    engine = app.extensions["baton"].engine
    assert "note" in {c["name"] for c in inspect(engine).get_columns("baton_workflows")}
    assert [w.name for w in baton.query.list_workflows().workflows] == ["kept"]


def test_version_1_database_is_upgraded_in_place_and_its_waiting_steps_still_run(app: Flask) -> None:
    from sqlalchemy import text

    from .support import ThreadConsumer, make_version, wait_finished

    wf = Workflow("from-v1").add("a", constant.new(value=2)).add("b", constant.new(value=3), deps=["a"])
    engine = app.extensions["baton"].engine
    make_version(app, 1)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO baton_workflows (id, name, state, total_steps, unsettled, created_at) "
                "VALUES ('w1', 'from-v1', 'running', 2, 2, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO baton_nodes (id, workflow_id, step_name, position, task, args, state, "
                "attempt, deps_pending, created_at) VALUES "
                "('n1', 'w1', 'a', 0, :task, '{\"value\": 2}', 'available', 0, 0, 0), "
                "('n2', 'w1', 'b', 1, :task, '{\"value\": 3}', 'pending', 0, 1, 0)"
            ),
            {"task": constant.name},
        )
        conn.execute(text("INSERT INTO baton_edges (workflow_id, step_name, dep_name) VALUES ('w1', 'b', 'a')"))

    assert baton.create_schema() == (1, migrations.SCHEMA_VERSION)
    assert "dependents_version" in {c["name"] for c in inspect(engine).get_columns("baton_nodes")}
    wf.insert()
    with ThreadConsumer(app, workers=2):
        app.extensions["baton"].queues.enqueue_many(["n1"], constant.queue, None)
        assert wait_finished(app, "w1").state == "completed"
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert [s.result for s in baton.query.get_workflow_jobs("w1")] == [2, 3]


def test_bad_postgres_commit_level_is_refused_naming_the_key(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, tmp_path / "ledger")
    with pytest.raises(ConfigError, match="BATON_POSTGRES_SYNCHRONOUS_COMMIT must be one of off, local"):
        create_app({**settings, "BATON_POSTGRES_SYNCHRONOUS_COMMIT": "sometimes"})


@pytest.mark.parametrize("settings", ["postgres-redis"], indirect=True)
@pytest.mark.parametrize(
    ("app_overrides", "expected"), [({}, "off"), ({"BATON_POSTGRES_SYNCHRONOUS_COMMIT": "on"}, "on")]
)
def test_postgres_connections_use_the_configured_commit_durability(app: Flask, expected: str) -> None:
    with app.extensions["baton"].engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == expected


def test_relative_sqlite_paths_are_files_in_the_instance_folder_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .support import ThreadConsumer, wait_finished

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    instance = tmp_path / "instance"  # not there yet: SQLite would not create it
    app = Flask("relative", instance_path=str(instance))
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///app.db",
        BATON_DATABASE_URI="sqlite:///baton/baton.db",
        BATON_HUEY_URL="sqlite:///queues/huey.db",
        TEST_LEDGER=str(tmp_path / "ledger"),
    )
    SQLAlchemy(app)
    baton.init_app(app)
    state = app.extensions["baton"]
    try:
        assert state.engine.url.database == str(instance / "baton" / "baton.db")
        assert state.queues.huey().storage.filename == str(instance / "queues" / "huey.db")
        baton.create_schema(app)
        with app.app_context(), ThreadConsumer(app, workers=1):
            wf = Workflow("relative").add("a", constant.new(value=1))
            wf.insert()
            assert wait_finished(app, wf.workflow_id).state == "completed"
    finally:
        close_app(app)
    assert list(elsewhere.iterdir()) == []
