"""Every change of a step's or workflow's state, as SQL compare-and-set.

Each function runs inside one short write transaction that the caller owns
(on PostgreSQL with events outside the database, the claim and a completion
without added steps run without one: each of their statements is a whole
change) and returns the ``Effects`` to act on *after* the commit: steps to
hand to Huey, events to announce, hooks to call. Nothing is enqueued or
announced for a change that did not commit, and every ``UPDATE`` names the
state it expects, so of two racing consumers exactly one wins.

SQL round trips per transition (the hot path):
- claim: 1 ``UPDATE ... RETURNING`` that also checks every dependency (and
  on PostgreSQL returns the step's dependents);
- complete: SQLite 3 (the step, its dependents' release + start, the
  workflow's counter), PostgreSQL 1 CTE releasing the dependents the claim
  read, which also ends the workflow after its last step (unless the last
  steps settle at once: then 1 more); ending adds a read + 2 on SQLite;
- retry / snooze: 1 update;
- discard: 1 update + 2 per level of cascade + the workflow's counter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from . import dag, hotpath
from .dag import dep_done, tolerated
from .errors import DuplicateWorkflowError, WorkflowStateError
from .query import load_graph, load_running_holder
from .schema import (
    RUNNING_ONLY,
    completions,
    edge_to_dep,
    edge_to_dependent,
    edges,
    locks,
    nodes,
    workflows,
)
from .states import CANCELLABLE, CLAIMABLE, FAILED, SETTLED, StepState, WorkflowState


@dataclass(frozen=True)
class StepChange:
    """A step transition to announce once its transaction committed."""

    workflow_id: str
    node_id: str
    step_name: str
    state: StepState
    attempt: int
    timestamp: float
    worker: str | None = None
    error: str | None = None
    has_result: bool = False
    duration: float | None = None  # seconds the attempt ran
    queue_wait: float | None = None  # seconds from available to claimed


@dataclass(frozen=True)
class WorkflowEnd:
    """A workflow that just settled its last step."""

    workflow_id: str
    outcome: str
    failed_steps: list[str]
    timestamp: float


@dataclass(frozen=True)
class Ready:
    """A step to hand to Huey after commit, now or after ``delay`` seconds."""

    node_id: str
    task: str
    delay: float = 0.0


@dataclass(frozen=True)
class StepIdentity:
    """Which step, which task with which arguments, at which attempt."""

    node_id: str
    workflow_id: str
    step_name: str
    task: str
    args: str
    attempt: int


@dataclass(frozen=True)
class Cancelled(StepIdentity):
    """A step the cascade cancelled, for its ``on_dep_*`` hook."""

    reason: str
    dep_state: StepState


@dataclass
class Effects:
    """What the caller must do once the transaction has committed."""

    ready: list[Ready] = field(default_factory=list)
    changes: list[StepChange] = field(default_factory=list)
    cancelled: list[Cancelled] = field(default_factory=list)
    ended: list[WorkflowEnd] = field(default_factory=list)


@dataclass(frozen=True)
class Claimed(StepIdentity):
    """A step this consumer now owns: the row as it was claimed."""

    worker: str
    claimed_at: float
    queued_at: float | None = None
    label: str | None = None  # the workflow's name, when the claim read it
    # PostgreSQL: the dependents' names as the claim read them, and the
    # ``dependents_version`` that fences them (None: read them at completion).
    dependents: tuple[str, ...] | None = None
    dependents_version: int = 0

    def change(self, state: StepState, now: float, **details: Any) -> StepChange:
        """This step's transition to ``state``, timed from the claim."""
        return StepChange(
            self.workflow_id, self.node_id, self.step_name, state, self.attempt, now,
            worker=self.worker, duration=now - self.claimed_at, **details,
        )


@dataclass(frozen=True)
class NewStep:
    """A step row to insert (a workflow's or a running step's addition)."""

    node_id: str
    step_name: str
    task: str
    args: str
    deps: Sequence[str]
    tolerates: Mapping[str, str] = field(default_factory=dict)


