"""Test helpers: a real Huey consumer in threads, and waiting with a deadline."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
from flask import Flask
from huey.consumer import Consumer

from flask_baton.consumer import create_consumer
from flask_baton.query import WorkflowRecord

T = TypeVar("T")

#: Config that keeps events in the database feed on every backend, for tests
#: that read what was published from ``baton_events``.
DATABASE_FEED: dict[str, Any] = {"BATON_PUBSUB_URL": None}

#: The payload keys of a ``workflow_step_updated`` / ``workflow_finished`` event and signal (SPEC.md).
STEP_KEYS = {
    "workflow_id",
    "workflow_label",
    "step_name",
    "worker",
    "state",
    "job_id",
    "attempt",
    "has_result",
    "error",
    "timestamp",
}
FINISHED_KEYS = {"workflow_id", "workflow_label", "outcome", "failed_steps", "timestamp"}


def wait_for(condition: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Poll ``condition`` until it is truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def wait_finished(app: Flask, workflow_id: str, timeout: float = 20.0) -> WorkflowRecord:
    """Wait until the workflow is no longer running; return its record."""
    query = app.extensions["baton"].query

    def finished() -> WorkflowRecord | None:
        record = query.get_workflow(workflow_id)
        return record if record is not None and record.state != "running" else None

    return wait_for(finished, f"workflow {workflow_id} to finish", timeout)


def step_states(app: Flask, workflow_id: str) -> dict[str, str]:
    """Each step's state, by step name."""
    return {s.step_name: s.state.value for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def claim_as_dead_consumer(app: Flask, node_id: str, at: float) -> None:
    """Claim a step as a consumer that then dies: no heartbeat ever follows ``at``."""
    from sqlalchemy import update

    from flask_baton import transitions
    from flask_baton.store import Tx
    from flask_baton.store.tables import nodes

    state = app.extensions["baton"]
    with state.store.write() as conn:
        assert transitions.claim(Tx(state.store, conn, time.time()), node_id, "gone-host:4242").value is not None
        conn.execute(update(nodes).where(nodes.c.id == node_id).values(started_at=at, heartbeat_at=at))


#: What each schema version added, undone: version N's statements take a
#: database at N back to N - 1 (``make_version``).
_UNDO: dict[int, tuple[str, ...]] = {
    11: ("DROP TABLE baton_rate_buckets", "ALTER TABLE baton_nodes DROP COLUMN waiting_for"),
    10: ("DROP INDEX ix_baton_completions_unpublished", "ALTER TABLE baton_completions DROP COLUMN published_at"),
    9: ("DROP TABLE baton_waits", "DROP TABLE baton_signals"),
    8: ("ALTER TABLE baton_workflows DROP COLUMN budget_usd", "ALTER TABLE baton_workflows DROP COLUMN on_budget"),
    7: ("DROP TABLE baton_schedule_ticks",),
    6: (
        "ALTER TABLE baton_step_stats DROP COLUMN reasoning_tokens",
        "ALTER TABLE baton_step_stats DROP COLUMN cache_write_tokens",
    ),
    5: ("DROP TABLE baton_consumers", "DROP INDEX ix_baton_workflows_finished"),
    4: ("ALTER TABLE baton_nodes DROP COLUMN cancelled_by", "ALTER TABLE baton_workflows DROP COLUMN retried"),
    3: ("DROP TABLE baton_attempts",),
    2: ("ALTER TABLE baton_nodes DROP COLUMN dependents_version",),
}


def make_version(app: Flask, version: int) -> None:
    """Turn the app's installed schema (the newest) back into what schema ``version`` was, recorded as such."""
    from sqlalchemy import text

    from flask_baton.store import migrations

    assert set(_UNDO) == set(range(2, migrations.SCHEMA_VERSION + 1)), "a schema version has no undo here"
    with app.extensions["baton"].engine.begin() as conn:
        for undone in range(migrations.SCHEMA_VERSION, version, -1):
            for statement in _UNDO[undone]:
                conn.execute(text(statement))
        conn.execute(text(f"UPDATE baton_schema SET version = {version}"))


#: Marks a test that reads this process's open files from Linux's ``/proc``.
LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files from Linux's /proc")


def open_files(prefix: str) -> list[str]:
    """Paths starting with ``prefix`` that this process holds open (see ``LINUX_PROC``)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with suppress(OSError):  # an fd closed while listed
            target = os.readlink(fd)
            if target.startswith(prefix):
                found.append(target)
    return found


class RunningConsumer:
    """A Huey consumer started in this process for the ``with`` block, stopped gracefully after it."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Self:
        # Consumer.start() installs its own signal handlers; give pytest's back after.
        self._saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        self.consumer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop(graceful=True)
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


class ThreadConsumer(RunningConsumer):
    """A real Huey consumer (worker threads + scheduler) for one app's queue."""

    def __init__(self, app: Flask, workers: int = 4, queue: str = "default", periodic: bool = False) -> None:
        super().__init__(
            create_consumer(
                app.extensions["baton"],
                queue,
                workers=workers,
                worker_type="thread",
                initial_delay=0.002,
                backoff=1.2,
                max_delay=0.05,
                periodic=periodic,
                check_worker_health=False,
            )
        )


# -- recorders for the core engine suite ---------------------------------------


class EventLog:
    """Every flask_baton telemetry event sent while open, from any thread.

    Connects blinker receivers to each step signal and to
    ``workflow_finished``; the in-process ``ThreadConsumer`` sends them.
    """

    def __init__(self) -> None:
        import threading

        from flask_baton import telemetry

        self._lock = threading.Lock()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._receivers: list[tuple[Any, Callable[..., None]]] = [
            (telemetry.step_signal(state), self._recorder(f"step.{state}")) for state in telemetry.STEP_STATES
        ]
        self._receivers.append((telemetry.workflow_finished, self._recorder("workflow.finished")))

    def _recorder(self, name: str) -> Callable[..., None]:
        def receive(_sender: Any, **payload: Any) -> None:
            with self._lock:
                self.events.append((name, payload))

        return receive

    def __enter__(self) -> EventLog:
        for signal_, receiver in self._receivers:
            signal_.connect(receiver, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        for signal_, receiver in self._receivers:
            signal_.disconnect(receiver)

    def steps(self, workflow_id: str, step_name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Step events of one workflow (of one step, if given) in the order sent."""
        with self._lock:
            return [
                (name, payload)
                for name, payload in self.events
                if name.startswith("step.")
                and payload["workflow_id"] == workflow_id
                and step_name in (None, payload["step_name"])
            ]

    def finished(self, workflow_id: str) -> list[dict[str, Any]]:
        """``workflow_finished`` payloads of one workflow."""
        with self._lock:
            return [p for name, p in self.events if name == "workflow.finished" and p["workflow_id"] == workflow_id]

    def wait_caught_up(self, app: Flask, workflow_id: str) -> WorkflowRecord:
        """Wait for the workflow to finish and for its signals to catch up; return its record.

        Signals are sent after the commit, by whichever consumer thread made
        the change, so the rows can show the end before the last of them is
        heard: wait until ``workflow_finished`` came and each step's latest
        signal names its stored state and attempt.
        """
        record = wait_finished(app, workflow_id)
        stored = {
            s.step_name: (s.state.value, s.attempt)
            for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)
        }

        def caught_up() -> bool:
            heard = {p["step_name"]: (p["state"], p["attempt"]) for _name, p in self.steps(workflow_id)}
            return heard == stored and bool(self.finished(workflow_id))

        wait_for(caught_up, f"the signals of workflow {workflow_id} to catch up with its rows")
        return record


class Deliveries:
    """How many Huey deliveries of each step a consumer has started and finished handling.

    Counted with Huey's own ``SIGNAL_EXECUTING`` and ``SIGNAL_COMPLETE``
    (sent after the task body returned), so a test can wait until a
    duplicate message was processed and then assert that nothing ran,
    instead of sleeping. A step handed off to the worker that completed its
    dependency runs inside that dependency's delivery (``wait_all_handled``).
    """

    def __init__(self, app: Flask, queue: str = "default") -> None:
        import threading

        self.huey = app.extensions["baton"].queues.huey(queue)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.started = 0

    def _on_executing(self, _signal: str, task: Any, *args: Any) -> None:
        with self._lock:
            self.started += 1

    def _on_complete(self, _signal: str, task: Any, *args: Any) -> None:
        with self._lock:
            self.counts[task.args[0]] = self.counts.get(task.args[0], 0) + 1

    def __enter__(self) -> Deliveries:
        from huey.signals import SIGNAL_COMPLETE, SIGNAL_EXECUTING

        self.huey.signal(SIGNAL_EXECUTING)(self._on_executing)
        self.huey.signal(SIGNAL_COMPLETE)(self._on_complete)
        return self

    def __exit__(self, *exc: object) -> None:
        from huey.signals import SIGNAL_COMPLETE, SIGNAL_EXECUTING

        self.huey.disconnect_signal(self._on_executing, SIGNAL_EXECUTING)
        self.huey.disconnect_signal(self._on_complete, SIGNAL_COMPLETE)

    def wait(self, node_id: str, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` deliveries of step ``node_id`` were handled."""
        wait_for(lambda: self.counts.get(node_id, 0) >= count, f"{count} handled deliveries of step {node_id}", timeout)

    def wait_all_handled(self, timeout: float = 20.0) -> None:
        """Wait until every delivery started since the block began was handled (and the steps handed off in it)."""
        wait_for(lambda: sum(self.counts.values()) >= self.started, "every started delivery to be handled", timeout)


def cancel_mid_run(app: Flask, workflow: Any, gates: Sequence[Path], reached: Mapping[str, str]) -> None:
    """Insert ``workflow``, wait until its steps are in the states ``reached``, and cancel it as a user would.

    The steps ``reached`` says are ``executing`` are held by files in
    ``gates``: those are created after the cancel, and each held run is
    waited for until it has returned (its late outcome dropped), so no
    consumer thread is still busy with the workflow.
    """
    from flask_baton import control

    with Deliveries(app) as deliveries:
        workflow.insert()
        wait_for(
            lambda: all(step_states(app, workflow.workflow_id)[name] == state for name, state in reached.items()),
            f"the steps to reach {dict(reached)}",
        )
        control.cancel_workflow(app.extensions["baton"], workflow.workflow_id)
        for gate in gates:
            gate.touch()
        if "executing" in reached.values():
            # A held step may run inside its dependency's delivery (direct hand-off).
            deliveries.wait_all_handled()


class WorkerProcess:
    """``flask baton worker`` as a real subprocess, on the same storage as a test app."""

    def __init__(
        self, settings: dict[str, Any], *extra_args: str, workers: int = 2, factory: str = "tests.apps:create_app"
    ) -> None:
        import os
        import sys
        from pathlib import Path

        from .apps import environment_for

        root = Path(__file__).resolve().parent.parent
        self.args = [
            sys.executable,
            "-m",
            "flask",
            "--app",
            factory,
            "baton",
            "worker",
            "-w",
            str(workers),
            "--delay",
            "0.005",
            "--max-delay",
            "0.05",
            *extra_args,
        ]
        self.env = {**os.environ, **environment_for(settings), "PYTHONPATH": str(root)}
        self.cwd = root
        self.process: Any = None
        self.output = ""

    def __enter__(self) -> WorkerProcess:
        import subprocess

        self.process = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.output, _ = self.process.communicate()
