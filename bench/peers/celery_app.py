"""The Celery side of ``python -m bench --peers``: its app and its three tasks.

``build(url, prefix, queue)`` makes the app the driver sends from; the
worker subprocess (``celery -A bench.peers.celery_app worker ...``) builds
the same one from ``BENCH_CELERY_*`` environment variables through the
module attribute ``app``, as ``bench.raw`` does for raw Huey. Redis is both
broker and result backend (a chord needs a backend to join its header), and
every key either makes starts with ``prefix``, so a run can delete exactly
its own keys from a Redis other tests and helpers share.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from .. import counters, ledger

NOOP = "bench_celery_noop"
VALUE = "bench_celery_value"
FAN_IN = "bench_celery_fan_in"


def build(url: str, prefix: str, queue: str) -> Celery:
    """A Celery app on Redis with the benchmark's tasks registered."""
    app = Celery("bench_peers", broker=url, backend=url, set_as_current=False)
    keys = {"global_keyprefix": prefix}
    # The tasks below are ``shared=False``: each app (one per run and system)
    # registers its own, not every app built in this process.
    app.conf.update(
        broker_transport_options=keys,
        result_backend_transport_options=keys,
        task_default_queue=queue,
        # No pidbox queue and no broadcast traffic: the workers read only the
        # bench's queue, as raw Huey's and flask_baton's consumers do.
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
    )

    # Stores no result, as raw Huey runs with results=False; the chord's
    # header and callback do (the chord needs them). Celery also skips
    # subscribing the sender to a result that will never come.
    @app.task(name=NOOP, shared=False, ignore_result=True)
    def noop(key: str) -> None:
        ledger.write("x", key)

    @app.task(name=VALUE, shared=False)
    def value(key: str, v: int) -> int:
        ledger.write("x", key)
        return v

    @app.task(name=FAN_IN, shared=False)
    def fan_in(results: list[int], key: str) -> int:
        # The chord's callback: the Redis backend hands it every header result.
        total = sum(results)
        ledger.write("x", key)
        return total

    return app


def environment_for(url: str, prefix: str, queue: str) -> dict[str, str]:
    return {"BENCH_CELERY_URL": url, "BENCH_CELERY_PREFIX": prefix, "BENCH_CELERY_QUEUE": queue}


_built: Celery | None = None


def __getattr__(attr: str) -> Any:
    # ``celery -A bench.peers.celery_app`` looks up this attribute.
    global _built
    if attr == "app":
        if _built is None:
            counters.install_from_env()  # the worker: count its Redis commands if the benchmark asks
            _built = build(
                os.environ["BENCH_CELERY_URL"], os.environ["BENCH_CELERY_PREFIX"], os.environ["BENCH_CELERY_QUEUE"]
            )
        return _built
    raise AttributeError(attr)
