"""Real-process faults: consumers killed or signalled mid-step (also in a step
handed off to them), lost queue messages, PostgreSQL dropping every
connection while a workflow runs, and a database outage (the consumer's role
refused) while a step runs.

Each test runs ``flask baton worker`` subprocesses (the tests' app, its
settings given as environment strings) on short leases: BATON_LEASE_SECONDS=2,
BATON_HEARTBEAT_SECONDS=0.5, BATON_SWEEP_INTERVAL=1. Every wait has a
deadline, and each consumer process is killed and reaped when its test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from flask_baton import Workflow
from flask_baton.query import StepRecord
from flask_baton.store.tables import completions, nodes
from flask_baton.store.tables import events as events_table

from . import ledger
from .apps import environment_for, open_app
from .conftest import POSTGRES_URL
from .steps import baton, fault_step, fault_step_retrying
from .support import DATABASE_FEED, wait_finished, wait_for

ROOT = Path(__file__).resolve().parent.parent
LEASE = 2.0
#: Short leases so a dead consumer's step is rescued within seconds.
FAST = {"BATON_LEASE_SECONDS": LEASE, "BATON_HEARTBEAT_SECONDS": 0.5, "BATON_SWEEP_INTERVAL": 1.0}
#: How long a step sleeps on the run a test interrupts: far beyond every deadline.
FOREVER = 120
#: Deadline for a workflow to finish once a healthy consumer runs (lease + sweeps + margin).
FINISH_TIMEOUT = 30.0

# The diamond most tests run: a -> (b, c) -> d.
DIAMOND_DEPS: dict[str, list[str]] = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
DIAMOND_VALUES = {"a": 1, "b": 2, "c": 3, "d": 4}


# -- fixtures and helpers --------------------------------------------------------


@pytest.fixture
def fault_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The backend's settings with short leases, heartbeats and sweeps; events in the feed table."""
    return {**settings, **FAST, **DATABASE_FEED}


@pytest.fixture
def fault_app(fault_settings: dict[str, Any]) -> Iterator[Flask]:
    """The test process's app (inserts and reads; it runs no consumer)."""
    with open_app(fault_settings) as app, app.app_context():
        baton.create_schema()
        yield app


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


class ConsumerProcess:
    """``flask baton worker`` as a subprocess; killed and reaped on exit.

    Its output goes to a file (a pipe nobody reads could fill up and stall
    the consumer mid-step), which ``output()`` returns for failure messages.
    """

    def __init__(self, settings: Mapping[str, Any], log_path: Path, workers: int = 2) -> None:
        self.settings = dict(settings)
        self.log_path = log_path
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ConsumerProcess:
        env = {**os.environ, **environment_for(self.settings), "PYTHONPATH": str(ROOT)}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flask",
                    "--app",
                    "tests.apps:create_app",
                    "baton",
                    "worker",
                    "-w",
                    str(self.workers),
                    "--delay",
                    "0.005",
                    "--max-delay",
                    "0.05",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def worker(self) -> str:
        """How flask_baton names this consumer in ``baton_nodes.worker`` (host:pid)."""
        return f"{socket.gethostname()}:{self.pid}"

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; fail (with its output) at the deadline."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"consumer {self.pid} did not exit within {timeout}s:\n{self.output()}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def diamond(name: str, markers: Path, **root_args: Any) -> Workflow:
    """a -> (b, c) -> d of ``fault_step``; ``root_args`` go to ``a``."""
    wf = Workflow(name)
    for step, deps in DIAMOND_DEPS.items():
        args = {"value": DIAMOND_VALUES[step], "marker_dir": str(markers)}
        if step == "a":
            args.update(root_args)
        wf.add(step, fault_step.new(**args), deps=deps)
    return wf


