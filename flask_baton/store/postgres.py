"""``PostgresStore``: flask_baton's tables in PostgreSQL, through psycopg 3 (``postgresql+psycopg``).

Here the hot path is single statements: the claim reads the step's
dependents, so its completion is one statement that releases them, settles
the step and, after the last step, ends the workflow. Each such statement is
a whole change, so it runs without BEGIN and COMMIT around it, on a
connection the worker thread keeps in psycopg 3's ``autocommit`` (``kept``:
no pool checkout per statement), and where a change needs several
statements after all, psycopg 3's ``transaction()`` block wraps them.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, Table, exc, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import URL

from ..config import BatonConfig
from ..effects import Claimed, WorkflowEnd
from ..states import StepState
from .base import Completion, Store
from .engine import postgres_engine
from .hotpath import (
    CLAIM,
    COMPLETE,
    EXECUTING,
    OUTCOME,
    RELEASE_SET,
    RELEASED,
    SETTLED,
    STILL_RUNNING,
    C,
    E,
    N,
    W,
    held_back,
    only_checked,
)
from .kept import KeptConnections
from .steps import completion, started

#: The claimed step's dependents, and the version that says whether a
#: running step has added one since, both as the statement's snapshot saw
#: them: a step added behind this one by a transaction that committed while
#: the claim waited for the row is missing from the names, and the row's
#: own, newer version would vouch for them.
_DEPENDENTS = f"""(SELECT s.dependents_version FROM {N} s WHERE s.id = {N}.id),
    ARRAY(SELECT e.step_name FROM {E} e WHERE e.workflow_id = {N}.workflow_id AND e.dep_name = {N}.step_name)"""

#: The claim, reading also the step's dependents, so that its completion is
#: one statement: COMPLETE_AND_RELEASE with the names as values.
CLAIM_WITH_DEPENDENTS = f"""{CLAIM},
    {_DEPENDENTS}"""

_DONE = f"done AS ({COMPLETE.strip()} AND dependents_version = :version\n    RETURNING workflow_id, step_name)"

#: This completion settles the workflow's last step, and no other step
#: settled since this statement's snapshot, which therefore holds every
#: other step's final state: the workflow's outcome can be read in it.
_LAST = "(unsettled = 1 AND state = 'running' AND (SELECT unsettled FROM before) = 1)"
_SETTLED_ONE = f"""before AS (SELECT unsettled FROM {W} WHERE id = :workflow_id),
{OUTCOME},
settled AS (UPDATE {W} SET unsettled = unsettled - 1,
        state = CASE WHEN {_LAST} THEN (SELECT outcome FROM outcome) ELSE state END,
        finished_at = CASE WHEN {_LAST} THEN :now ELSE finished_at END
    WHERE id = :workflow_id AND EXISTS (SELECT 1 FROM done)
    RETURNING unsettled, unsettled = 0 AND state <> 'running' AND finished_at = :now
        AND (SELECT unsettled FROM before) = 1 AS ended),
ended AS (INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at, announced_at)
    SELECT :workflow_id, (SELECT outcome FROM outcome), (SELECT failed FROM outcome), :now, :now
    FROM settled WHERE ended
    ON CONFLICT (workflow_id) DO NOTHING RETURNING outcome, failed_steps)"""
_SETTLED_ROWS = """SELECT 's', NULL, NULL, NULL, unsettled FROM settled
UNION ALL SELECT 'e', outcome, failed_steps, NULL, NULL FROM ended"""

#: COMPLETE, RELEASE of the named dependents, settling the step and, when it
#: was the last, ending the workflow (its state and completion row, already
#: marked announced: the completing worker announces the end, see
#: ``WorkflowEnd.announced``), as one statement: one round trip, row locks
#: held only while it runs.
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
released AS ({RELEASE_SET}
    WHERE workflow_id = :workflow_id AND step_name IN (:names) AND EXISTS (SELECT 1 FROM done)
    {RELEASED}),
{_SETTLED_ONE}
SELECT 'r', id, task, state, deps_pending FROM released
UNION ALL {_SETTLED_ROWS}
"""


def _waits_for_one(row: str = "") -> str:
    """SQL: the step (``row``: an alias and a dot) is pending on one dependency; found by key, not by state."""
    return f"{row}deps_pending = 1 AND {only_checked(f'{row}state')} = '{StepState.PENDING}'"


