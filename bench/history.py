"""PostgreSQL: the steady state of an install that has run a while.

Before the runs, ``write_history`` writes ``HISTORY`` finished two-step
workflows (as rows, in one statement per table), then ``ANALYZE``.
Statistics taken on the few rows of a warm-up would tell the planner the
tables are a page or two, and the plans it caches for the hot path would then
read them whole on every step as the scenarios grow them 100-fold: the first
minute of a new install (``--fresh`` skips this), not what autovacuum keeps a
running one at.
"""

from __future__ import annotations

import time
from typing import Any

#: Finished workflows written before the runs on PostgreSQL.
HISTORY = 10_000

_HISTORY = (
    """INSERT INTO baton_workflows (id, name, state, total_steps, unsettled, created_at, finished_at)
       SELECT md5('w' || i), 'bench:history', 'completed', 2, 0, :t0 + i, :t0 + i + 0.01
       FROM generate_series(1, :n) AS i""",
    """INSERT INTO baton_nodes (id, workflow_id, step_name, position, task, args, state, attempt, deps_pending,
                                worker, created_at, started_at, finished_at, dependents_version)
       SELECT md5(s || i), md5('w' || i), s, p, 'bench.app.noop', '{}', 'completed', 1, 0,
              'history', :t0 + i, :t0 + i, :t0 + i + 0.01, 0
       FROM generate_series(1, :n) AS i, (VALUES ('first', 0), ('second', 1)) AS steps (s, p)""",
    """INSERT INTO baton_edges (workflow_id, step_name, dep_name)
       SELECT md5('w' || i), 'second', 'first' FROM generate_series(1, :n) AS i""",
    """INSERT INTO baton_completions (workflow_id, outcome, failed_steps, finished_at, announced_at)
       SELECT md5('w' || i), 'completed', '[]', :t0 + i + 0.01, :t0 + i + 0.01 FROM generate_series(1, :n) AS i""",
)


def write_history(engine: Any) -> None:
    """The history rows, then ``ANALYZE`` of flask_baton's tables."""
    from sqlalchemy import text

    with engine.connect() as conn:
        for statement in _HISTORY:
            conn.execute(text(statement), {"n": HISTORY, "t0": time.time() - 86_400})
        for table in ("baton_workflows", "baton_nodes", "baton_edges", "baton_events", "baton_completions"):
            conn.execute(text(f"ANALYZE {table}"))
        conn.commit()
