"""The raw Huey side of the benchmark: the same no-op task, no flask_baton.

``build(kind, name, target)`` makes a Huey instance with the task registered;
the consumer subprocess (``huey_consumer bench.raw.huey ...``) gets one built
from ``BENCH_RAW_*`` environment variables through the module attribute
``huey``. Results are off, as on flask_baton's Huey (it keeps step results in
its own table), so both sides pay for the same queue traffic.
"""

from __future__ import annotations

import os
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.api import TaskWrapper
from huey.signals import SIGNAL_EXECUTING

from flask_baton import huey_compat

from . import counters, ledger

TASK_NAME = "bench_raw_noop"


#: ``python -m bench --raw-sqlite-synchronous LEVEL``: raw Huey's SQLite file at that
#: ``synchronous`` level instead of Huey's default (FULL in recent Huey).
SYNCHRONOUS_ENV = "BENCH_RAW_SQLITE_SYNCHRONOUS"


def build(kind: str, name: str, target: str) -> tuple[Huey, TaskWrapper]:
    """A Huey on SQLite (``target`` = file) or Redis (``target`` = URL)."""
    if kind == "sqlite" and (level := os.environ.get(SYNCHRONOUS_ENV)):
        huey: Huey = huey_compat.sqlite_huey(name, target, level)
    elif kind == "sqlite":
        huey = SqliteHuey(name, filename=target, results=False)
    elif kind == "redis":
        huey = RedisHuey(name, url=target, results=False)
    else:
        raise ValueError(f"unknown raw Huey kind {kind!r}")

    @huey.task(name=TASK_NAME)
    def noop(key: str, *_previous: Any) -> None:
        ledger.write("x", key)

    @huey.signal(SIGNAL_EXECUTING)
    def _delivered(_signal: str, task: Any) -> None:
        if task.args:
            ledger.write("d", str(task.args[0]))

    return huey, noop


def environment_for(kind: str, name: str, target: str) -> dict[str, str]:
    return {"BENCH_RAW_KIND": kind, "BENCH_RAW_NAME": name, "BENCH_RAW_TARGET": target}


_built: tuple[Huey, TaskWrapper] | None = None


def __getattr__(attr: str) -> Any:
    # ``huey_consumer bench.raw.huey`` looks up this attribute.
    global _built
    if attr == "huey":
        if _built is None:
            counters.install_from_env()  # the consumer: count its statements if the benchmark asks
            _built = build(os.environ["BENCH_RAW_KIND"], os.environ["BENCH_RAW_NAME"], os.environ["BENCH_RAW_TARGET"])
        return _built[0]
    raise AttributeError(attr)
