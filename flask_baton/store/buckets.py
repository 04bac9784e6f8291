"""The statements of ``BATON_RATE_LIMITS``: a key's bucket changed under a row lock, and waking a waiter.

A bucket is one row (``baton_rate_buckets``) whose state is JSON the pure
``flask_baton.buckets`` reads and writes. A change is one short transaction:
the row is locked (PostgreSQL ``SELECT ... FOR UPDATE``; on SQLite the
transaction holds the write lock from ``BEGIN IMMEDIATE``), changed, written
back. Consumers on every host asking for the same key queue on that lock,
so each sees the calls the others were granted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from sqlalchemy import Connection, select, update

from ..states import SETTLED, StepState
from .core import StoreCore
from .tables import nodes, rate_buckets

T = TypeVar("T")


class BucketStatements(StoreCore):
    """Rate-limit buckets, and the steps waiting on them."""

    def change_bucket(self, key: str, edit: Callable[[str | None], tuple[str, T]], now: float) -> T:
        """Lock ``key``'s bucket (made on first use), ``edit`` its JSON (None: new), store what it returns.

        ``edit`` returns the new JSON and a value, which this returns.
        """
        with self.write() as conn:
            found = self._locked_bucket(conn, key)
            if found is None:
                conn.execute(
                    self._insert_or_skip(rate_buckets)
                    .values(key=key, state="", updated_at=now)
                    .on_conflict_do_nothing(index_elements=[rate_buckets.c.key])
                )
                found = self._locked_bucket(conn, key)
            text, value = edit(found or None)
            conn.execute(update(rate_buckets).where(rate_buckets.c.key == key).values(state=text, updated_at=now))
        return value

    def _locked_bucket(self, conn: Connection, key: str) -> str | None:
        found: str | None = conn.execute(
            select(rate_buckets.c.state).where(rate_buckets.c.key == key).with_for_update()
        ).scalar_one_or_none()
        return found

    def bucket_states(self) -> list[tuple[str, str]]:
        """Every bucket: (key, JSON), by key."""
        with self.read() as conn:
            return [(row.key, row.state) for row in conn.execute(select(rate_buckets).order_by(rate_buckets.c.key))]

    def live_runs(self, node_ids: Collection[str], since: float) -> set[str]:
        """Of ``node_ids``, the steps executing whose consumer renewed their lease since ``since``."""
        if not node_ids:
            return set()
        with self.read() as conn:
            return set(
                conn.execute(
                    select(nodes.c.id).where(
                        nodes.c.id.in_(list(node_ids)),
                        nodes.c.state == StepState.EXECUTING,
                        nodes.c.heartbeat_at >= since,
                    )
                ).scalars()
            )

    def settled_among(self, node_ids: Collection[str]) -> set[str]:
        """Of ``node_ids``, the steps that will not run again (settled, or deleted)."""
        with self.read() as conn:
            alive = set(
                conn.execute(
                    select(nodes.c.id).where(nodes.c.id.in_(list(node_ids)), nodes.c.state.not_in(SETTLED))
                ).scalars()
            )
        return set(node_ids) - alive

    def not_yet_woken_among(self, node_ids: Collection[str]) -> list[str]:
        """Of ``node_ids``, the steps still executing (told to wait, their snooze not yet recorded) or snoozed."""
        waiting = (StepState.EXECUTING, StepState.SNOOZED)
        with self.read() as conn:
            return list(
                conn.execute(
                    select(nodes.c.id).where(nodes.c.id.in_(list(node_ids)), nodes.c.state.in_(waiting))
                ).scalars()
            )

    def wake_snoozed(self, conn: Connection, node_id: str, now: float) -> str | None:
        """Make a snoozed step due now (a slot it waits for freed); its task, None if it is not snoozed."""
        task: str | None = conn.execute(
            update(nodes)
            .where(nodes.c.id == node_id, nodes.c.state == StepState.SNOOZED)
            .values(scheduled_at=now)
            .returning(nodes.c.task)
        ).scalar_one_or_none()
        return task
