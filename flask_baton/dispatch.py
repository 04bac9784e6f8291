"""Committing a transition and acting on it: publish, signal, enqueue, call hooks.

Every state change goes through ``commit``: one short write transaction runs
the transition, stages its events (the database feed writes them in that
same transaction), commits, and only then tells the world and hands steps to
Huey, in that order, so a step's events are heard before anything its
transition set off. If the process dies between the commit and the enqueue,
the step stays ``available`` in the database and the sweep hands it to Huey
again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Connection

from .appstate import AppState
from .capture import capture_context
from .effects import Cancelled, Claimed, Effects, Ready, StepChange, WorkflowEnd
from .events import EVENT_ID, STEP_UPDATED, WORKFLOW_FINISHED, Event
from .ids import new_id
from .job import Job
from .records import Input, ModelCall, SignalRecord
from .states import StepState
from .store import Tx
from .store.engine import riding_out_outages
from .store.step_reads import load_inputs, load_step_names
from .store.waits import load_signals
from .streaming import StepStream
from .telemetry import STEP_STATES, emit, step_signal, workflow_finished
from .usage import record_usage
from .worklog import workflow_ended

logger = logging.getLogger("flask_baton")

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
#: Writes the worker's log lines of a committed transition (``worklog``).
LogLines = Callable[[Effects[Any]], None]


def commit(
    state: AppState,
    transition: Callable[[Tx, *Ts], Effects[T]],
    *args: *Ts,
    autocommit: bool = False,
    log: LogLines | None = None,
) -> tuple[T, Effects[T]]:
    """Run ``transition(tx, *args)`` in its own transaction, act on its effects; return its value and them.

    ``autocommit``: each statement of ``transition`` is a whole change by
    itself (``Store.write``). Ignored when the event feed is in the
    database, as its rows must commit with the change. ``log`` is called
    with the effects before a workflow end they caused is announced, so the
    worker's log tells a step's outcome before its workflow's.
    """
    store = state.store
    with store.write(autocommit=autocommit and not state.events.atomic) as conn:
        tx = Tx(store, conn, time.time())  # read under the write lock, so times follow commit order
        effects = transition(tx, *args)
        events = [step_event(state, change) for change in effects.changes]
        ends = effects.ended
        if state.events.atomic:
            # The feed is in this database: announce and publish in this very transaction.
            claimed = [end for end in ends if end.announced]  # by the statement that recorded them
            if claimed:
                store.mark_published(tx.conn, [end.workflow_id for end in claimed], tx.now)
            ends = claimed + [
                end
                for end in ends
                if not end.announced and store.mark_announced(tx.conn, end.workflow_id, tx.now, published=True)
            ]
            events += [finished_event(state, end) for end in ends]
        state.events.stage(tx.conn, events, tx.now)
    _after_commit(state, effects, events)
    if log is not None:
        log(effects)
    for end in ends:
        if state.events.atomic:
            _signal_end(state, end)  # its event committed with the change
        elif end.announced:
            _publish_end(state, end)  # the statement that recorded it claimed its announcement
        else:
            announce_end(state, end)
    return effects.value, effects


def announce_end(state: AppState, end: WorkflowEnd) -> bool:
    """Publish a workflow's end unless someone already did; True if we did.

    The ``announced_at`` compare-and-set in ``baton_completions`` makes the
    announcement happen once, whether the last step's worker or the sweep
    gets there first. A completion that records the end in one statement
    sets ``announced_at`` in that statement instead (``WorkflowEnd.announced``),
    so its worker publishes without this extra write.
    """
    atomic = state.events.atomic
    with state.store.write(autocommit=not atomic) as conn:
        now = time.time()
        won = state.store.mark_announced(conn, end.workflow_id, now, published=atomic)
        if won and atomic:
            state.events.stage(conn, [finished_event(state, end)], now)
    if won:
        if atomic:
            _signal_end(state, end)
        else:
            _publish_end(state, end)
    return won


def empty_outbox(state: AppState, ends: Sequence[WorkflowEnd]) -> list[str]:
    """Take ends out of the outbox, publishing again those the transport lacks; return their workflow ids.

    The outbox holds ends announced but not yet known to be sent. Most
    were sent: their consumer published them right after the commit. Those
    missing lost the race with a ``kill -9``, or with Redis going away; a
    consumer killed between the publication and the transport recording it
    makes one sent twice, with the same ``event_id``. Raises if the transport
    fails: the ends stay in the outbox for the next sweep.
    """
    missing = state.events.missing_ends({end.workflow_id: finished_event_id(end) for end in ends})
    again = [finished_event(state, end) for end in ends if end.workflow_id in missing]
    if again and not state.events.atomic:
        state.events.publish(again)
    with state.store.write() as conn:
        now = time.time()
        if state.events.atomic:
            state.events.stage(conn, again, now)
        state.store.mark_published(conn, [end.workflow_id for end in ends], now)
    return [event.workflow_id for event in again]


def _publish_end(state: AppState, end: WorkflowEnd) -> None:
    """Publish a workflow's end, whose announcement this process claimed, and tell this process.

    The end stays in the outbox until the sweep finds it sent.
    """
    _publish(state, [finished_event(state, end)], defer=True)
    _signal_end(state, end)


def _after_commit(state: AppState, effects: Effects[Any], events: Sequence[Event]) -> None:
    # Told before Huey is: what these steps do next cannot be heard before this.
    # Nothing to enqueue: the events may wait to share a round trip.
    _publish(state, events, defer=not effects.ready)
    for change in effects.changes:
        if change.state not in STEP_STATES:
            continue  # a held step (pending) or one a raised cap released (available): no signal of their own
        emit(
            step_signal(change.state),
            **_step_payload(state, change),
            duration=change.duration,
            queue_wait=change.queue_wait,
        )
    _enqueue(state, effects.ready)
    for cancelled in effects.cancelled:
        _call_dep_hook(state, cancelled)


def _enqueue(state: AppState, ready: Sequence[Ready]) -> None:
    """Hand ready steps to Huey: delayed ones one by one, the rest per queue in one go."""
    batches: dict[tuple[str, int | None], list[str]] = {}
    for item in ready:
        step = state.step(item.task)
        if step is None:
            logger.error(
                "no step %r is registered in this process; the sweep will retry step %s", item.task, item.node_id
            )
        elif item.delay > 0:
            _handing(
                f"step {item.node_id} ({item.task})",
                state.queues.enqueue,
                item.node_id,
                step.queue,
                step.priority,
                item.delay,
            )
        else:
            batches.setdefault((step.queue, step.priority), []).append(item.node_id)
    for (queue, priority), node_ids in batches.items():
        _handing(f"{len(node_ids)} step(s) on queue {queue!r}", state.queues.enqueue_many, node_ids, queue, priority)


def _handing(what: str, enqueue: Callable[..., None], *args: Any) -> None:
    """Call ``enqueue``; a failure is logged, not raised: the sweep re-enqueues what was lost."""
    try:
        enqueue(*args)
    except Exception:
        logger.exception("could not enqueue %s; the sweep will retry", what)


def _publish(state: AppState, events: Sequence[Event], *, defer: bool = False) -> None:
    """Publish after a commit; a failure is logged: step events are best effort, ends wait in the outbox."""
    try:
        state.events.publish(events, defer=defer)
    except Exception:
        logger.exception("could not publish %d event(s)", len(events))


def _signal_end(state: AppState, end: WorkflowEnd) -> None:
    """Tell this process a workflow ended, once: its signal and the worker's log line."""
    emit(workflow_finished, **_finished_payload(state, end))
    workflow_ended(state, end)