def expected_results(deps: Mapping[str, Sequence[str]], values: Mapping[str, Any]) -> dict[str, Any]:
    """What each ``fault_step`` of a graph returns: its name, value and inputs."""
    done: dict[str, Any] = {}

    def result(step: str) -> Any:
        if step not in done:
            done[step] = {"step": step, "value": values[step], "inputs": {dep: result(dep) for dep in deps[step]}}
        return done[step]

    return {step: result(step) for step in deps}


def steps_of(app: Flask, workflow_id: str) -> dict[str, StepRecord]:
    return {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def step_state(app: Flask, workflow_id: str, step: str) -> str:
    return steps_of(app, workflow_id)[step].state.value


def feed(app: Flask, workflow_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The workflow's events as rows of the database feed (``baton_events``)."""
    with app.extensions["baton"].engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.name, events_table.c.payload)
            .where(events_table.c.workflow_id == workflow_id)
            .order_by(events_table.c.id)
        ).all()
    return [(row.name, json.loads(row.payload)) for row in rows]


def step_events(app: Flask, workflow_id: str, step: str, state: str) -> list[dict[str, Any]]:
    return [
        payload
        for name, payload in feed(app, workflow_id)
        if name == "workflow_step_updated" and payload["step_name"] == step and payload["state"] == state
    ]


def assert_finished_once(app: Flask, workflow_id: str, outcome: str = "completed") -> None:
    """One ``workflow_finished`` on the feed, one announced ``baton_completions`` row."""
    finished = [payload for name, payload in feed(app, workflow_id) if name == "workflow_finished"]
    assert len(finished) == 1, finished
    assert finished[0]["outcome"] == outcome
    with app.extensions["baton"].engine.connect() as conn:
        rows = conn.execute(select(completions).where(completions.c.workflow_id == workflow_id)).all()
    assert len(rows) == 1, rows
    assert rows[0].outcome == outcome
    assert rows[0].announced_at is not None


def assert_results(app: Flask, workflow_id: str, deps: Mapping[str, Sequence[str]], values: Mapping[str, Any]) -> None:
    """Every step completed with exactly the result its inputs determine."""
    steps = steps_of(app, workflow_id)
    expected = expected_results(deps, values)
    assert {name: s.state.value for name, s in steps.items()} == {name: "completed" for name in deps}
    assert {name: s.result for name, s in steps.items()} == expected
    for name in deps:  # each stored once: one completed transition per step
        assert len(step_events(app, workflow_id, name, "completed")) == 1, name


def assert_rescued_and_run_again_once(
    app: Flask,
    ledger_path: Path,
    workflow_id: str,
    step: str,
    first: ConsumerProcess,
    second: ConsumerProcess,
    deps: Mapping[str, Sequence[str]],
    values: Mapping[str, Any],
) -> None:
    """``step`` ran in ``first`` (killed), the sweep rescued it once, and it ran again in ``second``; all else once."""
    runs = [(e["step"], e["pid"]) for e in ledger.entries(ledger_path)]
    assert [pid for name, pid in runs if name == step] == [first.pid, second.pid]
    assert ledger.runs_per_step(ledger_path, workflow_id) == {name: 2 if name == step else 1 for name in deps}
    assert steps_of(app, workflow_id)[step].attempt == 2
    # The sweep rescued it (retryable, naming the silent consumer), once.
    rescued = step_events(app, workflow_id, step, "retryable")
    assert len(rescued) == 1 and "stopped renewing its lease" in rescued[0]["error"], rescued
    assert_results(app, workflow_id, deps, values)
    assert_finished_once(app, workflow_id)


def wait_running(app: Flask, workflow_id: str, step: str, marker: Path, consumer: ConsumerProcess) -> None:
    """Wait until ``consumer`` runs ``step``: its marker exists and the row is ``executing`` there."""

    def running() -> bool:
        if consumer.process is not None and consumer.process.poll() is not None:
            raise AssertionError(f"consumer {consumer.pid} exited early:\n{consumer.output()}")
        record = steps_of(app, workflow_id)[step]
        return marker.exists() and record.state.value == "executing" and record.worker == consumer.worker

    wait_for(running, f"step {step!r} to run in consumer {consumer.pid}", timeout=20)


