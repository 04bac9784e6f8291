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
from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from sqlalchemy import Connection

from .schema import completions, edges, events, nodes, workflows
from .states import CLAIMABLE, FAILED, StepState, WorkflowState

N, E, W, EV, C = nodes.name, edges.name, workflows.name, events.name, completions.name


def _quoted(states: Sequence[str]) -> str:
    return ", ".join(f"'{state}'" for state in states)


def _only_checked(column: str) -> str:
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
    (SELECT name FROM {W} WHERE {W}.id = {N}.workflow_id)"""

#: PostgreSQL: the claim also reads the step's dependents (and the version
#: that says whether a running step has added one since), so that its
#: completion is one statement: COMPLETE_AND_RELEASE with the names as values.
CLAIM_WITH_DEPENDENTS = f"""{CLAIM},
    dependents_version,
    ARRAY(SELECT e.step_name FROM {E} e WHERE e.workflow_id = {N}.workflow_id AND e.dep_name = {N}.step_name)"""

COMPLETE = f"""
UPDATE {N} SET state = '{StepState.COMPLETED}', result = :result, error = NULL, finished_at = :now
WHERE id = :id AND {_only_checked('state')} = '{StepState.EXECUTING}' AND attempt = :attempt AND worker = :worker
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

#: The failed steps that fail their workflow: all but those every dependent
#: tolerated (a model discarded under a quorum synthesis, with
#: ``Dep(..., ignore_discarded=True)`` on every edge out of it, does not).
FAILING = f"""
SELECT n.step_name FROM {N} n
WHERE n.workflow_id = :workflow_id AND {_only_checked('n.state')} IN ({_quoted(FAILED)}) AND (
    NOT EXISTS (SELECT 1 FROM {E} e WHERE e.workflow_id = n.workflow_id AND e.dep_name = n.step_name)
    OR EXISTS (SELECT 1 FROM {E} e WHERE e.workflow_id = n.workflow_id AND e.dep_name = n.step_name
        AND COALESCE(e.tolerates, '') NOT IN ('any', n.state)))"""

#: The outcome a workflow ends with, and its failed steps as a JSON list.
#: Where it is used only under a condition, PostgreSQL reads it only then.
_OUTCOME = f"""failing AS ({FAILING.strip()}),
outcome AS (SELECT CASE WHEN count(*) > 0 THEN '{WorkflowState.FAILED}' ELSE '{WorkflowState.COMPLETED}' END AS outcome,
    CAST(COALESCE(json_agg(step_name ORDER BY step_name COLLATE "C"), '[]') AS text) AS failed FROM failing)"""

_DONE = f"done AS ({COMPLETE.strip()} AND dependents_version = :version\n    RETURNING workflow_id, step_name)"

#: This completion settles the workflow's last step, and no other step
#: settled since this statement's snapshot, which therefore holds every
#: other step's final state: the workflow's outcome can be read in it.
_LAST = "(unsettled = 1 AND state = 'running' AND (SELECT unsettled FROM before) = 1)"
_SETTLED_ONE = f"""before AS (SELECT unsettled FROM {W} WHERE id = :workflow_id),
{_OUTCOME},
settled AS (UPDATE {W} SET unsettled = unsettled - 1,
        state = CASE WHEN {_LAST} THEN (SELECT outcome FROM outcome) ELSE state END,
        finished_at = CASE WHEN {_LAST} THEN :now ELSE finished_at END
    WHERE id = :workflow_id AND EXISTS (SELECT 1 FROM done)
    RETURNING unsettled, unsettled = 0 AND state <> 'running' AND finished_at = :now
        AND (SELECT unsettled FROM before) = 1 AS ended),
ended AS (INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at)
    SELECT :workflow_id, (SELECT outcome FROM outcome), (SELECT failed FROM outcome), :now FROM settled WHERE ended
    ON CONFLICT (workflow_id) DO NOTHING RETURNING outcome, failed_steps)"""
_SETTLED_ROWS = """SELECT 's', NULL, NULL, NULL, unsettled FROM settled
UNION ALL SELECT 'e', outcome, failed_steps, NULL, NULL FROM ended"""

#: PostgreSQL: COMPLETE, RELEASE of the named dependents, settling the step
#: and, when it was the last, ending the workflow (its state and completion
#: row), as one statement: one round trip, row locks held only while it runs.
#: Rows: ``('r', id, task, state, deps_pending)`` per dependent,
#: ``('s', NULL, NULL, NULL, unsettled)``, and ``('e', outcome, failed_steps,
#: NULL, NULL)`` if it ended the workflow; none if the compare-and-set lost.
#: If the last steps settled concurrently (``unsettled`` 0, no ``'e'``), the
#: caller ends the workflow with FINISH_AND_RECORD_END, whose snapshot
#: comes after all of them.
#: The names are the claim's (CLAIM_WITH_DEPENDENTS), sent as values: each is
#: then a unique-index lookup whatever the planner's statistics say, where a
#: subquery lets statistics that predate a wide workflow scan all of its
#: steps on every completion. ``:version`` fences them: a step added behind
#: this one since the claim moved it, and the caller then completes the step
#: in a transaction that reads the dependents after taking the row.
COMPLETE_AND_RELEASE = f"""
WITH {_DONE},
released AS ({_RELEASE_SET}
    WHERE workflow_id = :workflow_id AND step_name IN (:names) AND EXISTS (SELECT 1 FROM done)
    {_RELEASED}),
{_SETTLED_ONE}
SELECT 'r', id, task, state, deps_pending FROM released
UNION ALL {_SETTLED_ROWS}
"""

#: The same for a step nothing depends on.
COMPLETE_AND_SETTLE = f"""
WITH {_DONE},
{_SETTLED_ONE}
{_SETTLED_ROWS}
"""

SETTLE = f"UPDATE {W} SET unsettled = unsettled - :count WHERE id = :workflow_id RETURNING unsettled, state"

_SETTLED = f"SELECT 1 FROM {W} WHERE id = :workflow_id AND unsettled = 0"
_STILL_RUNNING = f"id = :workflow_id AND {_only_checked('state')} = '{WorkflowState.RUNNING}' AND unsettled = 0"
FINISH = f"""
UPDATE {W} SET state = :outcome, finished_at = :now WHERE {_STILL_RUNNING}
"""

#: The completion row is what makes a workflow's end happen once.
RECORD_END = f"""
INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at)
SELECT :workflow_id, :outcome, :failed, :now WHERE EXISTS ({_SETTLED})
ON CONFLICT (workflow_id) DO NOTHING RETURNING workflow_id
"""

#: PostgreSQL: the outcome, FINISH and RECORD_END as one statement, a whole
#: change without a transaction around it. Returns the outcome and the failed
#: steps (a JSON list) if this call ended the workflow.
FINISH_AND_RECORD_END = f"""
WITH {_OUTCOME},
finished AS (UPDATE {W} SET state = (SELECT outcome FROM outcome), finished_at = :now
    WHERE {_STILL_RUNNING})
INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at)
SELECT :workflow_id, outcome, failed, :now FROM outcome WHERE EXISTS ({_SETTLED})
ON CONFLICT (workflow_id) DO NOTHING RETURNING outcome, failed_steps
"""

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


def transaction(conn: Connection) -> AbstractContextManager[Any]:
    """A transaction block on ``conn``'s driver connection (PostgreSQL).

    Opens one (BEGIN ... COMMIT) when the connection is in autocommit, a
    savepoint when it is already in a transaction.
    """
    return conn.connection.driver_connection.transaction()  # type: ignore[union-attr, no-any-return]