#: Direct hand-off: one of the named dependents that runs a task of
#: ``:take`` (an array) and waits for this step only, claimed for this
#: step's worker as a claim would (deps_pending and state compare-and-set,
#: no other dependency holding it back; this one is completing in this
#: statement, whose snapshot still shows it executing). A row updated here
#: is one the release must leave alone: one statement cannot update a row twice.
_TAKEN = f"""taken AS (UPDATE {N} SET deps_pending = 0, scheduled_at = :now, {EXECUTING}
    WHERE id = (SELECT p.id FROM {N} p
            WHERE p.workflow_id = :workflow_id AND p.step_name IN (:names)
              AND p.task = ANY(CAST(:take AS text[])) AND {_waits_for_one("p.")}
            LIMIT 1)
      AND {_waits_for_one()} AND EXISTS (SELECT 1 FROM done)
      AND NOT {held_back(" AND e.dep_name <> :step_name")}
    RETURNING id, task, step_name, attempt, args, {_DEPENDENTS})"""

#: COMPLETE_AND_RELEASE that also claims the dependent of _TAKEN. Rows as
#: COMPLETE_AND_RELEASE's, three columns wider, and ``('t', id, task,
#: step_name, attempt, args, dependents_version, dependents)`` for the step
#: it claimed.
COMPLETE_RELEASE_AND_TAKE = f"""
WITH {_DONE},
{_TAKEN},
released AS ({RELEASE_SET}
    WHERE workflow_id = :workflow_id AND step_name IN (:names) AND EXISTS (SELECT 1 FROM done)
      AND id NOT IN (SELECT id FROM taken)
    {RELEASED}),
{_SETTLED_ONE}
SELECT 'r', id, task, state, deps_pending, NULL, NULL, NULL FROM released
UNION ALL SELECT 't', * FROM taken
UNION ALL SELECT *, NULL, NULL, NULL FROM ({_SETTLED_ROWS}) AS settled_rows
"""

#: The same for a step nothing depends on.
COMPLETE_AND_SETTLE = f"""
WITH {_DONE},
{_SETTLED_ONE}
{_SETTLED_ROWS}
"""

#: The outcome, FINISH and RECORD_END as one statement, a whole change
#: without a transaction around it. Returns the outcome and the failed
#: steps (a JSON list) if this call ended the workflow.
FINISH_AND_RECORD_END = f"""
WITH {OUTCOME},
finished AS (UPDATE {W} SET state = (SELECT outcome FROM outcome), finished_at = :now
    WHERE {STILL_RUNNING})
INSERT INTO {C} (workflow_id, outcome, failed_steps, finished_at)
SELECT :workflow_id, outcome, failed, :now FROM outcome WHERE EXISTS ({SETTLED})
ON CONFLICT (workflow_id) DO NOTHING RETURNING outcome, failed_steps
"""

#: Milliseconds a retry waits for a row lock: less than the server's default
#: ``deadlock_timeout`` (1 s), so were a retry ever to close a cycle of waits
#: with a completing step, the retry is what fails, not the step.
REARM_LOCK_TIMEOUT_MS = 500
_LOCK_NOT_AVAILABLE = "55P03"
#: Serialises concurrent schema upgrades (``pg_advisory_xact_lock``).
_UPGRADE_LOCK = 724108