# -- inserting -------------------------------------------------------------


@dataclass(frozen=True)
class NewWorkflow:
    """A workflow to insert: its id, name, steps and optional unique key."""

    workflow_id: str
    name: str
    steps: Sequence[NewStep]
    unique_key: str | None = None


def insert_workflows(conn: Connection, batch: Sequence[NewWorkflow], now: float) -> Effects:
    """Write whole workflows, each step and edge of all of them in one statement each.

    Every root is ready at once. With a ``unique_key`` held by a running
    workflow, raises ``DuplicateWorkflowError`` naming that workflow, and the
    caller's transaction rolls back with nothing written.
    """
    plain: list[dict[str, Any]] = []
    for new in batch:
        row = {
            "id": new.workflow_id,
            "name": new.name,
            "state": WorkflowState.RUNNING,
            "total_steps": len(new.steps),
            "unsettled": len(new.steps),
            "created_at": now,
            "finished_at": None,
            "unique_key": new.unique_key,
        }
        if new.unique_key is None:
            plain.append(row)
        else:
            _insert_unique(conn, row, new.unique_key)
    if plain:
        conn.execute(insert(workflows), plain)
    effects = Effects()
    node_rows: list[dict[str, Any]] = []
    edge_rows: list[dict[str, Any]] = []
    for new in batch:
        effects.ready.extend(_step_rows(new.workflow_id, new.steps, {}, 0, now, node_rows, edge_rows))
    _write_rows(conn, node_rows, edge_rows)
    return effects


def _insert_unique(conn: Connection, row: dict[str, Any], unique_key: str) -> None:
    """Insert a workflow row unless a running workflow holds its key.

    ``ON CONFLICT DO NOTHING`` on the partial unique index: of racing
    inserts the database lets exactly one through, and the others wait for
    it (PostgreSQL) or run after it (SQLite's write lock), then find it.
    """
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        dialect_insert(workflows)
        .values(row)
        .on_conflict_do_nothing(index_elements=[workflows.c.unique_key], index_where=RUNNING_ONLY)
        .returning(workflows.c.id)
    )
    while conn.execute(stmt).first() is None:
        holder = load_running_holder(conn, unique_key)
        if holder is not None:
            raise DuplicateWorkflowError(unique_key, holder)
        # PostgreSQL only: the holder finished between the two statements, so
        # the key is free; claim it again rather than fail for nothing.


def add_steps(
    conn: Connection, workflow_id: str, steps: Sequence[NewStep], now: float
) -> Effects:
    """Add steps to a running workflow (a running step fanning out).

    The existing steps they depend on are updated first (their
    ``dependents_version`` moves), which locks them: a dependency cannot
    complete between reading its state and the new edges becoming visible,
    and one that read its dependents when claimed will not trust that list.
    """
    new_names = {step.step_name for step in steps}
    existing = sorted({dep for step in steps for dep in step.deps} - new_names)
    states: dict[str, str] = {}
    if existing:
        rows = conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name.in_(existing))
            .values(dependents_version=nodes.c.dependents_version + 1)
            .returning(nodes.c.step_name, nodes.c.state)
        )
        states = {name: state for name, state in rows}
    total = conn.execute(
        update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(
            total_steps=workflows.c.total_steps + len(steps),
            unsettled=workflows.c.unsettled + len(steps),
        )
        .returning(workflows.c.total_steps)
    ).scalar_one()
    effects = _insert_steps(conn, workflow_id, steps, states, total - len(steps), now)
    failed = {name: StepState(state) for name, state in states.items() if state in FAILED}
    if failed:
        # New steps that do not tolerate a failed existing dep are cancelled.
        _merge(effects, cascade(conn, workflow_id, failed, now, only=new_names))
    return effects


def _done_for(dep: str, tolerates: str | None, finished: Mapping[str, str]) -> bool:
    """Whether an existing dep in state ``finished[dep]`` no longer holds a new step back."""
    state = finished.get(dep)
    return state is not None and dep_done(state, tolerates)


