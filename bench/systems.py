"""The two systems under test, each driving its own consumer subprocess.

Both expose the same scenarios (``chain``, ``fan_out``, ``throughput``) and
time them the same way: ``perf_counter`` just before the first insert or
enqueue, until the ledger shows the last task ran (raw Huey) or until the
database says the workflow(s) finished (flask_baton: the ledger tells the
driver when to start checking, then it reads the workflow state every 1 ms,
so the finish time is the commit, not the step function's return).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import consumers
from .ledger import Tail
from .storage import Storage


@dataclass
class Measurement:
    seconds: float
    steps: int
    insert_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _run_tag() -> str:
    return uuid.uuid4().hex[:8]


class System:
    name = "?"

    def __init__(self, storage: Storage, workdir: Path) -> None:
        self.storage = storage
        self.workdir = workdir
        self.ledger_path = workdir / f"ledger-{self.key}-{storage.kind}.log"
        self.tail = Tail(str(self.ledger_path))
        self.consumer: consumers.Consumer | None = None

    key = "?"

    def start(self) -> None:
        raise NotImplementedError

    def consumer_command(self) -> list[str]:
        raise NotImplementedError

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        self.tail.close()

    def alive(self) -> None:
        assert self.consumer is not None
        self.consumer.check_alive()

    def pending(self) -> int:
        raise NotImplementedError

    def recover(self) -> None:
        """After a timed-out scenario: stop the consumer, drop what is queued,
        start a fresh consumer, so the next scenario starts clean."""
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        self.huey.flush()
        self.forget_running()
        self.start()
        self.warm_up()

    def forget_running(self) -> None:
        """Workflows abandoned by a timed-out scenario (flask_baton only)."""

    def ensure_idle(self, timeout: float = 30.0) -> None:
        """Nothing left from a previous scenario: wait for an empty queue."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pending()
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {left} message(s) still queued before the next scenario")
            self.alive()
            time.sleep(0.01)

    def warm_up(self) -> None:
        """Load code and open connections in both worker processes."""
        for _ in range(2):
            self.fan_out(16, timeout=60.0)
            self.chain(10, timeout=60.0)


