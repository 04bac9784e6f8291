"""Schema versions: creating flask_baton's tables, and upgrading an older install in place.

``SCHEMA_VERSION`` is recorded in ``baton_schema``; ``MIGRATIONS`` holds the
steps that bring an older install up to date, so ``create_schema`` is safe to
run on every deploy. ``Store.upgrade`` (``flask baton db upgrade``) runs
``upgrade_in`` in a transaction of its own; an app's Alembic migration
(``flask_baton.migration``) runs it in the migration's transaction. Either
way the store first serialises concurrent upgrades its own way.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, func, select, text, update

from ..states import CancelledBy, StepState, WorkflowState
from .tables import (
    attempts,
    completions,
    consumers,
    metadata,
    nodes,
    rate_buckets,
    schedule_ticks,
    schema_versions,
    signals,
    step_stats,
    waits,
    workflows,
)

#: The version ``create_schema`` brings a database to.
SCHEMA_VERSION = 11


def _add_dependents_version(conn: Connection) -> None:
    conn.execute(text(f"ALTER TABLE {nodes.name} ADD COLUMN dependents_version INTEGER NOT NULL DEFAULT 0"))


def _add_attempts(conn: Connection) -> None:
    attempts.create(conn)


def _add_cancel_and_retry_marks(conn: Connection) -> None:
    """Version 4: who cancelled a step, how often a workflow was retried (its outcome's sentence).

    A user's cancel gave its workflow and the steps it cancelled one same
    ``finished_at``; a cascade before it, an earlier one. So the steps of a
    workflow still cancelled are marked as a user's doing from that.
    """
    conn.execute(text(f"ALTER TABLE {nodes.name} ADD COLUMN cancelled_by VARCHAR(16)"))
    conn.execute(text(f"ALTER TABLE {workflows.name} ADD COLUMN retried INTEGER NOT NULL DEFAULT 0"))
    conn.execute(
        update(nodes)
        .where(
            nodes.c.state == StepState.CANCELLED,
            select(workflows.c.id)
            .where(
                workflows.c.id == nodes.c.workflow_id,
                workflows.c.state == WorkflowState.CANCELLED,
                workflows.c.finished_at == nodes.c.finished_at,
            )
            .exists(),
        )
        .values(cancelled_by=CancelledBy.USER)
    )


def _add_consumers(conn: Connection) -> None:
    """Version 5: consumers' heartbeats, and workflows found by when they ended (the overview)."""
    consumers.create(conn)
    next(index for index in workflows.indexes if index.name == "ix_baton_workflows_finished").create(conn)


def _add_reasoning_and_cache_writes(conn: Connection) -> None:
    """Version 6: reasoning and cache-write tokens, counted and priced apart (``job.record_usage(response)``).

    Rows already stored counted them in ``output_tokens`` and ``input_tokens``: they keep 0 here.
    """
    for column in ("reasoning_tokens", "cache_write_tokens"):
        conn.execute(text(f"ALTER TABLE {step_stats.name} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"))


def _add_schedule_ticks(conn: Connection) -> None:
    """Version 7: the ticks schedules acted on (``baton.schedule``), one row each."""
    schedule_ticks.create(conn)


def _add_budgets(conn: Connection) -> None:
    """Version 8: a workflow's spend cap and what reaching it does (``Workflow(budget_usd=...)``)."""
    conn.execute(text(f"ALTER TABLE {workflows.name} ADD COLUMN budget_usd FLOAT"))
    conn.execute(text(f"ALTER TABLE {workflows.name} ADD COLUMN on_budget VARCHAR(16)"))


def _add_signals_and_waits(conn: Connection) -> None:
    """Version 9: durable waits (``WaitFor``) and the signals that wake them."""
    signals.create(conn)
    waits.create(conn)


def _add_event_outbox(conn: Connection) -> None:
    """Version 10: ``workflow_finished`` goes through an outbox (``baton_completions.published_at``).

    Ends announced before the upgrade count as published: they were
    published at most once, and publishing them now would be news to nobody.
    """
    conn.execute(text(f"ALTER TABLE {completions.name} ADD COLUMN published_at FLOAT"))
    conn.execute(
        update(completions)
        .where(completions.c.announced_at.is_not(None))
        .values(published_at=completions.c.announced_at)
    )
    next(index for index in completions.indexes if index.name == "ix_baton_completions_unpublished").create(conn)


def _add_rate_limits(conn: Connection) -> None:
    """Version 11: the buckets of ``BATON_RATE_LIMITS`` and why a snoozed step waits."""
    rate_buckets.create(conn)
    conn.execute(text(f"ALTER TABLE {nodes.name} ADD COLUMN waiting_for TEXT"))


#: version -> function that upgrades a database from ``version - 1``.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _add_dependents_version,
    3: _add_attempts,
    4: _add_cancel_and_retry_marks,
    5: _add_consumers,
    6: _add_reasoning_and_cache_writes,
    7: _add_schedule_ticks,
    8: _add_budgets,
    9: _add_signals_and_waits,
    10: _add_event_outbox,
    11: _add_rate_limits,
}


def current_version(conn: Connection) -> int:
    """Return the recorded schema version, 0 when flask_baton is not installed."""
    if not conn.dialect.has_table(conn, schema_versions.name):
        return 0
    return int(conn.execute(select(func.coalesce(func.max(schema_versions.c.version), 0))).scalar_one())


def upgrade_in(conn: Connection, now: float) -> tuple[int, int]:
    """Create or upgrade the tables in the caller's transaction; return (from, to) versions.

    The caller has made sure no other upgrade runs at the same time.
    """
    found = current_version(conn)
    if found == 0:
        metadata.create_all(conn)
    else:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
    if found < SCHEMA_VERSION:
        conn.execute(schema_versions.insert(), {"version": SCHEMA_VERSION, "applied_at": now})
    return found, SCHEMA_VERSION


def drop_all(conn: Connection) -> None:
    """Drop every flask_baton table, with every workflow in them; tables already gone are skipped."""
    metadata.drop_all(conn)