def _insert_steps(
    conn: Connection,
    workflow_id: str,
    steps: Sequence[NewStep],
    finished: Mapping[str, str],
    first_position: int,
    now: float,
) -> Effects:
    node_rows: list[dict[str, Any]] = []
    edge_rows: list[dict[str, Any]] = []
    ready = _step_rows(workflow_id, steps, finished, first_position, now, node_rows, edge_rows)
    _write_rows(conn, node_rows, edge_rows)
    return Effects(ready=ready)


def _step_rows(
    workflow_id: str,
    steps: Sequence[NewStep],
    finished: Mapping[str, str],
    first_position: int,
    now: float,
    node_rows: list[dict[str, Any]],
    edge_rows: list[dict[str, Any]],
) -> list[Ready]:
    """Append the steps' node and edge rows; return the steps ready at once."""
    ready: list[Ready] = []
    for position, step in enumerate(steps, first_position):
        deps = list(dict.fromkeys(step.deps))
        pending = sum(1 for dep in deps if not _done_for(dep, step.tolerates.get(dep), finished))
        node_rows.append(
            {
                "id": step.node_id,
                "workflow_id": workflow_id,
                "step_name": step.step_name,
                "position": position,
                "task": step.task,
                "args": step.args,
                "state": StepState.PENDING if pending else StepState.AVAILABLE,
                "attempt": 0,
                "deps_pending": pending,
                "created_at": now,
                "scheduled_at": None if pending else now,
            }
        )
        edge_rows.extend(
            {"workflow_id": workflow_id, "step_name": step.step_name, "dep_name": dep,
             "tolerates": step.tolerates.get(dep)}
            for dep in deps
        )
        if not pending:
            ready.append(Ready(step.node_id, step.task))
    return ready


def _write_rows(conn: Connection, node_rows: list[dict[str, Any]], edge_rows: list[dict[str, Any]]) -> None:
    if node_rows:
        conn.execute(insert(nodes), node_rows)
    if edge_rows:
        conn.execute(insert(edges), edge_rows)


# -- running ---------------------------------------------------------------


def _satisfied(dep_state: Any, tolerates: Any) -> Any:
    """SQL: this edge no longer holds its dependent back."""
    return or_(
        dep_state == StepState.COMPLETED,
        and_(dep_state.in_(FAILED), or_(tolerates == "any", tolerates == dep_state)),
    )


def claim(conn: Connection, node_id: str, worker: str, now: float) -> Claimed | None:
    """Start executing a delivered step, if it is due and its deps all completed.

    This is the self-gate: whatever enqueued the step (a completion, a retry,
    the sweep, a duplicate delivery), it runs only from a claimable state and
    only when every dependency is completed (or failed in a way its edge
    tolerates), and only one claimer wins. One statement, which also returns
    the workflow's name for the step's events.
    """
    postgres = conn.dialect.name == "postgresql"
    statement = hotpath.CLAIM_WITH_DEPENDENTS if postgres else hotpath.CLAIM
    row = hotpath.run(conn, statement, {"id": node_id, "now": now, "worker": worker}).fetchone()
    if row is None:
        return None
    workflow_id, step_name, task, args, attempt, queued_at, label, *fence = row
    claimed = Claimed(node_id, workflow_id, step_name, task, args, attempt, worker, now, queued_at, label)
    if fence:
        version, dependents = fence
        claimed = replace(claimed, dependents=tuple(dependents), dependents_version=version)
    return claimed


