"""Events held back to share a Redis round trip still arrive, in order, and on shutdown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_baton.events import Event, topic_all
from flask_baton.events.batching import BatchingTransport
from flask_baton.events.redis import RedisTransport

from .conftest import REDIS_URL
from .support import ThreadConsumer


@pytest.fixture
def transport(redis_huey_name: str) -> Iterator[BatchingTransport]:
    """A batching transport holding events for a minute unless flushed."""
    batching = BatchingTransport(RedisTransport(REDIS_URL, f"{redis_huey_name}:", 60.0), linger=60.0)
    yield batching
    batching.close()


def _event(n: int) -> Event:
    return Event("workflow_step_updated", {"workflow_id": "w", "n": n})


def _received(subscription: object, count: int) -> list[int]:
    got: list[int] = []
    for _name, payload in subscription.iter(timeout=5):  # type: ignore[attr-defined]
        got.append(payload["n"])
        if len(got) == count:
            break
    return got


def test_an_undeferred_publish_sends_the_held_events_first_in_order(transport: BatchingTransport) -> None:
    with transport.subscribe(topic_all()) as subscription:
        transport.publish([_event(1), _event(2)], defer=True)
        transport.publish([_event(3)], defer=True)
        assert subscription.get(timeout=0.2) is None  # held: the linger is a minute

        transport.publish([_event(4)])

        assert _received(subscription, 4) == [1, 2, 3, 4]


def test_held_events_go_out_by_themselves_after_the_linger(redis_huey_name: str) -> None:
    transport = BatchingTransport(RedisTransport(REDIS_URL, f"{redis_huey_name}:", 60.0), linger=0.05)
    try:
        with transport.subscribe(topic_all()) as subscription:
            transport.publish([_event(1)], defer=True)
            transport.publish([_event(2)], defer=True)
            assert _received(subscription, 2) == [1, 2]
    finally:
        transport.close()


def test_a_huey_worker_shutting_down_sends_what_its_process_holds(app: object, transport: BatchingTransport) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    with transport.subscribe(topic_all()) as subscription:
        with ThreadConsumer(app, workers=1):
            transport.publish([_event(7)], defer=True)
            assert subscription.get(timeout=0.2) is None
        # Leaving the block stopped the consumer; its worker's shutdown hooks ran.
        assert _received(subscription, 1) == [7]
