"""The statements every step runs, as plain SQL on the DBAPI cursor.

A step's claim and completion are a handful of small statements, and
SQLAlchemy's execution machinery costs more per statement (about 0.1 ms)
than SQLite takes to run one, while SQLite holds its write lock. So these
few are written out once, in SQL that SQLite and PostgreSQL both accept
(``UPDATE ... RETURNING``), and sent straight to the driver inside the
caller's SQLAlchemy transaction (``Store._run``). Table names come from
``tables``. The statements only one database runs (PostgreSQL's single
statement completions) are in ``postgres.py``, built from the parts here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection

from ..states import CLAIMABLE, FAILED, StepState, Tolerance, WorkflowState
from .tables import completions, edges, events, nodes, workflows

N, E, W, EV, C = nodes.name, edges.name, workflows.name, events.name, completions.name


def quoted(states: Sequence[str]) -> str:
    """``'a', 'b'``: states as SQL string literals."""
    return ", ".join(f"'{state}'" for state in states)


def only_checked(column: str) -> str:
    """``column`` as an expression no index matches, in a test that must not lead a plan.

    A row found by its key (``id``, ``workflow_id``) is then only checked for
    its state. Left as a plain column, statistics PostgreSQL took while no
    step ran or failed and no workflow ran (every one completed) make the
    index on ``state`` look the cheaper way in, and the plan it caches keeps
    taking it: for a completion, a range holding a dead entry per recent
    claim; for a workflow's end, one per workflow started since; for its
    failed steps, every failed step of every workflow.
    """
    return f"{column} || ''"


def satisfied(dep_state: str, tolerance: str) -> str:
    """SQL of ``states.satisfied``: the edge no longer holds its dependent back.

    Written from ``Tolerance``, each tolerance with the failures it lets
    through, so the two cannot drift apart (``tests/test_satisfied.py``
    compares them on every state and tolerance). ``dep_state`` and
    ``tolerance`` are the columns (a dep's ``state``, its edge's
    ``tolerates``); a NULL tolerance lets nothing through, also under NOT.
    The failures let through are (state, tolerance) pairs, compared as row
    values: short, as the completion that hands off a step must stay under
    psycopg's 4 kB limit for caching a statement's parsing.
    """
    lets_through = ", ".join(f"('{state}', '{kind}')" for kind in Tolerance for state in sorted(kind.failures))
    return f"({dep_state} = '{StepState.COMPLETED}' OR ({dep_state}, COALESCE({tolerance}, '')) IN ({lets_through}))"


def held_back(but: str = "") -> str:
    """SQL: a dependency holds the updated step back (``NOT satisfied``), ``but`` an edge it excludes."""
    return f"""EXISTS (
    SELECT 1 FROM {E} e JOIN {N} d ON d.workflow_id = e.workflow_id AND d.step_name = e.dep_name
    WHERE e.workflow_id = {N}.workflow_id AND e.step_name = {N}.step_name{but}
      AND NOT {satisfied("d.state", "e.tolerates")})"""


#: What a claim sets: the step runs on ``:worker`` from ``:now``, under a lease from then.
EXECUTING = (
    f"state = '{StepState.EXECUTING}', attempt = attempt + 1, worker = :worker, started_at = :now, heartbeat_at = :now"
)

#: Start a delivered step if it is due and no dependency holds it back.
#: Reads its workflow's name and spend cap (``budget_usd``), so a step of a
#: workflow without one starts with no extra round trip (``budget_control``).
CLAIM = f"""
UPDATE {N} SET {EXECUTING}
WHERE id = :id AND state IN ({quoted(CLAIMABLE)})
  AND (scheduled_at IS NULL OR scheduled_at <= :now)
  AND NOT {held_back()}