def cancel_if_blocked(conn: Connection, node_id: str, now: float) -> Effects:
    """For a delivered step that could not be claimed: cancel it if a dep failed.

    The cascade normally does this when the dependency fails; this covers a
    step that became runnable again (a manual retry) behind a failed dep.
    """
    node = conn.execute(
        select(nodes.c.workflow_id, nodes.c.step_name, nodes.c.state).where(nodes.c.id == node_id)
    ).one_or_none()
    if node is None or node.state not in CANCELLABLE:
        return Effects()
    failed = conn.execute(
        select(nodes.c.step_name, nodes.c.state)
        .select_from(edges.join(nodes, edge_to_dep()))
        .where(
            edges.c.workflow_id == node.workflow_id,
            edges.c.step_name == node.step_name,
            nodes.c.state.in_(FAILED),
            ~_satisfied(nodes.c.state, edges.c.tolerates),
        )
    ).first()
    if failed is None:
        return Effects()
    return cascade(conn, node.workflow_id, {failed.step_name: StepState(failed.state)}, now, only={node.step_name})


def complete(conn: Connection, claimed: Claimed, result: str | None, added: Sequence[NewStep], now: float) -> Effects:
    """Store a step's result, release its dependents, and count it settled.

    On PostgreSQL, without added steps, this is one statement releasing the
    dependents the claim read and, if this was the last step, ending the
    workflow: a whole change, so it may run without a transaction around it.
    If that statement's compare-and-set fails because a running step
    added a dependent since the claim, the step is completed the long way,
    in a transaction.
    """
    params = {
        "id": claimed.node_id, "attempt": claimed.attempt, "worker": claimed.worker, "result": result, "now": now,
        "workflow_id": claimed.workflow_id, "dep_name": claimed.step_name,
    }
    effects = Effects(changes=[claimed.change(StepState.COMPLETED, now, has_result=result is not None)])
    if claimed.dependents is not None and not added:
        statement = hotpath.COMPLETE_AND_RELEASE if claimed.dependents else hotpath.COMPLETE_AND_SETTLE
        rows = hotpath.run(conn, statement, {**params, "version": claimed.dependents_version},
                           names=claimed.dependents).fetchall()
        if rows:
            effects.ready.extend(_started(row[1:] for row in rows if row[0] == "r"))
            ended = [WorkflowEnd(claimed.workflow_id, outcome, json.loads(failed), now)
                     for kind, outcome, failed, *_ in rows if kind == "e"]
            effects.ended.extend(ended)
            if not ended and any(kind == "s" and unsettled == 0 for kind, *_, unsettled in rows):
                # The last steps settled at once: read their outcomes in a later statement.
                _merge(effects, finish(conn, claimed.workflow_id, now))
            return effects
        with hotpath.transaction(conn):
            return _complete_in_steps(conn, params, added, now, effects)
    return _complete_in_steps(conn, params, added, now, effects)


def _complete_in_steps(
    conn: Connection, params: dict[str, Any], added: Sequence[NewStep], now: float, effects: Effects
) -> Effects:
    """COMPLETE, then release the dependents as a later statement sees them, then settle.

    Run in a transaction: the release's snapshot comes after the step's row
    was taken, so it sees every step added behind this one.
    """
    if hotpath.run(conn, hotpath.COMPLETE, params).rowcount != 1:
        return Effects()
    workflow_id = params["workflow_id"]
    effects.ready.extend(_started(hotpath.run(conn, hotpath.RELEASE_DEPENDENTS, params).fetchall()))
    if added:
        # After the release: added steps count this one as completed already.
        _merge(effects, add_steps(conn, workflow_id, added, now))
    _merge(effects, settle(conn, workflow_id, 1, now))
    return effects


def _release(conn: Connection, workflow_id: str, names: list[str], now: float) -> list[Ready]:
    """One of each named step's deps is done: count it, and start those with none left."""
    if not names:
        return []
    return _started(hotpath.run(conn, hotpath.RELEASE, {"workflow_id": workflow_id, "now": now}, names=names))


def _started(released: Iterable[Sequence[Any]]) -> list[Ready]:
    """The released rows (id, task, state, deps_pending, ...) that are ready to run now."""
    return [
        Ready(node_id, task)
        for node_id, task, state, deps_pending, *_ in released
        if state == StepState.AVAILABLE and deps_pending == 0
    ]


