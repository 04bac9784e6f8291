"""``python -m bench --peers``: Celery and RQ beside raw Huey and flask_baton.

Both peers run on the Redis of the ``redis`` storage block, with their
consumers started, warmed up and interleaved run by run with the other two
systems (``run_storage`` treats them like any ``System``), and are timed the
same way (``base.py``). ``table()`` turns the four systems' runs into one
table of every system's ratio to raw Huey. Celery and RQ come from the
``bench`` extra; nothing here imports them until a peer is built.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..storage import Storage
from ..systems import System
from .table import PeerTable, table

__all__ = ["PeerTable", "missing", "systems", "table"]

#: The distributions the peers need, by the module that proves each installed.
REQUIRED = {"celery": "celery[redis]", "rq": "rq"}


def missing() -> str | None:
    """Why ``--peers`` cannot run here, or None when it can."""
    absent = [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    return (
        f"--peers needs {' and '.join(absent)} (not installed here); install the bench extra: "
        ".venv/bin/pip install -e '.[dev,bench]'"
    )


def systems(storage: Storage, workdir: Path) -> list[System]:
    """Celery and RQ on ``storage``'s Redis (a ``redis`` storage block only)."""
    from .celery_system import CelerySystem
    from .rq_system import RqSystem

    return [CelerySystem(storage, workdir), RqSystem(storage, workdir)]
