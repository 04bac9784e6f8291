"""The statements every step runs, as plain SQL on the DBAPI cursor.

A step's claim and completion are a handful of small statements, and
SQLAlchemy's execution machinery costs more per statement (about 0.1 ms)
than SQLite takes to run one, while SQLite holds its write lock. So these
few are written out once, in SQL that SQLite and PostgreSQL both accept
(``UPDATE ... RETURNING``), and sent straight to the driver inside the
caller's SQLAlchemy transaction. Table names still come from ``schema``;
everything else in flask_baton uses SQLAlchemy Core.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection

from .schema import completions, edges, events, nodes, workflows
from .states import CLAIMABLE, FAILED, StepState

N, E, W, EV, C = nodes.name, edges.name, workflows.name, events.name, completions.name


def _quoted(states: Sequence[str]) -> str:
    return ", ".join(f"'{state}'" for state in states)


#: Does this edge (alias e, its dep alias d) no longer hold its step back?
_SATISFIED = (
    f"(d.state = '{StepState.COMPLETED}' OR (d.state IN ({_quoted(FAILED)})"
    " AND (e.tolerates = 'any' OR e.tolerates = d.state)))"
)

CLAIM = f"""
UPDATE {N} SET state = '{StepState.EXECUTING}', attempt = attempt + 1, worker = :worker,
    started_at = :now, heartbeat_at = :now
WHERE id = :id AND state IN ({_quoted(CLAIMABLE)})
  AND (scheduled_at IS NULL OR scheduled_at <= :now)
  AND NOT EXISTS (
    SELECT 1 FROM {E} e JOIN {N} d ON d.workflow_id = e.workflow_id AND d.step_name = e.dep_name
    WHERE e.workflow_id = {N}.workflow_id AND e.step_name = {N}.step_name AND NOT {_SATISFIED})
RETURNING workflow_id, step_name, task, args, attempt, scheduled_at,
    (SELECT name FROM {W} WHERE {W}.id = {N}.workflow_id)
"""

COMPLETE = f"""
UPDATE {N} SET state = '{StepState.COMPLETED}', result = :result, error = NULL, finished_at = :now
WHERE id = :id AND state = '{StepState.EXECUTING}' AND attempt = :attempt AND worker = :worker
"""

_STARTS = f"(deps_pending = 1 AND state = '{StepState.PENDING}')"
_RELEASE_SET = f"""
UPDATE {N} SET deps_pending = deps_pending - 1,
    state = CASE WHEN {_STARTS} THEN '{StepState.AVAILABLE}' ELSE state END,
    scheduled_at = CASE WHEN {_STARTS} THEN :now ELSE scheduled_at END"""
DEPENDENTS = f"SELECT step_name FROM {E} WHERE workflow_id = :workflow_id AND dep_name = :dep_name"
_RELEASED = "RETURNING id, task, state, deps_pending"

#: One of the named steps' deps is done: count it down, start those at zero.
RELEASE = f"{_RELEASE_SET}\nWHERE workflow_id = :workflow_id AND step_name IN (:names)\n{_RELEASED}"

#: The same for every dependent of ``:dep_name``.
RELEASE_DEPENDENTS = f"{_RELEASE_SET}\nWHERE workflow_id = :workflow_id AND step_name IN ({DEPENDENTS})\n{_RELEASED}"

_DONE = f"done AS ({COMPLETE.strip()}\n    RETURNING workflow_id, step_name)"
_SETTLED_ONE = f"""settled AS (UPDATE {W} SET unsettled = unsettled - 1 WHERE id = :workflow_id
    AND EXISTS (SELECT 1 FROM done) RETURNING unsettled)"""

#: PostgreSQL: COMPLETE, RELEASE of the named dependents and settling the
#: step, as one statement (one round trip, row locks held only while it
#: runs). Rows: ``(id, task, state, deps_pending, NULL)`` per dependent, then
#: ``(NULL, NULL, NULL, NULL, unsettled)``; none if the compare-and-set lost.
#: The names are read first (DEPENDENTS) and sent as values: each is then a
#: unique-index lookup whatever the planner's statistics say, where a
#: subquery lets statistics that predate a wide workflow scan all of its
#: steps on every completion.
COMPLETE_AND_RELEASE = f"""
WITH {_DONE},
released AS ({_RELEASE_SET}
    WHERE workflow_id = :workflow_id AND step_name IN (:names) AND EXISTS (SELECT 1 FROM done)
    {_RELEASED}),
{_SETTLED_ONE}
SELECT id, task, state, deps_pending, NULL FROM released
UNION ALL SELECT NULL, NULL, NULL, NULL, unsettled FROM settled
"""

#: The same for a step nothing depends on.
COMPLETE_AND_SETTLE = f"WITH {_DONE},\n{_SETTLED_ONE}\nSELECT NULL, NULL, NULL, NULL, unsettled FROM settled"

SETTLE = f"UPDATE {W} SET unsettled = unsettled - :count WHERE id = :workflow_id RETURNING unsettled, state"

FAILED_STEPS = f"SELECT step_name, state FROM {N} WHERE workflow_id = :workflow_id AND state IN ({_quoted(FAILED)})"

_SETTLED = f"SELECT 1 FROM {W} WHERE id = :workflow_id AND unsettled = 0"
FINISH = f"""
UPDATE {W} SET state = :outcome, finished_at = :now WHERE id = :workflow_id AND state = 'running' AND unsettled = 0
"""

#: The completion row is what makes a workflow's end happen once.
RECORD_END = f"""
INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at)
SELECT :workflow_id, :outcome, :failed, :now WHERE EXISTS ({_SETTLED})
ON CONFLICT (workflow_id) DO NOTHING RETURNING workflow_id
"""

#: PostgreSQL: FINISH and RECORD_END as one statement, so that they stay
#: one change without a transaction around them.
FINISH_AND_RECORD_END = f"WITH finished AS ({FINISH.strip()})\n{RECORD_END.strip()}"

MARK_ANNOUNCED = f"UPDATE {C} SET announced_at = :now WHERE workflow_id = :workflow_id AND announced_at IS NULL"

INSERT_EVENT = f"INSERT INTO {EV} (workflow_id, name, payload, created_at) VALUES (:workflow_id, :name, :payload, :now)"


@cache
def _for(dialect: str, sql: str, expand: int) -> str:
    """``sql`` in the driver's parameter style, with ``:names`` expanded to ``expand`` places."""
    if expand:
        sql = sql.replace(":names", ", ".join(f":names_{i}" for i in range(expand)))
    if dialect == "postgresql":
        sql = re.sub(r":(\w+)", r"%(\1)s", sql)
    return sql


def run(conn: Connection, sql: str, params: dict[str, Any], *, names: Sequence[str] = ()) -> Any:
    """Execute one hot-path statement in ``conn``'s transaction; return the DBAPI cursor.

    ``names`` fills ``IN (:names)``. Long lists are compiled once per length
    (``_for`` caches), which a workflow's few distinct widths keep small.
    """
    if names:
        params = {**params, **{f"names_{i}": name for i, name in enumerate(names)}}
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(_for(conn.dialect.name, sql, len(names)), params)
    return cursor


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write event feed rows (``workflow_id, name, payload, now``) in ``conn``'s transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(_for(conn.dialect.name, INSERT_EVENT, 0), rows)