def retry_later(conn: Connection, claimed: Claimed, error: str, delay: float, now: float) -> Effects:
    """A failed run with attempts left: run again after ``delay`` seconds."""
    return _reschedule(conn, claimed, StepState.RETRYABLE, delay, now, error=error)


def snooze(conn: Connection, claimed: Claimed, seconds: float, now: float) -> Effects:
    """Run again after ``seconds``; the attempt is given back."""
    return _reschedule(conn, claimed, StepState.SNOOZED, seconds, now, attempt=claimed.attempt - 1)


#: Seconds a handed-back step waits in Huey's schedule before it is queued again.
HAND_BACK_DELAY = 1.0


def release(conn: Connection, node_id: str, worker: str, now: float) -> Effects:
    """Hand a step back unrun: its consumer is stopping mid-step.

    Fenced by the worker rather than the attempt, because Huey's
    interrupted-task signal knows only the task, not our claim.
    """
    row = conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id, nodes.c.state == StepState.EXECUTING, nodes.c.worker == worker)
        .values(state=StepState.AVAILABLE, attempt=nodes.c.attempt - 1, worker=None, scheduled_at=now)
        .returning(nodes.c.task)
    ).one_or_none()
    # Enqueued after a pause: right now the stopping consumer's idle workers
    # may still be blocked on the queue and would take the message with them.
    return Effects() if row is None else Effects(ready=[Ready(node_id, row.task, HAND_BACK_DELAY)])


def _reschedule(
    conn: Connection,
    claimed: Claimed,
    state: StepState,
    delay: float,
    now: float,
    *,
    error: str | None = None,
    attempt: int | None = None,
) -> Effects:
    values: dict[str, Any] = {"state": state, "scheduled_at": now + delay, "worker": None}
    if error is not None:
        values["error"] = error
    if attempt is not None:
        values["attempt"] = attempt
    moved = conn.execute(
        update(nodes)
        .where(nodes.c.id == claimed.node_id, nodes.c.state == StepState.EXECUTING,
               nodes.c.attempt == claimed.attempt, nodes.c.worker == claimed.worker)
        .values(**values)
    )
    if moved.rowcount != 1:
        return Effects()
    return Effects(
        ready=[Ready(claimed.node_id, claimed.task, delay)],
        changes=[claimed.change(state, now, error=error)],
    )


def discard(conn: Connection, claimed: Claimed, reason: str, now: float) -> Effects:
    """Fail a step for good and cancel everything downstream of it."""
    gone = conn.execute(
        update(nodes)
        .where(nodes.c.id == claimed.node_id, nodes.c.state == StepState.EXECUTING,
               nodes.c.attempt == claimed.attempt, nodes.c.worker == claimed.worker)
        .values(state=StepState.DISCARDED, error=reason, finished_at=now, worker=None)
    )
    if gone.rowcount != 1:
        return Effects()
    effects = Effects(changes=[claimed.change(StepState.DISCARDED, now, error=reason)])
    _merge(effects, cascade(conn, claimed.workflow_id, {claimed.step_name: StepState.DISCARDED}, now, settled_first=1))
    return effects