def signal_mid_step(
    app: Flask, settings: Mapping[str, Any], wf: Workflow, markers: Path, log: Path, sig: int, **options: Any
) -> tuple[ConsumerProcess, int]:
    """Insert ``wf``, let a consumer start its root ``a``, send it ``sig``; return it and its exit code."""
    with ConsumerProcess(settings, log, **options) as consumer:
        wf.insert()
        wait_running(app, wf.workflow_id, "a", markers / "a.1.started", consumer)
        consumer.send(sig)
        code = consumer.wait()
    return consumer, code


def finish(app: Flask, workflow_id: str, *consumers: ConsumerProcess) -> str:
    """Wait for the workflow to finish; on timeout, say what the consumers logged."""
    try:
        return wait_finished(app, workflow_id, timeout=FINISH_TIMEOUT).state
    except AssertionError as exc:
        states = {name: (s.state.value, s.attempt, s.worker) for name, s in steps_of(app, workflow_id).items()}
        logs = "\n".join(f"--- consumer {c.pid} ---\n{c.output()[-6000:]}" for c in consumers)
        raise AssertionError(f"{exc}; steps: {states}\n{logs}") from None


# -- 1. kill -9 mid-step -----------------------------------------------------------


def test_consumer_killed_mid_step_is_rescued_and_its_step_rerun_once(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    wf = diamond("fault:kill", markers, first_seconds=FOREVER)
    first, code = signal_mid_step(fault_app, fault_settings, wf, markers, tmp_path / "first.log", signal.SIGKILL)
    assert code == -signal.SIGKILL
    killed_at = time.time()
    assert step_state(fault_app, wf.workflow_id, "a") == "executing"  # nobody said otherwise

    with ConsumerProcess(fault_settings, tmp_path / "second.log") as second:
        assert finish(fault_app, wf.workflow_id, first, second) == "completed"

    assert_rescued_and_run_again_once(
        fault_app, ledger_path, wf.workflow_id, "a", first, second, DIAMOND_DEPS, DIAMOND_VALUES
    )
    steps = steps_of(fault_app, wf.workflow_id)
    assert all(s.worker == second.worker for s in steps.values())
    assert steps["a"].started_at > killed_at + LEASE - 1.0  # rescued only once its lease lapsed


# -- 2. SIGTERM (interrupt) and SIGINT (graceful) mid-step ---------------------------


def test_sigterm_mid_step_hands_the_step_back_and_another_consumer_finishes(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    wf = diamond("fault:sigterm", markers, first_seconds=FOREVER)
    first, code = signal_mid_step(fault_app, fault_settings, wf, markers, tmp_path / "first.log", signal.SIGTERM)
    assert code == 0, first.output()
    assert "Received SIGTERM" in first.output()

    # Handed back, not left executing for the sweep: runnable again, the
    # interrupted attempt given back, no owner.
    a = steps_of(fault_app, wf.workflow_id)["a"]
    assert (a.state.value, a.attempt, a.worker) == ("available", 0, None)
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 1}

    with ConsumerProcess(fault_settings, tmp_path / "second.log") as second:
        assert finish(fault_app, wf.workflow_id, first, second) == "completed"

    runs = [(e["step"], e["pid"]) for e in ledger.entries(ledger_path)]
    assert [pid for step, pid in runs if step == "a"] == [first.pid, second.pid]
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 2, "b": 1, "c": 1, "d": 1}
    steps = steps_of(fault_app, wf.workflow_id)
    assert steps["a"].attempt == 1  # the interrupted run did not use up an attempt
    assert step_events(fault_app, wf.workflow_id, "a", "retryable") == []  # no rescue was needed
    assert_results(fault_app, wf.workflow_id, DIAMOND_DEPS, DIAMOND_VALUES)
    assert_finished_once(fault_app, wf.workflow_id)