def _step_payload(state: AppState, change: StepChange) -> dict[str, object]:
    return {
        "workflow_id": change.workflow_id,
        "workflow_label": change.label if change.label is not None else state.label(change.workflow_id),
        "step_name": change.step_name,
        "worker": change.worker,
        "state": change.state.value,
        "job_id": change.node_id,
        "attempt": change.attempt,
        "has_result": change.has_result,
        "error": change.error,
        "timestamp": change.timestamp,
    }


def step_event(state: AppState, change: StepChange) -> Event:
    """The ``workflow_step_updated`` event of a transition, with a fresh ``event_id``.

    A step event is published once, best-effort, so any unique id will do:
    a time-ordered random one (``ids.new_id``).
    """
    return Event(STEP_UPDATED, {EVENT_ID: new_id(), **_step_payload(state, change)})


def finished_event_id(end: WorkflowEnd) -> str:
    """The ``event_id`` of a workflow's end: ``<workflow id>:finished:<end time in µs>``.

    Made from what ``baton_completions`` stores, so the sweep publishing it
    again makes the same id; a workflow retried and ended again has a later
    end time, so a new id.
    """
    return f"{end.workflow_id}:finished:{round(end.timestamp * 1_000_000)}"


def finished_event(state: AppState, end: WorkflowEnd) -> Event:
    """The ``workflow_finished`` event of a workflow's end."""
    return Event(WORKFLOW_FINISHED, {EVENT_ID: finished_event_id(end), **_finished_payload(state, end)})