def cascade(
    conn: Connection,
    workflow_id: str,
    failed: dict[str, StepState],
    now: float,
    *,
    settled_first: int = 0,
    only: set[str] | None = None,
) -> Effects:
    """Carry the failure of the ``failed`` steps downstream, level by level.

    A dependent whose edge tolerates the failure (``Dep(..., ignore_*)``) is
    released as if the dep had completed; any other is cancelled, with a
    reason naming the dependency that failed it, and its own dependents are
    visited next. ``settled_first`` counts steps the caller already settled in
    this transaction, so the workflow counter is updated once. ``only``
    limits the first level to steps just added, which counted tolerated
    failures already.
    """
    effects = Effects()
    frontier = dict(failed)
    settled = settled_first
    first_level = True
    while frontier:
        rows = conn.execute(
            select(nodes.c.id, nodes.c.step_name, nodes.c.task, nodes.c.args, nodes.c.attempt,
                   edges.c.dep_name, edges.c.tolerates)
            .select_from(edges.join(nodes, edge_to_dependent()))
            .where(edges.c.workflow_id == workflow_id, edges.c.dep_name.in_(sorted(frontier)), nodes.c.state.in_(CANCELLABLE))
            .order_by(nodes.c.step_name, edges.c.dep_name)
        ).all()
        if first_level and only is not None:
            rows = [row for row in rows if row.step_name in only]
        blocked = [row for row in rows if not tolerated(row.tolerates, frontier[row.dep_name])]
        next_frontier: dict[str, StepState] = {}
        for row in blocked:
            if row.step_name in next_frontier:
                continue
            dep_state = frontier[row.dep_name]
            reason = f"dependency {row.dep_name!r} {dep_state.value}"
            hit = conn.execute(
                update(nodes)
                .where(nodes.c.id == row.id, nodes.c.state.in_(CANCELLABLE))
                .values(state=StepState.CANCELLED, error=reason, finished_at=now, worker=None, scheduled_at=None)
            )
            if hit.rowcount != 1:
                continue
            next_frontier[row.step_name] = StepState.CANCELLED
            settled += 1
            effects.changes.append(
                StepChange(workflow_id, row.id, row.step_name, StepState.CANCELLED, row.attempt, now, error=reason)
            )
            effects.cancelled.append(
                Cancelled(row.id, workflow_id, row.step_name, row.task, row.args, row.attempt, reason, dep_state)
            )
        if not (first_level and only is not None):
            for row in rows:
                if row.step_name not in next_frontier and tolerated(row.tolerates, frontier[row.dep_name]):
                    effects.ready.extend(_release(conn, workflow_id, [row.step_name], now))
        frontier = next_frontier
        first_level = False
    if settled:
        _merge(effects, settle(conn, workflow_id, settled, now))
    return effects


def settle(conn: Connection, workflow_id: str, count: int, now: float) -> Effects:
    """Count ``count`` steps settled; finish the workflow when none are left."""
    unsettled, _state = hotpath.run(conn, hotpath.SETTLE, {"workflow_id": workflow_id, "count": count}).fetchone()
    if unsettled > 0:
        return Effects()
    return finish(conn, workflow_id, now)


def finish(conn: Connection, workflow_id: str, now: float) -> Effects:
    """End a workflow with no step left to settle, once: completed, or failed.

    Read after the step that settled last was counted: in READ COMMITTED
    this statement's snapshot includes every other step's outcome, as they
    were all counted before it. Nothing happens if steps were re-armed since.
    """
    if conn.dialect.name == "postgresql":
        ended = hotpath.run(conn, hotpath.FINISH_AND_RECORD_END, {"workflow_id": workflow_id, "now": now}).fetchone()
        if ended is None:
            return Effects()
        outcome, failed = ended
        return Effects(ended=[WorkflowEnd(workflow_id, outcome, json.loads(failed), now)])
    failed_steps = _failed_steps(conn, workflow_id)
    outcome = WorkflowState.FAILED if failed_steps else WorkflowState.COMPLETED
    where = {"workflow_id": workflow_id, "now": now, "outcome": outcome.value, "failed": json.dumps(failed_steps)}
    hotpath.run(conn, hotpath.FINISH, where)
    if hotpath.run(conn, hotpath.RECORD_END, where).fetchone() is None:
        return Effects()
    return Effects(ended=[WorkflowEnd(workflow_id, outcome.value, failed_steps, now)])


def _failed_steps(conn: Connection, workflow_id: str) -> list[str]:
    """The failed steps that fail the workflow (``hotpath.FAILING``), sorted."""
    return sorted(name for (name,) in hotpath.run(conn, hotpath.FAILING, {"workflow_id": workflow_id}))


def _merge(into: Effects, more: Effects) -> None:
    into.ready.extend(more.ready)
    into.changes.extend(more.changes)
    into.cancelled.extend(more.cancelled)
    into.ended.extend(more.ended)