class PostgresStore(Store):
    """PostgreSQL through psycopg 3, the hot path in single statements.

    Round trips per transition, with events over Redis (the database feed
    keeps every transition in a transaction, adding BEGIN and COMMIT, plus
    its event rows, and for an end not recorded by a one-statement
    completion its announcement):

    - claim: 1 ``UPDATE ... RETURNING`` that checks every dependency and
      returns the workflow's name and the step's dependents; none for a
      step handed off, whose claim is its dependency's completion;
    - complete: 1 statement releasing the dependents the claim read,
      settling the step and, after the last step, ending the workflow and
      marking the end announced (its worker publishes it after the commit),
      and claiming one released dependent for this worker (direct
      hand-off): a chain's hop is 1 statement in all, a one-step workflow 2
      round trips, claim and completion (unless the last steps settle at
      once: then 1 more ends it, and 1 more marks the end announced before
      it is published); if a step was added behind this one since its claim,
      or with steps added by this one, BEGIN, 3 (the step, its dependents,
      the counter), the hand-off's claim (1) and COMMIT, plus the additions'
      statements;
    - retry / snooze / hand back: BEGIN, 1 update, 1 insert (the run that ended, kept in
      ``baton_attempts``), COMMIT;
    - discard: BEGIN, 1 update, per level of the cascade 1 read and 1 update
      per step cancelled or released, the workflow's counter (and its end), COMMIT;
    - an end recorded other than by a one-statement completion: 1 update
      after the commit marks it announced, then it is published.
    """

    dialect = ("postgresql", "psycopg")
    pyformat = True

    def __init__(self, engine: Engine, config: BatonConfig, kept: KeptConnections) -> None:
        super().__init__(engine, config)
        self._kept = kept

    @classmethod
    def open(cls, url: URL, config: BatonConfig, instance_path: str) -> PostgresStore:
        return cls(postgres_engine(url, config), config, KeptConnections(postgres_engine(url, config, pooled=False)))

    def write(self, *, autocommit: bool = False) -> AbstractContextManager[Connection]:
        """``autocommit``: on this thread's own connection, kept in autocommit (``kept``), no pool checkout."""
        return self._kept.use() if autocommit else super().write()

    def close(self) -> None:
        self._kept.close()
        super().close()

    def _begin(self, conn: Connection) -> None:
        """Nothing to do: psycopg begins a transaction with the first statement."""

    def atomic(self, conn: Connection) -> AbstractContextManager[Any]:
        raw: Any = conn.connection.driver_connection
        # In autocommit, BEGIN ... COMMIT around the block; in a transaction already, nothing to add.
        return raw.transaction() if raw.autocommit else nullcontext()

    @classmethod
    def _serialise_upgrades(cls, conn: Connection) -> None:
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})"))

    def claim(self, conn: Connection, node_id: str, worker: str, now: float) -> Claimed | None:
        row = self._run(conn, CLAIM_WITH_DEPENDENTS, {"id": node_id, "now": now, "worker": worker}).fetchone()
        return None if row is None else _claimed(node_id, worker, now, *row)

    def complete_in_one(
        self, conn: Connection, claimed: Claimed, result: str | None, now: float, take: frozenset[str] = frozenset()
    ) -> Completion | None:
        if claimed.dependents is None:
            return None
        params = {
            **completion(claimed, result, now),
            "workflow_id": claimed.workflow_id,
            "version": claimed.dependents_version,
        }
        if claimed.dependents and take:
            statement = COMPLETE_RELEASE_AND_TAKE
            params.update(take=text_array(take), step_name=claimed.step_name)
        else:
            statement = COMPLETE_AND_RELEASE if claimed.dependents else COMPLETE_AND_SETTLE
        rows = self._run(conn, statement, params, names=claimed.dependents).fetchall()
        if not rows:
            return None
        ended = [
            WorkflowEnd(claimed.workflow_id, outcome, json.loads(failed), now, announced=True)
            for kind, outcome, failed, *_ in rows
            if kind == "e"
        ]
        taken = [
            _claimed(
                node_id,
                claimed.worker,
                now,
                claimed.workflow_id,
                name,
                task,
                args,
                attempt,
                now,
                claimed.label,
                claimed.budget_usd,  # the same workflow's
                *rest,
            )
            for _, node_id, task, name, attempt, args, *rest in (row for row in rows if row[0] == "t")
        ]
        return Completion(
            started(row[1:] for row in rows if row[0] == "r"),
            ended[0] if ended else None,
            any(row[0] == "s" and row[4] == 0 for row in rows),
            taken[0] if taken else None,
        )

    def finish(self, conn: Connection, workflow_id: str, now: float) -> WorkflowEnd | None:
        ended = self._run(conn, FINISH_AND_RECORD_END, {"workflow_id": workflow_id, "now": now}).fetchone()
        if ended is None:
            return None
        outcome, failed = ended
        return WorkflowEnd(workflow_id, outcome, json.loads(failed), now)

    def _insert_or_skip(self, table: Table) -> Any:
        return postgresql_insert(table)

    def _limit_lock_waits(self, conn: Connection) -> None:
        conn.execute(text(f"SET LOCAL lock_timeout = {REARM_LOCK_TIMEOUT_MS}"))

    def _is_lock_timeout(self, error: exc.OperationalError) -> bool:
        return getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE


@lru_cache(maxsize=64)
def text_array(values: frozenset[str]) -> str:
    """``values`` as a PostgreSQL array literal, for a parameter cast to ``text[]``.

    Sent as one text parameter: psycopg adapts a list element by element,
    about 10 us for a few tasks. Cached: a worker sends the same tasks again
    and again.
    """
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def _claimed(
    node_id: str,
    worker: str,
    now: float,
    workflow_id: str,
    step_name: str,
    task: str,
    args: str,
    attempt: int,
    queued_at: float | None,
    label: str | None,
    budget_usd: float | None,
    version: int,
    dependents: list[str],
) -> Claimed:
    """A step claimed at ``now`` by ``worker``, with its dependents as the claiming statement read them."""
    return Claimed(
        node_id,
        workflow_id,
        step_name,
        task,
        args,
        attempt,
        worker,
        now,
        queued_at,
        label,
        tuple(dependents),
        version,
        budget_usd,
    )