def _finished_payload(state: AppState, end: WorkflowEnd) -> dict[str, object]:
    return {
        "workflow_id": end.workflow_id,
        "workflow_label": state.label(end.workflow_id),
        "outcome": end.outcome,
        "failed_steps": list(end.failed_steps),
        "timestamp": end.timestamp,
    }


def make_job(state: AppState, claimed: Claimed | Cancelled, on_usage: Callable[[ModelCall], None] | None = None) -> Job:
    """The ``job`` handed to a step function or a dependency hook.

    ``on_usage`` is told of each model call the step records, once stored
    (its rate limit counts the tokens really used: ``pacing``).
    """
    workflow_id, step_name = claimed.workflow_id, claimed.step_name

    def read(load: Callable[[Connection, str], T]) -> T:
        def once() -> T:
            with state.store.read() as conn:
                return load(conn, workflow_id)

        return riding_out_outages(once, f"read the inputs of step {step_name!r}")

    def inputs() -> dict[str, Input]:
        return read(lambda conn, wid: load_inputs(conn, wid, step_name))

    def step_names() -> set[str]:
        return read(load_step_names)

    def signals() -> dict[str, SignalRecord]:
        return read(load_signals)

    where: dict[str, Any] = {
        "workflow_id": workflow_id,
        "node_id": claimed.node_id,
        "step_name": step_name,
        "attempt": claimed.attempt,
    }

    def usage(call: ModelCall) -> float | None:
        cost = record_usage(state.store, state.config.pricing, call, **where)
        if on_usage is not None:
            on_usage(call)
        return cost

    def context(messages: Any, response: Any) -> bool:
        if not state.config.debug_capture:
            return False
        capture_context(
            state.store, state.config.debug_capture_max_bytes, **where, messages=messages, response=response
        )
        return True

    return Job(
        id=claimed.node_id,
        workflow_id=workflow_id,
        workflow_label=state.label(workflow_id),
        step_name=step_name,
        args=json.loads(claimed.args),
        attempt=claimed.attempt,
        load_inputs=inputs,
        load_step_names=step_names,
        record_usage=usage,
        capture_context=context,
        stream=StepStream(
            workflow_id=workflow_id,
            step_name=step_name,
            attempt=claimed.attempt,
            send=partial(_publish_streamed, state),
            hold=state.config.stream_flush if state.events.atomic else 0.0,
        ),
        load_signals=signals,
    )


def _publish_streamed(state: AppState, events: Sequence[Event]) -> None:
    """Streamed text: a short transaction of its own on the database feed, else the transport's linger."""
    if state.events.atomic:
        with state.store.write() as conn:
            state.events.stage(conn, events, time.time())
    else:
        state.events.publish(events, defer=True)


def _call_dep_hook(state: AppState, cancelled: Cancelled) -> None:
    step = state.step(cancelled.task)
    if step is None:
        return
    hook = step.dep_discarded_hook if cancelled.dep_state == StepState.DISCARDED else step.dep_cancelled_hook
    if hook is None:
        return
    try:
        hook(cancelled.reason, make_job(state, cancelled))
    except Exception:
        logger.exception("dependency hook of step %s (%s) failed", cancelled.step_name, cancelled.task)