class BatonSystem(System):
    name = "flask_baton"
    key = "baton"

    def __init__(self, storage: Storage, workdir: Path) -> None:
        super().__init__(storage, workdir)
        from .app import baton, create_app

        self.settings = storage.baton_settings("baton")
        self.app = create_app(self.settings)
        self.state = self.app.extensions["baton"]
        baton.create_schema(self.app)
        self.huey = self.state.queues.huey()
        self.query = self.state.query
        self.abandoned: set[str] = set()

    def consumer_command(self) -> list[str]:
        return consumers.baton_command()

    def start(self) -> None:
        from .app import environment_for

        env = {**environment_for(self.settings), "BENCH_LEDGER": str(self.ledger_path)}
        self.consumer = consumers.Consumer(
            f"flask_baton ({self.storage.short})",
            consumers.baton_command(),
            env,
            self.workdir / f"consumer-baton-{self.storage.kind}.log",
        )

    def stop(self) -> None:
        super().stop()
        self.state.engine.dispose()

    def pending(self) -> int:
        queued = self.huey.pending_count() + self.huey.scheduled_count()
        page = self.query.list_workflows(state="running", limit=len(self.abandoned) + 1)
        running = sum(1 for w in page.workflows if w.id not in self.abandoned)
        return queued + running

    def forget_running(self) -> None:
        before = None
        while True:
            page = self.query.list_workflows(state="running", limit=500, before=before)
            self.abandoned.update(w.id for w in page.workflows)
            if page.next_before is None:
                return
            before = page.next_before

    def analyze(self) -> None:
        """PostgreSQL: the steady state of an install that has run a while.

        Writes ``HISTORY`` finished two-step workflows (as rows, in one
        statement per table), then ``ANALYZE``. Statistics taken on the few rows
        of a warm-up would tell the planner the tables are a page or two, and
        the plans it caches for the hot path would then read them whole on
        every step as the scenarios grow them 100-fold: the first minute of a
        new install (``--fresh``), not what autovacuum keeps a running one at.
        """
        from sqlalchemy import text

        if self.state.engine.dialect.name != "postgresql":
            return
        with self.state.engine.connect() as conn:
            for statement in _HISTORY:
                conn.execute(text(statement), {"n": HISTORY, "t0": time.time() - 86_400})
            for table in ("baton_workflows", "baton_nodes", "baton_edges", "baton_events", "baton_completions"):
                conn.execute(text(f"ANALYZE {table}"))
            conn.commit()

    def _wait_workflow(self, workflow_id: str, deadline: float) -> Any:
        while True:
            record = self.query.get_workflow(workflow_id)
            if record is not None and record.state != "running":
                return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflow {workflow_id} still running")
            self.alive()
            time.sleep(0.001)

    def chain(self, n: int, timeout: float = 120.0) -> Measurement:
        from flask_baton import Workflow

        from .app import noop

        run = _run_tag()
        wf = Workflow(name="bench:chain")
        for i in range(n):
            wf.add(f"s{i}", noop.new(k=f"{run}:{i}"), deps=[f"s{i - 1}"] if i else [])
        start = self.tail.mark()
        with self.app.app_context():
            t0 = time.perf_counter()
            wf.insert()
            t_ins = time.perf_counter()
            deadline = time.monotonic() + timeout
            self.tail.wait_count(start, f"x {run}:{n - 1}", 1, deadline, self.alive)
            record = self._wait_workflow(wf.workflow_id, deadline)
            t1 = time.perf_counter()
        if record.state != "completed":
            raise RuntimeError(f"chain workflow ended {record.state}")
        counts = self.tail.counts(start)
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        deliveries = sum(c for line, c in counts.items() if line.startswith("d "))
        return Measurement(t1 - t0, n, t_ins - t0, {"executions": executions, "deliveries": deliveries})

    def fan_out(self, n: int, timeout: float = 300.0) -> Measurement:
        from flask_baton import Workflow

        from .app import fan_in, noop, value

        run = _run_tag()
        wf = Workflow(name="bench:fan-out")
        wf.add("root", noop.new(k=f"{run}:root"))
        for i in range(n):
            wf.add(f"p{i}", value.new(k=f"{run}:p{i}", v=1), deps=["root"])
        wf.add("fanin", fan_in.new(k=f"{run}:fanin"), deps=[f"p{i}" for i in range(n)])
        start = self.tail.mark()
        with self.app.app_context():
            t0 = time.perf_counter()
            jobs = wf.insert()
            t_ins = time.perf_counter()
            deadline = time.monotonic() + timeout
            self.tail.wait_count(start, f"x {run}:fanin", 1, deadline, self.alive)
            record = self._wait_workflow(wf.workflow_id, deadline)
            t1 = time.perf_counter()
            if record.state != "completed":
                raise RuntimeError(f"fan-out workflow ended {record.state}")
            steps = {s.step_name: s for s in self.query.get_workflow_jobs(wf.workflow_id)}
        ids = {job.id for job in jobs}
        fanin_id = next(job.id for job in jobs if job.step_name == "fanin")
        time.sleep(0.05)  # let any stray (late) delivery of the fan-in reach the ledger
        counts = self.tail.counts(start)
        fanin_runs = counts.get(f"x {run}:fanin", 0)
        fanin_deliveries = counts.get(f"d {fanin_id}", 0)
        snoozes = counts.get(f"s {wf.workflow_id}:fanin", 0)
        deliveries = sum(c for line, c in counts.items() if line.startswith("d ") and line[2:] in ids)
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        return Measurement(
            t1 - t0,
            n + 2,
            t_ins - t0,
            {
                "fanin_runs": fanin_runs,
                "fanin_deliveries": fanin_deliveries,
                "fanin_not_run": fanin_deliveries - fanin_runs + snoozes,
                "fanin_snoozes": snoozes,
                "fanin_attempt": steps["fanin"].attempt,
                "fanin_result": steps["fanin"].result,
                "deliveries": deliveries,
                "executions": executions,
            },
        )

    def throughput(self, n: int, timeout: float = 600.0) -> Measurement:
        from flask_baton import Workflow

        from .app import noop

        run = _run_tag()
        workflows = [Workflow(name="bench:single").add("only", noop.new(k=f"{run}:{i}")) for i in range(n)]
        start = self.tail.mark()
        latencies = []
        with self.app.app_context():
            t0 = time.perf_counter()
            deadline = time.monotonic() + timeout
            # As a user starting many jobs at once would: Workflow.insert_many,
            # in batches so the first ones run while the rest are written.
            for first in range(0, n, INSERT_BATCH):
                batch = workflows[first : first + INSERT_BATCH]
                a = time.perf_counter()
                Workflow.insert_many(batch)
                latencies.extend([(time.perf_counter() - a) / len(batch)] * len(batch))
                if time.monotonic() > deadline:
                    raise TimeoutError("still inserting")
            t_ins = time.perf_counter()
            self.tail.wait_count(start, f"x {run}:", n, deadline, self.alive)
            while self.query.list_workflows(name="bench:single", state="running", limit=1).workflows:
                if time.monotonic() > deadline:
                    raise TimeoutError("single-step workflows still running")
                self.alive()
                time.sleep(0.001)
            t1 = time.perf_counter()
            failed = self.query.list_workflows(state="failed", limit=1).workflows
        if failed:
            raise RuntimeError("a single-step workflow failed")
        counts = self.tail.counts(start)
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        deliveries = sum(c for line, c in counts.items() if line.startswith("d "))
        return Measurement(
            t1 - t0, n, t_ins - t0, {"executions": executions, "deliveries": deliveries, **_percentiles(latencies)}
        )


