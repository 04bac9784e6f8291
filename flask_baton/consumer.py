"""Building the Huey consumer ``flask baton worker`` (and the tests) run, and what it logs.

Huey checks periodic tasks once a minute; the sweep may need to run more
often (``BATON_SWEEP_INTERVAL`` < 60), so our consumer's scheduler checks
them every ``min(60, BATON_SWEEP_INTERVAL)`` seconds. The sweep's own lease
keeps it to one effective run per interval across all consumers.

``flask baton worker`` is the one place flask_baton configures logging
(``configure_logging``): the worker's own lines (``worklog``) and its banner
(``log_banner``, the app's steps per queue) go to ``flask_baton.worker``;
Huey's INFO lines about our own tasks ("Executing ...", "... executed in
0.008s", "Enqueueing periodic task ...", the list of our two internal tasks)
say nothing an operator can use, so they are dropped unless ``-v``.

A consumer refuses to start (``SchemaError``) on a database whose
flask_baton schema is missing or outdated, instead of failing every step
and every sweep with the driver's error.
"""

from __future__ import annotations

import logging
from typing import Any

from huey.api import Task
from huey.consumer import Consumer

from . import huey_compat
from .appstate import AppState
from .queues import TASK_MODULE
from .steps import DEFAULT_QUEUE
from .store.engine import riding_out_outages
from .worklog import logger

#: The worker's log format when the app configured no logging itself.
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(threadName)s %(name)s: %(message)s"
#: Where Huey logs per task: its API, its consumer's banner, its scheduler.
HUEY_LOGGERS = ("huey", "huey.consumer", "huey.consumer.Scheduler")
_HUEY_COMMANDS = "The following commands are available:"


def create_consumer(state: AppState, queue: str = DEFAULT_QUEUE, **options: Any) -> Consumer:
    """A Huey consumer for one of the app's queues; ``options`` as Huey's ``Consumer``."""
    # A consumer often starts while its database restarts too (a deploy, a failover):
    # ride out a brief outage instead of exiting before it ran anything.
    riding_out_outages(state.ready, "check flask_baton's schema")
    every = max(1.0, min(60.0, state.config.sweep_interval))
    consumer = huey_compat.create_consumer(state.queues.huey(queue), every, **options)
    # Once it is asked to stop, its workers hand off no more steps (``handoff``).
    state.queues.watch_stop(queue, huey_compat.stopping(consumer))
    return consumer


def configure_logging(verbose: bool) -> None:
    """Log to stderr at INFO (DEBUG with ``verbose``), unless the app configured logging itself.

    ``basicConfig`` adds a handler only when the root logger has none, so an
    app's own handlers (JSON, syslog) are used as they are, never doubled.
    ``verbose`` also lowers the ``flask_baton`` loggers to DEBUG, so it shows
    successes and tracebacks whoever configured the handlers, and keeps
    Huey's per-task lines.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    if verbose:
        logging.getLogger("flask_baton").setLevel(logging.DEBUG)
        return
    for name in HUEY_LOGGERS:
        huey_logger = logging.getLogger(name)
        if _QUIET_OWN_TASKS not in huey_logger.filters:
            huey_logger.addFilter(_QUIET_OWN_TASKS)


class _QuietOwnTasks(logging.Filter):
    """Drops Huey's INFO lines about flask_baton's own tasks; keeps warnings and other tasks' lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(arg, Task) and type(arg).__module__ == TASK_MODULE for arg in args):
            return False
        message = str(record.msg)
        if message.startswith(_HUEY_COMMANDS):
            commands = message.splitlines()[1:]
            return not all(line.startswith(f"+ {TASK_MODULE}.") for line in commands)
        return True


_QUIET_OWN_TASKS = _QuietOwnTasks()


def steps_by_queue(state: AppState, first: str) -> dict[str, list[str]]:
    """The app's step names per queue, ``first`` first, then the rest by name; built-in steps left out."""
    queues: dict[str, list[str]] = {first: []}
    for name, step in sorted(state.steps.items()):
        if not name.startswith(f"{TASK_MODULE}."):
            queues.setdefault(step.queue, []).append(name)
    return {first: queues.pop(first), **dict(sorted(queues.items()))}


def log_banner(state: AppState, queue: str) -> None:
    """Say what this worker runs: the app's steps per queue, its own queue first, the sweep and the schedules.

    Warns when no step runs on ``queue`` (a misspelt ``--queue`` would
    otherwise wait for work that never comes).
    """
    queues = steps_by_queue(state, queue)
    runs_sweep = queue == DEFAULT_QUEUE
    schedules = sorted(state.schedules) if runs_sweep else []
    fields = {
        "baton_event": "worker_started",
        "queue": queue,
        "steps_by_queue": queues,
        "sweep_interval": state.config.sweep_interval if runs_sweep else None,
        "schedules": schedules,
    }
    sweep = f", runs the sweep every {state.config.sweep_interval:g}s" if runs_sweep else ""
    if schedules:
        sweep += f" and the schedules {', '.join(schedules)}"
    lines = [f"flask_baton worker for app {state.app.name!r} on queue {queue!r}{sweep}; steps by queue:"]
    for name, steps in queues.items():
        where = " (this worker)" if name == queue else f" (flask baton worker --queue {name})"
        lines.append(f"  {name}{where}: {', '.join(steps) or '-'}")
    logger.info("\n".join(lines), extra=fields)
    if not queues[queue] and not runs_sweep:
        logger.warning(
            "no step of app %r runs on queue %r; its queues: %s",
            state.app.name,
            queue,
            ", ".join(name for name, steps in queues.items() if steps),
            extra=fields,
        )
