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
from typing import TYPE_CHECKING, Any

from . import consumers, counters
from .history import write_history
from .ledger import Tail
from .storage import Storage

if TYPE_CHECKING:
    from .meter import Meter
    from .netem import Link


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
    key = "?"
    #: Set by the runner after the warm-up: samples CPU, round trips and
    #: statements around each timed run (``clock_start``/``clock_stop``).
    meter: Meter | None = None
    #: Set by the runner with ``--netem``: the consumers run behind it.
    link: Link | None = None

    def __init__(self, storage: Storage, workdir: Path) -> None:
        self.storage = storage
        self.workdir = workdir
        self.ledger_path = workdir / f"ledger-{self.key}-{storage.kind}.log"
        self.tail = Tail(str(self.ledger_path))
        self.consumer: consumers.Consumer | None = None
        self.count_dir = workdir / f"counts-{self.key}-{storage.kind}"
        self.count_dir.mkdir(exist_ok=True)
        self.usage: dict[str, Any] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def launch(self, command: list[str], env: dict[str, str]) -> None:
        """Start this system's consumer (behind ``link`` if any), its statements counted."""
        env = {**env, counters.ENV: str(self.count_dir)}
        if self.link is not None:
            command, env = self.link.wrap(command), self.link.rewrite(env)
        self.consumer = consumers.Consumer(
            f"{self.name} ({self.storage.short})",
            command,
            env,
            self.workdir / f"consumer-{self.key}-{self.storage.kind}.log",
        )

    def clock_start(self) -> float:
        """``perf_counter()`` for a run's start, after the meter's first look."""
        self.usage = None
        if self.meter is not None:
            self.meter.begin(self)
        return time.perf_counter()

    def clock_stop(self) -> float:
        """``perf_counter()`` for a run's end, then the meter's second look (into ``usage``)."""
        t1 = time.perf_counter()
        if self.meter is not None:
            self.usage = self.meter.end(self)
        return t1

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
        self.launch(consumers.baton_command(), env)

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
        """PostgreSQL: the steady state of an install that has run a while (``bench/history.py``)."""
        if self.state.engine.dialect.name == "postgresql":
            write_history(self.state.engine)

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
            t0 = self.clock_start()
            wf.insert()
            t_ins = time.perf_counter()
            deadline = time.monotonic() + timeout
            self.tail.wait_count(start, f"x {run}:{n - 1}", 1, deadline, self.alive)
            record = self._wait_workflow(wf.workflow_id, deadline)
            t1 = self.clock_stop()
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
            t0 = self.clock_start()
            jobs = wf.insert()
            t_ins = time.perf_counter()
            deadline = time.monotonic() + timeout
            self.tail.wait_count(start, f"x {run}:fanin", 1, deadline, self.alive)
            record = self._wait_workflow(wf.workflow_id, deadline)
            t1 = self.clock_stop()
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
                # A fan-in handed off to the worker that released it has no delivery of its own.
                "fanin_not_run": max(fanin_deliveries - fanin_runs, 0) + snoozes,
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
            t0 = self.clock_start()
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
            t1 = self.clock_stop()
            failed = self.query.list_workflows(state="failed", limit=1).workflows
        if failed:
            raise RuntimeError("a single-step workflow failed")
        counts = self.tail.counts(start)
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        deliveries = sum(c for line, c in counts.items() if line.startswith("d "))
        return Measurement(
            t1 - t0, n, t_ins - t0, {"executions": executions, "deliveries": deliveries, **_percentiles(latencies)}
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
        self.launch(consumers.raw_command(), env)

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
        t0 = self.clock_start()
        self.huey.enqueue(pipeline)
        t_ins = time.perf_counter()
        self.tail.wait_count(start, f"x {run}:{n - 1}", 1, time.monotonic() + timeout, self.alive)
        t1 = self.clock_stop()
        counts = self.tail.counts(start)
        executions = sum(c for line, c in counts.items() if line.startswith(f"x {run}:"))
        return Measurement(t1 - t0, n, t_ins - t0, {"executions": executions})

    def _independent(self, n: int, timeout: float) -> Measurement:
        run = _run_tag()
        tasks = [self.task.s(f"{run}:{i}") for i in range(n)]
        start = self.tail.mark()
        latencies = []
        t0 = self.clock_start()
        for task in tasks:
            a = time.perf_counter()
            self.huey.enqueue(task)
            latencies.append(time.perf_counter() - a)
        t_ins = time.perf_counter()
        self.tail.wait_count(start, f"x {run}:", n, time.monotonic() + timeout, self.alive)
        t1 = self.clock_stop()
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
