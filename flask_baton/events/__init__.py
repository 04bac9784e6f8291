"""Cross-process events: every step transition and workflow end, on topics.

Topics are ``"workflow:all"`` and ``"workflow:<id>"``; build them only with
``topic_all()`` and ``topic_for()``. Events are ``(name, payload)`` pairs::

    ("workflow_step_updated", {event_id, workflow_id, workflow_label, step_name,
        worker, state, job_id, attempt, has_result, error, timestamp})
    ("workflow_finished", {event_id, workflow_id, workflow_label, outcome,
        failed_steps, timestamp})
    ("workflow_step_streamed", {event_id, workflow_id, step_name, attempt, seq,
        offset, text, timestamp})

A ``workflow_step_streamed`` event carries text a running step passed to
``job.stream``: ``seq`` numbers one attempt's streamed events from 1,
``offset`` is how many characters that attempt streamed before ``text``, so
a subscriber can put pieces in order and drop ones it already has. They go
on the workflow's own topic only, not on ``"workflow:all"``.

Transport: Redis Streams when ``BATON_PUBSUB_URL`` is a redis URL, otherwise
a feed table in the app's database (SQLite or PostgreSQL). Either way a
consumer process publishes and a web process or script subscribes::

    with events.subscribe_workflow(workflow_id) as subscription:
        for name, payload in subscription.iter(timeout=30):
            ...

A subscriber sees events published after it subscribed, or after the
``cursor`` it passes as ``after=`` (``Subscription.cursor``: where the last
event it read sits in its topic), so a subscriber that reconnects resumes
where it stopped. Delivery is at least once: ``workflow_finished`` goes
through an outbox and may be heard twice, with the same ``event_id``, which
is what a subscriber deduplicates by (docs/events.md).
"""

from __future__ import annotations

from typing import Any, NamedTuple

TOPIC_PREFIX = "workflow:"
STEP_UPDATED = "workflow_step_updated"
WORKFLOW_FINISHED = "workflow_finished"
STEP_STREAMED = "workflow_step_streamed"
#: The payload key of an event's id: what a subscriber deduplicates by.
EVENT_ID = "event_id"


class Event(NamedTuple):
    """One published event: its name and its payload."""

    name: str
    payload: dict[str, Any]

    @property
    def workflow_id(self) -> str:
        return str(self.payload["workflow_id"])

    @property
    def id(self) -> str:
        """The event's id (``payload["event_id"]``): the same each time it is delivered."""
        return str(self.payload[EVENT_ID])


class Running(NamedTuple):
    """A running attempt of a step, whose streamed text a page opened mid-stream asks for."""

    step_name: str
    attempt: int
    started_at: float


def topic_all() -> str:
    """The topic every event is published on."""
    return TOPIC_PREFIX + "all"


def topic_for(workflow_id: str) -> str:
    """The topic of one workflow's events."""
    return TOPIC_PREFIX + workflow_id


def topics_of(event: Event) -> tuple[str, ...]:
    """The topics an event is published on (streamed text: its workflow's only)."""
    if event.name == STEP_STREAMED:
        return (topic_for(event.workflow_id),)
    return topic_all(), topic_for(event.workflow_id)


def subscribe_all(after: str | None = None) -> Any:
    """Subscribe to every workflow's events (current app); ``after``: resume past this cursor."""
    return _subscribe(topic_all(), after)


def subscribe_workflow(workflow_id: str, after: str | None = None) -> Any:
    """Subscribe to one workflow's events (current app); ``after``: resume past this cursor."""
    return _subscribe(topic_for(workflow_id), after)


def _subscribe(topic: str, after: str | None) -> Any:
    # Imported here, not at the top: this package is also where the
    # transports the app's state holds live, so the state's module imports
    # it; the subscribe functions are the one part that needs the state.
    from ..appstate import get_state

    return get_state().ready().events.subscribe(topic, after)
