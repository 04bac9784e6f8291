"""PostgreSQL plans of the hot path in a database that has run a while.

Statistics taken while every workflow and step had completed (none running,
none failed) make the indexes on ``state`` look like the cheap way to a step,
to a workflow's failed steps or to the workflow itself; through them a
completion would walk the entries of every recent claim, and a workflow's end
those of every workflow started since and every failed step since stored.
These read the plans PostgreSQL caches for such a database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from flask_baton.store import hotpath, postgres
from flask_baton.store.tables import metadata

STATE_INDEX = "ix_baton_nodes_state_scheduled"
WORKFLOW_STATE_INDEX = "ix_baton_workflows_state_created"

_HISTORY = (
    """INSERT INTO baton_workflows (id, name, state, total_steps, unsettled, created_at, finished_at)
       SELECT md5('w' || i), 'history', 'completed', 2, 0, :t0, :t0
       FROM generate_series(1, 10000) AS i""",
    """INSERT INTO baton_nodes (id, workflow_id, step_name, position, task, args, state, attempt, deps_pending,
                                created_at, dependents_version)
       SELECT md5(s || i), md5('w' || i), s, p, 'history', '{}', 'completed', 1, 0, :t0, 0
       FROM generate_series(1, 10000) AS i, (VALUES ('first', 0), ('second', 1)) AS steps (s, p)""",
    """INSERT INTO baton_edges (workflow_id, step_name, dep_name)
       SELECT md5('w' || i), 'second', 'first' FROM generate_series(1, 10000) AS i""",
)


@pytest.fixture
def engine(postgres_schema: str) -> Iterator[Engine]:
    """flask_baton's tables holding 10,000 completed workflows, analyzed: no step runs or failed then."""
    engine = create_engine(postgres_schema)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for statement in _HISTORY:
            conn.execute(text(statement), {"t0": time.time()})
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()


def _generic_plan(engine: Engine, sql: str, types: dict[str, str]) -> str:
    """The plan PostgreSQL caches for ``sql`` once prepared (as psycopg does after a few runs)."""
    names = list(dict.fromkeys(re.findall(r":(\w+)", sql)))
    body = re.sub(r":(\w+)", lambda match: f"${names.index(match.group(1)) + 1}", sql)
    with engine.connect() as conn:
        conn.execute(text(f"PREPARE hot ({', '.join(types[name] for name in names)}) AS {body}"))
        conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        nulls = ", ".join("NULL" for _ in names)
        return "\n".join(conn.execute(text(f"EXPLAIN EXECUTE hot ({nulls})")).scalars())


def test_a_completion_finds_its_step_by_primary_key(engine: Engine) -> None:
    types = {"id": "text", "result": "text", "now": "float8", "attempt": "int", "worker": "text"}
    plan = _generic_plan(engine, hotpath.COMPLETE, types)
    assert "baton_nodes_pkey" in plan
    assert STATE_INDEX not in plan, plan


def test_a_workflows_failed_steps_are_found_among_its_own_steps(engine: Engine) -> None:
    plan = _generic_plan(engine, hotpath.FAILING, {"workflow_id": "text"})
    assert "ux_baton_nodes_workflow_step" in plan
    assert STATE_INDEX not in plan, plan


@pytest.mark.parametrize(
    "sql", [hotpath.FINISH, postgres.FINISH_AND_RECORD_END], ids=["FINISH", "FINISH_AND_RECORD_END"]
)
def test_a_workflows_end_finds_it_by_primary_key(engine: Engine, sql: str) -> None:
    types = {"workflow_id": "text", "now": "float8", "outcome": "text"}
    plan = _generic_plan(engine, sql, {name: types[name] for name in re.findall(r":(\w+)", sql)})
    assert "baton_workflows_pkey" in plan
    assert WORKFLOW_STATE_INDEX not in plan, plan


def test_a_completion_that_hands_off_finds_the_step_it_takes_by_key(engine: Engine) -> None:
    types = {
        "id": "text",
        "result": "text",
        "now": "float8",
        "attempt": "int",
        "worker": "text",
        "workflow_id": "text",
        "version": "int",
        "take": "text",
        "step_name": "text",
        "names_0": "text",
    }
    plan = _generic_plan(engine, hotpath.prepare(postgres.COMPLETE_RELEASE_AND_TAKE, 1, False), types)
    assert "baton_nodes_pkey" in plan
    assert STATE_INDEX not in plan, plan