RETURNING workflow_id, step_name, task, args, attempt, scheduled_at,
    (SELECT name FROM {W} WHERE {W}.id = {N}.workflow_id),
    (SELECT budget_usd FROM {W} WHERE {W}.id = {N}.workflow_id)"""

COMPLETE = f"""
UPDATE {N} SET state = '{StepState.COMPLETED}', result = :result, error = NULL, finished_at = :now
WHERE id = :id AND {only_checked("state")} = '{StepState.EXECUTING}' AND attempt = :attempt AND worker = :worker
"""

_STARTS = f"(deps_pending = 1 AND state = '{StepState.PENDING}')"
#: Count one dep of the chosen steps done, starting those at zero (add a WHERE).
RELEASE_SET = f"""
UPDATE {N} SET deps_pending = deps_pending - 1,
    state = CASE WHEN {_STARTS} THEN '{StepState.AVAILABLE}' ELSE state END,
    scheduled_at = CASE WHEN {_STARTS} THEN :now ELSE scheduled_at END"""
DEPENDENTS = f"SELECT step_name FROM {E} WHERE workflow_id = :workflow_id AND dep_name = :dep_name"
RELEASED = "RETURNING id, task, state, deps_pending"

#: One of the named steps' deps is done: count it down, start those at zero.
RELEASE = f"{RELEASE_SET}\nWHERE workflow_id = :workflow_id AND step_name IN (:names)\n{RELEASED}"

#: The same for every dependent of ``:dep_name``.
RELEASE_DEPENDENTS = f"{RELEASE_SET}\nWHERE workflow_id = :workflow_id AND step_name IN ({DEPENDENTS})\n{RELEASED}"

#: The failed steps that fail their workflow: all but those every dependent
#: tolerated (a model discarded under a quorum synthesis, with
#: ``Dep(..., ignore_discarded=True)`` on every edge out of it, does not).
FAILING = f"""
SELECT n.step_name FROM {N} n
WHERE n.workflow_id = :workflow_id AND {only_checked("n.state")} IN ({quoted(FAILED)}) AND (
    NOT EXISTS (SELECT 1 FROM {E} e WHERE e.workflow_id = n.workflow_id AND e.dep_name = n.step_name)
    OR EXISTS (SELECT 1 FROM {E} e WHERE e.workflow_id = n.workflow_id AND e.dep_name = n.step_name
        AND NOT {satisfied("n.state", "e.tolerates")}))"""

#: A dep of the step that failed in a way its edge does not let through.
FAILED_BLOCKER = f"""
SELECT d.step_name, d.state FROM {E} e JOIN {N} d ON d.workflow_id = e.workflow_id AND d.step_name = e.dep_name
WHERE e.workflow_id = :workflow_id AND e.step_name = :step_name AND d.state IN ({quoted(FAILED)})
  AND NOT {satisfied("d.state", "e.tolerates")}
LIMIT 1"""

#: The outcome a workflow ends with, and its failed steps as a JSON list (CTEs).
#: Where it is used only under a condition, PostgreSQL reads it only then.
OUTCOME = f"""failing AS ({FAILING.strip()}),
outcome AS (SELECT CASE WHEN count(*) > 0 THEN '{WorkflowState.FAILED}' ELSE '{WorkflowState.COMPLETED}' END AS outcome,
    CAST(COALESCE(json_agg(step_name ORDER BY step_name COLLATE "C"), '[]') AS text) AS failed FROM failing)"""

SETTLE = f"UPDATE {W} SET unsettled = unsettled - :count WHERE id = :workflow_id RETURNING unsettled, state"

SETTLED = f"SELECT 1 FROM {W} WHERE id = :workflow_id AND unsettled = 0"
STILL_RUNNING = f"id = :workflow_id AND {only_checked('state')} = '{WorkflowState.RUNNING}' AND unsettled = 0"
FINISH = f"""
UPDATE {W} SET state = :outcome, finished_at = :now WHERE {STILL_RUNNING}
"""

#: The completion row is what makes a workflow's end happen once.
RECORD_END = f"""
INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at)
SELECT :workflow_id, :outcome, :failed, :now WHERE EXISTS ({SETTLED})
ON CONFLICT (workflow_id) DO NOTHING RETURNING workflow_id
"""

MARK_ANNOUNCED = (
    f"UPDATE {C} SET announced_at = :now, published_at = :published"
    " WHERE workflow_id = :workflow_id AND announced_at IS NULL"
)

INSERT_EVENT = f"INSERT INTO {EV} (workflow_id, name, payload, created_at) VALUES (:workflow_id, :name, :payload, :now)"


@cache
def prepare(sql: str, expand: int, pyformat: bool) -> str:
    """``sql`` in the driver's parameter style, with ``:names`` expanded to ``expand`` places.

    Long lists are compiled once per length, which a workflow's few distinct
    widths keep small. Runs of whitespace become one space (no statement has
    a literal that holds any): psycopg caches the parsing of a statement of
    at most 4,096 bytes only, and parses a longer one again on every call
    (``MAX_CACHED_STATEMENT_LENGTH``, about 0.1 ms for a completion's).
    """
    sql = " ".join(sql.split())
    if expand:
        sql = sql.replace(":names", ", ".join(f":names_{i}" for i in range(expand)))
    if pyformat:
        sql = re.sub(r":(\w+)", r"%(\1)s", sql)
    return sql


def execute(conn: Connection, sql: str, params: dict[str, Any], pyformat: bool, names: Sequence[str] = ()) -> Any:
    """Execute one statement in ``conn``'s transaction on the DBAPI cursor; return the cursor.

    ``names`` fills ``IN (:names)``; ``pyformat``: the driver wants
    ``%(name)s`` (psycopg) rather than ``:name`` (sqlite3).
    """
    if names:
        params = {**params, **{f"names_{i}": name for i, name in enumerate(names)}}
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(prepare(sql, len(names), pyformat), params)
    return cursor


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write event feed rows (``workflow_id, name, payload, now``) in ``conn``'s transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(prepare(INSERT_EVENT, 0, conn.dialect.paramstyle == "pyformat"), rows)
