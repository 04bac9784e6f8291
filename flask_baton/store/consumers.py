"""A consumer's heartbeat: its presence on each queue it serves, and its running steps' leases.

Each consumer process stamps its ``baton_consumers`` rows and the
``heartbeat_at`` of the steps it runs in one short transaction every
``BATON_HEARTBEAT_SECONDS`` (``heartbeat.py``), so an idle consumer is seen
as alive too. A consumer that stops deletes its rows; the sweep deletes those
of consumers that died without a word, once they are silent for a lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, update

from ..states import StepState
from .core import StoreCore
from .tables import consumers, nodes


class ConsumerStatements(StoreCore):
    """Writing consumers' heartbeats, and forgetting the consumers gone."""

    def beat(self, worker: str, queues: Mapping[str, float], node_ids: Sequence[str], now: float) -> int:
        """Stamp ``worker`` as alive on ``queues`` (name -> when it started serving it) and
        renew the leases of ``node_ids`` it still runs, in one transaction; return how many leases.
        """
        renewed = 0
        with self.write() as conn:
            if queues:
                stmt = self._insert_or_skip(consumers)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[consumers.c.worker, consumers.c.queue], set_={"seen_at": stmt.excluded.seen_at}
                    ),
                    [
                        {"worker": worker, "queue": queue, "started_at": started, "seen_at": now}
                        for queue, started in sorted(queues.items())
                    ],
                )
            if node_ids:
                renewed = conn.execute(
                    update(nodes)
                    .where(nodes.c.id.in_(node_ids), nodes.c.worker == worker, nodes.c.state == StepState.EXECUTING)
                    .values(heartbeat_at=now)
                ).rowcount
        return renewed

    def leave(self, worker: str, queue: str) -> None:
        """``worker`` stopped serving ``queue``: it is no longer listed as alive there."""
        with self.write() as conn:
            conn.execute(delete(consumers).where(consumers.c.worker == worker, consumers.c.queue == queue))

    def forget_silent_consumers(self, before: float) -> int:
        """Delete the rows of consumers not heard from since ``before`` (they died); return how many."""
        with self.write() as conn:
            return int(conn.execute(delete(consumers).where(consumers.c.seen_at < before)).rowcount)
