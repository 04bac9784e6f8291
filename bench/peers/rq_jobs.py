"""The RQ side of ``python -m bench --peers``: its three job functions.

RQ workers import a job's function by its dotted name, so these live in a
module of their own that the worker can import without the driver's code
(or Celery). Each function appends its ledger line when it runs, like the
raw Huey task and the flask_baton steps.
"""

from __future__ import annotations

from rq import get_current_job
from rq.job import Job

from .. import ledger


def noop(key: str) -> None:
    ledger.write("x", key)


def value(key: str, v: int) -> int:
    ledger.write("x", key)
    return v


def fan_in(key: str) -> int:
    """Read every dependency's result, as a user's fan-in would, and sum them."""
    job = get_current_job()
    assert job is not None
    parts = Job.fetch_many(job.dependency_ids, connection=job.connection)
    total = sum(part.return_value() for part in parts if part is not None)
    ledger.write("x", key)
    return total
