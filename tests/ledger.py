"""A cross-process record of step executions, for asserting exactly-once.

Steps under test append one line per call to a file named by the app's
``TEST_LEDGER`` config. ``O_APPEND`` writes of a short line are atomic, so
threads and consumer subprocesses can all write to it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from flask import current_app


def record(job: Any, **extra: Any) -> None:
    """Note that ``job``'s function ran (called from inside a step)."""
    line = json.dumps({"workflow_id": job.workflow_id, "step": job.step_name, "attempt": job.attempt, **extra})
    fd = os.open(current_app.config["TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def entries(path: Path) -> list[dict[str, Any]]:
    """Every recorded call, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def runs_per_step(path: Path, workflow_id: str | None = None) -> Counter[str]:
    """How many times each step's function ran (of one workflow, if given)."""
    return Counter(e["step"] for e in entries(path) if workflow_id in (None, e["workflow_id"]))
