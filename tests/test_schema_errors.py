"""A database without flask_baton's tables, or with older ones: one clear ``SchemaError``.

Every way in (insert, ``baton.status`` and queries, the CLI, the dashboard, a
worker starting) says to run ``flask baton db upgrade``, names the database,
and changes nothing; on both backends, for a missing and an outdated schema.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

from flask_baton import SchemaError, Workflow
from flask_baton.schema_check import database_label
from flask_baton.store import migrations
from flask_baton.store import tables as store_tables

from .steps import baton, constant
from .support import WorkerProcess, make_version, wait_for

FIX = "run `flask baton db upgrade`"


@pytest.fixture(params=["missing", "outdated"])
def unready(request: pytest.FixtureRequest, app: Flask) -> str:
    """Take the app's schema away, or back to version 1; return what the error must say."""
    if request.param == "missing":
        store_tables.metadata.drop_all(app.extensions["baton"].engine)
        return "flask_baton's tables are not installed in"
    make_version(app, 1)
    return f"are at schema version 1, and this flask_baton needs version {migrations.SCHEMA_VERSION}"


def stored(app: Flask) -> tuple[list[str], list[int], int | None]:
    """flask_baton's tables, the recorded schema versions and the number of workflows."""
    engine = app.extensions["baton"].engine
    tables = sorted(name for name in inspect(engine).get_table_names() if name.startswith("baton_"))
    with engine.connect() as conn:
        versions = (
            conn.execute(select(store_tables.schema_versions.c.version)).scalars().all()
            if "baton_schema" in tables
            else []
        )
        count = (
            conn.execute(select(func.count()).select_from(store_tables.workflows)).scalar_one()
            if "baton_workflows" in tables
            else None
        )
    return tables, list(versions), count


def assert_explains(message: str, app: Flask, problem: str) -> None:
    """The message says what is wrong, where, and what to run."""
    assert problem in message
    assert database_label(app.extensions["baton"].engine.url) in message
    assert FIX in message


def test_insert_refuses_and_writes_nothing(app: Flask, unready: str) -> None:
    before = stored(app)
    with pytest.raises(SchemaError) as caught:
        Workflow("no-schema").add("a", constant.new(value=1)).insert()
    assert_explains(str(caught.value), app, unready)
    with pytest.raises(SchemaError):
        Workflow.insert_many([Workflow("no-schema").add("a", constant.new(value=1))])
    assert stored(app) == before


def test_status_and_queries_refuse(app: Flask, unready: str) -> None:
    before = stored(app)
    with pytest.raises(SchemaError) as caught:
        baton.status("0123456789abcdef")
    assert_explains(str(caught.value), app, unready)
    with pytest.raises(SchemaError):
        baton.query.list_workflows()
    assert stored(app) == before


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "0123456789abcdef"], ["sweep"], ["prune", "--dry-run"], ["export", "0123456789abcdef"]],
    ids=" ".join,
)
def test_cli_command_prints_one_line_and_exits_1(app: Flask, unready: str, command: list[str]) -> None:
    before = stored(app)
    result = app.test_cli_runner().invoke(args=["baton", *command])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ")
    assert_explains(result.output, app, unready)
    assert "Traceback" not in result.output
    assert stored(app) == before


def test_db_upgrade_fixes_it_in_a_running_process(app: Flask, unready: str) -> None:
    with pytest.raises(SchemaError):
        baton.query.list_workflows()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["baton", "db", "upgrade"]).exit_code == 0
    assert baton.query.list_workflows().workflows == []
    assert runner.invoke(args=["baton", "status"]).exit_code == 0


@pytest.mark.parametrize("app_overrides", [{"BATON_DASHBOARD_AUTH": lambda: True}])
def test_dashboard_pages_answer_503_with_the_message(app: Flask, unready: str) -> None:
    before = stored(app)
    client = app.test_client()
    for path in ("/baton", "/baton/workflows/0123456789abcdef"):
        response = client.get(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 503, page
        assert response.mimetype == "text/html"
        assert "Database not ready" in page
        assert_explains(page.replace("&#39;", "'"), app, unready)
        assert "Traceback" not in page
    stylesheet = client.get("/baton/static/baton.css")
    assert stylesheet.status_code == 200, "the 503 page would show unstyled"
    stylesheet.close()
    assert stored(app) == before


def test_worker_refuses_to_start(app: Flask, settings: dict[str, Any], unready: str) -> None:
    before = stored(app)
    with WorkerProcess(settings) as worker:
        wait_for(lambda: worker.process.poll() is not None, "the worker to exit by itself", timeout=30)
    assert worker.process.returncode == 1, worker.output
    assert_explains(worker.output, app, unready)
    assert "Traceback" not in worker.output
    assert "consumer started" not in worker.output
    assert stored(app) == before


def test_schema_newer_than_the_code_is_accepted_for_rolling_deploys(app: Flask) -> None:
    with app.extensions["baton"].engine.begin() as conn:
        conn.execute(
            store_tables.schema_versions.insert(), {"version": migrations.SCHEMA_VERSION + 1, "applied_at": 0.0}
        )
    Workflow("newer").add("a", constant.new(value=1)).insert()
    assert [w.name for w in baton.query.list_workflows().workflows] == ["newer"]


def test_message_masks_the_database_password() -> None:
    url = make_url("postgresql+psycopg://baton:s3cret@db.example:5432/prod")
    message = str(SchemaError(database_label(url), 0, migrations.SCHEMA_VERSION))
    assert "postgresql+psycopg://baton:***@db.example:5432/prod" in message
    assert "s3cret" not in message