# -- the sweep ---------------------------------------------------------------


def rescue(conn: Connection, claimed: Claimed, heartbeat_at: float | None, reason: str, now: float) -> Effects:
    """Make a step whose consumer died runnable again (state ``retryable``).

    Fenced on the heartbeat the sweep saw: a consumer that renewed its lease
    in the meantime keeps its step.
    """
    moved = conn.execute(
        update(nodes)
        .where(
            nodes.c.id == claimed.node_id,
            nodes.c.state == StepState.EXECUTING,
            nodes.c.attempt == claimed.attempt,
            nodes.c.heartbeat_at == heartbeat_at if heartbeat_at is not None else nodes.c.heartbeat_at.is_(None),
        )
        .values(state=StepState.RETRYABLE, error=reason, worker=None, scheduled_at=now)
    )
    if moved.rowcount != 1:
        return Effects()
    return Effects(
        ready=[Ready(claimed.node_id, claimed.task)],
        changes=[StepChange(claimed.workflow_id, claimed.node_id, claimed.step_name, StepState.RETRYABLE,
                            claimed.attempt, now, worker=claimed.worker, error=reason)],
    )


def requeue(conn: Connection, node_id: str, task: str, seen_at: float, now: float) -> Ready | None:
    """Hand a waiting step to Huey again (its message was lost), once per sweeper."""
    moved = conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id, nodes.c.state.in_(CLAIMABLE), nodes.c.scheduled_at == seen_at)
        .values(scheduled_at=now)
    )
    return Ready(node_id, task) if moved.rowcount == 1 else None


def mark_announced(conn: Connection, workflow_id: str, now: float) -> bool:
    """Claim the one announcement of a workflow's end; True for the winner."""
    return hotpath.run(conn, hotpath.MARK_ANNOUNCED, {"workflow_id": workflow_id, "now": now}).rowcount == 1


def take_lock(conn: Connection, name: str, holder: str, now: float, until: float) -> bool:
    """Hold the named lease until ``until`` if it is free (expired or new)."""
    taken = conn.execute(
        update(locks).where(locks.c.name == name, locks.c.until <= now).values(holder=holder, until=until)
    ).rowcount
    if taken:
        return True
    exists_already = conn.execute(select(locks.c.name).where(locks.c.name == name)).first()
    if exists_already is not None:
        return False
    conn.execute(insert(locks), {"name": name, "holder": holder, "until": until})
    return True


# -- control (dashboard actions, the public API) --------------------------------


def cancel_workflow(conn: Connection, workflow_id: str, reason: str, now: float) -> Effects:
    """Cancel a running workflow and every step of it not yet settled.

    A step still running is cancelled too: its function finishes, but its
    outcome no longer matches (the compare-and-set sees ``cancelled``) and is
    dropped.
    """
    moved = conn.execute(
        update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.state == WorkflowState.RUNNING)
        .values(state=WorkflowState.CANCELLED, finished_at=now)
    )
    if moved.rowcount != 1:
        return Effects()
    rows = conn.execute(
        update(nodes)
        .where(nodes.c.workflow_id == workflow_id, nodes.c.state.in_((*CANCELLABLE, StepState.EXECUTING)))
        .values(state=StepState.CANCELLED, error=reason, finished_at=now, worker=None, scheduled_at=None)
        .returning(nodes.c.id, nodes.c.step_name, nodes.c.attempt)
    ).all()
    effects = Effects(changes=[
        StepChange(workflow_id, row.id, row.step_name, StepState.CANCELLED, row.attempt, now, error=reason)
        for row in sorted(rows, key=lambda row: row.step_name)
    ])
    if rows:
        _merge(effects, settle(conn, workflow_id, len(rows), now))
    return effects


#: Milliseconds a retry waits for a row lock on PostgreSQL: less than the
#: server's default ``deadlock_timeout`` (1 s), so were a retry ever to close a
#: cycle of waits with a completing step, the retry is what fails, not the step.
REARM_LOCK_TIMEOUT_MS = 500
_LOCK_NOT_AVAILABLE = "55P03"


