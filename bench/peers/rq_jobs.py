"""The RQ side of ``python -m bench --peers``: its three job functions.

RQ workers import a job's function by its dotted name. The consumer is
started with ``--config bench.peers.rq_jobs``: RQ reads its settings from
this module (there are none), so the pool imports it once before it forks
its workers, and every work horse they fork has the functions already.
RQ's performance notes advise preloading so; without it each job's freshly
forked horse imports this module (and the bench package) anew, which made a
no-op job take 50-100 ms here, like Celery and Huey workers, which import
their tasks once at start. Each function appends its ledger line when it
runs, like the raw Huey task and the flask_baton steps.
"""

from __future__ import annotations

from rq import get_current_job

from .. import counters, ledger

# In the consumer (imported by ``--config``, before the pool forks): count its
# Redis commands if the benchmark asks; in the driver, nothing.
counters.install_from_env()


def noop(key: str) -> None:
    ledger.write("x", key)


def value(key: str, v: int) -> int:
    ledger.write("x", key)
    return v


def fan_in(key: str) -> int:
    """Read every dependency's result, as a user's fan-in would, and sum them."""
    job = get_current_job()
    assert job is not None
    # The ids the job was created with (its hash), not the ``dependencies``
    # set, which RQ may already have emptied by the time the fan-in runs.
    total = sum(part.return_value() for part in job.fetch_dependencies())
    ledger.write("x", key)
    return total