def test_sigterm_hand_back_reaches_the_next_consumer_without_waiting_for_the_lease(
    fault_app: Flask,
    fault_settings: dict[str, Any],
    markers: Path,
    ledger_path: Path,
    tmp_path: Path,
) -> None:
    # A lease and sweep interval far beyond the deadlines: only the hand-back's
    # own message can get the step run again in time. Three workers, so the
    # stopping consumer has idle workers polling its queue (as in production).
    slow_sweep = {**fault_settings, "BATON_LEASE_SECONDS": 60.0, "BATON_SWEEP_INTERVAL": 60.0}
    wf = diamond("fault:hand-back", markers, first_seconds=FOREVER)
    first, code = signal_mid_step(fault_app, slow_sweep, wf, markers, tmp_path / "first.log", signal.SIGTERM, workers=3)
    assert code == 0, first.output()
    assert step_state(fault_app, wf.workflow_id, "a") == "available"
    huey = fault_app.extensions["baton"].queues.huey()
    assert huey.pending_count() + huey.scheduled_count() >= 1, "the hand-back's message is gone"

    with ConsumerProcess(slow_sweep, tmp_path / "second.log") as second:
        wait_for(
            lambda: step_state(fault_app, wf.workflow_id, "a") == "completed",
            "the handed-back step to run again",
            timeout=10,
        )
        assert finish(fault_app, wf.workflow_id, first, second) == "completed"
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 2, "b": 1, "c": 1, "d": 1}