def rearm(conn: Connection, workflow_id: str, targets: Sequence[str], now: float) -> tuple[dag.RetryPlan, Effects]:
    """Retry failed steps: plan it (``dag.plan_retry``) and make the plan runnable.

    The plan is made from the graph as this transaction sees it, with every
    unsettled dep of a failed step share-locked (on PostgreSQL; SQLite's
    write lock does it), so none completes or fails unseen meanwhile: one
    that completes after the commit releases its re-armed dependents as
    usual, one that fails cascades to them. Each re-armed step starts afresh
    (attempt 0): ``pending`` on the deps it waits for, or ``available`` and
    enqueued after the commit when it waits for none. Steps still to run
    that counted a re-armed step's tolerated failure as done wait for it
    again. The workflow is ``running`` again and will announce its end again.
    Raises ``WorkflowStateError`` (the transaction then rolls back) when a
    target can no longer be retried or a step moved meanwhile.
    """
    try:
        graph = _locked_graph(conn, workflow_id)
        for target in targets:
            refusal = dag.retry_refusal(graph, target)
            if refusal is not None:
                raise WorkflowStateError(f"{refusal}; nothing was retried")
        plan = dag.plan_retry(graph, targets)
        return plan, _apply(conn, workflow_id, plan, now)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise WorkflowStateError(
            f"steps of workflow {workflow_id} are changing right now; nothing was retried, try again"
        ) from None


def _locked_graph(conn: Connection, workflow_id: str) -> dag.StepGraph:
    """The workflow's graph, with the unsettled deps of failed steps locked and read again."""
    graph = load_graph(conn, workflow_id)
    watched = sorted({
        dep for name, deps in graph.deps.items() if graph.states[name] in FAILED
        for dep in deps if graph.states[dep] not in SETTLED
    })
    if not watched:
        return graph
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL lock_timeout = {REARM_LOCK_TIMEOUT_MS}"))
    fresh = conn.execute(
        select(nodes.c.step_name, nodes.c.state)
        .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name.in_(watched))
        .order_by(nodes.c.step_name)
        .with_for_update(read=True)
    ).all()
    return graph.with_states(dict(fresh))


def _apply(conn: Connection, workflow_id: str, plan: dag.RetryPlan, now: float) -> Effects:
    """Write ``plan``: each re-armed step compare-and-set from a failed state."""
    effects = Effects()
    for name in plan.rearm:
        waiting = plan.waits[name]
        row = conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name == name, nodes.c.state.in_(FAILED))
            .values(
                state=StepState.PENDING if waiting else StepState.AVAILABLE,
                deps_pending=waiting, attempt=0, error=None, result=None, worker=None,
                started_at=None, finished_at=None, heartbeat_at=None,
                scheduled_at=None if waiting else now,
            )
            .returning(nodes.c.id, nodes.c.task)
        ).one_or_none()
        if row is None:
            raise WorkflowStateError(f"step {name!r} is no longer discarded or cancelled; nothing was retried")
        # Announced as "retryable": it will run again.
        effects.changes.append(StepChange(workflow_id, row.id, name, StepState.RETRYABLE, 0, now))
        if not waiting:
            effects.ready.append(Ready(row.id, row.task))
    for name, more in sorted(plan.waits_again.items()):
        # Relative, so a release racing this one is not lost; a step started meanwhile is left alone.
        conn.execute(
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name == name, nodes.c.state.in_(CANCELLABLE))
            .values(deps_pending=nodes.c.deps_pending + more, state=StepState.PENDING, scheduled_at=None)
        )
    conn.execute(
        update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(state=WorkflowState.RUNNING, finished_at=None, unsettled=workflows.c.unsettled + len(plan.rearm))
    )
    conn.execute(completions.delete().where(completions.c.workflow_id == workflow_id))
    return effects
