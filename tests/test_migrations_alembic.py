"""Flask-Migrate and Alembic next to flask_baton: real ``flask db`` commands, real databases.

Each test builds a small app the way a Flask team does (Flask-SQLAlchemy
models, ``Migrate``, ``Baton``), runs Flask-Migrate's commands through
Flask's CLI runner in a temporary migrations folder, and looks at what
autogenerate wrote and what the database holds afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import func, inspect, select

from flask_baton import Workflow
from flask_baton.migration import SkipBatonTables, include_name
from flask_baton.store import migrations
from flask_baton.store import tables as store_tables

from .apps import close_app
from .conftest import sqlite_settings
from .steps import baton, constant

#: One user table, then the change a team makes next (a column and a model).
USERS_V1 = "users"
LEGACY_TABLE = "legacy_reports"

AppFactory = Callable[..., Flask]

# Flask-Migrate's generated env.py tries Flask-SQLAlchemy 2's ``db.get_engine()``
# before ``db.engine``; version 3.1 warns about it, and warnings are errors here.
pytestmark = pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    """Alembic's generated env.py runs ``logging.config.fileConfig``, which
    disables every logger it does not name and replaces the root handlers;
    put them back so later tests still see flask_baton's log records."""
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers))
    loggers = {
        name: (logger.disabled, logger.level, list(logger.handlers))
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.setLevel(root_state[0])
    root.handlers[:] = root_state[1]
    for name, (disabled, level, handlers) in loggers.items():
        logger = logging.getLogger(name)
        logger.disabled, logger.level, logger.handlers[:] = disabled, level, handlers


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, ledger_path: Path) -> dict[str, Any]:
    """The app's database on each backend (Huey on a SQLite file: no consumer runs here)."""
    settings = sqlite_settings(tmp_path, ledger_path)
    if request.param == "postgres":
        # The fixture's search_path names the test's schema, so Alembic's
        # default schema (where it reflects and keeps alembic_version) is that one.
        settings["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("postgres_schema")
    return settings


@pytest.fixture
def make_app(settings: dict[str, Any], tmp_path: Path) -> Iterator[AppFactory]:
    """Build the team's app: its models, then Migrate and Baton in the order asked for."""
    built: list[tuple[Flask, SQLAlchemy]] = []

    def build(*, migrate_first: bool = True, changed_models: bool = False, **migrate_kwargs: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(settings)
        db = SQLAlchemy()
        columns = [db.Column("id", db.Integer, primary_key=True), db.Column("email", db.String(120))]
        if changed_models:
            columns.append(db.Column("nickname", db.String(40)))
            db.Table("projects", db.Column("id", db.Integer, primary_key=True), db.Column("title", db.String(80)))
        db.Table(USERS_V1, *columns)
        db.init_app(app)
        migrate = Migrate(directory=str(tmp_path / "migrations"), **migrate_kwargs)
        if migrate_first:
            migrate.init_app(app, db)
        baton.init_app(app, db=db)
        if not migrate_first:
            migrate.init_app(app, db)
        built.append((app, db))
        return app

    yield build
    for app, _db in built:
        close_app(app)


def flask(app: Flask, *args: str) -> str:
    """Run ``flask ARGS`` for ``app`` as a terminal would (no app context pushed yet)."""
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, f"flask {' '.join(args)} failed:\n{result.output}{result.exception!r}"
    return result.output


def revisions(tmp_path: Path) -> list[str]:
    """The migration files Flask-Migrate has written, oldest first."""
    return [
        p.read_text()
        for p in sorted((tmp_path / "migrations" / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime_ns)
    ]


def store_workflows(app: Flask) -> None:
    with app.app_context():
        for label in ("kept-1", "kept-2"):
            Workflow(label).add("a", constant.new(value=1)).add("b", constant.new(value=2), deps=["a"]).insert()


def baton_tables(app: Flask) -> dict[str, tuple[int, list[str], list[str]]]:
    """Each flask_baton table's row count, columns and indexes, as the database has them."""
    engine = app.extensions["baton"].engine
    inspector = inspect(engine)
    with engine.connect() as conn:
        return {
            table.name: (
                conn.execute(select(func.count()).select_from(table)).scalar_one(),
                sorted(column["name"] for column in inspector.get_columns(table.name)),
                sorted(str(index["name"]) for index in inspector.get_indexes(table.name)),
            )
            for table in store_tables.metadata.sorted_tables
        }


def app_tables(app: Flask) -> set[str]:
    return set(inspect(app.extensions["baton"].engine).get_table_names()) - set(store_tables.metadata.tables)


@pytest.mark.parametrize("migrate_first", [True, False], ids=["migrate-then-baton", "baton-then-migrate"])
def test_flask_db_migrate_never_touches_baton_tables_yet_sees_model_changes(
    make_app: AppFactory, tmp_path: Path, migrate_first: bool
) -> None:
    app = make_app(migrate_first=migrate_first)
    flask(app, "baton", "db", "upgrade")
    store_workflows(app)
    before = baton_tables(app)
    assert before["baton_workflows"][0] == 2 and before["baton_nodes"][0] == 4 and before["baton_edges"][0] == 2

    flask(app, "db", "init")
    flask(app, "db", "migrate", "-m", "users")
    flask(app, "db", "upgrade")
    assert app_tables(app) == {"alembic_version", USERS_V1}
    assert baton_tables(app) == before

    changed = make_app(migrate_first=migrate_first, changed_models=True)
    flask(changed, "db", "migrate", "-m", "nickname and projects")
    first, second = revisions(tmp_path)
    assert f"op.create_table('{USERS_V1}'" in first
    assert "add_column(sa.Column('nickname'" in second and "op.create_table('projects'" in second
    for text in (first, second):
        assert "baton_" not in text

    flask(changed, "db", "upgrade")
    assert app_tables(changed) == {"alembic_version", USERS_V1, "projects"}
    assert baton_tables(changed) == before
    flask(changed, "db", "downgrade")
    assert app_tables(changed) == {"alembic_version", USERS_V1}
    flask(changed, "db", "downgrade", "base")
    assert app_tables(changed) == {"alembic_version"}
    assert baton_tables(changed) == before
    with changed.app_context():
        assert sorted(w.name for w in baton.query.list_workflows().workflows) == ["kept-1", "kept-2"]


def test_the_apps_own_include_name_given_to_migrate_is_still_asked(make_app: AppFactory, tmp_path: Path) -> None:
    asked: list[str] = []

    def skip_legacy(name: str | None, type_: str, parent_names: Any) -> bool:
        asked.append(f"{type_}:{name}")
        return name != LEGACY_TABLE

    app = make_app(migrate_first=False, include_name=skip_legacy)
    flask(app, "baton", "db", "upgrade")
    with app.extensions["baton"].engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {LEGACY_TABLE} (id INTEGER PRIMARY KEY)")
    flask(app, "db", "init")
    flask(app, "db", "migrate")
    (generated,) = revisions(tmp_path)
    assert f"op.create_table('{USERS_V1}'" in generated
    assert LEGACY_TABLE not in generated and "baton_" not in generated
    assert f"table:{LEGACY_TABLE}" in asked
    assert not any("baton_" in name for name in asked)


BATON_MIGRATION_BODY = """
def upgrade():
    from flask_baton import migration
    migration.upgrade(op)


def downgrade():
    from flask_baton import migration
    migration.downgrade(op)
"""


def write_baton_migration(app: Flask, tmp_path: Path) -> Path:
    """``flask db revision``, then the two calls the README tells users to write."""
    flask(app, "db", "revision", "-m", "install flask_baton")
    (path,) = (tmp_path / "migrations" / "versions").glob("*.py")
    text = path.read_text()
    path.write_text(text[: text.index("\ndef upgrade():")] + BATON_MIGRATION_BODY)
    return path


def test_a_users_migration_installs_and_removes_flask_batons_schema(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app()
    flask(app, "db", "init")
    write_baton_migration(app, tmp_path)
    flask(app, "db", "upgrade")
    tables = baton_tables(app)
    assert set(tables) == set(store_tables.metadata.tables)
    assert tables["baton_schema"][0] == 1
    with app.extensions["baton"].engine.connect() as conn:
        assert migrations.current_version(conn) == migrations.SCHEMA_VERSION
    store_workflows(app)
    assert flask(app, "baton", "db", "upgrade").startswith("flask_baton schema is up to date")

    output = flask(app, "db", "migrate")  # the user's model is new; nothing of ours is
    (_, generated) = revisions(tmp_path)
    assert f"op.create_table('{USERS_V1}'" in generated and "baton_" not in generated, output

    flask(app, "db", "upgrade")
    flask(app, "db", "downgrade")  # the users table goes, flask_baton's stay
    assert baton_tables(app)["baton_workflows"][0] == 2
    flask(app, "db", "downgrade")
    assert not set(inspect(app.extensions["baton"].engine).get_table_names()) & set(store_tables.metadata.tables)


def test_offline_upgrade_of_a_baton_migration_says_to_use_the_cli(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app()
    flask(app, "db", "init")
    write_baton_migration(app, tmp_path)
    result = app.test_cli_runner().invoke(args=["db", "upgrade", "--sql"])
    assert result.exit_code != 0
    assert "flask baton db upgrade" in f"{result.output}{result.exception}"
    assert not set(inspect(app.extensions["baton"].engine).get_table_names()) & set(store_tables.metadata.tables)


def test_plain_alembic_include_name_hides_baton_tables_from_autogenerate(make_app: AppFactory) -> None:
    app = make_app()
    flask(app, "baton", "db", "upgrade")
    with app.app_context():
        user_metadata = app.extensions["sqlalchemy"].metadata
        connection = app.extensions["sqlalchemy"].engine.connect()
    with connection:

        def removed_tables(**opts: Any) -> set[str]:
            diffs = compare_metadata(MigrationContext.configure(connection, opts=opts), user_metadata)
            assert ("add_table", USERS_V1) in {(d[0], d[1].name) for d in diffs if isinstance(d, tuple)}
            return {d[1].name for d in diffs if isinstance(d, tuple) and d[0] == "remove_table"}

        assert removed_tables() == set(store_tables.metadata.tables)  # what Alembic does unfiltered
        assert removed_tables(include_name=include_name) == set()
        asked: list[str | None] = []
        composed = SkipBatonTables(also=lambda name, type_, parents: asked.append(name) or True)
        assert removed_tables(include_name=composed) == set()
        assert asked and not set(asked) & set(store_tables.metadata.tables)
