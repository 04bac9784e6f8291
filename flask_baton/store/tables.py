"""flask_baton's tables: the one place their names and columns are written.

They live in their own ``MetaData`` so they never show up in a host app's
``db.metadata``; ``flask_baton.migration`` keeps Alembic's autogenerate away
from them, and ``migrations`` creates and upgrades them.

Times are Unix epoch seconds (floats): cheap to compare in SQL on every
backend, and the same numbers the consumer's clock produces.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Float,
    ForeignKey,
    FromClause,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    text,
)

from ..states import WorkflowState

metadata = MetaData()

ID = String(32)
NAME = String(255)

workflows = Table(
    "baton_workflows",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False),
    Column("state", String(16), nullable=False),
    Column("total_steps", Integer, nullable=False),
    # Steps not yet settled; the step whose settle brings it to 0 finishes
    # the workflow, so no transition scans the whole workflow.
    Column("unsettled", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    # ``Workflow(unique_key=...)``: at most one running workflow per key (see below).
    Column("unique_key", NAME),
    # Times a retry (of steps, of the workflow, a resume) ran it again: what
    # its outcome says ("Completed after 1 retry").
    Column("retried", Integer, nullable=False, default=0, server_default="0"),
    # ``Workflow(budget_usd=...)``: the cap on what its steps may spend (NULL:
    # none), and what reaching it does (``budget.ACTIONS``; NULL: the app's
    # ``BATON_BUDGET_ACTION``). ``set_budget`` changes the cap.
    Column("budget_usd", Float),
    Column("on_budget", String(16)),
    Index("ix_baton_workflows_state_created", "state", "created_at"),
    Index("ix_baton_workflows_name_created", "name", "created_at"),
    Index("ix_baton_workflows_created", "created_at"),
    # The overview's time ranges: workflows (and, through them, steps) that ended since.
    Index("ix_baton_workflows_finished", "finished_at"),
)

#: The rows ``ux_baton_workflows_unique_running`` covers. A literal, not a bound
#: parameter: an ``ON CONFLICT ... WHERE`` must repeat it for the database to
#: match the partial index.
RUNNING_ONLY = text(f"state = '{WorkflowState.RUNNING.value}'")

# The database, not a read-then-write check, keeps a unique key to one running
# workflow; a key is free again as soon as its workflow leaves ``running``.
Index(
    "ux_baton_workflows_unique_running",
    workflows.c.unique_key,
    unique=True,
    sqlite_where=RUNNING_ONLY,
    postgresql_where=RUNNING_ONLY,
)

nodes = Table(
    "baton_nodes",
    metadata,
    Column("id", ID, primary_key=True),
    Column("workflow_id", ID, ForeignKey(workflows.c.id, ondelete="CASCADE"), nullable=False),
    Column("step_name", NAME, nullable=False),
    Column("position", Integer, nullable=False),  # order of adding, within the workflow
    Column("task", NAME, nullable=False),  # registered step function's name
    Column("args", Text, nullable=False),  # JSON object
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    # Dependencies not yet completed; the completion that brings it to 0
    # makes the step available (completion-triggered start).
    Column("deps_pending", Integer, nullable=False),
    Column("result", Text),  # JSON; NULL when the step returned None
    Column("error", Text),
    Column("worker", String(255)),
    Column("created_at", Float, nullable=False),
    Column("scheduled_at", Float),  # when it may next run (available/snoozed/retryable)
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),
    # Moved by every step added behind this one (``job.add_step``): on
    # PostgreSQL a claim reads the step's dependents, and its completion
    # releases them by name only if this has not moved since.
    Column("dependents_version", Integer, nullable=False, default=0, server_default="0"),
    # Who cancelled a cancelled step: ``CancelledBy.USER`` (``cancel_workflow``)
    # or ``CancelledBy.BUDGET`` (a spend cap reached); NULL when a
    # dependency's failure did, or the step is not cancelled.
    Column("cancelled_by", String(16)),
    # Why a snoozed step waits, when a limit of ``BATON_RATE_LIMITS`` holds it
    # ("waiting for openai: 40 of 40 rpm used"); shown while it is snoozed.
    Column("waiting_for", Text),
    Index("ux_baton_nodes_workflow_step", "workflow_id", "step_name", unique=True),
    Index("ix_baton_nodes_state_scheduled", "state", "scheduled_at"),
)

#: A step's identity as ``effects.StepIdentity`` holds it, in its field order:
#: what a read selects first to hand a step on (the sweep's rescue, a wait's timeout).
STEP_IDENTITY = (nodes.c.id, nodes.c.workflow_id, nodes.c.step_name, nodes.c.task, nodes.c.args, nodes.c.attempt)

edges = Table(
    "baton_edges",
    metadata,
    Column("workflow_id", ID, ForeignKey(workflows.c.id, ondelete="CASCADE"), primary_key=True),
    Column("step_name", NAME, primary_key=True),  # the dependent
    Column("dep_name", NAME, primary_key=True),  # what it waits for
    # NULL: the dep must complete (its failure cancels the dependent);
    # "cancelled" / "discarded" / "any": that failure lets the dependent run.
    Column("tolerates", String(16)),
    # Covering: a completion finds its dependents' names in the index alone.
    Index("ix_baton_edges_dep", "workflow_id", "dep_name", "step_name"),
)


def edge_to_dep(node: FromClause = nodes) -> ColumnElement[bool]:
    """Join condition: an edge and the step it waits for (``node``, or an alias of it)."""
    return and_(node.c.workflow_id == edges.c.workflow_id, node.c.step_name == edges.c.dep_name)


def edge_to_dependent(node: FromClause = nodes) -> ColumnElement[bool]:
    """Join condition: an edge and the step that waits."""
    return and_(node.c.workflow_id == edges.c.workflow_id, node.c.step_name == edges.c.step_name)


def _of_an_attempt() -> list[Column[Any]]:
    """The first columns of a row kept per attempt of a step: its id, and which workflow, step and attempt."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("workflow_id", ID, ForeignKey(workflows.c.id, ondelete="CASCADE"), nullable=False),
        Column("node_id", ID, nullable=False),
        Column("step_name", NAME, nullable=False),
        Column("attempt", Integer, nullable=False),
    ]


