"""``Store``: every statement flask_baton sends, behind one contract.

The state machine (``transitions``, ``cascade``, ``inserts``, and the
transitions of ``sweep`` and ``control``) decides; it reads and writes only
through a ``Store`` inside a ``Tx``. ``SqliteStore`` and ``PostgresStore``
implement the few statements their databases do differently; everything
else is written once, in the mixins by concern this class joins.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL

from ..config import BatonConfig
from ..effects import Claimed, Ready, WorkflowEnd
from . import migrations
from .attempts import AttemptStatements
from .buckets import BucketStatements
from .budget import BudgetStatements
from .consumers import ConsumerStatements
from .control import ControlStatements
from .inserts import InsertStatements
from .maintenance import Maintenance
from .schedules import ScheduleStatements
from .steps import StepStatements
from .sweep import SweepStatements
from .waits import WaitStatements


@dataclass(slots=True)
class Tx:
    """One write transaction as the state machine sees it: the store, its connection, and its time.

    Made by ``dispatch.commit`` inside ``Store.write``, with ``now`` read
    once the transaction holds its write lock (SQLite) or began
    (PostgreSQL), so times follow commit order.
    """

    store: Store
    conn: Connection
    now: float


@dataclass(frozen=True, slots=True)
class Completion:
    """What a completion sent as one statement did (``Store.complete_in_one``).

    ``ready``: dependents it released that start now; ``ended``: the
    workflow's end, when this was its last step and the end could be read in
    the same statement; ``settled_last``: this was the last step to settle,
    but others settled at the same time, so the end is for a later statement;
    ``taken``: the dependent it claimed for the completing worker (direct hand-off).
    """

    ready: list[Ready]
    ended: WorkflowEnd | None
    settled_last: bool
    taken: Claimed | None = None


class Store(
    InsertStatements,
    StepStatements,
    AttemptStatements,
    SweepStatements,
    ControlStatements,
    Maintenance,
    ConsumerStatements,
    ScheduleStatements,
    BudgetStatements,
    WaitStatements,
    BucketStatements,
):
    """flask_baton's tables in one database: its transactions and all their statements."""

    #: (dialect, driver) of the URLs this store serves, and why those.
    dialect: ClassVar[tuple[str, str]]

    def __init__(self, engine: Engine, config: BatonConfig) -> None:
        super().__init__(engine)
        self.config = config

    @classmethod
    @abstractmethod
    def open(cls, url: URL, config: BatonConfig, instance_path: str) -> Store:
        """Build the engine for ``url``, tuned for the database, and the store on it.

        ``instance_path``: the app's instance folder, where a relative file path goes.
        """

    # -- the schema ---------------------------------------------------------------

    def upgrade(self, now: float) -> tuple[int, int]:
        """Create or upgrade the tables in a transaction of their own; return (from, to) versions.

        A second caller at the same time waits for the first, then finds
        nothing left to do.
        """
        with self.engine.begin() as conn:
            self._begin_upgrade(conn)
            return self.upgrade_in(conn, now)

    @classmethod
    def upgrade_in(cls, conn: Connection, now: float) -> tuple[int, int]:
        """Create or upgrade the tables in the caller's transaction (an Alembic migration's)."""
        cls._serialise_upgrades(conn)
        return migrations.upgrade_in(conn, now)

    def installed_version(self) -> int:
        """The schema version recorded in the database, 0 when flask_baton is not installed."""
        with self.read() as conn:
            return migrations.current_version(conn)

    def _begin_upgrade(self, conn: Connection) -> None:
        """Start ``upgrade``'s own transaction the way that keeps concurrent upgrades apart."""

    @classmethod
    def _serialise_upgrades(cls, conn: Connection) -> None:
        """Make a concurrent upgrade in the same database wait for this transaction."""

    # -- what each database does its own way ------------------------------------------

    @abstractmethod
    def claim(self, conn: Connection, node_id: str, worker: str, now: float) -> Claimed | None:
        """Start executing a delivered step, if it is due and no dependency holds it back.

        One statement, which also reads the workflow's name (and, where the
        store completes in one statement, the step's dependents).
        """

    @abstractmethod
    def complete_in_one(
        self, conn: Connection, claimed: Claimed, result: str | None, now: float, take: frozenset[str] = frozenset()
    ) -> Completion | None:
        """Complete a step, release its dependents and settle it in one statement, where the store can.

        None when it cannot (the caller then sends ``complete_step``,
        ``release_dependents`` and ``settle`` in a transaction): this store
        has no such statement, or a step was added behind this one since it
        was claimed, or the step moved meanwhile. With ``take``, the same
        statement also claims for the completing worker one dependent it
        starts that runs a task in ``take`` (``Completion.taken``).
        """

    @abstractmethod
    def finish(self, conn: Connection, workflow_id: str, now: float) -> WorkflowEnd | None:
        """End a workflow with no step left to settle, once: completed, or failed.

        Read after the step that settled last was counted, so every other
        step's outcome is seen. None if it ended already or steps were
        re-armed since.
        """