def test_sigint_mid_step_lets_the_step_finish_and_another_consumer_goes_on(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    wf = diamond("fault:sigint", markers, first_seconds=1.5)
    first, code = signal_mid_step(fault_app, fault_settings, wf, markers, tmp_path / "first.log", signal.SIGINT)
    assert code == 0, first.output()
    assert "Shutting down gracefully" in first.output()

    # The running step finished, in the consumer that was stopping.
    a = steps_of(fault_app, wf.workflow_id)["a"]
    assert (a.state.value, a.attempt, a.worker) == ("completed", 1, first.worker)
    assert fault_app.extensions["baton"].query.get_workflow(wf.workflow_id).state == "running"

    with ConsumerProcess(fault_settings, tmp_path / "second.log") as second:
        assert finish(fault_app, wf.workflow_id, first, second) == "completed"

    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert steps_of(fault_app, wf.workflow_id)["d"].worker == second.worker
    assert_results(fault_app, wf.workflow_id, DIAMOND_DEPS, DIAMOND_VALUES)
    assert_finished_once(fault_app, wf.workflow_id)


# -- 3. a lost queue message -------------------------------------------------------


def test_root_whose_queue_message_was_flushed_is_requeued_by_the_sweep(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    wf = diamond("fault:flushed", markers)
    jobs = wf.insert()
    huey = fault_app.extensions["baton"].queues.huey()
    assert huey.pending_count() == 1  # the root's message
    huey.flush()
    assert huey.pending_count() == 0
    inserted_at = steps_of(fault_app, wf.workflow_id)["a"].created_at

    with ConsumerProcess(fault_settings, tmp_path / "consumer.log") as consumer:
        assert finish(fault_app, wf.workflow_id, consumer) == "completed"

    steps = steps_of(fault_app, wf.workflow_id)
    # It ran only once the sweep found it waiting for longer than a lease.
    assert steps["a"].started_at > inserted_at + LEASE
    assert steps["a"].attempt == 1
    assert jobs[0].id == steps["a"].id
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert_results(fault_app, wf.workflow_id, DIAMOND_DEPS, DIAMOND_VALUES)
    assert_finished_once(fault_app, wf.workflow_id)


# -- 4. a consumer dies, or is interrupted, in a step handed off to it ---------------

#: a -> b -> c: a's worker claims b with a's completion and runs it (direct hand-off).
HANDOFF_DEPS: dict[str, list[str]] = {"a": [], "b": ["a"], "c": ["b"]}
HANDOFF_VALUES = {"a": 1, "b": 2, "c": 3}


def interrupted_in_handed_off_step(
    app: Flask, settings: Mapping[str, Any], markers: Path, log: Path, sig: int
) -> tuple[Workflow, ConsumerProcess, int]:
    """Run a -> b -> c until b, handed off to a's worker, runs its first (endless) run; send ``sig``."""
    wf = Workflow("fault:handed-off")
    for step, deps in HANDOFF_DEPS.items():
        args = {"value": HANDOFF_VALUES[step], "marker_dir": str(markers)}
        wf.add(step, fault_step.new(**args, first_seconds=FOREVER if step == "b" else 0), deps=deps)
    # A budget no test reaches: b is handed off however slow the machine.
    with ConsumerProcess({**settings, "BATON_HANDOFF_SECONDS": 600}, log) as consumer:
        wf.insert()
        wait_running(app, wf.workflow_id, "b", markers / "b.1.started", consumer)
        with app.extensions["baton"].engine.connect() as conn:
            released, claimed = conn.execute(
                select(nodes.c.scheduled_at, nodes.c.started_at).where(
                    nodes.c.workflow_id == wf.workflow_id, nodes.c.step_name == "b"
                )
            ).one()
        assert released == claimed, "b was claimed by a message, not by a's completion"
        consumer.send(sig)
        code = consumer.wait()
    return wf, consumer, code


def test_consumer_killed_in_a_handed_off_step_leaves_it_to_the_sweep(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    wf, first, code = interrupted_in_handed_off_step(
        fault_app, fault_settings, markers, tmp_path / "first.log", signal.SIGKILL
    )
    assert code == -signal.SIGKILL
    assert step_state(fault_app, wf.workflow_id, "b") == "executing"  # under the dead consumer's lease

    with ConsumerProcess(fault_settings, tmp_path / "second.log") as second:
        assert finish(fault_app, wf.workflow_id, first, second) == "completed"

    assert_rescued_and_run_again_once(
        fault_app, ledger_path, wf.workflow_id, "b", first, second, HANDOFF_DEPS, HANDOFF_VALUES
    )


def test_sigterm_in_a_handed_off_step_hands_that_step_back(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    wf, first, code = interrupted_in_handed_off_step(
        fault_app, fault_settings, markers, tmp_path / "first.log", signal.SIGTERM
    )
    assert code == 0, first.output()
    # Huey knows only the message it delivered (a's, whose step completed):
    # the step handed back is the one that delivery was running.
    b = steps_of(fault_app, wf.workflow_id)["b"]
    assert (b.state.value, b.attempt, b.worker) == ("available", 0, None)

    with ConsumerProcess(fault_settings, tmp_path / "second.log") as second:
        assert finish(fault_app, wf.workflow_id, first, second) == "completed"

    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"a": 1, "b": 2, "c": 1}
    assert step_events(fault_app, wf.workflow_id, "b", "retryable") == []  # no rescue was needed
    assert_results(fault_app, wf.workflow_id, HANDOFF_DEPS, HANDOFF_VALUES)
    assert_finished_once(fault_app, wf.workflow_id)


# -- 5. PostgreSQL drops every connection mid-run -----------------------------------

# r -> (f1..f4) -> m -> c1 -> c2: fan-out, fan-in and a chain, every step slow-ish.
DROP_DEPS: dict[str, list[str]] = {
    "r": [],
    "f1": ["r"],
    "f2": ["r"],
    "f3": ["r"],
    "f4": ["r"],
    "m": ["f1", "f2", "f3", "f4"],
    "c1": ["m"],
    "c2": ["c1"],
}
DROP_VALUES = {name: index for index, name in enumerate(DROP_DEPS)}
#: Seconds between two rounds of terminating the consumer's connections, and how many rounds at most.
DROP_EVERY, DROP_ROUNDS = 0.15, 20


#: Dropping server connections needs PostgreSQL: these tests run on that backend only.
postgres_only = pytest.mark.parametrize("settings", ["postgres-redis"], indirect=True)


@postgres_only
def test_postgres_connections_dropped_mid_run_lose_nothing(
    fault_app: Flask, fault_settings: dict[str, Any], ledger_path: Path, tmp_path: Path
) -> None:
    # The consumer's connections carry a name of their own, so the test never
    # terminates its own (or another test's) connections.
    app_name = f"baton_fault_{uuid.uuid4().hex[:12]}"
    consumer_settings = {
        **fault_settings,
        "SQLALCHEMY_DATABASE_URI": f"{fault_settings['SQLALCHEMY_DATABASE_URI']}&application_name={app_name}",
    }
    # Steps with retries: a connection dropped while a step function itself
    # reads its inputs (job.results()) fails that run (see
    # test_step_reading_its_inputs_during_a_database_outage_is_not_failed).
    wf = Workflow("fault:pg-drop")
    for name, deps in DROP_DEPS.items():
        wf.add(name, fault_step_retrying.new(value=DROP_VALUES[name], seconds=0.4), deps=deps)

    admin = create_engine(POSTGRES_URL)
    terminate = text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = :name"
    )
    rounds: list[int] = []
    try:
        with ConsumerProcess(consumer_settings, tmp_path / "consumer.log", workers=4) as consumer:
            wf.insert()
            workflow = fault_app.extensions["baton"].query.get_workflow
            # Drop every connection of the consumer, round after round, while
            # the workflow runs; then let it finish.
            while workflow(wf.workflow_id).state == "running" and len(rounds) < DROP_ROUNDS:
                time.sleep(DROP_EVERY)  # pacing the faults, not waiting for an outcome
                with admin.connect() as conn:
                    rounds.append(conn.execute(terminate, {"name": app_name}).scalar_one())
            assert finish(fault_app, wf.workflow_id, consumer) == "completed"
            assert consumer.process is not None and consumer.process.poll() is None, consumer.output()
    finally:
        admin.dispose()

    assert sum(rounds) > 0, f"no consumer connection was ever terminated: {rounds}"
    with fault_app.extensions["baton"].engine.connect() as conn:
        unstored = conn.execute(
            select(func.count())
            .select_from(nodes)
            .where(nodes.c.workflow_id == wf.workflow_id, nodes.c.state == "completed", nodes.c.result.is_(None))
        ).scalar_one()
    assert unstored == 0
    assert_results(fault_app, wf.workflow_id, DROP_DEPS, DROP_VALUES)
    assert_finished_once(fault_app, wf.workflow_id)
    # Dropped connections may cost a step a rerun (a lost claim or outcome is
    # rescued, a failed input read retried), never a lost step.
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert set(runs) == set(DROP_DEPS), runs


class ConsumerRole:
    """A PostgreSQL login role for the consumer alone, whose logins a test switches off.

    ``outage()`` is a database that is down for the consumer: its sessions
    are terminated and new ones refused, while the test's own connections
    (role ``postgres``) keep working.
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.name = f"baton_fault_{uuid.uuid4().hex[:12]}"
        url = make_url(str(settings["SQLALCHEMY_DATABASE_URI"]))
        self.schema = str(url.query["options"]).rsplit("search_path=", 1)[1]
        self.url = url.set(username=self.name).render_as_string(hide_password=False)
        self._admin = create_engine(POSTGRES_URL)

    def _run(self, *statements: str) -> None:
        with self._admin.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))

    def __enter__(self) -> ConsumerRole:
        role, schema = f'"{self.name}"', f'"{self.schema}"'
        self._run(
            f"CREATE ROLE {role} LOGIN",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        )
        return self

    def begin_outage(self) -> int:
        """Refuse the role's logins and end its sessions; returns how many were ended."""
        self._run(f'ALTER ROLE "{self.name}" NOLOGIN')
        return self.terminate()

    def end_outage(self) -> None:
        self._run(f'ALTER ROLE "{self.name}" LOGIN')

    def terminate(self) -> int:
        with self._admin.begin() as conn:
            return conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = :name"),
                {"name": self.name},
            ).scalar_one()

    def __exit__(self, *exc: object) -> None:
        try:
            self.terminate()
            self._run(f'DROP OWNED BY "{self.name}"', f'DROP ROLE "{self.name}"')
        finally:
            self._admin.dispose()


#: How long the database stays away; shorter than OUTAGE_LEASE (so no step is
#: presumed dead) and than the ~7.7s runner._record rides out.
OUTAGE_SECONDS = 2.5
OUTAGE_LEASE = 10.0
# r -> x -> y; x is running when the database goes away.
OUTAGE_DEPS: dict[str, list[str]] = {"r": [], "x": ["r"], "y": ["x"]}
OUTAGE_VALUES = {"r": 1, "x": 2, "y": 3}


def run_through_outage(
    app: Flask, settings: Mapping[str, Any], markers: Path, tmp_path: Path, x_reads_inputs: str
) -> tuple[str, ConsumerProcess, int]:
    """Run r -> x -> y; the database goes away for the consumer while x runs.

    x sleeps 1.5s on its run (so it finishes inside the outage) and reads its
    inputs ``"before"`` or ``"after"`` that sleep. Waits for the workflow to
    finish; returns its id, the consumer and how many sessions the outage ended.
    """
    wf = Workflow("fault:outage")
    for name, deps in OUTAGE_DEPS.items():
        args: dict[str, Any] = {"value": OUTAGE_VALUES[name], "marker_dir": str(markers)}
        if name == "x":
            args.update(first_seconds=1.5, read_inputs=x_reads_inputs)
        wf.add(name, fault_step.new(**args), deps=deps)
    with ConsumerRole(settings) as role:
        consumer_settings = {**settings, "BATON_LEASE_SECONDS": OUTAGE_LEASE, "SQLALCHEMY_DATABASE_URI": role.url}
        with ConsumerProcess(consumer_settings, tmp_path / "consumer.log") as consumer:
            wf.insert()
            wait_running(app, wf.workflow_id, "x", markers / "x.1.started", consumer)
            ended = role.begin_outage()
            try:
                time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for an outcome
            finally:
                role.end_outage()
            finish(app, wf.workflow_id, consumer)
    return wf.workflow_id, consumer, ended


@postgres_only
def test_step_outcome_reached_during_a_database_outage_is_recorded_after_it(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    workflow_id, consumer, ended = run_through_outage(fault_app, fault_settings, markers, tmp_path, "before")
    assert ended > 0  # the consumer had sessions, and lost them
    assert "could not record a step outcome" in consumer.output()
    assert fault_app.extensions["baton"].query.get_workflow(workflow_id).state == "completed"
    # Shorter than the lease: nothing presumed dead, nothing run twice.
    assert ledger.runs_per_step(ledger_path, workflow_id) == {"r": 1, "x": 1, "y": 1}
    assert_results(fault_app, workflow_id, OUTAGE_DEPS, OUTAGE_VALUES)
    assert_finished_once(fault_app, workflow_id)


@postgres_only
def test_step_reading_its_inputs_during_a_database_outage_is_not_failed(
    fault_app: Flask, fault_settings: dict[str, Any], markers: Path, ledger_path: Path, tmp_path: Path
) -> None:
    workflow_id, _, _ = run_through_outage(fault_app, fault_settings, markers, tmp_path, "after")
    steps = steps_of(fault_app, workflow_id)
    assert steps["x"].state.value == "completed", steps["x"].error
    assert fault_app.extensions["baton"].query.get_workflow(workflow_id).state == "completed"
    assert ledger.runs_per_step(ledger_path, workflow_id) == {"r": 1, "x": 1, "y": 1}
    assert_results(fault_app, workflow_id, OUTAGE_DEPS, OUTAGE_VALUES)