def _attempt_table(name: str, *columns: Column[Any]) -> Table:
    """A table of rows kept per attempt of a step: which attempt, ``columns``, when.

    Indexed by workflow (a workflow's totals, its deletion) and by
    ``created_at`` (retention prunes the oldest rows).
    """
    return Table(
        name,
        metadata,
        *_of_an_attempt(),
        *columns,
        Column("created_at", Float, nullable=False),
        Index(f"ix_{name}_workflow", "workflow_id"),
        Index(f"ix_{name}_created", "created_at"),
    )


step_stats = _attempt_table(
    "baton_step_stats",
    Column("model", NAME),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cached_input_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("cache_write_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("cost_usd", Float),
    Column("latency", Float),
)

debug_logs = _attempt_table(
    "baton_debug_logs",
    Column("messages", Text),
    Column("response", Text),
    Column("truncated", Boolean, nullable=False, default=False),
)

attempts = Table(
    "baton_attempts",
    metadata,
    # One row per run of a step that ended and left the step's row to another
    # (a failure retried, a snooze, a hand back, a rescue, a run a retry
    # re-armed): the step's row holds only its last run. Written in the
    # transaction of that transition, never on a step's claim or completion.
    *_of_an_attempt(),
    Column("outcome", String(16), nullable=False),  # states.AttemptOutcome
    Column("worker", String(255)),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("error", Text),
    # A step's runs in order; also what a workflow's deletion goes by.
    Index("ix_baton_attempts_step", "workflow_id", "step_name", "started_at"),
)

completions = Table(
    "baton_completions",
    metadata,
    # One row per finished workflow: the primary key is what makes
    # ``workflow_finished`` happen once, whoever gets there first.
    Column("workflow_id", ID, primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("failed_steps", Text, nullable=False),  # JSON list
    Column("finished_at", Float, nullable=False),
    Column("announced_at", Float),
    # The outbox: an end announced but not yet ``published_at`` is one whose
    # ``workflow_finished`` the transport may not have; the sweep publishes
    # it again (schema 6).
    Column("published_at", Float),
)

#: The outbox's rows; the partial index keeps it as small as the outbox.
UNPUBLISHED = text("published_at IS NULL")

Index(
    "ix_baton_completions_unpublished",
    completions.c.announced_at,
    sqlite_where=UNPUBLISHED,
    postgresql_where=UNPUBLISHED,
)

events = Table(
    "baton_events",
    metadata,
    # The database-backed event feed (see events/database.py).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workflow_id", ID, nullable=False),
    Column("name", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_baton_events_created", "created_at"),
)

locks = Table(
    "baton_locks",
    metadata,
    # Named leases: whoever moves ``until`` forward holds the lock until then
    # (one effective sweeper per interval, whatever the number of consumers).
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("until", Float, nullable=False),
)

consumers = Table(
    "baton_consumers",
    metadata,
    # One row per consumer process and queue it serves, stamped every
    # ``BATON_HEARTBEAT_SECONDS`` by the process's heartbeat whether or not it
    # runs a step (``heartbeat.py``), and deleted when it stops: the overview
    # lists those heard from within ``BATON_LEASE_SECONDS``.
    Column("worker", String(255), primary_key=True),  # host:pid, as a step's ``worker``
    Column("queue", NAME, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)

schedule_ticks = Table(
    "baton_schedule_ticks",
    metadata,
    # One row per tick of a schedule that a consumer acted on (``schedules.py``):
    # the primary key is what makes a tick start at most one workflow, however
    # many consumers check it at once. Written in the transaction that inserts
    # the tick's workflow, so there is never a tick without its workflow.
    Column("schedule", NAME, primary_key=True),
    Column("tick_at", Float, primary_key=True),
    Column("outcome", String(16), nullable=False),  # states.TickOutcome
    Column("workflow_id", ID),  # the workflow started (NULL when skipped); no FK: a prune may delete it
    Column("detail", Text),  # why it was skipped or failed
    Column("created_at", Float, nullable=False),
)

signals = Table(
    "baton_signals",
    metadata,
    # ``baton.signal(workflow_id, name, payload)``: at most one per workflow and
    # name (the primary key refuses a second), kept whether or not a step
    # waits for it yet, read by ``job.signal(name)``.
    Column("workflow_id", ID, ForeignKey(workflows.c.id, ondelete="CASCADE"), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("payload", Text),  # JSON; NULL for a wait that timed out with on_timeout="continue"
    Column("sent_by", String(255)),  # the dashboard's user, the CLI's --by, or None
    Column("sent_at", Float, nullable=False),
    # When a waiting step was woken by it (None: no step waited for it yet).
    Column("delivered_at", Float),
    Column("timed_out", Boolean, nullable=False, default=False, server_default="0"),
)

waits = Table(
    "baton_waits",
    metadata,
    # A step's last ``WaitFor``: what it waits (or waited) for, since when,
    # until when. The step's row is ``waiting`` while it waits, with its
    # deadline as ``scheduled_at`` (the sweep's index finds timed-out waits).
    Column("node_id", ID, primary_key=True),
    Column("workflow_id", ID, ForeignKey(workflows.c.id, ondelete="CASCADE"), nullable=False),
    Column("name", NAME, nullable=False),
    Column("since", Float, nullable=False),
    Column("until", Float, nullable=False),
    Column("on_timeout", String(16), nullable=False),
    Column("approval", Boolean, nullable=False, default=False, server_default="0"),
    Index("ix_baton_waits_workflow_name", "workflow_id", "name"),
)

rate_buckets = Table(
    "baton_rate_buckets",
    metadata,
    # One row per key of ``BATON_RATE_LIMITS`` in use (``"openai"``, ``"tenant:acme"``):
    # its window of calls, queue of waiters and held slots as JSON
    # (``buckets.Bucket``), changed under a row lock. Unused with Redis.
    Column("key", NAME, primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

schema_versions = Table(
    "baton_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)


#: Every flask_baton table name.
TABLE_NAMES: frozenset[str] = frozenset(metadata.tables)
