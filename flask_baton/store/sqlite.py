"""``SqliteStore``: flask_baton's tables in a SQLite file (sqlite3, SQLAlchemy's ``pysqlite``)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, Table, exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL

from ..config import BatonConfig
from ..effects import Claimed, WorkflowEnd
from ..sqlite_paths import instance_file
from ..states import WorkflowState
from . import hotpath
from .base import Completion, Store
from .engine import begin_immediate, sqlite_engine


class SqliteStore(Store):
    """SQLite: every write transaction takes the database's one write lock at ``BEGIN IMMEDIATE``.

    Statements per transition (in-process calls, not network round trips;
    each transaction also pays its ``BEGIN IMMEDIATE`` and ``COMMIT``):

    - claim: 1 ``UPDATE ... RETURNING`` that also checks every dependency
      and reads the workflow's name;
    - complete: 3 (the step, its dependents' release and start, the
      workflow's counter); the last step's adds 3 more (its failed steps,
      the workflow's state, the completion row that makes the end happen once);
      a direct hand-off adds the claim of the dependent it runs next, in the
      same transaction, which then needs no transaction of its own: a
      chain's hop is 1 transaction of 4 statements;
    - retry / snooze / hand back: 1 update, 1 insert (the run that ended, kept in ``baton_attempts``);
    - discard: 1 update, then per level of the cascade 1 read and 1 update
      per step cancelled or released, then the workflow's counter;
    - announcing an end (database feed): 1 more update, plus the event rows'
      ``executemany``, in the same transaction.
    """

    dialect = ("sqlite", "pysqlite")

    def __init__(self, engine: Engine, config: BatonConfig, busy_ms: int) -> None:
        super().__init__(engine, config)
        self._busy_ms = busy_ms

    @classmethod
    def open(cls, url: URL, config: BatonConfig, instance_path: str) -> SqliteStore:
        """A relative path is a file in the app's instance folder (``sqlite_paths``).

        In-memory databases and ``file:`` URIs are left alone (the engine
        refuses the former with its own message).
        """
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            url = url.set(database=instance_file(database, instance_path))
        engine, busy_ms = sqlite_engine(url, config)
        return cls(engine, config, busy_ms)

    def _begin(self, conn: Connection) -> None:
        begin_immediate(conn, self._busy_ms)

    def atomic(self, conn: Connection) -> AbstractContextManager[Any]:
        return nullcontext()  # every write transaction already holds the write lock

    def _begin_upgrade(self, conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    def claim(self, conn: Connection, node_id: str, worker: str, now: float) -> Claimed | None:
        row = self._run(conn, hotpath.CLAIM, {"id": node_id, "now": now, "worker": worker}).fetchone()
        if row is None:
            return None
        workflow_id, step_name, task, args, attempt, queued_at, label, budget_usd = row
        return Claimed(
            node_id, workflow_id, step_name, task, args, attempt, worker, now, queued_at, label, budget_usd=budget_usd
        )

    def complete_in_one(
        self, conn: Connection, claimed: Claimed, result: str | None, now: float, take: frozenset[str] = frozenset()
    ) -> Completion | None:
        return None  # a statement each is as cheap: SQLite runs in this process

    def finish(self, conn: Connection, workflow_id: str, now: float) -> WorkflowEnd | None:
        failed_steps = sorted(name for (name,) in self._run(conn, hotpath.FAILING, {"workflow_id": workflow_id}))
        outcome = WorkflowState.FAILED if failed_steps else WorkflowState.COMPLETED
        where = {"workflow_id": workflow_id, "now": now, "outcome": outcome.value, "failed": json.dumps(failed_steps)}
        self._run(conn, hotpath.FINISH, where)
        if self._run(conn, hotpath.RECORD_END, where).fetchone() is None:
            return None
        return WorkflowEnd(workflow_id, outcome.value, failed_steps, now)

    def _insert_or_skip(self, table: Table) -> Any:
        return sqlite_insert(table)

    def _limit_lock_waits(self, conn: Connection) -> None:
        """Nothing to limit: the write lock taken at BEGIN is the only lock."""

    def _is_lock_timeout(self, error: exc.OperationalError) -> bool:
        return False