#: Finished workflows written before the runs on PostgreSQL (``BatonSystem.analyze``).
HISTORY = 10_000

_HISTORY = (
    """INSERT INTO baton_workflows (id, name, state, total_steps, unsettled, created_at, finished_at)
       SELECT md5('w' || i), 'bench:history', 'completed', 2, 0, :t0 + i, :t0 + i + 0.01
       FROM generate_series(1, :n) AS i""",
    """INSERT INTO baton_nodes (id, workflow_id, step_name, position, task, args, state, attempt, deps_pending,
                                worker, created_at, started_at, finished_at, dependents_version)
       SELECT md5(s || i), md5('w' || i), s, p, 'bench.app.noop', '{}', 'completed', 1, 0,
              'history', :t0 + i, :t0 + i, :t0 + i + 0.01, 0
       FROM generate_series(1, :n) AS i, (VALUES ('first', 0), ('second', 1)) AS steps (s, p)""",
    """INSERT INTO baton_edges (workflow_id, step_name, dep_name)
       SELECT md5('w' || i), 'second', 'first' FROM generate_series(1, :n) AS i""",
    """INSERT INTO baton_completions (workflow_id, outcome, failed_steps, finished_at, announced_at)
       SELECT md5('w' || i), 'completed', '[]', :t0 + i + 0.01, :t0 + i + 0.01 FROM generate_series(1, :n) AS i""",
)

#: Workflows per ``Workflow.insert_many`` call in the throughput scenario.
INSERT_BATCH = 250


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "insert_p50_ms": ordered[len(ordered) // 2] * 1e3,
        "insert_p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3,
        "insert_max_ms": ordered[-1] * 1e3,
    }


class RawSystem(System):
    name = "raw Huey"
    key = "raw"

    def __init__(self, storage: Storage, workdir: Path) -> None:
        super().__init__(storage, workdir)
        from . import raw

        self.kind, self.huey_name, self.target = storage.raw_target("raw")
        self.huey, self.task = raw.build(self.kind, self.huey_name, self.target)

    def consumer_command(self) -> list[str]:
        return consumers.raw_command()

    def start(self) -> None:
        from . import raw

        env = {**raw.environment_for(self.kind, self.huey_name, self.target), "BENCH_LEDGER": str(self.ledger_path)}
        self.consumer = consumers.Consumer(
            f"raw Huey ({self.storage.short})",
            consumers.raw_command(),
            env,
            self.workdir / f"consumer-raw-{self.storage.kind}.log",
        )

    def stop(self) -> None:
        super().stop()
        self.huey.storage.close()

    def pending(self) -> int:
        return self.huey.pending_count() + self.huey.scheduled_count()

    def chain(self, n: int, timeout: float = 120.0) -> Measurement:
        run = _run_tag()
        pipeline = self.task.s(f"{run}:0")
        tail = pipeline
        for i in range(1, n):  # append at the tail (Task.then recurses to it)
            tail.then(self.task, f"{run}:{i}")
            tail = tail.on_complete
        start = self.tail.mark()
        t0 = time.perf_counter()
        self.huey.enqueue(pipeline)
        t_ins = time.perf_counter()
        self.tail.wait_count(start, f"x {run}:{n - 1}", 1, time.monotonic() + timeout, self.alive)
        t1 = time.perf_counter()
        counts = self.tail.counts(start)
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        return Measurement(t1 - t0, n, t_ins - t0, {"executions": executions})

    def _independent(self, n: int, timeout: float) -> Measurement:
        run = _run_tag()
        tasks = [self.task.s(f"{run}:{i}") for i in range(n)]
        start = self.tail.mark()
        latencies = []
        t0 = time.perf_counter()
        for task in tasks:
            a = time.perf_counter()
            self.huey.enqueue(task)
            latencies.append(time.perf_counter() - a)
        t_ins = time.perf_counter()
        self.tail.wait_count(start, f"x {run}:", n, time.monotonic() + timeout, self.alive)
        t1 = time.perf_counter()
        counts = self.tail.counts(start)
        deliveries = sum(c for line, c in counts.items() if line.startswith(f"d {run}:"))
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        return Measurement(
            t1 - t0, n, t_ins - t0, {"executions": executions, "deliveries": deliveries, **_percentiles(latencies)}
        )

    def fan_out(self, n: int, timeout: float = 300.0) -> Measurement:
        return self._independent(n, timeout)

    def throughput(self, n: int, timeout: float = 600.0) -> Measurement:
        return self._independent(n, timeout)
