"""The database event feed's reading rules (no consumer needed)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask

from flask_baton import events
from flask_baton.events.database import GAP_SECONDS
from flask_baton.store.tables import events as feed

from .support import DATABASE_FEED


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return DATABASE_FEED


def test_database_feed_waits_for_ids_that_commit_out_of_order(app: Flask) -> None:
    """A row id taken before a later one but committed after it is still delivered."""
    state = app.extensions["baton"]

    def row(workflow_id: str) -> dict[str, Any]:
        return {
            "workflow_id": workflow_id,
            "name": "workflow_step_updated",
            "payload": '{"workflow_id": "%s"}' % workflow_id,
            "created_at": time.time(),
        }

    with events.subscribe_all() as subscription:
        with state.store.write() as conn:
            conn.execute(feed.insert(), [row("w1"), row("w2"), row("w3")])
            top = conn.execute(feed.select().order_by(feed.c.id.desc())).first().id
        # Simulate the gap PostgreSQL leaves while an earlier transaction is open.
        with state.store.write() as conn:
            conn.execute(feed.delete().where(feed.c.id == top - 1))
        assert [e.workflow_id for e in subscription.iter(timeout=0.3)] == ["w1", "w3"]
        with state.store.write() as conn:
            conn.execute(feed.insert(), [{**row("w2-late"), "id": top - 1}])
        assert [e.workflow_id for e in subscription.iter(timeout=0.3)] == ["w2-late"]
    assert GAP_SECONDS > 0.3
